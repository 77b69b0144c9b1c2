//! T1: receive inputs durably, and the per-player record of the highest durable seq.
//!
//! Invariants:
//! - T1 reads nothing: the input goes under a versionstamped key, the region's inbox signal is
//!   bumped with atomic ADD and the player's `durable/(player)` record is raised with atomic
//!   MAX, so concurrent senders never conflict;
//! - `durable/(player)` holds the highest seq of the player in any inbox or applied, with a
//!   digest of that input; since an edge stores a player's seqs without gaps (`durable + 1`),
//!   every seq at or below it is durable, and login reports it as `lastSeq`;
//! - a retried T1 (after `commit_unknown_result`) may append the same (player, seq) twice; T2
//!   applies each (player, seq) at most once, so duplicates are harmless.

use sekai_schema::{PlayerId, RegionId, WorldKeys};

use super::codec::{encode_input, CodecError};
use super::error::WorldError;
use super::model::{Action, Input};
use crate::kv::{codes, run, Database, FdbError, MutationType, Transaction};

/// A player's input as `durable/(player)` (the highest T1 stored) and `applied/(player)` (the
/// last T2 applied) record it: its seq and its action's digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurableSeq {
    /// The highest durable seq (0: none).
    pub seq: u64,
    /// [`action_digest`] of that input's action; 0 means unknown (no seq yet, or a world
    /// written before the record existed).
    pub digest: u64,
}

impl DurableSeq {
    /// The record of `input`: its seq and its action's digest.
    pub fn of(input: &Input) -> Self {
        Self {
            seq: input.seq,
            digest: action_digest(&input.action),
        }
    }

    /// The 16-byte record: digest then seq, little-endian, so that atomic MAX (an unsigned
    /// little-endian compare) keeps the highest seq.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.digest.to_le_bytes());
        out[8..].copy_from_slice(&self.seq.to_le_bytes());
        out
    }

    /// Decodes a stored record; anything but 16 bytes is corrupt.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let record: [u8; 16] = bytes.try_into().map_err(|_| CodecError::Invalid {
            what: "durable record",
            reason: "not 16 bytes",
        })?;
        let (digest, seq) = record.split_at(8);
        let word = |half: &[u8]| half.try_into().map_or(0, u64::from_le_bytes);
        Ok(Self {
            digest: word(digest),
            seq: word(seq),
        })
    }
}

/// A stable 64-bit digest (FNV-1a) of an action's encoding: tells a resend of a durable seq
/// from a different input reusing it.
pub fn action_digest(action: &Action) -> u64 {
    let bytes = encode_input(&Input {
        player: 0,
        seq: 0,
        action: action.clone(),
    });
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Appends `input` to `region`'s inbox in the caller's transaction, bumps the region's inbox
/// signal and raises the player's durable record (atomic MAX: never lowers it). `user_version`
/// orders several inputs appended by one transaction.
pub fn submit_input<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    input: &Input,
    user_version: u16,
) {
    trx.atomic_op(
        &keys.inbox_versionstamped(region, user_version),
        &encode_input(input),
        MutationType::SetVersionstampedKey,
    );
    trx.atomic_op(
        &keys.inbox_signal(region),
        &1u64.to_le_bytes(),
        MutationType::Add,
    );
    trx.atomic_op(
        &keys.durable(input.player),
        &DurableSeq::of(input).encode(),
        MutationType::Max,
    );
}

/// T1 as its own transaction: returns once the input is durable (the acknowledgement).
pub async fn submit<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    input: &Input,
) -> Result<(), FdbError> {
    submit_batch(db, keys, &[(region, input.clone())]).await
}

/// T1 for many inputs in one transaction (an edge's batch): returns once all are durable.
/// Inputs keep their order within each region's inbox.
pub async fn submit_batch<D: Database>(
    db: &D,
    keys: &WorldKeys,
    inputs: &[(RegionId, Input)],
) -> Result<(), FdbError> {
    run(db, |trx, _| async move {
        for (index, (region, input)) in inputs.iter().enumerate() {
            let user_version = u16::try_from(index)
                .map_err(|_| FdbError::from_code(codes::TRANSACTION_TOO_LARGE))?;
            submit_input(&trx, keys, *region, input, user_version);
        }
        Ok(())
    })
    .await
}

/// The player's highest durable input (serializable reads when `snapshot` is false): the higher
/// of `durable/(player)` and `applied/(player)`. A direct input that the frame storing it also
/// applied is durable through the applied record alone (the frame raises `durable` only for the
/// direct inputs it leaves in an inbox), and worlds written before the durable record existed
/// have only the applied seq (its digest then unknown, 0).
pub async fn durable_seq<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    player: PlayerId,
    snapshot: bool,
) -> Result<DurableSeq, WorldError> {
    let durable = match trx.get(&keys.durable(player), snapshot).await? {
        Some(bytes) => DurableSeq::decode(&bytes)?,
        None => DurableSeq::default(),
    };
    let applied = applied_record(trx, keys, player, snapshot).await?;
    Ok(if applied.seq > durable.seq {
        applied
    } else {
        durable
    })
}

/// The `applied/(player)` record of `input`: the [`DurableSeq`] of its seq and action.
pub fn encode_applied(input: &Input) -> [u8; 16] {
    DurableSeq::of(input).encode()
}

/// Decodes an `applied/(player)` record: 16 bytes as [`DurableSeq`], or the 8-byte
/// little-endian seq that records held before they carried the digest (digest 0: unknown).
pub fn decode_applied(bytes: &[u8]) -> Result<DurableSeq, CodecError> {
    match <[u8; 8]>::try_from(bytes) {
        Ok(seq) => Ok(DurableSeq {
            seq: u64::from_le_bytes(seq),
            digest: 0,
        }),
        Err(_) => DurableSeq::decode(bytes).map_err(|_| CodecError::Invalid {
            what: "applied record",
            reason: "neither 8 nor 16 bytes",
        }),
    }
}

/// The player's `applied/(player)` record (seq 0 if none).
pub async fn applied_record<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    player: PlayerId,
    snapshot: bool,
) -> Result<DurableSeq, WorldError> {
    match trx.get(&keys.applied(player), snapshot).await? {
        Some(bytes) => Ok(decode_applied(&bytes)?),
        None => Ok(DurableSeq::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applied_record_carries_the_seq_and_its_actions_digest() {
        let input = Input {
            player: 3,
            seq: 41,
            action: Action::Idle,
        };
        let record = decode_applied(&encode_applied(&input)).unwrap();
        assert_eq!(record.seq, 41);
        assert_eq!(record.digest, action_digest(&Action::Idle));
        let old = decode_applied(&7u64.to_le_bytes()).unwrap();
        assert_eq!(
            (old.seq, old.digest),
            (7, 0),
            "an 8-byte record: digest unknown"
        );
        assert!(decode_applied(&[1, 2, 3]).is_err());
    }
}
