//! A client's view against the database.
//!
//! Invariant checked: on a quiet world, the entities a client mirrors for an area are exactly
//! the database's entities in that area.

use std::collections::BTreeMap;

use sekai_schema::{Area, EntityId, WorldKeys};

use super::Violation;
use crate::kv::Database;
use crate::world::error::WorldError;
use crate::world::model::Entity;
use crate::world::query::entities_in_area;

/// Client `client`'s `mirror` of `area` equals the database's view of it.
pub async fn check_mirror<D: Database>(
    db: &D,
    keys: &WorldKeys,
    client: usize,
    area: &Area,
    mirror: &BTreeMap<EntityId, Entity>,
) -> Result<(), Violation> {
    let trx = db.create_trx().map_err(WorldError::from)?;
    let truth: BTreeMap<EntityId, Entity> = entities_in_area(&trx, keys, area, true)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    if &truth == mirror {
        return Ok(());
    }
    let differ = truth
        .keys()
        .chain(mirror.keys())
        .find(|id| truth.get(id) != mirror.get(id))
        .copied();
    Err(Violation::new(
        "client mirror equals the database",
        format!(
            "client {client}: {} entities in the mirror, {} in the area; first difference \
             {differ:?}: database {:?}, mirror {:?}",
            mirror.len(),
            truth.len(),
            differ.and_then(|id| truth.get(&id)),
            differ.and_then(|id| mirror.get(&id)),
        ),
    ))
}
