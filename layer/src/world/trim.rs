//! Change-log trimming: the log of a region keeps its newest entries only.
//!
//! Invariants:
//! - a trim clears every entry committed at or before a versionstamp and raises the region's
//!   floor (`changelog_floor/(region)`) to it with BYTE_MAX, in one transaction, so the floor
//!   never goes down and never lags the cleared entries;
//! - a cursor at or below the floor may have missed trimmed entries: it resumes from a fresh
//!   snapshot, never by replay (`query::changelog_floor` tells which).

use sekai_schema::{RegionId, WorldKeys};

use super::error::WorldError;
use super::query::changelog_floor;
use crate::kv::{run, Database, MutationType, RangeOption, Transaction};

/// Clears `region`'s change-log entries committed at or before `up_to`, in `trx`.
pub fn trim_through<T: Transaction>(trx: &T, keys: &WorldKeys, region: RegionId, up_to: &[u8; 10]) {
    let (begin, _) = keys.changelog_range(region);
    let (after, _) = keys.changelog_range_after(region, up_to);
    trx.clear_range(&begin, &after);
    trx.atomic_op(&keys.changelog_floor(region), up_to, MutationType::ByteMax);
}

/// Trims `region`'s change log to its newest `keep` entries; returns the new floor, if it
/// moved.
pub async fn trim_keeping<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    keep: usize,
) -> Result<Option<[u8; 10]>, WorldError> {
    run(db, |trx, _| async move {
        let (begin, end) = keys.changelog_range(region);
        let newest = trx
            .get_range(&RangeOption::new(begin, end).limit(keep + 1).rev(), true)
            .await?;
        if newest.kvs.len() <= keep {
            return Ok(None);
        }
        let Some(oldest_kept) = newest.kvs.get(keep) else {
            return Ok(None);
        };
        let (_, stamp) = keys.decode_changelog(&oldest_kept.key)?;
        let mut up_to = [0u8; 10];
        up_to.copy_from_slice(&stamp.as_bytes()[..10]);
        let floor = changelog_floor(&trx, keys, region).await?;
        if floor.is_some_and(|f| f >= up_to) {
            return Ok(None);
        }
        trim_through(&trx, keys, region, &up_to);
        Ok(Some(up_to))
    })
    .await
}
