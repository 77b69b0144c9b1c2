//! The live map's hub: the world as the map shows it, fed by the edge's own fan-out, and the
//! messages browsers follow.
//!
//! The hub subscribes to the fan-out like a client (player 0, whose outcomes nobody has) with one
//! area covering the world's regions, so it gets a snapshot and then every commit's changes in
//! commit order, with the fan-out's guarantees (no gap, no duplicate, coalescing when slow). It
//! keeps the entities, turns each change into a JSON message, and broadcasts it. Once a second
//! it reads each region's newest frame record (one read-only snapshot transaction) for the
//! per-region figures.
//!
//! Invariants:
//! - a follower gets the hub's state and its broadcast receiver under the same lock the hub
//!   holds while applying and broadcasting, so what it receives continues that state exactly;
//!   a follower that falls behind the bounded channel ([`EVENT_BUFFER`]) is given a fresh
//!   snapshot instead of the messages it missed;
//! - memory is bounded by the world's entities, the channel's capacity and the subscription's
//!   outbox budget ([`OUTBOX_BUDGET`]); when the outbox resets (the hub fell too far behind)
//!   the hub resubscribes and starts again from a snapshot;
//! - the area is capped at `MAX_QUERY_RADIUS`: on a world wider than that the map shows the
//!   circle of that radius around the world's centre (logged once).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sekai_layer::kv::{Database, RangeOption, Transaction};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::model::{Change, Delta, Entity, EntityKind};
use sekai_layer::world::query::frames;
use sekai_schema::geometry::{MAX_QUERY_RADIUS, REGION_SIZE};
use sekai_schema::{Area, EntityId, RegionId, Vec3, WorldKeys};
use tokio::sync::{broadcast, watch};

use super::json::{self, RegionStats};
use crate::fanout::{Fanout, Slot, Start};
use crate::session::{Outbound, Subscriber};

/// Messages buffered for each follower before it is considered behind.
pub const EVENT_BUFFER: usize = 1_024;

/// Bytes of deltas the hub's subscription may queue before the fan-out coalesces them.
pub const OUTBOX_BUDGET: usize = 8 << 20;

/// How often the per-region figures are read.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

/// Frame records read per region per stats pass (inputs/s undercounts beyond it).
const MAX_FRAMES_PER_STATS: usize = 4_096;

/// What the hub holds.
#[derive(Default)]
struct MapState {
    entities: HashMap<EntityId, Entity>,
    stats: Vec<RegionStats>,
    updates: u64,
}

struct Inner {
    regions: Vec<RegionId>,
    area: Area,
    state: Mutex<MapState>,
    events: broadcast::Sender<Arc<str>>,
}

/// The live map's state and message stream (cheap to clone).
#[derive(Clone)]
pub struct MapHub {
    inner: Arc<Inner>,
}

/// The smallest circle holding every region of `regions`, capped at `MAX_QUERY_RADIUS`.
pub fn world_area(regions: &[RegionId]) -> Area {
    let bounds = regions
        .iter()
        .fold(None, |b: Option<(i32, i32, i32, i32)>, r| {
            Some(match b {
                None => (r.x, r.z, r.x, r.z),
                Some((x0, z0, x1, z1)) => (x0.min(r.x), z0.min(r.z), x1.max(r.x), z1.max(r.z)),
            })
        });
    let (x0, z0, x1, z1) = bounds.unwrap_or((0, 0, 0, 0));
    let size = f64::from(REGION_SIZE);
    let (min_x, min_z) = (f64::from(x0) * size, f64::from(z0) * size);
    let (max_x, max_z) = (f64::from(x1 + 1) * size, f64::from(z1 + 1) * size);
    // A metre more than half the diagonal, so float rounding never leaves a corner out.
    let radius = ((max_x - min_x).hypot(max_z - min_z) / 2.0 + 1.0) as f32;
    if radius > MAX_QUERY_RADIUS {
        tracing::warn!(
            radius,
            max = MAX_QUERY_RADIUS,
            "the world is wider than one area of interest; the map shows its centre"
        );
    }
    Area::new(
        Vec3::new(
            ((min_x + max_x) / 2.0) as f32,
            0.0,
            ((min_z + max_z) / 2.0) as f32,
        ),
        radius.min(MAX_QUERY_RADIUS),
    )
}

impl MapHub {
    /// A hub for the world made of `regions`, empty until [`MapHub::run`] fills it.
    pub fn new(regions: Vec<RegionId>) -> Self {
        let area = world_area(&regions);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            inner: Arc::new(Inner {
                regions,
                area,
                state: Mutex::default(),
                events,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, MapState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn snapshot_of(&self, state: &MapState) -> String {
        json::snapshot(
            &self.inner.regions,
            &self.inner.area,
            state.entities.values(),
            &state.stats,
            state.updates,
        )
    }

    /// The current state as a `snapshot` message.
    pub fn snapshot(&self) -> String {
        self.snapshot_of(&self.state())
    }

    /// The current state as a `snapshot` message and a receiver of every message after it.
    pub fn follow(&self) -> (String, broadcast::Receiver<Arc<str>>) {
        let state = self.state();
        (self.snapshot_of(&state), self.inner.events.subscribe())
    }

    /// How many entities the map holds.
    pub fn entity_count(&self) -> usize {
        self.state().entities.len()
    }

    fn broadcast(&self, message: String) {
        // No follower is not an error.
        let _ = self.inner.events.send(Arc::from(message));
    }

    fn apply_snapshot(&self, entities: Vec<Entity>) {
        let mut state = self.state();
        state.entities = entities.into_iter().map(|e| (e.id, e)).collect();
        let message = self.snapshot_of(&state);
        self.broadcast(message);
    }

    fn apply_delta(&self, delta: &Delta) {
        let mut state = self.state();
        for change in &delta.changes {
            match change {
                Change::Upsert(e) => {
                    state.entities.insert(e.id, e.clone());
                }
                Change::Remove(id) => {
                    state.entities.remove(id);
                }
            }
        }
        state.updates += delta.changes.len() as u64;
        self.broadcast(json::delta(delta));
    }

    fn apply_stats(&self, mut regions: Vec<RegionStats>) {
        let mut state = self.state();
        let mut counts: BTreeMap<RegionId, [u64; 4]> = BTreeMap::new();
        for e in state.entities.values() {
            let slot = match e.kind {
                EntityKind::PlayerAvatar => 0,
                EntityKind::Tree | EntityKind::Rock => 1,
                EntityKind::ItemWood | EntityKind::ItemStone => 2,
                EntityKind::StructureWall => 3,
            };
            counts.entry(e.region()).or_default()[slot] += 1;
        }
        for r in &mut regions {
            let [players, resources, items, structures] = counts
                .get(&RegionId::new(r.x, r.z))
                .copied()
                .unwrap_or_default();
            (r.players, r.resources, r.items, r.structures) =
                (players, resources, items, structures);
        }
        state.stats = regions;
        self.broadcast(json::stats(&state.stats));
    }

    /// Follows the fan-out and reads the region figures until `stop` turns true (or its sender
    /// is dropped).
    pub async fn run<D: Database>(
        self,
        db: D,
        keys: WorldKeys,
        fanout: Fanout,
        stop: watch::Receiver<bool>,
    ) {
        let stats = tokio::spawn(self.clone().run_stats(db, keys, stop.clone()));
        loop {
            let subscriber = Subscriber::new(0, self.inner.area, OUTBOX_BUDGET);
            let (id, slot) = fanout.subscribe(subscriber, Start::Snapshot);
            let reset = self.follow_slot(&slot, stop.clone()).await;
            slot.close();
            fanout.unsubscribe(id);
            if !reset {
                break;
            }
            tracing::warn!("the map fell behind its subscription; starting again from a snapshot");
        }
        stats.abort();
    }

    /// Applies the subscription's messages until it resets (`true`) or `stop` (`false`).
    async fn follow_slot(&self, slot: &Slot, mut stop: watch::Receiver<bool>) -> bool {
        loop {
            loop {
                let next = slot.lock().poll_transmit();
                match next {
                    None => break,
                    Some(Outbound::Snapshot { entities, .. }) => self.apply_snapshot(entities),
                    Some(Outbound::Delta { delta, .. }) => self.apply_delta(&delta),
                    Some(Outbound::Reset { .. }) => return true,
                }
            }
            if *stop.borrow() {
                return false;
            }
            tokio::select! {
                () = slot.ready() => {}
                changed = stop.changed() => if changed.is_err() || *stop.borrow() {
                    return false;
                }
            }
        }
    }

    /// Reads the region figures every [`STATS_EVERY`] until `stop`.
    async fn run_stats<D: Database>(self, db: D, keys: WorldKeys, stop: watch::Receiver<bool>) {
        let mut last: HashMap<RegionId, (u64, Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(STATS_EVERY);
        while !*stop.borrow() {
            tick.tick().await;
            match read_region_stats(&db, &keys, &self.inner.regions, &mut last).await {
                Ok(regions) => self.apply_stats(regions),
                Err(error) => tracing::warn!(%error, "reading the map's region figures failed"),
            }
        }
    }
}

/// Each region's newest frame and its rates since `last` (which it updates).
async fn read_region_stats<D: Database>(
    db: &D,
    keys: &WorldKeys,
    regions: &[RegionId],
    last: &mut HashMap<RegionId, (u64, Instant)>,
) -> Result<Vec<RegionStats>, WorldError> {
    let trx = db.create_trx()?;
    let now = Instant::now();
    let mut out = Vec::with_capacity(regions.len());
    for &region in regions {
        let (begin, end) = keys.frame_range(region);
        let page = trx
            .get_range(&RangeOption::new(begin, end).limit(1).rev(), true)
            .await?;
        let frame = match page.kvs.first() {
            Some(kv) => keys.decode_frame(&kv.key)?.1,
            None => 0,
        };
        let mut stats = RegionStats {
            x: region.x,
            z: region.z,
            frame,
            ..RegionStats::default()
        };
        if let Some(&(before, at)) = last.get(&region) {
            let seconds = now.duration_since(at).as_secs_f64().max(1e-3);
            if frame > before {
                let limit = usize::try_from(frame - before)
                    .unwrap_or(usize::MAX)
                    .min(MAX_FRAMES_PER_STATS);
                let records = frames(&trx, keys, region, before + 1, limit).await?;
                let inputs: usize = records.iter().map(|r| r.inputs.len()).sum();
                stats.frames_per_sec = (frame - before) as f64 / seconds;
                stats.inputs_per_sec = inputs as f64 / seconds;
            }
        }
        last.insert(region, (frame, now));
        out.push(stats);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_area_covers_the_world_and_is_capped() {
        let regions: Vec<RegionId> = (0..2)
            .flat_map(|x| (0..2).map(move |z| RegionId::new(x, z)))
            .collect();
        let area = world_area(&regions);
        assert!(area.is_valid());
        for corner in [(0.0, 0.0), (512.0, 0.0), (0.0, 512.0), (512.0, 512.0)] {
            assert!(
                area.contains(&Vec3::new(corner.0, 0.0, corner.1)),
                "{corner:?}"
            );
        }
        let wide: Vec<RegionId> = (0..20).map(|x| RegionId::new(x, x)).collect();
        let area = world_area(&wide);
        assert!(area.is_valid());
        assert_eq!(area.radius, MAX_QUERY_RADIUS);
    }

    #[test]
    fn followers_continue_the_state_they_were_given() {
        let hub = MapHub::new(vec![RegionId::new(0, 0)]);
        let tree = |id: u128, x: f32| Entity {
            id: EntityId(id),
            kind: EntityKind::Tree,
            hp: 5,
            position: Vec3::new(x, 0.0, 3.0),
            inventory: Default::default(),
            owner: 0,
        };
        hub.apply_snapshot(vec![tree(1, 1.0)]);
        let (first, mut rx) = hub.follow();
        assert!(first.contains(&format!("{:032x}", 1)));
        hub.apply_delta(&Delta {
            region: RegionId::new(0, 0),
            changes: vec![Change::Upsert(tree(2, 2.0)), Change::Remove(EntityId(1))],
            ..Delta::default()
        });
        let message = rx.try_recv().unwrap();
        assert!(message.contains("\"delta\"") && message.contains(&format!("{:032x}", 2)));
        assert_eq!(hub.entity_count(), 1);
        hub.apply_stats(vec![RegionStats::default()]);
        let stats: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(stats["regions"][0]["resources"], 1);
    }
}
