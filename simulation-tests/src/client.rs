//! A simulated VR client: its bot, its unacknowledged inputs, and its mirror of its area.
//!
//! Invariants:
//! - seqs are handed out 1, 2, 3, ... and an input stays in `unacked` until its ack arrives; on
//!   every reconnect all of them are resent, in seq order;
//! - the mirror changes only by messages from the edge, applied in arrival order; a region's
//!   cursor is the versionstamp of the last message received from it (or the snapshot's);
//! - a client that lost its mirror (`has_snapshot == false`) resubscribes from a fresh snapshot.

use std::collections::BTreeMap;

use sekai_layer::world::model::{Change, Entity, Input};
use sekai_schema::{Area, EntityId, PlayerId, RegionId};

use crate::bot::Bot;
use crate::edge::{ResumePoint, ToClient};
use crate::world_setup::PlayerSpec;

/// Where a client is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Connected to `edge` in session `session`.
    Up {
        /// The edge.
        edge: usize,
        /// The session id.
        session: u64,
    },
    /// Disconnected; reconnects at virtual time `at` (µs).
    Down {
        /// When to reconnect.
        at: u64,
    },
}

/// One client.
pub struct Client {
    /// The player.
    pub player: PlayerId,
    /// The area of interest.
    pub area: Area,
    /// The bot choosing inputs.
    pub bot: Bot,
    /// The connection.
    pub link: Link,
    /// The next seq to hand out.
    pub next_seq: u64,
    /// Sent inputs not yet acknowledged, by seq.
    pub unacked: BTreeMap<u64, Input>,
    /// The client's view of its area.
    pub mirror: BTreeMap<EntityId, Entity>,
    /// Per region, the versionstamp received up to.
    pub cursors: BTreeMap<RegionId, [u8; 10]>,
    /// True once a snapshot arrived (and the mirror was not lost since).
    pub has_snapshot: bool,
    /// Apply each delta's changes in reverse (the `ReorderDelta` planted bug).
    pub reorder: bool,
    /// The bot thinks until this time (µs) before its next input.
    pub next_send_at: u64,
}

impl Client {
    /// A disconnected client of `spec` that connects at time 0.
    pub fn new(spec: &PlayerSpec) -> Self {
        Self {
            player: spec.player,
            area: spec.area,
            bot: Bot::new(spec.avatar, spec.spawn),
            link: Link::Down { at: 0 },
            next_seq: 1,
            unacked: BTreeMap::new(),
            mirror: BTreeMap::new(),
            cursors: BTreeMap::new(),
            has_snapshot: false,
            reorder: false,
            next_send_at: 0,
        }
    }

    /// What a resumed session needs: the cursors and the ids held; `None` without a snapshot.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.has_snapshot
            .then(|| (self.cursors.clone(), self.mirror.keys().copied().collect()))
    }

    /// Forgets the mirror (a client restart).
    pub fn forget_view(&mut self) {
        self.mirror.clear();
        self.cursors.clear();
        self.has_snapshot = false;
    }

    /// Applies one message; returns the acked seq for an ack.
    pub fn receive(&mut self, message: ToClient) -> Option<u64> {
        match message {
            ToClient::Ack(seq) => {
                self.unacked.remove(&seq);
                return Some(seq);
            }
            ToClient::Snapshot { entities, cursor } => {
                self.mirror = entities.into_iter().map(|e| (e.id, e)).collect();
                self.cursors = self
                    .area
                    .regions()
                    .into_iter()
                    .map(|r| (r, cursor))
                    .collect();
                self.has_snapshot = true;
            }
            ToClient::Delta {
                region,
                stamp,
                mut changes,
            } => {
                if self.reorder {
                    changes.reverse();
                }
                for change in changes {
                    match change {
                        Change::Upsert(entity) => {
                            self.mirror.insert(entity.id, entity);
                        }
                        Change::Remove(id) => {
                            self.mirror.remove(&id);
                        }
                    }
                }
                self.cursors.insert(region, stamp);
            }
        }
        None
    }
}
