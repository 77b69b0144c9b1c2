//! Whole-world invariant checks, for tests, the simulator and operators.
//!
//! Each check scans in pages across transactions (so it works on large worlds) and returns the
//! violations it found as text; an empty list means the invariant holds:
//! - frame numbers of a region are 1, 2, 3, … with no gap; once the processor has trimmed the
//!   oldest records (`trim::FrameTrimmer`) the stored ones are n, n + 1, … up to the last frame;
//! - the spatial index and the entities agree: every entity has exactly the spatial entry and
//!   reverse entry its position says, and no index entry points at nothing;
//! - resource totals (for the conservation law of `rules`) over every stored entity.

use std::collections::BTreeMap;

use sekai_schema::{EntityId, RegionId, WorldKeys};

use super::codec::{decode_entity, decode_frame_record};
use super::error::WorldError;
use super::model::Entity;
use super::rules::{resource_totals, ResourceTotals};
use crate::kv::{Database, FdbError, KeyValue, RangeOption, Transaction};

const PAGE: usize = 1_000;

/// Every pair in `[begin, end)`, read in pages of fresh snapshot transactions.
pub async fn scan<D: Database>(
    db: &D,
    begin: Vec<u8>,
    end: Vec<u8>,
) -> Result<Vec<KeyValue>, FdbError> {
    let mut out = Vec::new();
    let mut next = Some(RangeOption::new(begin, end).limit(PAGE));
    while let Some(range) = next {
        let page = db.create_trx()?.get_range(&range, true).await?;
        next = range.next_range(&page);
        out.extend(page.kvs);
    }
    Ok(out)
}

/// Every stored entity.
pub async fn all_entities<D: Database>(
    db: &D,
    keys: &WorldKeys,
) -> Result<BTreeMap<EntityId, Entity>, WorldError> {
    let (begin, end) = keys.kind_range(sekai_schema::KeyKind::Entity);
    let mut entities = BTreeMap::new();
    for kv in scan(db, begin, end).await? {
        let entity = decode_entity(&kv.value)?;
        entities.insert(entity.id, entity);
    }
    Ok(entities)
}

/// Wood and stone held in any form across the whole world.
pub async fn world_resources<D: Database>(
    db: &D,
    keys: &WorldKeys,
) -> Result<ResourceTotals, WorldError> {
    Ok(resource_totals(all_entities(db, keys).await?.values()))
}

/// Gaps or repeats in `region`'s frame numbers: the stored records must be numbered
/// consecutively up to the last frame, from 1, or from where trimming left them (a prefix that
/// was trimmed is no gap).
pub async fn frame_gaps<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Vec<String>, WorldError> {
    let (begin, end) = keys.frame_range(region);
    let mut problems = Vec::new();
    let mut first = None;
    for (index, kv) in scan(db, begin, end).await?.iter().enumerate() {
        let (_, number) = keys.decode_frame(&kv.key)?;
        let record = decode_frame_record(&kv.value)?;
        let expected = *first.get_or_insert(number.max(1)) + index as u64;
        if number != expected || record.frame != number {
            problems.push(format!(
                "region {region}: frame key {number} (record {}) where {expected} was due",
                record.frame
            ));
        }
    }
    Ok(problems)
}

/// Disagreements between entities, the spatial index and its reverse entries.
pub async fn index_disagreements<D: Database>(
    db: &D,
    keys: &WorldKeys,
) -> Result<Vec<String>, WorldError> {
    let entities = all_entities(db, keys).await?;
    let mut problems = Vec::new();
    let (begin, end) = keys.kind_range(sekai_schema::KeyKind::Spatial);
    let mut indexed = BTreeMap::new();
    for kv in scan(db, begin, end).await? {
        let (region, cell, id) = keys.decode_spatial(&kv.key)?;
        if entities.get(&id) != Some(&decode_entity(&kv.value)?) {
            problems.push(format!(
                "spatial entry of {id:?} differs from the entity record"
            ));
        }
        if let Some(other) = indexed.insert(id, (region, cell)) {
            problems.push(format!(
                "entity {id:?} has two spatial entries: {other:?} and {:?}; stored as {:?}",
                (region, cell),
                entities.get(&id).map(|e| (e.kind, e.cell()))
            ));
        }
    }
    let (begin, end) = keys.kind_range(sekai_schema::KeyKind::SpatialRev);
    let mut reverse = BTreeMap::new();
    for kv in scan(db, begin, end).await? {
        reverse.insert(
            keys.decode_spatial_rev(&kv.key)?,
            WorldKeys::decode_spatial_rev_value(&kv.value)?,
        );
    }
    for (id, entity) in &entities {
        let cell = entity.cell();
        if indexed.get(id) != Some(&cell) {
            problems.push(format!(
                "entity {id:?} at {cell:?} is indexed at {:?}",
                indexed.get(id)
            ));
        }
        if reverse.get(id) != Some(&cell) {
            problems.push(format!(
                "entity {id:?} at {cell:?} has reverse entry {:?}",
                reverse.get(id)
            ));
        }
    }
    for id in indexed.keys().chain(reverse.keys()) {
        if !entities.contains_key(id) {
            problems.push(format!("index entry for missing entity {id:?}"));
        }
    }
    Ok(problems)
}
