//! A read-through entity cache for services embedding the layer (a crafting service, an admin
//! tool), validated inside the caller's own transaction.
//!
//! ```no_run
//! # async fn example(db: sekai_layer::embedded::EmbeddedDatabase) -> Result<(), sekai_layer::world::error::WorldError> {
//! use sekai_cache::EntityCache;
//! use sekai_layer::kv::run;
//! use sekai_schema::{EntityId, RegionId, WorldKeys};
//!
//! let keys = WorldKeys::new("sekai/world").expect("a valid prefix");
//! let cache = EntityCache::new(16 << 20); // 16 MiB of entities
//! let tree = EntityId(0x7733);
//! let hp = run(&db, |trx, _| {
//!     let (cache, keys) = (cache.clone(), keys.clone());
//!     async move {
//!         // Serializable: a frame that changes the tree before this commits conflicts with it.
//!         Ok::<_, sekai_layer::world::error::WorldError>(
//!             cache.get(&trx, &keys, tree, false).await?.map(|e| e.hp),
//!         )
//!     }
//! })
//! .await?;
//! # let _ = hp;
//! # Ok(())
//! # }
//! ```
//!
//! Invariants:
//! - a cached entity carries its region and that region's head (the counter every change-log
//!   append bumps:
//!   frames, service writes, arrivals and bulk loads all bump it) when it was read. Region
//!   *versions* are not enough: a processor's own frames do not bump its region's version;
//! - [`EntityCache::get`] reads, in the caller's transaction, where the entity is indexed and its
//!   region's head (snapshot reads), and serves the cached value only when that region and head
//!   equal the cached ones: then nothing in the region changed since, and the value is the database's at the
//!   caller's read version; anything else is read from the database and cached;
//! - a serializable `get` adds a read-conflict range on the entity's key even when served from
//!   memory, so the caller's transaction conflicts exactly as if it had read the key;
//! - bounded by bytes (moka weigher); counters for hits, misses and bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;
use sekai_layer::kv::{key_after, ConflictRangeType, Transaction};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::model::Entity;
use sekai_layer::world::store::{get_entity, indexed_cell, region_head};
use sekai_schema::{EntityId, RegionId, WorldKeys};

/// Entities served from an entity cache (a `metrics` counter).
pub const ENTITY_HITS: &str = "sekai_cache_entity_hits_total";
/// Entities an entity cache read from the database.
pub const ENTITY_MISSES: &str = "sekai_cache_entity_misses_total";

/// An entity with the region it was indexed in and that region's head when it was read.
#[derive(Debug)]
struct Cached {
    region: RegionId,
    head: u64,
    entity: Entity,
}

/// Counters of an entity cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntityCacheStats {
    /// Reads served from memory.
    pub hits: u64,
    /// Reads that went to the database.
    pub misses: u64,
    /// Estimated bytes held.
    pub bytes: u64,
}

/// A bounded read-through cache of entities, shared by a service's transactions.
#[derive(Clone)]
pub struct EntityCache {
    entities: Cache<EntityId, Arc<Cached>>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl std::fmt::Debug for EntityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl EntityCache {
    /// A cache holding at most about `budget_bytes` of entities.
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            entities: Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|_, cached: &Arc<Cached>| {
                    u32::try_from(160 + 16 * cached.entity.inventory.0.len()).unwrap_or(u32::MAX)
                })
                .build(),
            hits: Arc::default(),
            misses: Arc::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> EntityCacheStats {
        self.entities.run_pending_tasks();
        EntityCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.entities.weighted_size(),
        }
    }

    /// Entity `id` as of `trx`'s read version (`None` when it does not exist), from memory when
    /// its region's head proves the cached value current. With `snapshot` false the read adds
    /// the entity's key to `trx`'s read conflicts, as a database read would.
    pub async fn get<T: Transaction>(
        &self,
        trx: &T,
        keys: &WorldKeys,
        id: EntityId,
        snapshot: bool,
    ) -> Result<Option<Entity>, WorldError> {
        let Some((region, _)) = indexed_cell(trx, keys, id, true).await? else {
            // Not indexed: absent (or not yet visible); read it for the conflict range.
            return get_entity(trx, keys, id, snapshot).await;
        };
        let head = region_head(trx, keys, region).await?;
        if let Some(cached) = self
            .entities
            .get(&id)
            .filter(|c| (c.region, c.head) == (region, head))
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(ENTITY_HITS).increment(1);
            if !snapshot {
                let key = keys.entity(id);
                trx.add_conflict_range(&key, &key_after(&key), ConflictRangeType::Read)?;
            }
            return Ok(Some(cached.entity.clone()));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(ENTITY_MISSES).increment(1);
        let entity = get_entity(trx, keys, id, snapshot).await?;
        match &entity {
            Some(entity) => self.entities.insert(
                id,
                Arc::new(Cached {
                    region,
                    head,
                    entity: entity.clone(),
                }),
            ),
            None => self.entities.invalidate(&id),
        }
        Ok(entity)
    }
}
