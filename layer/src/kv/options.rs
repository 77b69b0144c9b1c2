//! The vocabulary of the KV contract: mutation types, conflict-range types, range options.
//!
//! Range reads are key-based (`[begin, end)`, the FDB key selectors
//! `first_greater_or_equal(begin)` and `first_greater_or_equal(end)`), which is all the layer
//! needs; `RangeOption::next_range` builds the continuation of a read that stopped at its limit.

/// An atomic operation, with FoundationDB's byte semantics (see `kv::atomic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MutationType {
    /// Little-endian addition, wrapping.
    Add,
    /// Bytewise AND.
    BitAnd,
    /// Bytewise OR.
    BitOr,
    /// Bytewise XOR.
    BitXor,
    /// Unsigned little-endian maximum.
    Max,
    /// Unsigned little-endian minimum.
    Min,
    /// Lexicographic maximum.
    ByteMax,
    /// Lexicographic minimum.
    ByteMin,
    /// Clear the key if its value equals the operand.
    CompareAndClear,
    /// Append the operand unless the result would exceed 100,000 bytes.
    AppendIfFits,
    /// Set a key whose 10 bytes at the trailing 4-byte little-endian offset become the versionstamp.
    SetVersionstampedKey,
    /// Set a value whose 10 bytes at the trailing 4-byte little-endian offset become the versionstamp.
    SetVersionstampedValue,
}

/// Which conflict set `add_conflict_range` adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictRangeType {
    /// The range is treated as read: a later write by another transaction conflicts.
    Read,
    /// The range is treated as written: it conflicts with other transactions' reads.
    Write,
}

/// A key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// A key-based range read: `[begin, end)`, at most `limit` pairs, optionally in reverse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeOption {
    /// First key of the range (inclusive).
    pub begin: Vec<u8>,
    /// End of the range (exclusive).
    pub end: Vec<u8>,
    /// At most this many pairs; `None` for all.
    pub limit: Option<usize>,
    /// Read from the end of the range backwards.
    pub reverse: bool,
}

impl RangeOption {
    /// All pairs in `[begin, end)`, forwards.
    pub fn new(begin: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self {
            begin: begin.into(),
            end: end.into(),
            limit: None,
            reverse: false,
        }
    }

    /// The same range with a limit.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The same range read backwards.
    pub fn rev(mut self) -> Self {
        self.reverse = !self.reverse;
        self
    }

    /// The continuation of this range after `result`, or `None` when the range is exhausted.
    pub fn next_range(&self, result: &RangeResult) -> Option<Self> {
        if !result.more {
            return None;
        }
        let last = result.kvs.last()?;
        let mut next = self.clone();
        if self.reverse {
            next.end = last.key.clone();
        } else {
            next.begin = key_after(&last.key);
        }
        Some(next)
    }
}

/// The answer to one range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The pairs, in the direction of the read.
    pub kvs: Vec<KeyValue>,
    /// True when the read stopped at its limit and more pairs may follow.
    pub more: bool,
}

/// The smallest key greater than `key`: `key + \x00`.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The first key that does not start with `prefix` (FDB's `strinc`), or `None` when the prefix
/// is empty or all `0xFF`.
pub fn strinc(prefix: &[u8]) -> Option<Vec<u8>> {
    let keep = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=keep].to_vec();
    end[keep] += 1;
    Some(end)
}

/// Whether a retried closure may be running after an earlier attempt committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaybeCommitted(pub bool);

impl From<MaybeCommitted> for bool {
    fn from(value: MaybeCommitted) -> bool {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strinc_skips_trailing_ff() {
        assert_eq!(strinc(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(strinc(&[1, 0xFF, 0xFF]), Some(vec![2]));
        assert_eq!(strinc(&[0xFF]), None);
        assert_eq!(strinc(b""), None);
    }

    #[test]
    fn next_range_continues_in_both_directions() {
        let kv = |k: &[u8]| KeyValue {
            key: k.to_vec(),
            value: vec![],
        };
        let result = RangeResult {
            kvs: vec![kv(b"a"), kv(b"b")],
            more: true,
        };
        let fwd = RangeOption::new(b"a".to_vec(), b"z".to_vec()).limit(2);
        assert_eq!(fwd.next_range(&result).unwrap().begin, b"b\0".to_vec());
        let rev = fwd.clone().rev();
        assert_eq!(rev.next_range(&result).unwrap().end, b"b".to_vec());
        let done = RangeResult {
            more: false,
            ..result
        };
        assert!(fwd.next_range(&done).is_none());
    }
}
