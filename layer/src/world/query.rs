//! Typed reads for services embedding the layer: entities, areas of interest, frames and the
//! change log, each in the caller's transaction.
//!
//! Invariants: area queries scan the spatial index for ids, read those entities in the same
//! transaction, and return exactly the entities whose position lies in the area; change-log
//! reads page with continuations (a cursor is the last versionstamp returned), so long catch-ups
//! span transactions.

use sekai_schema::{Area, CellId, EntityId, KeyRange, RegionId, WorldKeys};

use super::codec::{decode_delta, decode_frame_record};
use super::error::WorldError;
use super::model::{Delta, Entity, FrameRecord};
use super::store::get_entity;
use crate::kv::{get_range_all, RangeOption, Transaction};

/// Every entity inside `area`.
pub async fn entities_in_area<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    area: &Area,
    snapshot: bool,
) -> Result<Vec<Entity>, WorldError> {
    let mut found = Vec::new();
    for (region, cell) in area.cells() {
        let in_cell = entities_in_cell(trx, keys, region, cell, snapshot).await?;
        found.extend(in_cell.into_iter().filter(|e| area.contains(&e.position)));
    }
    Ok(found)
}

/// Every entity the spatial index has in one cell.
pub async fn entities_in_cell<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    cell: CellId,
    snapshot: bool,
) -> Result<Vec<Entity>, WorldError> {
    indexed_entities(trx, keys, keys.spatial_cell_range(region, cell), snapshot).await
}

/// Every entity in a range of the spatial index. Index entries hold no value (`store` module
/// docs), so the range gives the ids and the entities are read by id, all at once (on FDB, one
/// round trip for the lot).
pub async fn indexed_entities<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    (begin, end): KeyRange,
    snapshot: bool,
) -> Result<Vec<Entity>, WorldError> {
    let ids = get_range_all(trx, begin, end, snapshot)
        .await?
        .iter()
        .map(|kv| Ok(keys.decode_spatial(&kv.key)?.2))
        .collect::<Result<Vec<EntityId>, WorldError>>()?;
    let reads = ids.iter().map(|id| get_entity(trx, keys, *id, snapshot));
    let found = futures::future::try_join_all(reads).await?;
    ids.into_iter()
        .zip(found)
        .map(|(id, entity)| entity.ok_or(WorldError::DanglingIndex(id)))
        .collect()
}

/// One page of a region's change log after `cursor` (from the start when `None`): each delta
/// with its versionstamp, and whether more follow.
///
/// A cursor is a 10-byte commit versionstamp. That is exact because no commit appends more than
/// one entry to one region's log (frames and `write::write_entities` keep to that).
pub async fn changelog_after<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    cursor: Option<[u8; 10]>,
    limit: usize,
    snapshot: bool,
) -> Result<(Vec<([u8; 10], Delta)>, bool), WorldError> {
    let (begin, end) = match cursor {
        Some(after) => keys.changelog_range_after(region, &after),
        None => keys.changelog_range(region),
    };
    let page = trx
        .get_range(&RangeOption::new(begin, end).limit(limit), snapshot)
        .await?;
    let mut deltas = Vec::with_capacity(page.kvs.len());
    for kv in &page.kvs {
        let (_, stamp) = keys.decode_changelog(&kv.key)?;
        let mut commit = [0u8; 10];
        commit.copy_from_slice(&stamp.as_bytes()[..10]);
        deltas.push((commit, decode_delta(&kv.value)?));
    }
    Ok((deltas, page.more))
}

/// How far `region`'s change log was trimmed (inclusive), if ever: a cursor at or below it
/// must resume from a snapshot.
pub async fn changelog_floor<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Option<[u8; 10]>, WorldError> {
    Ok(trx
        .get(&keys.changelog_floor(region), true)
        .await?
        .and_then(|v| v.try_into().ok()))
}

/// Frame records of `region` from frame `from` on, at most `limit`. The processor keeps the
/// records of the newest `processor::FRAMES_KEEP` frames; older ones may be trimmed.
pub async fn frames<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    from: u64,
    limit: usize,
) -> Result<Vec<FrameRecord>, WorldError> {
    let (_, end) = keys.frame_range(region);
    let page = trx
        .get_range(
            &RangeOption::new(keys.frame(region, from), end).limit(limit),
            true,
        )
        .await?;
    let mut records = Vec::with_capacity(page.kvs.len());
    for kv in &page.kvs {
        records.push(decode_frame_record(&kv.value)?);
    }
    Ok(records)
}
