//! Typed writes for services embedding the layer (a crafting service, an admin tool), in the
//! caller's own transaction.
//!
//! Invariants: each write keeps the spatial index, the change log and the processors' hot
//! state consistent in the same transaction: entities and index entries move together, every
//! touched region gets one delta (frame 0: "outside a frame") in its change log with its head
//! bumped, and every touched region's version is bumped so its processor reloads.

use std::collections::BTreeMap;

use sekai_schema::{RegionId, WorldKeys};

use super::error::WorldError;
use super::frame::append_delta;
use super::model::{Change, Delta};
use super::store;
use crate::kv::{run, Database, Transaction};

/// Applies `changes` in order in `trx` and publishes them to every region they touch.
pub async fn write_entities<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    changes: &[Change],
) -> Result<(), WorldError> {
    let mut per_region: BTreeMap<RegionId, Vec<Change>> = BTreeMap::new();
    for change in changes {
        let touched = match change {
            Change::Upsert(entity) => {
                let indexed = store::indexed_cell(trx, keys, entity.id, false).await?;
                store::put_entity(trx, keys, entity, indexed)
            }
            Change::Remove(id) => {
                let indexed = store::indexed_cell(trx, keys, *id, false).await?;
                store::remove_entity(trx, keys, *id, indexed);
                indexed.map(|(region, _)| vec![region]).unwrap_or_default()
            }
        };
        for region in touched {
            per_region.entry(region).or_default().push(change.clone());
        }
    }
    for (user_version, (region, changes)) in per_region.into_iter().enumerate() {
        store::bump_region_version(trx, keys, region);
        let delta = Delta {
            region,
            frame: 0,
            changes,
            outcomes: Vec::new(),
        };
        append_delta(
            trx,
            keys,
            region,
            &delta,
            u16::try_from(user_version).unwrap_or(u16::MAX),
        );
    }
    Ok(())
}

/// Creates `entity` in a transaction of its own (see [`write_entities`]). Idempotent under
/// retries: the id is fixed before the loop.
pub async fn create_entity<D: Database>(
    db: &D,
    keys: &WorldKeys,
    entity: &super::model::Entity,
) -> Result<(), WorldError> {
    let change = [Change::Upsert(entity.clone())];
    run(db, |trx, _| {
        let change = &change;
        async move { write_entities(&trx, keys, change).await }
    })
    .await
}
