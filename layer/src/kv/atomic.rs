//! FoundationDB's atomic operations, byte for byte (`fdbclient/Atomic.h`).
//!
//! Invariants:
//! - every operation on an absent value stores the operand (COMPARE_AND_CLEAR keeps it absent);
//! - arithmetic and bitwise operations work on the operand's length: the existing value is
//!   zero-extended or truncated to it, and the result has exactly that length;
//! - these functions are pure: both backends' semantics and the engine's commit path use them.

use super::error::{codes, FdbError, FdbResult};
use super::options::MutationType;

/// The largest value FDB stores; APPEND_IF_FITS leaves the value alone past it.
pub const VALUE_SIZE_LIMIT: usize = 100_000;

/// Length of a versionstamp: 8-byte big-endian commit version then 2-byte batch order.
pub const VERSIONSTAMP_LEN: usize = 10;

/// Applies a non-versionstamp atomic operation to `existing`; `None` means the key is cleared.
pub fn apply(op: MutationType, existing: Option<&[u8]>, operand: &[u8]) -> Option<Vec<u8>> {
    let Some(existing) = existing else {
        return match op {
            MutationType::CompareAndClear => None,
            _ => Some(operand.to_vec()),
        };
    };
    let fitted = || fit(existing, operand.len());
    Some(match op {
        MutationType::Add => add(&fitted(), operand),
        MutationType::BitAnd => zip(&fitted(), operand, |a, b| a & b),
        MutationType::BitOr => zip(&fitted(), operand, |a, b| a | b),
        MutationType::BitXor => zip(&fitted(), operand, |a, b| a ^ b),
        MutationType::Max => pick_le(fitted(), operand, std::cmp::Ordering::Greater),
        MutationType::Min => pick_le(fitted(), operand, std::cmp::Ordering::Less),
        MutationType::ByteMax => existing.max(operand).to_vec(),
        MutationType::ByteMin => existing.min(operand).to_vec(),
        MutationType::CompareAndClear => {
            return (existing != operand).then(|| existing.to_vec());
        }
        MutationType::AppendIfFits => {
            if existing.len() + operand.len() > VALUE_SIZE_LIMIT {
                existing.to_vec()
            } else {
                [existing, operand].concat()
            }
        }
        MutationType::SetVersionstampedKey | MutationType::SetVersionstampedValue => {
            operand.to_vec()
        }
    })
}

/// `existing` zero-extended or truncated to `len` bytes.
fn fit(existing: &[u8], len: usize) -> Vec<u8> {
    let mut out = existing[..existing.len().min(len)].to_vec();
    out.resize(len, 0);
    out
}

fn add(existing: &[u8], operand: &[u8]) -> Vec<u8> {
    let mut carry = 0u16;
    existing
        .iter()
        .zip(operand)
        .map(|(&a, &b)| {
            let sum = u16::from(a) + u16::from(b) + carry;
            carry = sum >> 8;
            (sum & 0xFF) as u8
        })
        .collect()
}

fn zip(existing: &[u8], operand: &[u8], f: impl Fn(u8, u8) -> u8) -> Vec<u8> {
    existing
        .iter()
        .zip(operand)
        .map(|(&a, &b)| f(a, b))
        .collect()
}

/// Keeps `existing` when it compares `keep_if` against the operand as unsigned little-endian.
fn pick_le(existing: Vec<u8>, operand: &[u8], keep_if: std::cmp::Ordering) -> Vec<u8> {
    let order = existing.iter().rev().cmp(operand.iter().rev());
    if order == keep_if {
        existing
    } else {
        operand.to_vec()
    }
}

/// Splits a versionstamped parameter into its body and the offset of the 10 stamp bytes.
///
/// The last 4 bytes are a little-endian `u32` offset; they are removed. Errors with
/// `client_invalid_operation` when the stamp would not fit inside the body.
pub fn versionstamp_offset(param: &[u8]) -> FdbResult<(&[u8], usize)> {
    let invalid = FdbError::from_code(codes::CLIENT_INVALID_OPERATION);
    let split = param.len().checked_sub(4).ok_or(invalid)?;
    let (body, tail) = param.split_at(split);
    let offset = u32::from_le_bytes(tail.try_into().map_err(|_| invalid)?) as usize;
    if offset + VERSIONSTAMP_LEN > body.len() {
        return Err(invalid);
    }
    Ok((body, offset))
}

/// `param` with its trailing offset removed and `stamp` written at that offset.
pub fn place_versionstamp(param: &[u8], stamp: &[u8; VERSIONSTAMP_LEN]) -> FdbResult<Vec<u8>> {
    let (body, offset) = versionstamp_offset(param)?;
    let mut out = body.to_vec();
    out[offset..offset + VERSIONSTAMP_LEN].copy_from_slice(stamp);
    Ok(out)
}

/// A versionstamp from a commit version and a batch order.
pub fn versionstamp(version: u64, batch_order: u16) -> [u8; VERSIONSTAMP_LEN] {
    let mut stamp = [0u8; VERSIONSTAMP_LEN];
    stamp[..8].copy_from_slice(&version.to_be_bytes());
    stamp[8..].copy_from_slice(&batch_order.to_be_bytes());
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use MutationType::*;

    #[test]
    fn add_is_little_endian_and_operand_length() {
        assert_eq!(apply(Add, None, &[5]), Some(vec![5]));
        assert_eq!(apply(Add, Some(&[0xFF, 0]), &[1, 0]), Some(vec![0, 1]));
        assert_eq!(apply(Add, Some(&[0xFF, 0xFF]), &[1, 0]), Some(vec![0, 0]));
        assert_eq!(apply(Add, Some(&[1]), &[1, 0, 0]), Some(vec![2, 0, 0]));
        assert_eq!(apply(Add, Some(&[1, 1, 1]), &[1]), Some(vec![2]));
    }

    #[test]
    fn bitwise_ops_fit_the_operand() {
        assert_eq!(
            apply(BitAnd, Some(&[0xFF]), &[0x0F, 0xFF]),
            Some(vec![0x0F, 0])
        );
        assert_eq!(apply(BitOr, Some(&[0xF0, 1]), &[0x0F]), Some(vec![0xFF]));
        assert_eq!(apply(BitXor, None, &[3]), Some(vec![3]));
        assert_eq!(apply(BitXor, Some(&[3]), &[1]), Some(vec![2]));
    }

    #[test]
    fn max_min_compare_unsigned_little_endian() {
        assert_eq!(apply(Max, Some(&[0, 1]), &[0xFF, 0]), Some(vec![0, 1]));
        assert_eq!(apply(Min, Some(&[0, 1]), &[0xFF, 0]), Some(vec![0xFF, 0]));
        assert_eq!(apply(Max, Some(&[9, 9, 9]), &[1]), Some(vec![9]));
        assert_eq!(apply(Min, None, &[7]), Some(vec![7]));
    }

    #[test]
    fn byte_ops_compare_lexicographically() {
        assert_eq!(apply(ByteMax, Some(b"b"), b"ab"), Some(b"b".to_vec()));
        assert_eq!(apply(ByteMin, Some(b"b"), b"ab"), Some(b"ab".to_vec()));
    }

    #[test]
    fn compare_and_clear_and_append() {
        assert_eq!(apply(CompareAndClear, Some(b"x"), b"x"), None);
        assert_eq!(
            apply(CompareAndClear, Some(b"y"), b"x"),
            Some(b"y".to_vec())
        );
        assert_eq!(apply(CompareAndClear, None, b"x"), None);
        assert_eq!(
            apply(AppendIfFits, Some(b"ab"), b"c"),
            Some(b"abc".to_vec())
        );
        let big = vec![0u8; VALUE_SIZE_LIMIT];
        assert_eq!(apply(AppendIfFits, Some(&big), b"c"), Some(big.clone()));
    }

    #[test]
    fn versionstamp_placement() {
        let mut param = b"k__________z".to_vec();
        param.extend_from_slice(&1u32.to_le_bytes());
        let stamp = versionstamp(0x0102, 3);
        let key = place_versionstamp(&param, &stamp).unwrap();
        assert_eq!(&key[1..11], &stamp);
        assert_eq!(key.len(), 12);
        let mut bad = b"short".to_vec();
        bad.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            place_versionstamp(&bad, &stamp).unwrap_err().code(),
            codes::CLIENT_INVALID_OPERATION
        );
        assert!(versionstamp_offset(b"ab").is_err());
    }
}
