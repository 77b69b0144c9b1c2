//! The spatial index against the entities.
//!
//! Invariant checked: every entity has exactly one spatial entry, at its position's cell, and a
//! reverse entry naming that cell; a covering entry (one with a value) holds the entity
//! exactly; no index entry names a missing entity.

use std::collections::BTreeMap;

use sekai_schema::{EntityId, KeyKind, WorldKeys};

use super::{scan, Violation};
use crate::kv::Transaction;
use crate::world::codec::decode_entity;
use crate::world::error::WorldError;
use crate::world::model::Entity;

/// Checks the spatial index against the entities; returns the entities.
pub async fn check_index<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
) -> Result<BTreeMap<EntityId, Entity>, Violation> {
    let disagree = |detail: String| Violation::new("spatial index agrees", detail);
    let mut entities = BTreeMap::new();
    for kv in scan(trx, keys.kind_range(KeyKind::Entity)).await? {
        let entity = decode_entity(&kv.value).map_err(WorldError::from)?;
        entities.insert(entity.id, entity);
    }
    let mut spatial: BTreeMap<EntityId, Vec<_>> = BTreeMap::new();
    for kv in scan(trx, keys.kind_range(KeyKind::Spatial)).await? {
        let (region, cell, id) = keys.decode_spatial(&kv.key).map_err(WorldError::from)?;
        spatial.entry(id).or_default().push((region, cell));
        if !kv.value.is_empty() {
            let covered = decode_entity(&kv.value).map_err(WorldError::from)?;
            if entities.get(&id) != Some(&covered) {
                return Err(disagree(format!(
                    "covering entry of {id} holds {covered:?}, entity is {:?}",
                    entities.get(&id)
                )));
            }
        }
    }
    let mut reverse = BTreeMap::new();
    for kv in scan(trx, keys.kind_range(KeyKind::SpatialRev)).await? {
        let id = keys.decode_spatial_rev(&kv.key).map_err(WorldError::from)?;
        let at = WorldKeys::decode_spatial_rev_value(&kv.value).map_err(WorldError::from)?;
        reverse.insert(id, at);
    }
    for (id, entity) in &entities {
        let cell = entity.cell();
        if spatial.get(id).map(Vec::as_slice) != Some(&[cell][..]) {
            return Err(disagree(format!(
                "entity {id} at {cell:?} is indexed at {:?}",
                spatial.get(id)
            )));
        }
        if reverse.get(id) != Some(&cell) {
            return Err(disagree(format!(
                "entity {id} at {cell:?} has reverse entry {:?}",
                reverse.get(id)
            )));
        }
    }
    let dangling = spatial
        .keys()
        .chain(reverse.keys())
        .find(|id| !entities.contains_key(id));
    match dangling {
        Some(id) => Err(disagree(format!("index entry for missing entity {id}"))),
        None => Ok(entities),
    }
}
