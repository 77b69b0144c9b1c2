//! The database side of the simulated edge: T1 with routing, area snapshots, and change-log
//! catch-up with watches. Generic over the KV contract, so the same code runs on the embedded
//! engine and inside FoundationDB's simulator.
//!
//! Invariants:
//! - T1 routes as the edge does: to the avatar's last known region (updated from the deltas the
//!   session's subscriber sees, re-read when the rules proved it wrong); an input that reaches
//!   the wrong region is forwarded by that region's frame, and a frame applies a player's seq
//!   only after the one before it, so a late forward is waited for, never skipped;
//! - a snapshot is read at one read version; its cursor is `(read version, 0xFFFF)`, so the
//!   change log after it holds exactly the commits the snapshot does not show; the simulated
//!   edge takes it through the shipped region cache, which serves a region only at the head read
//!   in that same transaction;
//! - a catch-up is one pass of the shipped fan-out core (`sekai_edge::fanout::core`) over the
//!   session's regions at one read version, with the shipped log reads, and arms a watch on each
//!   region's head in the same transaction, so a frame committed after the read fires a watch;
//!   the catch-up of a resumed session also reads the area's entities at that version (what the
//!   subscriber settles on after the replay).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sekai_cache::RegionCache;

use sekai_edge::fanout::core::{Commits, FanoutCore, RegionCursor};
use sekai_edge::fanout::{read_region, FanoutConfig};
use sekai_edge::server::t1_region;
use sekai_edge::session::AvatarLocation;
use sekai_layer::kv::{run, Database, FdbResult, Transaction};
use sekai_layer::world::direct::{self, DirectInputs, Stored};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::frame::load_region;
use sekai_layer::world::local_log::LocalLog;
use sekai_layer::world::model::{Entity, Input};
use sekai_layer::world::query::entities_in_area;
use sekai_layer::world::store::region_head;
use sekai_schema::{Area, EntityId, RegionId, WorldKeys};

/// A pending watch (fires, or fails, once its key changes).
pub type Watch = Pin<Box<dyn Future<Output = FdbResult<()>> + Send>>;

/// Change-log entries per range read.
pub const PAGE: usize = 1;

/// Entries a streaming session reads per region per pass: small, so the shipped cut across
/// regions (a region whose log is longer is read again in the next pass) happens often.
pub const MAX_PER_PASS: usize = 1;

/// The cursor of a snapshot taken at `read_version`: after every commit it shows.
pub fn snapshot_cursor(read_version: i64) -> [u8; 10] {
    let mut stamp = [0xFF; 10];
    stamp[..8].copy_from_slice(&(read_version as u64).to_be_bytes());
    stamp
}

/// Storing an input as the edge ships it: the region from the session's [`AvatarLocation`] (the
/// shipped `t1_region`: the last known region, re-read when proven stale), then the shipped
/// store (`direct::store`, here a batch of one): to the region's processor when `direct` serves
/// it, else (or when that processor drops it) the batch append of T1. A wrong guess is forwarded
/// by the frame of the region it reached.
pub async fn route_and_submit<D: Database>(
    db: &D,
    keys: &WorldKeys,
    location: &AvatarLocation,
    direct: &DirectInputs,
    input: &Input,
) -> Result<(RegionId, Stored), WorldError> {
    let region = t1_region(db, keys, location).await;
    let stored = direct::store(db, keys, direct, region, vec![input.clone()]).await?;
    Ok((region, stored))
}

/// The entities in `area` and the cursor after them.
pub async fn snapshot<D: Database>(
    db: &D,
    keys: &WorldKeys,
    area: &Area,
) -> Result<(Vec<Entity>, [u8; 10]), WorldError> {
    run(db, |trx, _| async move {
        let version = trx.get_read_version().await?;
        let entities = entities_in_area(&trx, keys, area, true).await?;
        Ok::<_, WorldError>((entities, snapshot_cursor(version)))
    })
    .await
}

/// An edge's region cache in the simulation: the shipped [`RegionCache`], and the head each
/// region was last cached at (what the planted stale-cache bug misuses).
#[derive(Clone)]
pub struct EdgeCache {
    /// The shipped cache.
    pub cache: RegionCache,
    cached_at: Arc<Mutex<BTreeMap<RegionId, u64>>>,
    stale_refused: Arc<AtomicU64>,
    /// The planted bug: serve a cached region at the head it was cached at, not the head read
    /// in the snapshot's own transaction.
    pub serve_stale: bool,
}

impl EdgeCache {
    /// An empty cache (small, so eviction happens too).
    pub fn new(serve_stale: bool) -> Self {
        Self {
            cache: RegionCache::new(256 * 1024),
            cached_at: Arc::default(),
            stale_refused: Arc::default(),
            serve_stale,
        }
    }

    /// Snapshots that found their region cached at an older head and read it again (the
    /// stale snapshot was not served), since the last call.
    pub fn take_stale_refused(&self) -> u64 {
        self.stale_refused.swap(0, Ordering::Relaxed)
    }
}

/// The entities in `area` and the cursor after them, through the edge's region cache (as the
/// shipped fan-out does): a region is served from the cache only when the head read in this
/// transaction equals the cached one, else read whole and cached.
pub async fn snapshot_cached<D: Database>(
    db: &D,
    keys: &WorldKeys,
    area: &Area,
    edge_cache: &EdgeCache,
) -> Result<(Vec<Entity>, [u8; 10]), WorldError> {
    run(db, |trx, _| async move {
        let version = trx.get_read_version().await?;
        let regions: BTreeSet<RegionId> = area.cells().into_iter().map(|(r, _)| r).collect();
        let mut found = Vec::new();
        for region in regions {
            let head = region_head(&trx, keys, region).await?;
            let known = edge_cache
                .cached_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&region)
                .copied();
            let cached = match edge_cache.cache.lookup(region, head) {
                Some(hit) => Some(hit),
                None => match known.filter(|at| *at != head) {
                    Some(at) if edge_cache.serve_stale => edge_cache.cache.lookup(region, at),
                    Some(_) => {
                        edge_cache.stale_refused.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    None => None,
                },
            };
            let snapshot = match cached {
                Some(snapshot) => snapshot,
                None => {
                    let entities = load_region(&trx, keys, region).await?;
                    edge_cache
                        .cached_at
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(region, head);
                    edge_cache
                        .cache
                        .insert(region, head, entities.into_values())
                }
            };
            let snapshot = snapshot.read().unwrap_or_else(|e| e.into_inner());
            found.extend(snapshot.in_area(area).cloned());
        }
        Ok::<_, WorldError>((found, snapshot_cursor(version)))
    })
    .await
}

/// What one catch-up read found.
pub struct CatchUp {
    /// The commits read, in commit order, each whole (the shipped fan-out core's pass).
    pub commits: Commits,
    /// The region cursors to keep if the session takes this read.
    pub cursors: BTreeMap<RegionId, RegionCursor>,
    /// One armed watch per region head.
    pub watches: Vec<Watch>,
    /// The ids of the area's entities at the read version, when asked for.
    pub visible: Vec<EntityId>,
    /// Regions whose entries came from the local log, not the database.
    pub from_local: u64,
}

/// One pass of the shipped fan-out core for one session: reads each region's head and what
/// [`FanoutCore`] asks for (the shipped `read_region`, at most `max_per_pass` entries per
/// region, so long logs are cut as the edge cuts them), arms a watch on every region head, and
/// merges the commits; with `visible_in`, also reads the ids of that area's entities at the
/// same version. Entries `local` holds whole come from it, as at an edge beside processors.
pub async fn catch_up<D: Database>(
    db: &D,
    keys: &WorldKeys,
    core: &FanoutCore,
    (regions, local): (&[RegionId], Option<&LocalLog>),
    max_per_pass: usize,
    visible_in: Option<Area>,
) -> Result<CatchUp, WorldError> {
    let config = FanoutConfig {
        page: PAGE,
        max_per_pass,
        max_replay: usize::MAX,
    };
    run(db, |trx, _| async move {
        let mut watches: Vec<Watch> = Vec::with_capacity(regions.len());
        let mut pass = core.begin();
        let mut from_local = 0;
        let local = match local {
            Some(log) => Some((log, trx.get_read_version().await?)),
            None => None,
        };
        for region in regions {
            watches.push(Box::pin(trx.watch(&keys.head(*region))));
            let head = region_head(&trx, keys, *region).await?;
            let local = read_region(&trx, keys, &config, local, &mut pass, *region, head).await?;
            from_local += u64::from(local);
        }
        let (output, cursors) = pass.finish();
        let visible = match &visible_in {
            Some(area) => entities_in_area(&trx, keys, area, true)
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect(),
            None => Vec::new(),
        };
        Ok::<_, WorldError>(CatchUp {
            commits: output.commits,
            cursors,
            watches,
            visible,
            from_local,
        })
    })
    .await
}
