//! Area-of-interest snapshots, cached per (region, cell) and validated by the region head.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;
use sekai_layer::kv::Transaction;
use sekai_layer::world::error::WorldError;
use sekai_layer::world::model::Entity;
use sekai_layer::world::query::entities_in_cell;
use sekai_layer::world::store;
use sekai_schema::{Area, CellId, RegionId, WorldKeys};

type CellKey = (RegionId, CellId);

/// Cells served from an area cache (a `metrics` counter; see [`CacheStats`]).
pub const CACHE_HITS: &str = "sekai_cache_hits_total";
/// Cells an area cache read from the database.
pub const CACHE_MISSES: &str = "sekai_cache_misses_total";

/// A cell's entities as of one region head.
#[derive(Debug)]
struct CellSnapshot {
    head: u64,
    entities: Vec<Entity>,
}

/// Hits and misses so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Cells served from the cache.
    pub hits: u64,
    /// Cells read from the database (absent or stale in the cache).
    pub misses: u64,
}

/// A bounded cache of cell snapshots shared by every session of an edge.
#[derive(Clone)]
pub struct AreaCache {
    cells: Cache<CellKey, Arc<CellSnapshot>>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl std::fmt::Debug for AreaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AreaCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl AreaCache {
    /// A cache of at most `max_cells` cell snapshots.
    pub fn new(max_cells: u64) -> Self {
        Self {
            cells: Cache::new(max_cells),
            hits: Arc::default(),
            misses: Arc::default(),
        }
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The entities inside `area` as of `trx`'s read version, from the cache where the region
    /// head read in `trx` proves a cell current, from the database otherwise.
    pub async fn entities_in_area<T: Transaction>(
        &self,
        trx: &T,
        keys: &WorldKeys,
        area: &Area,
    ) -> Result<Vec<Entity>, WorldError> {
        let mut heads: BTreeMap<RegionId, u64> = BTreeMap::new();
        let mut found = Vec::new();
        for (region, cell) in area.cells() {
            let head = match heads.get(&region) {
                Some(head) => *head,
                None => {
                    let head = store::region_head(trx, keys, region).await?;
                    heads.insert(region, head);
                    head
                }
            };
            let snapshot = match self.cells.get(&(region, cell)) {
                Some(cached) if cached.head == head => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(CACHE_HITS).increment(1);
                    cached
                }
                _ => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(CACHE_MISSES).increment(1);
                    let fresh = Arc::new(CellSnapshot {
                        head,
                        entities: entities_in_cell(trx, keys, region, cell, true).await?,
                    });
                    self.cells.insert((region, cell), fresh.clone());
                    fresh
                }
            };
            found.extend(
                snapshot
                    .entities
                    .iter()
                    .filter(|e| area.contains(&e.position))
                    .cloned(),
            );
        }
        Ok(found)
    }
}
