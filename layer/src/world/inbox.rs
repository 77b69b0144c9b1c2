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

/// The highest durable input of a player, as `durable/(player)` records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurableSeq {
    /// The highest durable seq (0: none).
    pub seq: u64,
    /// [`action_digest`] of that input's action; 0 means unknown (no seq yet, or a world
    /// written before the record existed).
    pub digest: u64,
}

impl DurableSeq {
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

/// Appends `input` to `region`'s inbox in the caller's transaction and raises the player's
/// durable record. `user_version` orders several inputs appended by one transaction.
pub fn submit_input<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    input: &Input,
    user_version: u16,
) {
    append_input(trx, keys, region, input, user_version);
    raise_durable(trx, keys, input);
}

/// Appends `input` to `region`'s inbox and bumps the region's inbox signal (the half of
/// [`submit_input`] that leaves the durable record alone).
pub fn append_input<T: Transaction>(
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
}

/// Raises the player's durable record to `input` (atomic MAX: never lowers it).
pub fn raise_durable<T: Transaction>(trx: &T, keys: &WorldKeys, input: &Input) {
    let durable = DurableSeq {
        seq: input.seq,
        digest: action_digest(&input.action),
    };
    trx.atomic_op(
        &keys.durable(input.player),
        &durable.encode(),
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

/// The player's durable record (serializable read when `snapshot` is false).
pub async fn durable_seq<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    player: PlayerId,
    snapshot: bool,
) -> Result<DurableSeq, WorldError> {
    match trx.get(&keys.durable(player), snapshot).await? {
        Some(bytes) => Ok(DurableSeq::decode(&bytes)?),
        None => Ok(DurableSeq::default()),
    }
}
