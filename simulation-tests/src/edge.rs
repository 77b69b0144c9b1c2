//! The simulated edge: sessions around the real, I/O-free session core of `sekai-edge`.
//!
//! What a session decides runs through `sekai_edge::session`, the same code the real edge runs:
//! - a [`Subscriber`] per session filters every commit of the area's regions (upserts inside the
//!   area, removals of what the client may hold, the player's own outcomes), keeps the
//!   session's cursor and seen set, and queues the result in its [`Outbox`](sekai_edge::session::Outbox)
//!   (bounded: a slow client gets coalesced deltas, or a reset when even those do not fit);
//! - an [`InputGate`] per session admits inputs (seq order, re-acknowledging durable seqs, rate
//!   limit on the virtual clock).
//!
//! What stays the simulator's own is I/O and scheduling: the reads that feed the subscriber (a
//! snapshot, or a catch-up of every region at one read version with a watch on every head,
//! `edge_ops`), T1 with routing, and when a client is handed what `poll_transmit` yields.
//!
//! Invariants:
//! - every commit of the area's regions after the subscriber's cursor is handed to it exactly
//!   once, whole (all its log entries, every region) and in commit order; a commit's entries
//!   are never split between two `on_commit` calls (a cursor is a commit versionstamp);
//! - a fresh session starts with `start_snapshot`; a resumed one with `start_resume` from the
//!   client's cursor (the stamp of the last message it *received*), replays the log after it and
//!   `settle`s with the area's entities read at the same version, as the real fan-out does;
//! - acknowledgements are queued only after T1 committed (or for seqs the gate knows durable).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sekai_edge::session::{
    Admission, AvatarLocation, InputError, InputGate, InputLimits, Subscriber,
};
use sekai_layer::world::inbox::{action_digest, DurableSeq};
use sekai_layer::world::model::{Entity, Input};
use sekai_schema::{Area, EntityId, PlayerId, RegionId};

use sekai_edge::fanout::core::{
    hand_over, Commits, FanoutCore, Handed, PlantedFanoutBug, RegionCursor,
};
use sekai_edge::fanout::route::Reach;

use crate::edge_ops::{EdgeCache, Watch};

/// Where a resumed session starts: the versionstamp the client received up to.
pub type ResumePoint = [u8; 10];

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its first snapshot.
    Snapshotting,
    /// Waiting for the replay of the log after the client's cursor.
    Resuming(ResumePoint),
    /// Waiting to learn the log's tail (the planted `ResumeAtTail` bug).
    SeekingTail,
    /// Streaming deltas.
    Streaming,
    /// The client went away; the session lingers until its tasks finish.
    Closed,
}

/// How a session hands messages to its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Messages per delivery.
    pub batch: usize,
    /// Virtual time between two deliveries, in µs (0: whenever the scheduler picks it).
    pub every_us: u64,
    /// Bytes of deltas the session's outbox may hold before it coalesces.
    pub budget: usize,
}

/// One client's session on an edge.
pub struct Session {
    /// The client.
    pub client: usize,
    /// The client's player.
    pub player: PlayerId,
    /// The player's avatar.
    pub avatar: EntityId,
    /// Where the session is.
    pub phase: Phase,
    /// The subscription: filter, cursor, seen set and outbox (the real session core).
    pub subscriber: Subscriber,
    /// Where T1 routes the player's inputs (the shipped `AvatarLocation`, kept current by the
    /// subscriber's deltas, set by the login).
    pub location: Arc<AvatarLocation>,
    /// Input admission (the real session core); `None` until the login read the player's
    /// durable record (the shipped `ensure_avatar`).
    pub gate: Option<InputGate>,
    /// Inputs waiting for admission and T1, in arrival order.
    pub inputs: VecDeque<Input>,
    /// Seqs of queued gap probes: inputs the gate must refuse.
    pub probes: BTreeSet<u64>,
    /// Acknowledgements not yet delivered (the answers of `Avatar.send`).
    pub acks: VecDeque<u64>,
    /// True while a T1 of this session runs (T1s of one player run one at a time, in order).
    pub storing: bool,
    /// True while a snapshot or catch-up read runs.
    pub reading: bool,
    /// True when the log must be read (a watch fired, or streaming just began).
    pub dirty: bool,
    /// Watches armed by the last catch-up.
    pub watches: Vec<Watch>,
    /// The region cursors of the shipped fan-out core, for this session's regions.
    pub fanout: FanoutCore,
    /// The bug planted in the fan-out core, if any.
    pub fanout_bug: Option<PlantedFanoutBug>,
    /// How the client takes messages.
    pub delivery: Delivery,
    /// Virtual time (µs) of the next delivery allowed.
    pub next_delivery_at: u64,
    /// Deltas with changes delivered so far (the `SkipDelta` bug drops some of them).
    pub deltas_delivered: u64,
    /// Coalescings of the outbox already counted.
    pub coalesced_seen: u64,
}

impl Session {
    /// A session for `client` streaming `area`; `resume` gives the client's cursor, `None`
    /// starts from a snapshot. Inputs wait until [`Session::logged_in`] opens the gate.
    pub fn new(
        client: usize,
        player: PlayerId,
        avatar: EntityId,
        area: Area,
        resume: Option<ResumePoint>,
        delivery: Delivery,
    ) -> Self {
        let phase = match resume {
            Some(from) => Phase::Resuming(from),
            None => Phase::Snapshotting,
        };
        let guess = sekai_schema::geometry::region_of(&area.center);
        let location = Arc::new(AvatarLocation::new(avatar, guess));
        Self {
            client,
            player,
            avatar,
            phase,
            subscriber: Subscriber::new(player, area, delivery.budget)
                .with_avatar(location.clone()),
            location,
            gate: None,
            inputs: VecDeque::new(),
            probes: BTreeSet::new(),
            acks: VecDeque::new(),
            storing: false,
            reading: false,
            dirty: true,
            watches: Vec::new(),
            fanout: FanoutCore::new(),
            fanout_bug: None,
            delivery,
            next_delivery_at: 0,
            deltas_delivered: 0,
            coalesced_seen: 0,
        }
    }

    /// The area of interest.
    pub fn area(&self) -> Area {
        *self.subscriber.area()
    }

    /// The regions whose change logs the session reads.
    pub fn regions(&self) -> Vec<RegionId> {
        self.subscriber.regions().iter().copied().collect()
    }

    /// The versionstamp the subscriber has handed over up to.
    pub fn cursor(&self) -> [u8; 10] {
        self.subscriber.cursor().unwrap_or([0; 10])
    }

    /// A fan-out core whose regions start after `stamp`, with the planted bug if any.
    pub fn fanout_after(&self, stamp: [u8; 10]) -> FanoutCore {
        let mut core = FanoutCore::starting_after(self.regions(), stamp);
        core.plant(self.fanout_bug);
        core
    }

    /// Starts streaming after a snapshot of the area as of `at`.
    pub fn start_snapshot(&mut self, entities: Vec<Entity>, at: [u8; 10]) {
        self.subscriber.start_snapshot(entities, at);
        self.fanout = self.fanout_after(at);
        self.phase = Phase::Streaming;
        self.dirty = true;
    }

    /// Starts streaming after `from`: replays `commits` (the log after `from`, read by a pass
    /// that left the region cursors `cursors`; `None`: nothing was read, every region is at
    /// `from`) and settles on `visible` (the area's entities read at the same version).
    pub fn start_replay(
        &mut self,
        from: [u8; 10],
        commits: Commits,
        cursors: Option<BTreeMap<RegionId, RegionCursor>>,
        visible: impl IntoIterator<Item = EntityId>,
    ) {
        self.subscriber.start_resume(from);
        self.fanout = self.fanout_after(from);
        if let Some(cursors) = cursors {
            self.fanout.commit(cursors);
        }
        // A replay is not routed: which entities the client holds is unknown until it settles.
        let regions = self.subscriber.regions().clone();
        hand_over(&mut self.subscriber, &commits, Handed::Touching(&regions));
        self.subscriber.settle(visible);
        self.phase = Phase::Streaming;
    }

    /// Hands a committed catch-up's commits to the subscriber (the shipped hand-over: the
    /// core routes them, then one `on_commit` per commit that concerns the subscriber, with all
    /// of its deltas, in commit order). Call it after `self.fanout.commit`. Returns how many
    /// commits of its regions were routed past it.
    pub fn hand_over(&mut self, commits: &Commits) -> u64 {
        let reaches = self.fanout.route(commits);
        let concerning = Reach::concerning(&reaches, &self.subscriber);
        let regions = self.subscriber.regions();
        let routed_past = commits
            .values()
            .enumerate()
            .filter(|(at, deltas)| {
                deltas.iter().any(|d| regions.contains(&d.region))
                    && concerning.binary_search(at).is_err()
            })
            .count() as u64;
        hand_over(&mut self.subscriber, commits, Handed::Only(&concerning));
        routed_past
    }

    /// The login's answer: the avatar's region sets where T1 routes, and the player's durable
    /// record opens the gate at virtual time `now`.
    pub fn logged_in(&mut self, avatar: &Entity, durable: DurableSeq, now: Duration) {
        self.location.set_region(avatar.region());
        self.gate = Some(InputGate::new(durable, InputLimits::default(), now));
    }

    /// Admits `input` at virtual time `now` through the gate (refused before the login).
    pub fn admit(&mut self, input: &Input, now: Duration) -> Result<Admission, InputError> {
        let gate = self.gate.as_mut().ok_or(InputError::Broken)?;
        gate.admit(input.seq, action_digest(&input.action), now)
    }

    /// True when the client has something to receive (acknowledgements or queued messages).
    pub fn has_output(&self) -> bool {
        !self.acks.is_empty() || self.subscriber.has_pending()
    }

    /// Coalescings of the outbox since the last call.
    pub fn new_coalescings(&mut self) -> u64 {
        let total = self.subscriber.coalesced();
        let new = total - self.coalesced_seen;
        self.coalesced_seen = total;
        new
    }
}

/// An edge node: its live sessions, by session id.
pub struct Edge {
    /// Sessions by id (ids are unique across the run).
    pub sessions: BTreeMap<u64, Session>,
    /// The edge's region cache (lost when the edge crashes).
    pub cache: EdgeCache,
}

impl Edge {
    /// An edge with no session and an empty cache (`serve_stale`: the planted bug).
    pub fn new(serve_stale: bool) -> Self {
        Self {
            sessions: BTreeMap::new(),
            cache: EdgeCache::new(serve_stale),
        }
    }
}
