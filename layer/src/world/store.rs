//! Writing entities with their indexes, in the caller's transaction.
//!
//! Invariants (FDB Record Layer style: indexes change in the same transaction as the data):
//! - `entity/(id)` exists iff `spatial_rev/(id)` exists iff exactly one `spatial/(region, cell,
//!   id)` exists, and that one matches the entity's position and holds no value: index entries
//!   change only when the entity changes cell, so a move within its cell (most moves at 10 Hz)
//!   writes one key, the entity, and area scans read the entities by id
//!   (`query::indexed_entities`);
//! - a write that moves an entity out of a region bumps that region's version, and one into a
//!   region bumps the destination's, so every processor's hot state notices writes it did not
//!   make itself (see `frame`).

use sekai_schema::{CellId, EntityId, RegionId, WorldKeys};

use super::codec::{decode_entity, encode_entity};
use super::error::WorldError;
use super::model::Entity;
use crate::kv::{MutationType, Transaction};

/// Bumps a region's version (atomic ADD: never conflicts with other bumps).
pub fn bump_region_version<T: Transaction>(trx: &T, keys: &WorldKeys, region: RegionId) {
    trx.atomic_op(
        &keys.region_version(region),
        &1u64.to_le_bytes(),
        MutationType::Add,
    );
}

/// Bumps a region's head, the counter every change-log append (and every bulk load) bumps:
/// edges watch it and caches validate against it.
pub fn bump_head<T: Transaction>(trx: &T, keys: &WorldKeys, region: RegionId) {
    trx.atomic_op(&keys.head(region), &1u64.to_le_bytes(), MutationType::Add);
}

/// Reads a region's version (serializably: a later bump fails this transaction).
pub async fn region_version<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<u64, WorldError> {
    read_counter(trx, &keys.region_version(region), false).await
}

/// Reads a region's head (snapshot: edges and caches compare it, they never write it).
pub async fn region_head<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<u64, WorldError> {
    read_counter(trx, &keys.head(region), true).await
}

/// Reads a little-endian `u64` counter (as atomic ADD keeps it); absent or malformed is 0.
pub async fn read_counter<T: Transaction>(
    trx: &T,
    key: &[u8],
    snapshot: bool,
) -> Result<u64, WorldError> {
    Ok(trx
        .get(key, snapshot)
        .await?
        .and_then(|v| v.try_into().ok())
        .map_or(0, u64::from_le_bytes))
}

/// Reads one entity.
pub async fn get_entity<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    id: EntityId,
    snapshot: bool,
) -> Result<Option<Entity>, WorldError> {
    match trx.get(&keys.entity(id), snapshot).await? {
        Some(bytes) => Ok(Some(decode_entity(&bytes)?)),
        None => Ok(None),
    }
}

/// Where the spatial index has `id` now (its reverse entry), if anywhere.
pub async fn indexed_cell<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    id: EntityId,
    snapshot: bool,
) -> Result<Option<(RegionId, CellId)>, WorldError> {
    match trx.get(&keys.spatial_rev(id), snapshot).await? {
        Some(value) => Ok(Some(WorldKeys::decode_spatial_rev_value(&value)?)),
        None => Ok(None),
    }
}

/// Writes `entity` and moves its index entries from `previous` (where the index had it, read
/// in this transaction); the index entries are written only when the cell changes. Returns the
/// regions whose contents changed.
pub fn put_entity<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    entity: &Entity,
    previous: Option<(RegionId, CellId)>,
) -> Vec<RegionId> {
    let (region, cell) = entity.cell();
    let mut touched = vec![region];
    trx.set(&keys.entity(entity.id), &encode_entity(entity));
    if previous == Some((region, cell)) {
        return touched;
    }
    if let Some((old_region, old_cell)) = previous {
        trx.clear(&keys.spatial(old_region, old_cell, entity.id));
        if old_region != region {
            touched.push(old_region);
        }
    }
    trx.set(&keys.spatial(region, cell, entity.id), &[]);
    trx.set(
        &keys.spatial_rev(entity.id),
        &WorldKeys::spatial_rev_value(region, cell),
    );
    touched
}

/// Deletes entity `id` and its index entries (`indexed` is where the index has it).
pub fn remove_entity<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    id: EntityId,
    indexed: Option<(RegionId, CellId)>,
) {
    trx.clear(&keys.entity(id));
    if let Some((region, cell)) = indexed {
        trx.clear(&keys.spatial(region, cell, id));
    }
    trx.clear(&keys.spatial_rev(id));
}
