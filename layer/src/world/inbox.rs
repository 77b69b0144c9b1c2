//! T1: receive one input durably.
//!
//! Invariants:
//! - T1 reads nothing: the input goes under a versionstamped key and the region's inbox signal
//!   is bumped with atomic ADD, so concurrent senders never conflict;
//! - a retried T1 (after `commit_unknown_result`) may append the same (player, seq) twice; T2
//!   applies each (player, seq) at most once, so duplicates are harmless.

use sekai_schema::{RegionId, WorldKeys};

use super::codec::encode_input;
use super::model::Input;
use crate::kv::{run, Database, FdbError, MutationType, Transaction};

/// Appends `input` to `region`'s inbox in the caller's transaction. `user_version` orders
/// several inputs appended by one transaction.
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
}

/// T1 as its own transaction: returns once the input is durable (the acknowledgement).
pub async fn submit<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    input: &Input,
) -> Result<(), FdbError> {
    run(db, |trx, _| async move {
        submit_input(&trx, keys, region, input, 0);
        Ok(())
    })
    .await
}
