//! A simulated VR client: its bot driving the shipped client core (`sekai_client::ClientCore`:
//! seqs, acknowledgements, resends after a login, the mirror of its area).
//!
//! Invariants:
//! - the mirror changes only by messages from the edge (`sekai_edge::session::Outbound`),
//!   applied in arrival order by the core; its cursor is the versionstamp of the last message
//!   received (a snapshot's or a delta's, coalesced or not);
//! - the bot sends only while logged in; after each login the core decides what to resend
//!   (the unacknowledged inputs above the session's `lastSeq`, renumbered after it);
//! - a client that lost its mirror (after a restart or a [`Outbound::Reset`]) resubscribes
//!   from a fresh snapshot.

use rand::Rng;
use sekai_client::{ClientCore, Resume, SubId};
use sekai_edge::session::Outbound;
use sekai_layer::world::model::{Entity, Input};
use sekai_schema::{Area, EntityId, PlayerId, Vec3};
use std::collections::BTreeMap;

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
    /// True once the current connection's login answered (the bot sends only then).
    pub logged_in: bool,
    /// The shipped client core.
    pub core: ClientCore,
    /// The core's subscription to `area`.
    pub sub: SubId,
    /// Apply each delta's changes in reverse (the `ReorderDelta` planted bug).
    pub reorder: bool,
    /// The bot thinks until this time (µs) before its next input.
    pub next_send_at: u64,
}

impl Client {
    /// A disconnected client of `spec` that connects at time 0.
    pub fn new(spec: &PlayerSpec) -> Self {
        let mut core = ClientCore::new();
        let sub = core.subscribe(spec.area);
        Self {
            player: spec.player,
            area: spec.area,
            bot: Bot::new(spec.avatar, spec.spawn),
            link: Link::Down { at: 0 },
            logged_in: false,
            core,
            sub,
            reorder: false,
            next_send_at: 0,
        }
    }

    /// The mirror of the client's area.
    pub fn mirror(&self) -> &BTreeMap<EntityId, Entity> {
        mirror_of(&self.core, self.sub)
    }

    /// Whether the client has a current mirror (a snapshot arrived, no reset since).
    pub fn has_snapshot(&self) -> bool {
        self.core.has_snapshot(self.sub)
    }

    /// Inputs sent and not acknowledged.
    pub fn unacked(&self) -> usize {
        self.core.unacked().len()
    }

    /// The bot's next input, numbered by the core.
    pub fn next_input(&mut self, rng: &mut impl Rng, resources: &[(EntityId, Vec3)]) -> Input {
        let mirror = mirror_of(&self.core, self.sub);
        let action = self.bot.next_action(rng, mirror, resources);
        let seq = self.core.send(action.clone());
        Input {
            player: self.player,
            seq,
            action,
        }
    }

    /// What a resumed session needs: the cursor; `None` without a current mirror.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.core
            .mirror(self.sub)
            .and_then(|m| m.cursor)
            .filter(|_| self.has_snapshot())
    }

    /// The login answered with `last_seq`: what the core resends, as inputs.
    pub fn logged_in(&mut self, last_seq: u64) -> Vec<Input> {
        self.logged_in = true;
        let Resume { resend, .. } = self.core.on_login(last_seq);
        resend
            .into_iter()
            .map(|(seq, action)| Input {
                player: self.player,
                seq,
                action,
            })
            .collect()
    }

    /// Forgets the mirror (a client restart, or a reset by the edge).
    pub fn forget_view(&mut self) {
        self.core.on_reset(self.sub, "client restart".into());
    }

    /// Takes the acknowledgement of `seq`.
    pub fn receive_ack(&mut self, seq: u64) {
        self.core.on_accepted(seq);
    }

    /// Applies one pushed message; false for a reset (the client must drop its view and
    /// resubscribe).
    pub fn receive(&mut self, message: Outbound) -> bool {
        match message {
            Outbound::Snapshot { entities, at } => self.core.on_snapshot(self.sub, at, entities),
            Outbound::Delta { stamp, mut delta } => {
                if self.reorder {
                    delta.changes.reverse();
                }
                self.core.on_delta(self.sub, stamp, &delta);
            }
            Outbound::Reset { reason } => {
                self.core.on_reset(self.sub, reason.to_string());
                return false;
            }
        }
        true
    }
}

/// The entities `core` mirrors for `sub` (none once unsubscribed); a free function so the bot
/// can borrow the mirror while the client's other fields are borrowed mutably.
fn mirror_of(core: &ClientCore, sub: SubId) -> &BTreeMap<EntityId, Entity> {
    static EMPTY: BTreeMap<EntityId, Entity> = BTreeMap::new();
    core.mirror(sub).map_or(&EMPTY, |m| &m.entities)
}
