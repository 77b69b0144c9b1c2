//! Watch-driven fan-out: one watch per region head for the whole edge (not one per client).
//! Its decisions (what to read, cursors, cuts, starts, hand-over) are [`core::FanoutCore`]'s,
//! without I/O; this module is the tokio driver that reads, watches and wakes.
//!
//! Each pass runs one read-only transaction at one read version `rv`:
//! 1. for every region some subscription needs, read its head; if the head moved since the last
//!    full read of that region, read the change log after the edge's cursor for it (new regions
//!    start at their newest commit). The head is bumped in every transaction that appends to the
//!    log, so an unchanged head means no new entry as of `rv`: a quiet region costs one point
//!    read, not a range read;
//! 2. give joining subscriptions a snapshot of their area (`at` = the newest commit in their
//!    regions visible at `rv`), or replay the log after their resume point;
//! 3. arm a watch on the head of every region whose head moved (or whose watch fired), and
//!    commit; a watch that has not fired stays armed across passes (it still holds the value it
//!    saw, which is the head's value now), so every wanted region always has one.
//!
//! Only after the commit are the commits handed to the live subscriptions, in versionstamp
//! order, each only to the subscriptions it concerns (`route`: the cells its changes land in and
//! leave, its players, its avatars, found through the live index by cell), and the joiners made
//! live. Then the task sleeps until a watch fires, a subscription
//! joins, or [`IDLE_PASS`] passes.
//!
//! Metrics (`sekai_fanout_*`): passes, commits handed over, failures, coalescings, the outboxes'
//! queued bytes, and each commit's age when handed over (its lag).
//!
//! Invariants:
//! - **commit order across regions**: every commit visible at `rv` has a versionstamp at most
//!   `rv` and every later one a greater one, so handing over all commits up to `rv`, sorted,
//!   pass after pass, is the global commit order. When a region's log is too long to read in
//!   one pass, every region is cut at the same versionstamp, so the order still holds;
//! - **no gaps**: a region's cursor only moves past commits handed to every live subscription of
//!   it, and a change after the pass's read wakes the pass's watch;
//! - **joiners**: a snapshot at `at` followed by the commits after `at` (earlier ones are at or
//!   below the subscriber's cursor and ignored) is the area's history with no gap or duplicate;
//!   a replay longer than `max_replay` entries, or a resume point newer than anything in the
//!   area's logs, or one at or below a region's trim floor (`query::changelog_floor`: entries
//!   after it may be gone), gets a fresh snapshot instead.

pub mod core;
pub mod log;
pub mod registry;
pub mod route;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::select;
use futures::FutureExt;
use metrics::{counter, gauge, histogram};
use sekai_cache::RegionCache;
use sekai_layer::kv::{Database, Transaction};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::frame::load_region;
use sekai_layer::world::local_log::{commit_version, LocalLog};
use sekai_layer::world::model::{Delta, Entity};
use sekai_layer::world::query::{changelog_floor, entities_in_area};
use sekai_layer::world::store::region_head;
use sekai_schema::Area;

use crate::session::outbox::entity_size;
use sekai_schema::{RegionId, WorldKeys};
use tokio::sync::Notify;

use self::core::{
    hand_over, resume_or_snapshot, Beginning, Commits, FanoutCore, Handed, Pass, RegionStep,
    ResumeCheck,
};
pub use self::core::{PlantedFanoutBug, Start};
use crate::observe::metrics as names;
use crate::session::Subscriber;
use log::{last_stamp, merge, read_log, Stamp};
pub use registry::Slot;
use registry::{Live, Registry};

/// Database versions per second: FoundationDB's versions, and the embedded engine's, advance at
/// about this rate, so a version difference is an age.
const VERSIONS_PER_SECOND: f64 = 1e6;

/// The longest the fan-out sleeps without a wake (a safety net; watches normally wake it).
pub const IDLE_PASS: Duration = Duration::from_secs(1);

/// Fan-out settings.
#[derive(Clone, Copy, Debug)]
pub struct FanoutConfig {
    /// Change-log entries per range read.
    pub page: usize,
    /// Entries read per region per pass before the pass is cut.
    pub max_per_pass: usize,
    /// Entries a resumed subscription may replay before it gets a snapshot instead.
    pub max_replay: usize,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            page: 1_000,
            max_per_pass: 10_000,
            max_replay: 10_000,
        }
    }
}

/// Counters of one fan-out (also recorded as `sekai_fanout_*` metrics).
#[derive(Debug, Default)]
pub struct FanoutStats {
    /// Passes completed.
    pub passes: AtomicU64,
    /// Commits handed over.
    pub commits: AtomicU64,
    /// Passes that failed and were retried.
    pub failures: AtomicU64,
    /// Times a subscription's outbox coalesced queued deltas (a slow client).
    pub coalesced: AtomicU64,
    /// Store range reads made for snapshots (of a cell, or of a whole region for the cache).
    pub snapshot_reads: AtomicU64,
    /// Estimated bytes of the entities those reads returned.
    pub snapshot_bytes: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    registry: Mutex<Registry>,
    wake: Notify,
    stopped: AtomicBool,
    stats: FanoutStats,
    /// Whole regions kept current from the log; snapshots come from here when it is on.
    cache: Option<RegionCache>,
    cache_on: AtomicBool,
}

/// A handle to an edge's fan-out (cheap to clone, shared by all connections).
#[derive(Clone, Debug, Default)]
pub struct Fanout {
    shared: Arc<Shared>,
}

impl Fanout {
    /// A fan-out with no subscriptions; [`Fanout::run`] drives it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fan-out that serves snapshots from `cache` (kept current from the change log).
    pub fn with_cache(cache: RegionCache) -> Self {
        Self {
            shared: Arc::new(Shared {
                cache: Some(cache),
                cache_on: AtomicBool::new(true),
                ..Shared::default()
            }),
        }
    }

    /// Turns the region cache on or off (a benchmark compares both in one run).
    pub fn set_cache_enabled(&self, on: bool) {
        self.shared.cache_on.store(on, Ordering::Release);
    }

    /// The region cache, if this fan-out has one.
    pub fn cache(&self) -> Option<&RegionCache> {
        self.shared.cache.as_ref()
    }

    /// The cache when it is on.
    fn live_cache(&self) -> Option<&RegionCache> {
        self.shared
            .cache
            .as_ref()
            .filter(|_| self.shared.cache_on.load(Ordering::Acquire))
    }

    /// Adds a subscription; it starts in the next pass. Returns its id and slot.
    pub fn subscribe(&self, subscriber: Subscriber, start: Start) -> (u64, Arc<Slot>) {
        let joined = self.registry().join(subscriber, start);
        self.shared.wake.notify_one();
        joined
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, id: u64) {
        self.registry().remove(id);
    }

    /// How many subscriptions are live.
    pub fn live_count(&self) -> usize {
        self.registry().live_count()
    }

    /// The fan-out's counters.
    pub fn stats(&self) -> &FanoutStats {
        &self.shared.stats
    }

    /// Makes [`Fanout::run`] return.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.shared
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs passes until [`Fanout::stop`], taking the change-log entries this process's
    /// processors recorded in `local` instead of reading them back (an empty log when none run
    /// here).
    pub async fn run<D: Database>(
        self,
        db: D,
        keys: WorldKeys,
        config: FanoutConfig,
        local: LocalLog,
    ) {
        let mut core = FanoutCore::new();
        let mut watches = Watches::new();
        while !self.shared.stopped.load(Ordering::Acquire) {
            let joining = self.registry().take_joining();
            let live = self.registry().live();
            match self
                .pass(
                    &db,
                    &keys,
                    &config,
                    &local,
                    &mut core,
                    &mut watches,
                    &live,
                    &joining,
                )
                .await
            {
                Ok(()) => {
                    self.shared.stats.passes.fetch_add(1, Ordering::Relaxed);
                    counter!(names::FANOUT_PASSES).increment(1);
                    {
                        let mut registry = self.registry();
                        for (id, slot, _) in joining {
                            registry.go_live(id, slot);
                        }
                    }
                    if !core.behind() {
                        // A region cut short has committed entries left: no waiting for it.
                        self.wait(&mut watches).await;
                    }
                }
                Err(error) => {
                    self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                    counter!(names::FANOUT_FAILURES).increment(1);
                    tracing::warn!(%error, "fan-out pass failed; retrying");
                    self.registry().requeue(joining);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Sleeps until a region's watch fires (that region's watch is then disarmed), a
    /// subscription joins, [`IDLE_PASS`] passes or a stop.
    async fn wait(&self, watches: &mut Watches) {
        let woken = Box::pin(self.shared.wake.notified());
        let idle = Box::pin(tokio::time::sleep(IDLE_PASS));
        let fired = futures::future::poll_fn(|cx| {
            let before = watches.len();
            watches.retain(|_, watch| watch.as_mut().poll(cx).is_pending());
            if watches.len() < before {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        let _ = select(Box::pin(fired), select(woken, idle)).await;
    }

    /// One pass (see the module docs): the reads [`FanoutCore`] asks for, at one read version;
    /// leaves a watch armed on every wanted region's head.
    #[allow(clippy::too_many_arguments)]
    async fn pass<D: Database>(
        &self,
        db: &D,
        keys: &WorldKeys,
        config: &FanoutConfig,
        local: &LocalLog,
        core: &mut FanoutCore,
        watches: &mut Watches,
        live: &Live,
        joining: &[(u64, Arc<Slot>, Start)],
    ) -> Result<(), WorldError> {
        let trx = db.create_trx()?;
        let read_version = trx.get_read_version().await?;
        let read_at = Instant::now();
        let wanted: BTreeSet<RegionId> = live
            .regions()
            .chain(
                joining
                    .iter()
                    .flat_map(|(_, slot, _)| slot.regions().iter().copied()),
            )
            .collect();
        let mut pass = core.begin();
        let mut heads: BTreeMap<RegionId, u64> = BTreeMap::new();
        let mut armed = Watches::new();
        for region in &wanted {
            let head = region_head(&trx, keys, *region).await?;
            heads.insert(*region, head);
            let local = Some((local, read_version));
            read_region(&trx, keys, config, local, &mut pass, *region, head).await?;
            if pass.needs_watch(*region, head, watches.contains_key(region)) {
                armed.insert(*region, trx.watch(&keys.head(*region)).map(|_| ()).boxed());
            }
        }
        let (output, cursors) = pass.finish();
        if let Some(cache) = self.shared.cache.as_ref() {
            // Entries read are committed whatever becomes of this pass: the cached region may
            // take them now, so this pass's joiners already hit it.
            for advance in &output.cache {
                let deltas: Vec<&Delta> = output.deltas_of(advance.region).collect();
                cache.advance(
                    advance.region,
                    advance.head,
                    deltas.into_iter(),
                    advance.whole,
                );
            }
        }
        let commits = output.commits;
        let mut starts = Vec::with_capacity(joining.len());
        for (_, slot, start) in joining {
            starts.push(self.start(&trx, keys, config, &heads, slot, *start).await?);
        }
        trx.commit().await?;

        // Only now, after the pass succeeded: keep the new cursors, the watches still armed
        // for wanted regions, and the new ones.
        core.commit(cursors);
        watches.retain(|region, _| wanted.contains(region));
        watches.extend(armed);
        self.shared
            .stats
            .commits
            .fetch_add(commits.len() as u64, Ordering::Relaxed);
        let reaches = core.route(&commits);
        let (mut coalesced, mut queued_bytes, mut handed_total) = (0u64, 0usize, 0u64);
        for (slot, concerning) in live.reached(&reaches) {
            if slot.is_closed() {
                continue;
            }
            let handed = hand_over(&mut slot.lock(), &commits, Handed::Only(&concerning));
            coalesced += handed.coalesced;
            queued_bytes += handed.queued_bytes;
            handed_total += handed.handed;
            if handed.queued {
                slot.wake();
            }
        }
        self.shared
            .stats
            .coalesced
            .fetch_add(coalesced, Ordering::Relaxed);
        counter!(names::FANOUT_HANDED).increment(handed_total);
        record_pass(&commits, read_version, read_at, coalesced, queued_bytes);
        gauge!(names::FANOUT_SUBSCRIPTIONS).set(live.len() as f64);
        gauge!(names::FANOUT_REGIONS).set(wanted.len() as f64);
        for ((_, slot, _), start) in joining.iter().zip(starts) {
            start.apply(&mut slot.lock());
            slot.wake();
        }
        Ok(())
    }

    /// Reads what a joining subscription starts with.
    async fn start<T: Transaction>(
        &self,
        trx: &T,
        keys: &WorldKeys,
        config: &FanoutConfig,
        heads: &BTreeMap<RegionId, u64>,
        slot: &Slot,
        start: Start,
    ) -> Result<Beginning, WorldError> {
        let (area, regions) = {
            let subscriber = slot.lock();
            (*subscriber.area(), subscriber.regions().clone())
        };
        let mut at: Stamp = [0; 10];
        for region in &regions {
            if let Some(stamp) = last_stamp(trx, keys, *region).await? {
                at = at.max(stamp);
            }
        }
        if let Start::Resume(from) = start {
            let mut trimmed_past = false;
            for region in &regions {
                trimmed_past |= changelog_floor(trx, keys, *region)
                    .await?
                    .is_some_and(|floor| floor >= from);
            }
            let check = ResumeCheck {
                from,
                newest: at,
                trimmed_past,
            };
            if resume_or_snapshot(&check) {
                let mut entries = Vec::new();
                let mut complete = true;
                for region in &regions {
                    let budget = config.max_replay.saturating_sub(entries.len());
                    let (region_entries, done) =
                        read_log(trx, keys, *region, Some(from), config.page, budget).await?;
                    entries.extend(region_entries);
                    complete &= done && entries.len() <= config.max_replay;
                }
                if complete {
                    let visible = self.area_now(trx, keys, &area, &regions, heads).await?;
                    return Ok(Beginning::Replay {
                        from,
                        commits: merge(entries),
                        visible: visible.into_iter().map(|e| e.id).collect(),
                    });
                }
                tracing::info!("resume point too far behind; sending a snapshot instead");
            }
        }
        let entities = self.area_now(trx, keys, &area, &regions, heads).await?;
        Ok(Beginning::Snapshot { entities, at })
    }

    /// The entities in `area` (whose `regions` had `heads` in this pass) at the pass's read
    /// version: from the region cache where it is current at the head, else one range read of
    /// the whole region, cached; without the cache, one range read per cell of the area.
    async fn area_now<T: Transaction>(
        &self,
        trx: &T,
        keys: &WorldKeys,
        area: &Area,
        regions: &BTreeSet<RegionId>,
        heads: &BTreeMap<RegionId, u64>,
    ) -> Result<Vec<Entity>, WorldError> {
        let stats = &self.shared.stats;
        let Some(cache) = self.live_cache() else {
            let entities = entities_in_area(trx, keys, area, true).await?;
            let bytes: usize = entities.iter().map(entity_size).sum();
            let cells = area.cells().len() as u64;
            stats.snapshot_reads.fetch_add(cells, Ordering::Relaxed);
            stats
                .snapshot_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
            return Ok(entities);
        };
        let mut found = Vec::new();
        for region in regions {
            let head = match heads.get(region) {
                Some(head) => *head,
                None => region_head(trx, keys, *region).await?,
            };
            let snapshot = match cache.lookup(*region, head) {
                Some(snapshot) => snapshot,
                None => {
                    let entities = load_region(trx, keys, *region).await?;
                    let bytes: usize = entities.values().map(entity_size).sum();
                    stats.snapshot_reads.fetch_add(1, Ordering::Relaxed);
                    stats
                        .snapshot_bytes
                        .fetch_add(bytes as u64, Ordering::Relaxed);
                    cache.insert(*region, head, entities.into_values())
                }
            };
            let snapshot = snapshot.read().unwrap_or_else(|e| e.into_inner());
            found.extend(snapshot.in_area(area).cloned());
        }
        Ok(found)
    }
}

/// A watch on a region head, type-erased.
type WatchFuture = futures::future::BoxFuture<'static, ()>;

/// The armed watch of each wanted region whose watch has not fired.
type Watches = BTreeMap<RegionId, WatchFuture>;

/// Reads what `pass` asks for `region` (whose head is `head` in `trx`) and reports it: the one
/// place a fan-out reads the change log (the simulator calls it too). The entries after the
/// cursor come from `local` (a local log and `trx`'s read version, which the caller read once
/// for its pass) when it holds all of them (`LocalLog::entries_after`), else from the database;
/// returns whether they came from `local`.
pub async fn read_region<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    config: &FanoutConfig,
    local: Option<(&LocalLog, i64)>,
    pass: &mut Pass<'_>,
    region: RegionId,
    head: u64,
) -> Result<bool, WorldError> {
    match pass.step(region, head) {
        RegionStep::FindStart => {
            let stamp = last_stamp(trx, keys, region).await?;
            pass.started_at(region, head, stamp);
        }
        RegionStep::ReadLog { after, head_rise } => {
            let recorded = match (local, head_rise) {
                (Some((log, read_version)), Some(rise)) => {
                    log.entries_after(region, after, read_version, rise, config.max_per_pass)
                }
                _ => None,
            };
            let from_local = recorded.is_some();
            let source = if from_local { "memory" } else { "store" };
            counter!(names::FANOUT_LOG_READS, "from" => source).increment(1);
            let (entries, complete) = match recorded {
                Some(entries) => (entries, true),
                None => {
                    read_log(trx, keys, region, after, config.page, config.max_per_pass).await?
                }
            };
            pass.read(region, head, entries, complete);
            return Ok(from_local);
        }
        RegionStep::Unchanged => pass.unchanged(region, head),
    }
    Ok(false)
}

/// Records a pass's metrics: the commits handed over and the age of each (its commit version
/// to the pass's read version, plus the time since the read version was taken), the outboxes'
/// coalescings and their queued bytes.
fn record_pass(
    commits: &Commits,
    read_version: i64,
    read_at: Instant,
    coalesced: u64,
    queued_bytes: usize,
) {
    counter!(names::FANOUT_COMMITS).increment(commits.len() as u64);
    counter!(names::FANOUT_COALESCED).increment(coalesced);
    gauge!(names::FANOUT_OUTBOX_BYTES).set(queued_bytes as f64);
    let since_read = read_at.elapsed().as_secs_f64();
    let lag = histogram!(names::FANOUT_LAG_SECONDS);
    for stamp in commits.keys() {
        let behind = read_version.saturating_sub(commit_version(stamp)).max(0);
        lag.record(behind as f64 / VERSIONS_PER_SECOND + since_read);
    }
}
