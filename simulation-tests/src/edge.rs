//! The simulated edge: sessions, what they owe their clients, and how deltas are filtered.
//!
//! Modelled on DESIGN.md's edge: per session a cursor per region, a watch per region head, and an
//! outbox of messages in commit order. A fresh session starts from a snapshot; a resumed one
//! from the client's own cursors (the last versionstamp it *received*, not what a dead edge had
//! read). Invariants:
//! - every change-log entry after a session's cursors reaches its outbox exactly once, filtered
//!   by the area: an upsert inside the area is sent; an upsert outside it or a removal is sent as
//!   a removal when the client may hold the entity (`visible`);
//! - all entries of one commit in one region travel in one message, so a cursor (a commit
//!   versionstamp) never splits a commit;
//! - every (region, commit) yields a message, even one with no change for the client, so the
//!   client's cursors describe exactly the prefix it received. (Found by this simulator: when
//!   filtered-out entries did not advance the cursor, a resumed session replayed an old entry of
//!   a lagging region against the client's newer view, e.g. "avatar left the area" after the
//!   avatar had come back through another region, and the mirror lost the avatar.)
//! - acknowledgements are queued only after T1 committed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sekai_layer::world::model::{Change, Entity, Input};
use sekai_schema::{Area, EntityId, PlayerId, RegionId};

use crate::edge_ops::{LogEntry, Watch};

/// Where a resumed session starts: the client's cursor per region and the ids it holds.
pub type ResumePoint = (BTreeMap<RegionId, [u8; 10]>, BTreeSet<EntityId>);

/// A message from an edge to its client.
#[derive(Clone, Debug, PartialEq)]
pub enum ToClient {
    /// The input with this seq is durable.
    Ack(u64),
    /// The area's entities, and the cursor after them (for every region).
    Snapshot {
        /// The entities.
        entities: Vec<Entity>,
        /// The cursor.
        cursor: [u8; 10],
    },
    /// The changes of one commit in one region that concern the client.
    Delta {
        /// The region.
        region: RegionId,
        /// The commit versionstamp.
        stamp: [u8; 10],
        /// The filtered changes.
        changes: Vec<Change>,
    },
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its first snapshot.
    Snapshotting,
    /// Waiting to learn the log's tail (the planted `ResumeAtTail` bug).
    SeekingTail,
    /// Streaming deltas.
    Streaming,
    /// The client went away; the session lingers until its tasks finish.
    Closed,
}

/// One client's session on an edge.
pub struct Session {
    /// The client.
    pub client: usize,
    /// The client's player.
    pub player: PlayerId,
    /// The player's avatar.
    pub avatar: EntityId,
    /// The area of interest.
    pub area: Area,
    /// Where the session is.
    pub phase: Phase,
    /// Per region, the commit versionstamp read up to.
    pub cursors: BTreeMap<RegionId, [u8; 10]>,
    /// Entities the client may hold.
    pub visible: BTreeSet<EntityId>,
    /// Inputs waiting for T1, in arrival order.
    pub inputs: VecDeque<Input>,
    /// True while a T1 of this session runs (T1s of one player run one at a time, in order).
    pub storing: bool,
    /// True while a snapshot or catch-up read runs.
    pub reading: bool,
    /// True when the log must be read (a watch fired, or streaming just began).
    pub dirty: bool,
    /// Watches armed by the last catch-up.
    pub watches: Vec<Watch>,
    /// Messages not yet delivered.
    pub outbox: VecDeque<ToClient>,
    /// Deltas with changes seen so far (the `SkipDelta` bug drops some of them).
    pub deltas_seen: u64,
}

impl Session {
    /// A session for `client` streaming `area`; `resume` gives the client's cursors and the ids
    /// it holds, `None` starts from a snapshot.
    pub fn new(
        client: usize,
        player: PlayerId,
        avatar: EntityId,
        area: Area,
        resume: Option<ResumePoint>,
    ) -> Self {
        let (phase, cursors, visible) = match resume {
            Some((cursors, visible)) => (Phase::Streaming, cursors, visible),
            None => (Phase::Snapshotting, BTreeMap::new(), BTreeSet::new()),
        };
        Self {
            client,
            player,
            avatar,
            area,
            phase,
            cursors,
            visible,
            inputs: VecDeque::new(),
            storing: false,
            reading: false,
            dirty: true,
            watches: Vec::new(),
            outbox: VecDeque::new(),
            deltas_seen: 0,
        }
    }

    /// The regions the area overlaps, with their cursors (`cursor` for one without).
    pub fn cursor_list(&self, default: [u8; 10]) -> Vec<(RegionId, [u8; 10])> {
        self.area
            .regions()
            .into_iter()
            .map(|r| (r, self.cursors.get(&r).copied().unwrap_or(default)))
            .collect()
    }

    /// Starts streaming from `cursor` in every region (after a snapshot or a tail seek).
    pub fn start_at(&mut self, cursor: [u8; 10]) {
        self.cursors = self
            .area
            .regions()
            .into_iter()
            .map(|r| (r, cursor))
            .collect();
        self.phase = Phase::Streaming;
        self.dirty = true;
    }

    /// Queues the entries of a catch-up, one message per (region, commit), even when it carries
    /// no change for the client (it still advances the client's cursor); `skip_every` drops
    /// every n-th message with changes (the `SkipDelta` bug; 0 drops none).
    pub fn push_entries(&mut self, entries: Vec<LogEntry>, skip_every: u64) {
        let mut current: Option<(RegionId, [u8; 10], Vec<Change>)> = None;
        for (region, stamp, delta) in entries {
            let changes = self.filter(delta.changes);
            match &mut current {
                Some((r, s, pending)) if *r == region && *s == stamp => pending.extend(changes),
                _ => {
                    if let Some(done) = current.take() {
                        self.push_delta(done, skip_every);
                    }
                    current = Some((region, stamp, changes));
                }
            }
        }
        if let Some(done) = current {
            self.push_delta(done, skip_every);
        }
    }

    fn push_delta(&mut self, (region, stamp, changes): (RegionId, [u8; 10], Vec<Change>), n: u64) {
        self.cursors.insert(region, stamp);
        if !changes.is_empty() {
            self.deltas_seen += 1;
            if n > 0 && self.deltas_seen.is_multiple_of(n) {
                return;
            }
        }
        self.outbox.push_back(ToClient::Delta {
            region,
            stamp,
            changes,
        });
    }

    /// The changes of a delta that concern this client, updating `visible`.
    fn filter(&mut self, changes: Vec<Change>) -> Vec<Change> {
        let mut out = Vec::new();
        for change in changes {
            match change {
                Change::Upsert(entity) if self.area.contains(&entity.position) => {
                    self.visible.insert(entity.id);
                    out.push(Change::Upsert(entity));
                }
                Change::Upsert(entity) => {
                    if self.visible.remove(&entity.id) {
                        out.push(Change::Remove(entity.id));
                    }
                }
                Change::Remove(id) => {
                    if self.visible.remove(&id) {
                        out.push(Change::Remove(id));
                    }
                }
            }
        }
        out
    }
}

/// An edge node: its live sessions, by session id.
#[derive(Default)]
pub struct Edge {
    /// Sessions by id (ids are unique across the run).
    pub sessions: BTreeMap<u64, Session>,
}
