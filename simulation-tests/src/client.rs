//! A simulated VR client: its bot, its unacknowledged inputs, and its mirror of its area.
//!
//! Invariants:
//! - seqs are handed out 1, 2, 3, ... and an input stays in `unacked` until its ack arrives; on
//!   every reconnect all of them are resent, in seq order;
//! - the mirror changes only by messages from the edge (`sekai_edge::session::Outbound`),
//!   applied in arrival order; the cursor is the versionstamp of the last message received (a
//!   snapshot's or a delta's, coalesced or not);
//! - a client that lost its mirror (`has_snapshot == false`, after a restart or a
//!   [`Outbound::Reset`]) resubscribes from a fresh snapshot.

use std::collections::BTreeMap;

use rand::Rng;
use sekai_edge::session::Outbound;
use sekai_layer::world::model::{Change, Entity, Input};
use sekai_schema::{Area, EntityId, PlayerId, Vec3};

use crate::bot::Bot;
use crate::edge::ResumePoint;
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
    /// The versionstamp received up to.
    pub cursor: Option<[u8; 10]>,
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
            cursor: None,
            has_snapshot: false,
            reorder: false,
            next_send_at: 0,
        }
    }

    /// The bot's next input, numbered with the player's next seq.
    pub fn next_input(&mut self, rng: &mut impl Rng, resources: &[(EntityId, Vec3)]) -> Input {
        let action = self.bot.next_action(rng, &self.mirror, resources);
        let input = Input {
            player: self.player,
            seq: self.next_seq,
            action,
        };
        self.next_seq += 1;
        input
    }

    /// What a resumed session needs: the cursor; `None` without a snapshot.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.cursor.filter(|_| self.has_snapshot)
    }

    /// Forgets the mirror (a client restart, or a reset by the edge).
    pub fn forget_view(&mut self) {
        self.mirror.clear();
        self.cursor = None;
        self.has_snapshot = false;
    }

    /// Takes the acknowledgement of `seq`.
    pub fn receive_ack(&mut self, seq: u64) {
        self.unacked.remove(&seq);
    }

    /// Applies one pushed message; false for a reset (the client must drop its view and
    /// resubscribe).
    pub fn receive(&mut self, message: Outbound) -> bool {
        match message {
            Outbound::Snapshot { entities, at } => {
                self.mirror = entities.into_iter().map(|e| (e.id, e)).collect();
                self.cursor = Some(at);
                self.has_snapshot = true;
            }
            Outbound::Delta { stamp, mut delta } => {
                if self.reorder {
                    delta.changes.reverse();
                }
                for change in delta.changes {
                    match change {
                        Change::Upsert(entity) => {
                            self.mirror.insert(entity.id, entity);
                        }
                        Change::Remove(id) => {
                            self.mirror.remove(&id);
                        }
                    }
                }
                self.cursor = Some(stamp);
            }
            Outbound::Reset { .. } => return false,
        }
        true
    }
}
