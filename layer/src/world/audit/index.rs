//! The spatial index against the entities.
//!
//! Invariant checked: every entity has exactly one spatial entry, at its position's cell, and a
//! reverse entry naming that cell; index entries hold no value; no index entry names a missing
//! entity.

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
            return Err(disagree(format!(
                "spatial entry of {id} holds a value ({} bytes)",
                kv.value.len()
            )));
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

#[cfg(test)]
mod tests {
    use sekai_schema::Vec3;

    use super::*;
    use crate::embedded::{EmbeddedDatabase, EngineOptions};
    use crate::kv::Database;
    use crate::world::model::{EntityKind, Inventory};
    use crate::world::{query, store};

    fn tree(id: u128, x: f32) -> Entity {
        Entity {
            id: EntityId::from_u128(id),
            kind: EntityKind::Tree,
            hp: 3,
            position: Vec3::new(x, 0.0, 10.0),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    /// Two trees stored, one moved within its cell and one to another cell: the index agrees
    /// and area scans read them by id; a value in an entry, or an entry of a missing entity,
    /// is a violation.
    #[tokio::test]
    async fn index_entries_hold_no_value_and_name_stored_entities() {
        let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
        let keys = WorldKeys::numbered(0);
        let (a, b) = (tree(1, 10.0), tree(2, 20.0));
        let trx = db.create_trx().unwrap();
        store::put_entity(&trx, &keys, &a, None);
        store::put_entity(&trx, &keys, &b, None);
        trx.commit().await.unwrap();
        let (a_moved, b_moved) = (tree(1, 10.5), tree(2, 90.0));
        assert_eq!(a_moved.cell(), a.cell());
        assert_ne!(b_moved.cell(), b.cell());
        let trx = db.create_trx().unwrap();
        store::put_entity(&trx, &keys, &a_moved, Some(a.cell()));
        store::put_entity(&trx, &keys, &b_moved, Some(b.cell()));
        trx.commit().await.unwrap();

        let trx = db.create_trx().unwrap();
        let found = check_index(&trx, &keys).await.unwrap();
        assert_eq!(
            found.values().cloned().collect::<Vec<_>>(),
            [a_moved.clone(), b_moved]
        );
        let (region, cell) = a.cell();
        let in_cell = query::entities_in_cell(&trx, &keys, region, cell, true).await;
        assert_eq!(in_cell.unwrap(), [a_moved]);

        trx.set(&keys.spatial(region, cell, a.id), b"stale");
        let violation = check_index(&trx, &keys).await.unwrap_err();
        assert!(violation.detail.contains("holds a value"), "{violation:?}");
        trx.set(&keys.spatial(region, cell, a.id), &[]);
        trx.clear(&keys.entity(a.id));
        let violation = check_index(&trx, &keys).await.unwrap_err();
        assert!(violation.detail.contains("missing entity"), "{violation:?}");
        let dangling = query::entities_in_cell(&trx, &keys, region, cell, true).await;
        assert!(matches!(dangling, Err(WorldError::DanglingIndex(id)) if id == a.id));
    }
}
