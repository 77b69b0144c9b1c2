//! Whole-region snapshots kept current from the change log: the edge's warm tier.
//!
//! The fan-out reads every region's change log anyway; it applies what it reads to the cached
//! region, so a subscribe or resume snapshot of a cached region costs no range read at all.
//!
//! Invariants:
//! - a cached region carries the region head (the counter bumped once by every change-log
//!   append of that region) its entities are current at;
//! - [`RegionCache::lookup`] returns a region only when the head the caller read *in its own
//!   transaction* equals the cached head: then no entry was appended since, and the cached
//!   entities are exactly the region's entities at the caller's read version;
//! - [`RegionCache::advance`] applies log entries only when they account for every head bump
//!   since the cached head (one entry per bump); a bump without an entry (a bulk load publishes
//!   that way) or a partial read invalidates the region instead, so a cached region is never
//!   silently behind;
//! - the cache is bounded by bytes: a cached region keeps the estimated size of its entities as
//!   a running sum (`bytes`, updated by every change applied), and moka's weight of it (`weighed`,
//!   the sum when it was last inserted) stays within [`REWEIGH_DRIFT`] of it: an advance re-inserts
//!   the region only when the sum drifted further, so the usual advance (moves, which change no
//!   size) costs no re-insert and no walk over the region's entities; an evicted region is
//!   simply read again on its next use.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use moka::sync::Cache;
use sekai_layer::world::model::{Change, Delta, Entity};
use sekai_schema::{Area, EntityId, RegionId};

/// Regions served from the cache (a `metrics` counter).
pub const REGION_HITS: &str = "sekai_cache_region_hits_total";
/// Regions read from the database because the cache had none current.
pub const REGION_MISSES: &str = "sekai_cache_region_misses_total";
/// Cached regions dropped because the log could not bring them current.
pub const REGION_INVALIDATIONS: &str = "sekai_cache_region_invalidations_total";
/// Estimated bytes held (a `metrics` gauge).
pub const REGION_BYTES: &str = "sekai_cache_region_bytes";

/// How far (a fraction of the weight moka has) a cached region's size may drift before an
/// advance re-inserts it to be weighed again: 1/16.
pub const REWEIGH_DRIFT: u64 = 16;

/// A region's entities as of one head.
#[derive(Debug, Default)]
pub struct RegionSnapshot {
    head: u64,
    entities: BTreeMap<EntityId, Entity>,
    /// The estimated bytes of `entities` (kept as a running sum).
    bytes: u64,
    /// `bytes` when moka last weighed the region.
    weighed: u64,
}

impl RegionSnapshot {
    /// The head the entities are current at.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The entities inside `area`.
    pub fn in_area<'a>(&'a self, area: &'a Area) -> impl Iterator<Item = &'a Entity> {
        self.entities
            .values()
            .filter(move |e| area.contains(&e.position))
    }

    /// Every entity of the region.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values()
    }
}

/// Counters of a region cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionCacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing current.
    pub misses: u64,
    /// Regions dropped because the log could not bring them current.
    pub invalidations: u64,
    /// Estimated bytes held.
    pub bytes: u64,
}

type Shared = Arc<RwLock<RegionSnapshot>>;

/// A bounded cache of whole regions, shared by an edge's fan-out and its sessions.
#[derive(Clone)]
pub struct RegionCache {
    regions: Cache<RegionId, Shared>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
    invalidations: Arc<AtomicU64>,
}

impl std::fmt::Debug for RegionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionCache")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The estimated bytes of an entity in memory (the outbox's estimate, plus the map's own).
fn entity_bytes(entity: &Entity) -> u64 {
    160 + 16 * entity.inventory.0.len() as u64
}

fn weigh(snapshot: &Shared) -> u32 {
    let snapshot = snapshot.read().unwrap_or_else(|e| e.into_inner());
    u32::try_from(snapshot.weighed).unwrap_or(u32::MAX)
}

impl RegionCache {
    /// A cache holding at most about `budget_bytes` of entities.
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            regions: Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|_, snapshot: &Shared| weigh(snapshot))
                .build(),
            hits: Arc::default(),
            misses: Arc::default(),
            invalidations: Arc::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RegionCacheStats {
        self.regions.run_pending_tasks();
        RegionCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            bytes: self.regions.weighted_size(),
        }
    }

    /// The cached `region` if it is current at `head` (the head the caller read in its own
    /// transaction); counts a hit or a miss.
    pub fn lookup(&self, region: RegionId, head: u64) -> Option<Shared> {
        let found = self
            .regions
            .get(&region)
            .filter(|s| s.read().unwrap_or_else(|e| e.into_inner()).head == head);
        let (counter, name) = if found.is_some() {
            (&self.hits, REGION_HITS)
        } else {
            (&self.misses, REGION_MISSES)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name).increment(1);
        found
    }

    /// Caches `region`'s `entities`, read in a transaction that saw `head`.
    pub fn insert(
        &self,
        region: RegionId,
        head: u64,
        entities: impl IntoIterator<Item = Entity>,
    ) -> Shared {
        let entities: BTreeMap<EntityId, Entity> =
            entities.into_iter().map(|e| (e.id, e)).collect();
        let bytes = entities.values().map(entity_bytes).sum();
        let snapshot = Arc::new(RwLock::new(RegionSnapshot {
            head,
            entities,
            bytes,
            weighed: bytes,
        }));
        self.regions.insert(region, snapshot.clone());
        metrics::gauge!(REGION_BYTES).set(self.regions.weighted_size() as f64);
        snapshot
    }

    /// Brings the cached `region` (if any) to `head` with `entries`, the region's change-log
    /// entries appended since the cached head, in order. When they do not account for every
    /// head bump since (one per entry), or `complete` is false, the region is dropped instead.
    pub fn advance<'a>(
        &self,
        region: RegionId,
        head: u64,
        entries: impl ExactSizeIterator<Item = &'a Delta>,
        complete: bool,
    ) {
        let Some(shared) = self.regions.get(&region) else {
            return;
        };
        let advanced = {
            let mut snapshot = shared.write().unwrap_or_else(|e| e.into_inner());
            if complete && snapshot.head + entries.len() as u64 == head {
                for delta in entries {
                    apply(&mut snapshot, region, delta);
                }
                snapshot.head = head;
                debug_assert_eq!(
                    snapshot.bytes,
                    snapshot.entities.values().map(entity_bytes).sum::<u64>()
                );
                let reweigh =
                    snapshot.bytes.abs_diff(snapshot.weighed) > snapshot.weighed / REWEIGH_DRIFT;
                if reweigh {
                    snapshot.weighed = snapshot.bytes;
                }
                Some(reweigh)
            } else {
                None
            }
        };
        match advanced {
            // Re-insert so moka weighs the region again.
            Some(true) => self.regions.insert(region, shared),
            Some(false) => {}
            None => self.invalidate(region),
        }
    }

    /// Drops `region` from the cache.
    pub fn invalidate(&self, region: RegionId) {
        self.regions.invalidate(&region);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(REGION_INVALIDATIONS).increment(1);
    }
}

/// Applies one logged delta to `region`'s snapshot: an upsert of an entity that is (now) in the
/// region replaces it, one that left removes it, a removal removes it.
fn apply(snapshot: &mut RegionSnapshot, region: RegionId, delta: &Delta) {
    for change in &delta.changes {
        let gone = match change {
            Change::Upsert(entity) if entity.region() == region => {
                snapshot.bytes += entity_bytes(entity);
                snapshot.entities.insert(entity.id, entity.clone())
            }
            Change::Upsert(entity) => snapshot.entities.remove(&entity.id),
            Change::Remove(id) => snapshot.entities.remove(id),
        };
        if let Some(gone) = gone {
            snapshot.bytes -= entity_bytes(&gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekai_layer::world::model::{EntityKind, Inventory};
    use sekai_schema::Vec3;

    fn entity(id: u128, x: f32) -> Entity {
        Entity {
            id: EntityId(id),
            kind: EntityKind::Tree,
            hp: 3,
            position: Vec3::new(x, 0.0, 10.0),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    fn delta(region: RegionId, changes: Vec<Change>) -> Delta {
        Delta {
            region,
            frame: 1,
            changes,
            outcomes: Vec::new(),
        }
    }

    #[test]
    fn a_region_is_served_only_at_its_head_and_advances_with_the_log() {
        let r = RegionId::new(0, 0);
        let cache = RegionCache::new(1 << 20);
        cache.insert(r, 5, [entity(1, 10.0), entity(2, 20.0)]);
        assert!(cache.lookup(r, 6).is_none(), "a newer head is a miss");
        assert!(cache.lookup(r, 5).is_some());
        let moved_out = entity(2, 300.0); // region (1, 0)
        let log = [
            delta(r, vec![Change::Upsert(entity(3, 30.0))]),
            delta(
                r,
                vec![Change::Remove(EntityId(1)), Change::Upsert(moved_out)],
            ),
        ];
        cache.advance(r, 7, log.iter(), true);
        let current = cache.lookup(r, 7).expect("advanced to the head");
        let ids: Vec<u128> = current.read().unwrap().entities().map(|e| e.id.0).collect();
        assert_eq!(ids, vec![3]);
        assert_eq!(cache.stats().invalidations, 0);
    }

    #[test]
    fn a_head_bump_without_an_entry_or_a_partial_read_invalidates() {
        let r = RegionId::new(0, 0);
        let cache = RegionCache::new(1 << 20);
        cache.insert(r, 5, [entity(1, 10.0)]);
        let log = [delta(r, vec![])];
        cache.advance(r, 7, log.iter(), true); // two bumps, one entry: a bulk load happened
        assert!(cache.lookup(r, 7).is_none());
        assert!(
            cache.lookup(r, 5).is_none(),
            "dropped, not kept at the old head"
        );
        cache.insert(r, 7, [entity(1, 10.0)]);
        cache.advance(r, 8, log.iter(), false);
        assert!(cache.lookup(r, 8).is_none());
        assert_eq!(cache.stats().invalidations, 2);
    }

    #[test]
    fn an_advance_reweighs_a_region_only_when_its_size_drifted() {
        let r = RegionId::new(0, 0);
        let cache = RegionCache::new(1 << 20);
        cache.insert(r, 1, (0..32).map(|i| entity(i, 10.0)));
        let weight = |cache: &RegionCache| cache.stats().bytes;
        let before = weight(&cache);
        assert_eq!(before, 32 * 160);
        // A move changes no size: the weight stays.
        cache.advance(
            r,
            2,
            [delta(r, vec![Change::Upsert(entity(0, 11.0))])].iter(),
            true,
        );
        assert_eq!(weight(&cache), before);
        // One more entity is within 1/16: still the old weight.
        cache.advance(
            r,
            3,
            [delta(r, vec![Change::Upsert(entity(100, 12.0))])].iter(),
            true,
        );
        assert_eq!(weight(&cache), before);
        // Three more drift past 1/16: weighed again, exactly.
        let more = (101..104)
            .map(|i| Change::Upsert(entity(i, 12.0)))
            .collect();
        cache.advance(r, 4, [delta(r, more)].iter(), true);
        assert_eq!(weight(&cache), 36 * 160);
    }

    #[test]
    fn the_cache_is_bounded_by_bytes() {
        let cache = RegionCache::new(10_000);
        for x in 0..20 {
            let r = RegionId::new(x, 0);
            cache.insert(r, 1, (0..20).map(|i| entity(u128::from(i as u32), 10.0)));
        }
        assert!(cache.stats().bytes <= 10_000, "{:?}", cache.stats());
    }
}
