//! Deterministic world generation and bulk loading.
//!
//! Invariants:
//! - [`generate_region`] is a pure function of `(seed, region, density)`: the same arguments give
//!   the same entities, ids included, on every machine (ChaCha8 with one stream per region);
//! - every generated entity lies inside its region (`entity.region() == region`);
//! - [`load`] writes each entity together with its spatial index entry and reverse entry in one
//!   transaction, so the index never disagrees with the data; its writes are blind `set`s of fixed
//!   keys and values, so a retried (or repeated) batch is idempotent.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_schema::geometry::REGION_SIZE;
use sekai_schema::WorldKeys;

use std::collections::BTreeSet;

use super::codec::encode_entity;
use super::model::{Entity, EntityId, EntityKind, Inventory, RegionId, Vec3};
use super::store;
use crate::kv::{run, Database, FdbResult};

/// The most entities [`generate_region`] places in one region (one per 4 m² at most).
pub const MAX_ENTITIES_PER_REGION: usize = 16_384;

/// Hit points of a generated tree: the wood it yields.
pub const TREE_HP: std::ops::RangeInclusive<u32> = 3..=8;
/// Hit points of a generated rock: the stone it yields.
pub const ROCK_HP: std::ops::RangeInclusive<u32> = 2..=5;
/// The share of generated resources that are trees (the rest are rocks).
pub const TREE_SHARE: f64 = 0.6;

/// Most bytes of entity values [`load`] writes in one transaction (far under FDB's 10 MB).
pub const MAX_BATCH_BYTES: usize = 1_000_000;

/// Generates the trees and rocks of `region`.
///
/// `density` is the number of resources per 100 m² (so a 256 m region at density 1.0 holds 655);
/// NaN, negative or zero densities give none, and the count is capped at
/// [`MAX_ENTITIES_PER_REGION`]. Positions are uniform over the region at height 0; ids are 128
/// random bits from the same stream. In regions so far from the origin that `f32` cannot place a
/// point inside them, candidates that fall outside are dropped.
pub fn generate_region(seed: u64, region: RegionId, density: f32) -> Vec<Entity> {
    let mut rng = region_rng(seed, region);
    let count = resource_count(density);
    (0..count)
        .filter_map(|_| random_resource(&mut rng, region))
        .collect()
}

/// The number of resources a region of density `density` holds.
fn resource_count(density: f32) -> usize {
    let area_hundreds = f64::from(REGION_SIZE) * f64::from(REGION_SIZE) / 100.0;
    let count = (f64::from(density) * area_hundreds).round();
    if count.is_nan() || count <= 0.0 {
        return 0;
    }
    (count as usize).min(MAX_ENTITIES_PER_REGION)
}

/// The generator of `region`: ChaCha8 seeded with `seed`, on a stream unique to the region.
fn region_rng(seed: u64, region: RegionId) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stream = (u64::from(region.x as u32) << 32) | u64::from(region.z as u32);
    rng.set_stream(stream);
    rng
}

/// One tree or rock at a uniform position in `region`; `None` if the position rounds outside it.
fn random_resource(rng: &mut ChaCha8Rng, region: RegionId) -> Option<Entity> {
    let (x0, z0) = region.min_corner();
    let size = f64::from(REGION_SIZE);
    let position = Vec3::new(
        (x0 + rng.gen_range(0.0..size)) as f32,
        0.0,
        (z0 + rng.gen_range(0.0..size)) as f32,
    );
    let (kind, hp) = if rng.gen_bool(TREE_SHARE) {
        (EntityKind::Tree, rng.gen_range(TREE_HP))
    } else {
        (EntityKind::Rock, rng.gen_range(ROCK_HP))
    };
    let entity = Entity {
        id: EntityId(rng.gen()),
        kind,
        hp,
        position,
        inventory: Inventory::default(),
        owner: 0,
    };
    (entity.region() == region).then_some(entity)
}

/// Writes `entities` with their spatial index and reverse entries, in transactions of at most
/// `batch` entities (at least 1) and about [`MAX_BATCH_BYTES`], retried by [`run`]; calls
/// `progress` with the running total after each commit and returns the total.
///
/// Meant for new entities (a freshly generated world): it does not read, so an entity that
/// already exists in another cell would keep its old spatial entry. Each batch is written
/// blindly, so retries after `commit_unknown_result` are harmless.
pub async fn load<D: Database>(
    db: &D,
    keys: &WorldKeys,
    entities: impl IntoIterator<Item = Entity>,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> FdbResult<usize> {
    let batch = batch.max(1);
    let mut pending: Vec<Entity> = Vec::with_capacity(batch.min(4096));
    let mut pending_bytes = 0;
    let mut total = 0;
    for entity in entities {
        pending_bytes += encode_entity(&entity).len() + KEY_BYTES_PER_ENTITY;
        pending.push(entity);
        if pending.len() >= batch || pending_bytes >= MAX_BATCH_BYTES {
            total += commit_batch(db, keys, &pending).await?;
            progress(total);
            pending.clear();
            pending_bytes = 0;
        }
    }
    if !pending.is_empty() {
        total += commit_batch(db, keys, &pending).await?;
        progress(total);
    }
    Ok(total)
}

/// A generous bound on the key bytes one entity writes (entity, spatial and reverse keys).
const KEY_BYTES_PER_ENTITY: usize = 3 * 64;

/// Writes one batch in one transaction, retrying until it commits; bumps the head and version
/// of every region it touched, so caches and processors notice.
async fn commit_batch<D: Database>(db: &D, keys: &WorldKeys, batch: &[Entity]) -> FdbResult<usize> {
    run(db, |trx, _maybe_committed| async move {
        let mut touched = BTreeSet::new();
        for entity in batch {
            touched.extend(store::put_entity(&trx, keys, entity, None));
        }
        for region in touched {
            store::bump_region_version(&trx, keys, region);
            store::bump_head(&trx, keys, region);
        }
        Ok(batch.len())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedDatabase;
    use crate::kv::Transaction;
    use crate::world::codec::decode_entity;

    #[test]
    fn generation_is_deterministic_and_inside_the_region() {
        let region = RegionId::new(-3, 5);
        let a = generate_region(42, region, 1.0);
        assert_eq!(a, generate_region(42, region, 1.0));
        assert_eq!(a.len(), 655);
        assert!(a.iter().all(|e| e.region() == region));
        assert!(a
            .iter()
            .all(|e| matches!(e.kind, EntityKind::Tree | EntityKind::Rock) && e.hp > 0));
        let trees = a.iter().filter(|e| e.kind == EntityKind::Tree).count();
        assert!((300..500).contains(&trees), "{trees} trees");
        let mut ids: Vec<_> = a.iter().map(|e| e.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), a.len(), "ids are unique");
        assert_ne!(a, generate_region(43, region, 1.0), "the seed matters");
        let neighbour = generate_region(42, RegionId::new(-3, 6), 1.0);
        assert!(
            neighbour.iter().all(|e| !ids.contains(&e.id)),
            "regions differ"
        );
    }

    #[test]
    fn density_is_bounded() {
        let region = RegionId::default();
        for bad in [0.0, -1.0, f32::NAN, f32::NEG_INFINITY] {
            assert!(generate_region(1, region, bad).is_empty());
        }
        let huge = generate_region(1, region, f32::INFINITY);
        assert_eq!(huge.len(), MAX_ENTITIES_PER_REGION);
        // Far out, f32 cannot resolve points inside the region: no panic, fewer entities.
        let far = RegionId::new(i32::MAX, i32::MIN);
        assert!(generate_region(1, far, 1.0)
            .iter()
            .all(|e| e.region() == far));
    }

    #[tokio::test]
    async fn load_writes_entities_and_their_index() {
        let db = EmbeddedDatabase::temporary(Default::default()).expect("temporary database");
        let keys = WorldKeys::new("generate-test").expect("keys");
        let region = RegionId::new(1, -1);
        let entities = generate_region(7, region, 0.5);
        let mut reports = Vec::new();
        let loaded = load(&db, &keys, entities.clone(), 100, |n| reports.push(n))
            .await
            .expect("load");
        assert_eq!(loaded, entities.len());
        assert_eq!(reports.last(), Some(&entities.len()));
        assert_eq!(reports.len(), entities.len().div_ceil(100));

        let trx = db.create_trx().expect("trx");
        for entity in entities.iter().step_by(37) {
            let bytes = trx.get(&keys.entity(entity.id), false).await.unwrap();
            assert_eq!(
                decode_entity(bytes.as_deref().expect("stored")).unwrap(),
                *entity
            );
            let (r, cell) = entity.cell();
            let index = trx.get(&keys.spatial(r, cell, entity.id), false).await;
            let index = index.unwrap().expect("spatial entry");
            assert!(index.is_empty(), "a spatial entry holds no value");
            let rev = trx.get(&keys.spatial_rev(entity.id), false).await.unwrap();
            let rev = WorldKeys::decode_spatial_rev_value(&rev.expect("reverse entry"));
            assert_eq!(rev.unwrap(), (r, cell));
        }
        let (begin, end) = keys.spatial_region_range(region);
        let range = crate::kv::RangeOption::new(begin, end).limit(10_000);
        let page = trx.get_range(&range, false).await.unwrap();
        assert_eq!(page.kvs.len(), entities.len());

        // Loading again is idempotent.
        let again = load(&db, &keys, entities.clone(), 1000, |_| {}).await;
        assert_eq!(again.unwrap(), entities.len());
        let page = db
            .create_trx()
            .unwrap()
            .get_range(&range, false)
            .await
            .unwrap();
        assert_eq!(page.kvs.len(), entities.len());
    }
}
