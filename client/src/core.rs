//! The client's protocol logic as a state machine without I/O: seqs, acknowledgements, resends,
//! mirrors of subscribed areas, and what to do after a (re)login.
//!
//! A driver (the quinn one in [`crate::driver`], a game engine's own, or the simulator) performs
//! the I/O and tells the core what happened; the core decides what to send and keeps the state.
//! A game loop drains [`ClientCore::poll_event`] once per frame.
//!
//! Invariants:
//! - inputs get consecutive seqs; an input stays unacknowledged until its acknowledgement or
//!   refusal arrives;
//! - after a login, every seq at or below the session's `lastSeq` is durable (the protocol's
//!   rule), so [`ClientCore::on_login`] forgets the unacknowledged inputs at or below it and
//!   resends the others in order, numbered from `lastSeq + 1` (none of them is durable);
//! - a refused input was not stored, and no later seq can be stored before it (the edge stores
//!   only consecutive seqs), so the next input takes its seq again;
//! - a mirror holds exactly the entities the edge reported in its area: a snapshot replaces it,
//!   each delta is applied in order, and a delta at or before the mirror's cursor is ignored
//!   and counted (an edge that keeps its invariants sends none);
//! - after a login each subscription resumes from its mirror's cursor; after a reset it starts
//!   again from a fresh snapshot.

use std::collections::{BTreeMap, VecDeque};

use sekai_model::protocol::Stamp;
use sekai_model::{Action, Change, Delta, Entity};
use sekai_schema::{Area, EntityId};

/// Events kept for [`ClientCore::poll_event`] before the oldest are dropped (a game that stops
/// polling must not grow without bound; the mirrors stay exact either way).
pub const MAX_QUEUED_EVENTS: usize = 65_536;

/// A subscription of a [`ClientCore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubId(pub usize);

/// The local copy of a subscribed area.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mirror {
    /// The entities in the area, by id.
    pub entities: BTreeMap<EntityId, Entity>,
    /// The versionstamp of the last snapshot or delta applied.
    pub cursor: Option<Stamp>,
    /// Deltas the edge sent at or before the cursor (ignored).
    pub duplicates: u64,
    /// Snapshots received.
    pub snapshots: u64,
}

impl Mirror {
    /// Replaces the mirror by a snapshot taken at `at`.
    pub fn apply_snapshot(&mut self, at: Stamp, entities: impl IntoIterator<Item = Entity>) {
        self.entities = entities.into_iter().map(|e| (e.id, e)).collect();
        self.cursor = Some(at);
        self.snapshots += 1;
    }

    /// Applies one delta; false (and counted) when it is at or before the cursor.
    pub fn apply_delta(&mut self, stamp: Stamp, delta: &Delta) -> bool {
        if self.cursor.is_some_and(|cursor| stamp <= cursor) {
            self.duplicates += 1;
            return false;
        }
        for change in &delta.changes {
            match change {
                Change::Upsert(entity) => {
                    self.entities.insert(entity.id, entity.clone());
                }
                Change::Remove(id) => {
                    self.entities.remove(id);
                }
            }
        }
        self.cursor = Some(stamp);
        true
    }

    /// Forgets everything (the edge reset the subscription).
    pub fn clear(&mut self) {
        self.entities.clear();
        self.cursor = None;
    }
}

/// What happened, for a game loop's [`ClientCore::poll_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A subscription's mirror was replaced by a snapshot taken at `at`.
    Snapshot {
        /// The subscription.
        sub: SubId,
        /// The snapshot's versionstamp.
        at: Stamp,
    },
    /// A delta was applied to a subscription's mirror.
    Delta {
        /// The subscription.
        sub: SubId,
        /// Its commit versionstamp.
        stamp: Stamp,
        /// The delta (changes filtered to the area, the player's own outcomes).
        delta: Delta,
    },
    /// The edge gave up on a subscription; it is subscribed afresh at the next
    /// [`ClientCore::to_refresh`] or login.
    Reset {
        /// The subscription.
        sub: SubId,
        /// The edge's reason.
        reason: String,
    },
    /// An input is durable.
    Acked {
        /// Its seq.
        seq: u64,
    },
    /// An input was refused (not stored).
    Refused {
        /// Its seq.
        seq: u64,
        /// The edge's reason.
        reason: String,
    },
}

/// What a driver does right after a login: (re)subscribe, then resend, in this order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resume {
    /// Each subscription with where it resumes (`None`: from a fresh snapshot).
    pub subscribe: Vec<(SubId, Area, Option<Stamp>)>,
    /// The inputs to send again, renumbered, in seq order.
    pub resend: Vec<(u64, Action)>,
}

#[derive(Clone, Debug)]
struct Subscription {
    area: Area,
    mirror: Mirror,
    needs_snapshot: bool,
}

/// The client's state without I/O (see the module docs). `Send`: a game may keep it anywhere.
#[derive(Clone, Debug)]
pub struct ClientCore {
    next_seq: u64,
    last_seq_at_login: u64,
    unacked: BTreeMap<u64, Action>,
    subscriptions: BTreeMap<SubId, Subscription>,
    next_sub: usize,
    events: VecDeque<Event>,
    queue_events: bool,
    dropped_events: u64,
}

impl Default for ClientCore {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCore {
    /// A client with no subscription that has not logged in; events are not queued.
    pub fn new() -> Self {
        Self {
            next_seq: 1,
            last_seq_at_login: 0,
            unacked: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            next_sub: 0,
            events: VecDeque::new(),
            queue_events: false,
            dropped_events: 0,
        }
    }

    /// Queues [`Event`]s for [`ClientCore::poll_event`] (off by default: a driver that reports
    /// through callbacks needs no queue).
    pub fn queue_events(&mut self, on: bool) {
        self.queue_events = on;
        if !on {
            self.events.clear();
        }
    }

    /// The oldest queued event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Events dropped because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    fn push(&mut self, event: impl FnOnce() -> Event) {
        if !self.queue_events {
            return;
        }
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(event());
    }

    /// A login succeeded with `last_seq` (every seq at or below it is durable): forgets the
    /// unacknowledged inputs at or below it, renumbers the others from `last_seq + 1`, and
    /// says how to resubscribe and what to resend.
    pub fn on_login(&mut self, last_seq: u64) -> Resume {
        self.last_seq_at_login = last_seq;
        let pending = self.unacked.split_off(&(last_seq + 1));
        self.unacked.clear();
        self.next_seq = last_seq + 1;
        let resend: Vec<(u64, Action)> = pending
            .into_values()
            .map(|action| (self.assign(action.clone()), action))
            .collect();
        let subscribe = self
            .subscriptions
            .iter()
            .map(|(id, sub)| {
                let from = sub.mirror.cursor.filter(|_| !sub.needs_snapshot);
                (*id, sub.area, from)
            })
            .collect();
        Resume { subscribe, resend }
    }

    fn assign(&mut self, action: Action) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.insert(seq, action);
        seq
    }

    /// Numbers a new input; the driver sends it with this seq.
    pub fn send(&mut self, action: Action) -> u64 {
        self.assign(action)
    }

    /// The edge acknowledged `seq` (durable).
    pub fn on_accepted(&mut self, seq: u64) {
        self.unacked.remove(&seq);
        self.push(|| Event::Acked { seq });
    }

    /// The edge refused `seq`: it was not stored, and the next input takes its seq again.
    pub fn on_refused(&mut self, seq: u64, reason: String) {
        self.unacked.remove(&seq);
        self.next_seq = self.next_seq.min(seq);
        debug_assert!(self.next_seq >= 1, "seqs start at 1");
        self.push(|| Event::Refused { seq, reason });
    }

    /// Adds a subscription to `area`; the driver asks the edge for it from a snapshot.
    pub fn subscribe(&mut self, area: Area) -> SubId {
        let id = SubId(self.next_sub);
        self.next_sub += 1;
        self.subscriptions.insert(
            id,
            Subscription {
                area,
                mirror: Mirror::default(),
                needs_snapshot: true,
            },
        );
        id
    }

    /// Ends a subscription.
    pub fn unsubscribe(&mut self, sub: SubId) {
        self.subscriptions.remove(&sub);
    }

    /// The edge sent a snapshot.
    pub fn on_snapshot(&mut self, sub: SubId, at: Stamp, entities: Vec<Entity>) {
        let Some(subscription) = self.subscriptions.get_mut(&sub) else {
            return;
        };
        subscription.mirror.apply_snapshot(at, entities);
        subscription.needs_snapshot = false;
        self.push(|| Event::Snapshot { sub, at });
    }

    /// The edge sent a delta; false when the mirror ignored it (at or before its cursor, or an
    /// unknown subscription).
    pub fn on_delta(&mut self, sub: SubId, stamp: Stamp, delta: &Delta) -> bool {
        let Some(subscription) = self.subscriptions.get_mut(&sub) else {
            return false;
        };
        if !subscription.mirror.apply_delta(stamp, delta) {
            tracing::warn!("ignoring a delta at or before the mirror's cursor");
            return false;
        }
        self.push(|| Event::Delta {
            sub,
            stamp,
            delta: delta.clone(),
        });
        true
    }

    /// The edge gave up on a subscription: its mirror is forgotten until a fresh snapshot.
    pub fn on_reset(&mut self, sub: SubId, reason: String) {
        let Some(subscription) = self.subscriptions.get_mut(&sub) else {
            return;
        };
        subscription.mirror.clear();
        subscription.needs_snapshot = true;
        self.push(|| Event::Reset { sub, reason });
    }

    /// Subscriptions the edge reset, to subscribe afresh now.
    pub fn to_refresh(&self) -> Vec<(SubId, Area)> {
        self.subscriptions
            .iter()
            .filter(|(_, sub)| sub.needs_snapshot && sub.mirror.snapshots > 0)
            .map(|(id, sub)| (*id, sub.area))
            .collect()
    }

    /// A subscription's mirror.
    pub fn mirror(&self, sub: SubId) -> Option<&Mirror> {
        self.subscriptions.get(&sub).map(|s| &s.mirror)
    }

    /// A subscription's area.
    pub fn area(&self, sub: SubId) -> Option<Area> {
        self.subscriptions.get(&sub).map(|s| s.area)
    }

    /// Whether a subscription has a current mirror (a snapshot arrived and no reset since).
    pub fn has_snapshot(&self, sub: SubId) -> bool {
        self.subscriptions
            .get(&sub)
            .is_some_and(|s| !s.needs_snapshot)
    }

    /// The seq the next input gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Inputs sent but not acknowledged, by seq.
    pub fn unacked(&self) -> &BTreeMap<u64, Action> {
        &self.unacked
    }

    /// Every seq at or below this was durable at the last login.
    pub fn last_seq_at_login(&self) -> u64 {
        self.last_seq_at_login
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekai_model::{EntityKind, Inventory};
    use sekai_schema::{RegionId, Vec3};

    fn stamp(n: u8) -> Stamp {
        [0, 0, 0, 0, 0, 0, 0, n, 0, 0]
    }

    fn tree(id: u128) -> Entity {
        Entity {
            id: EntityId(id),
            kind: EntityKind::Tree,
            hp: 5,
            position: Vec3::new(1.0, 0.0, 1.0),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    fn delta(changes: Vec<Change>) -> Delta {
        Delta {
            region: RegionId::new(0, 0),
            frame: 1,
            changes,
            outcomes: Vec::new(),
        }
    }

    fn area() -> Area {
        Area::new(Vec3::new(0.0, 0.0, 0.0), 10.0)
    }

    #[test]
    fn a_login_forgets_durable_inputs_and_renumbers_the_rest() {
        let mut core = ClientCore::new();
        for _ in 0..5 {
            core.send(Action::Idle);
        }
        core.on_accepted(1);
        let resume = core.on_login(3);
        let seqs: Vec<u64> = resume.resend.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, vec![4, 5]);
        assert_eq!(core.next_seq(), 6);
        assert_eq!(
            core.unacked().keys().copied().collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    #[test]
    fn a_refused_seq_is_taken_again() {
        let mut core = ClientCore::new();
        core.send(Action::Idle);
        core.send(Action::Idle);
        core.on_refused(2, "no".into());
        assert_eq!(core.next_seq(), 2);
        assert_eq!(core.send(Action::Idle), 2);
    }

    #[test]
    fn mirrors_ignore_old_deltas_and_resume_from_their_cursor() {
        let mut core = ClientCore::new();
        core.queue_events(true);
        let sub = core.subscribe(area());
        assert!(!core.has_snapshot(sub));
        core.on_snapshot(sub, stamp(2), vec![tree(1)]);
        assert!(core.on_delta(sub, stamp(3), &delta(vec![Change::Upsert(tree(2))])));
        assert!(!core.on_delta(sub, stamp(3), &delta(vec![Change::Remove(EntityId(1))])));
        let mirror = core.mirror(sub).expect("mirror");
        assert_eq!(mirror.entities.len(), 2);
        assert_eq!(mirror.duplicates, 1);
        assert_eq!(
            core.on_login(0).subscribe,
            vec![(sub, area(), Some(stamp(3)))]
        );
        core.on_reset(sub, "slow".into());
        assert_eq!(core.on_login(0).subscribe, vec![(sub, area(), None)]);
        assert_eq!(core.to_refresh(), vec![(sub, area())]);
        let kinds: Vec<&str> = std::iter::from_fn(|| core.poll_event())
            .map(|e| match e {
                Event::Snapshot { .. } => "snapshot",
                Event::Delta { .. } => "delta",
                Event::Reset { .. } => "reset",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["snapshot", "delta", "reset"]);
    }

    #[test]
    fn the_core_is_send() {
        fn send<T: Send>() {}
        send::<ClientCore>();
    }
}
