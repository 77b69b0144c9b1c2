//! One subscription's view: which changes of which commits a client gets.
//!
//! The fan-out hands every commit that concerns the subscription to [`Subscriber::on_commit`]
//! (every commit of the regions the area overlaps that could change what it queues or observes:
//! see `fanout::route`; a replay, every commit of those regions), in commit order, with the
//! commit's versionstamp; the subscriber filters it and queues the result in its [`Outbox`].
//!
//! Invariants:
//! - **no duplicates, no gaps**: a commit at or before the cursor is ignored, every later one
//!   moves the cursor, so versionstamps handed to the client strictly increase;
//! - **filter**: the client gets upserts of entities whose position is inside the area, and a
//!   removal for every entity it has seen that was removed or left the area (so its mirror equals
//!   the area's state); it gets only its own player's outcomes; commits that leave nothing are
//!   not queued (the cursor still moves);
//! - **seen set**: after a snapshot it is the snapshot's ids; while a resumed subscription
//!   replays the log it is unknown and every removal in the area's regions is forwarded, until
//!   [`Subscriber::settle`] gives the ids visible at the end of the replay.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use sekai_layer::world::model::{Change, Delta, Entity};
use sekai_schema::{Area, CellId, EntityId, PlayerId, RegionId};

use super::avatar::AvatarLocation;
use super::outbox::{Outbound, Outbox};
use super::shedding::InputTiming;

/// Which entities the client holds.
#[derive(Debug)]
enum Seen {
    /// Exactly these.
    Known(BTreeSet<EntityId>),
    /// Unknown (replaying after a resume): treat every entity as possibly held.
    Any,
}

impl Seen {
    fn holds(&self, id: &EntityId) -> bool {
        match self {
            Seen::Known(ids) => ids.contains(id),
            Seen::Any => true,
        }
    }

    fn insert(&mut self, id: EntityId) {
        if let Seen::Known(ids) = self {
            ids.insert(id);
        }
    }

    fn remove(&mut self, id: &EntityId) {
        if let Seen::Known(ids) = self {
            ids.remove(id);
        }
    }
}

/// The most cells an area may overlap and still be indexed by cell (see [`Subscriber::cells`]);
/// a larger one (a 1,024 m radius overlaps thousands) is reached by region.
pub const MAX_INDEXED_CELLS: usize = 256;

/// The state of one subscription.
#[derive(Debug)]
pub struct Subscriber {
    player: PlayerId,
    area: Area,
    regions: BTreeSet<RegionId>,
    cells: Option<FxHashSet<(RegionId, CellId)>>,
    cursor: Option<[u8; 10]>,
    seen: Seen,
    outbox: Outbox,
    avatar: Option<Arc<AvatarLocation>>,
    inputs: Option<Arc<InputTiming>>,
}

impl Subscriber {
    /// A subscription of `player` to `area` whose queued deltas may take `budget` bytes. It
    /// takes commits once started with [`Self::start_snapshot`] or [`Self::start_resume`].
    pub fn new(player: PlayerId, area: Area, budget: usize) -> Self {
        Self {
            player,
            area,
            regions: area.regions().into_iter().collect(),
            cells: Some(area.cells())
                .filter(|cells| cells.len() <= MAX_INDEXED_CELLS)
                .map(|cells| cells.into_iter().collect()),
            cursor: None,
            seen: Seen::Known(BTreeSet::new()),
            outbox: Outbox::new(budget),
            avatar: None,
            inputs: None,
        }
    }

    /// Also tracks where the player's avatar is (see [`AvatarLocation`]).
    pub fn with_avatar(mut self, avatar: Arc<AvatarLocation>) -> Self {
        self.avatar = Some(avatar);
        self
    }

    /// Also reports the outcomes of the player's inputs to their session's timing (the samples
    /// load shedding decides on; see [`InputTiming`]).
    pub fn with_inputs(mut self, inputs: Arc<InputTiming>) -> Self {
        self.inputs = Some(inputs);
        self
    }

    /// The player.
    pub fn player(&self) -> PlayerId {
        self.player
    }

    /// The area of interest.
    pub fn area(&self) -> &Area {
        &self.area
    }

    /// The regions the area overlaps: the change logs this subscription needs.
    pub fn regions(&self) -> &BTreeSet<RegionId> {
        &self.regions
    }

    /// The cells the area overlaps (`None` when more than [`MAX_INDEXED_CELLS`]): an entity in
    /// its area is in one of them.
    pub fn cells(&self) -> Option<&FxHashSet<(RegionId, CellId)>> {
        self.cells.as_ref()
    }

    /// The id of the player's avatar, when the subscription tracks it.
    pub fn avatar_id(&self) -> Option<EntityId> {
        self.avatar.as_ref().map(|avatar| avatar.id())
    }

    /// The versionstamp of the last commit handed over (queued or skipped as empty).
    pub fn cursor(&self) -> Option<[u8; 10]> {
        self.cursor
    }

    /// Starts with the area's state as of commit versionstamp `at`.
    pub fn start_snapshot(&mut self, entities: Vec<Entity>, at: [u8; 10]) {
        self.seen = Seen::Known(entities.iter().map(|e| e.id).collect());
        self.cursor = Some(at);
        self.outbox.push_snapshot(entities, at);
    }

    /// Starts a resumed subscription after commit versionstamp `from`: the commits that follow
    /// are replayed with an unknown seen set until [`Self::settle`].
    pub fn start_resume(&mut self, from: [u8; 10]) {
        self.seen = Seen::Any;
        self.cursor = Some(from);
    }

    /// Ends a replay: the client now holds exactly `visible`.
    pub fn settle(&mut self, visible: impl IntoIterator<Item = EntityId>) {
        self.seen = Seen::Known(visible.into_iter().collect());
    }

    /// Takes one commit (all its deltas, any region); true when something was queued.
    pub fn on_commit(&mut self, stamp: [u8; 10], deltas: &[Delta]) -> bool {
        if self.cursor.is_some_and(|cursor| stamp <= cursor) {
            return false;
        }
        self.cursor = Some(stamp);
        let mut out: Option<Delta> = None;
        for delta in deltas {
            if !self.regions.contains(&delta.region) {
                continue;
            }
            let into = out.get_or_insert_with(|| Delta {
                region: delta.region,
                frame: delta.frame,
                ..Delta::default()
            });
            for change in &delta.changes {
                if let Some(kept) = self.filter(change) {
                    into.changes.push(kept);
                }
            }
            for outcome in delta.outcomes.iter().filter(|o| o.player == self.player) {
                if let (Some(avatar), false) = (&self.avatar, outcome.accepted) {
                    avatar.observe_rejection(&outcome.reason);
                }
                if let Some(inputs) = &self.inputs {
                    inputs.applied(outcome.seq);
                }
                into.outcomes.push(outcome.clone());
            }
        }
        match out {
            Some(delta) if !delta.changes.is_empty() || !delta.outcomes.is_empty() => {
                self.outbox.push_delta(stamp, delta);
                true
            }
            _ => false,
        }
    }

    /// What one change becomes for this client, if anything.
    fn filter(&mut self, change: &Change) -> Option<Change> {
        match change {
            Change::Upsert(entity) => {
                if let Some(avatar) = &self.avatar {
                    avatar.observe_upsert(entity);
                }
                if self.area.contains(&entity.position) {
                    self.seen.insert(entity.id);
                    Some(change.clone())
                } else if self.seen.holds(&entity.id) {
                    self.seen.remove(&entity.id);
                    Some(Change::Remove(entity.id))
                } else {
                    None
                }
            }
            Change::Remove(id) => {
                if self.seen.holds(id) {
                    self.seen.remove(id);
                    Some(change.clone())
                } else {
                    None
                }
            }
        }
    }

    /// The next message to send to the client.
    pub fn poll_transmit(&mut self) -> Option<Outbound> {
        self.outbox.pop()
    }

    /// The deltas at the front of the queue, at most `max`, for one batched message (none when
    /// the next message is a snapshot or a reset: take it with [`Subscriber::poll_transmit`]).
    pub fn poll_deltas(&mut self, max: usize) -> Vec<([u8; 10], Delta)> {
        self.outbox.pop_deltas(max)
    }

    /// True when messages are waiting.
    pub fn has_pending(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// True once the subscription gave up on a too slow client.
    pub fn is_reset(&self) -> bool {
        self.outbox.is_reset()
    }

    /// Bytes (estimated) of the deltas queued for the client.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.delta_bytes()
    }

    /// How many times the queue was coalesced.
    pub fn coalesced(&self) -> u64 {
        self.outbox.coalesced()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekai_layer::world::model::{EntityKind, Inventory, Outcome};
    use sekai_schema::Vec3;

    fn entity(id: u128, x: f32) -> Entity {
        Entity {
            id: EntityId(id),
            kind: EntityKind::Rock,
            hp: 3,
            position: Vec3::new(x, 0.0, 10.0),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    fn stamp(n: u8) -> [u8; 10] {
        [0, 0, 0, 0, 0, 0, 0, n, 0, 0]
    }

    fn delta(changes: Vec<Change>, outcomes: Vec<(PlayerId, u64)>) -> Delta {
        Delta {
            region: RegionId::new(0, 0),
            frame: 1,
            changes,
            outcomes: outcomes
                .into_iter()
                .map(|(player, seq)| Outcome {
                    player,
                    seq,
                    accepted: true,
                    reason: String::new(),
                })
                .collect(),
        }
    }

    /// A subscriber of player 7 to a 20 m circle around (10, 10), started from a snapshot.
    fn subscriber() -> Subscriber {
        let area = Area::new(Vec3::new(10.0, 0.0, 10.0), 20.0);
        let mut s = Subscriber::new(7, area, 1 << 20);
        s.start_snapshot(vec![entity(1, 10.0)], stamp(1));
        assert!(matches!(s.poll_transmit(), Some(Outbound::Snapshot { .. })));
        s
    }

    fn next_delta(s: &mut Subscriber) -> Option<([u8; 10], Delta)> {
        match s.poll_transmit() {
            Some(Outbound::Delta { stamp, delta }) => Some((stamp, delta)),
            Some(other) => panic!("expected a delta, got {other:?}"),
            None => None,
        }
    }

    #[test]
    fn changes_are_filtered_by_area_and_outcomes_by_player() {
        let mut s = subscriber();
        let commit = delta(
            vec![
                Change::Upsert(entity(2, 15.0)),  // inside: forwarded
                Change::Upsert(entity(3, 200.0)), // outside, never seen: dropped
                Change::Remove(EntityId(4)),      // never seen: dropped
            ],
            vec![(7, 1), (8, 1)],
        );
        assert!(s.on_commit(stamp(2), &[commit]));
        let (at, got) = next_delta(&mut s).unwrap();
        assert_eq!(at, stamp(2));
        assert_eq!(got.changes, vec![Change::Upsert(entity(2, 15.0))]);
        assert_eq!(got.outcomes.len(), 1);
        assert_eq!(got.outcomes[0].player, 7);

        // A seen entity leaving the area becomes a removal; so does a removal of a seen one.
        let commit = delta(
            vec![
                Change::Upsert(entity(1, 100.0)),
                Change::Remove(EntityId(2)),
            ],
            vec![],
        );
        assert!(s.on_commit(stamp(3), &[commit]));
        let (_, got) = next_delta(&mut s).unwrap();
        assert_eq!(
            got.changes,
            vec![Change::Remove(EntityId(1)), Change::Remove(EntityId(2))]
        );

        // Nothing for this client: nothing queued.
        let commit = delta(vec![Change::Upsert(entity(9, 500.0))], vec![(8, 2)]);
        assert!(!s.on_commit(stamp(4), &[commit]));
        assert!(!s.has_pending());
        assert_eq!(s.cursor(), Some(stamp(4)));
    }

    #[test]
    fn commits_at_or_before_the_cursor_are_ignored() {
        let mut s = subscriber();
        let commit = delta(vec![Change::Upsert(entity(2, 15.0))], vec![]);
        assert!(!s.on_commit(stamp(1), std::slice::from_ref(&commit)));
        assert!(s.on_commit(stamp(5), std::slice::from_ref(&commit)));
        assert!(!s.on_commit(stamp(5), std::slice::from_ref(&commit)));
        assert!(!s.on_commit(stamp(4), std::slice::from_ref(&commit)));
        assert_eq!(next_delta(&mut s).map(|(at, _)| at), Some(stamp(5)));
        assert_eq!(next_delta(&mut s), None);
    }

    #[test]
    fn deltas_of_regions_outside_the_area_are_ignored() {
        let mut s = subscriber();
        let mut far = delta(vec![Change::Upsert(entity(2, 15.0))], vec![(7, 1)]);
        far.region = RegionId::new(40, 40);
        assert!(!s.on_commit(stamp(2), &[far]));
    }

    #[test]
    fn a_resumed_subscription_forwards_removals_until_it_settles() {
        let area = Area::new(Vec3::new(10.0, 0.0, 10.0), 20.0);
        let mut s = Subscriber::new(7, area, 1 << 20);
        s.start_resume(stamp(3));
        let commit = delta(
            vec![
                Change::Remove(EntityId(5)),
                Change::Upsert(entity(6, 300.0)),
            ],
            vec![],
        );
        assert!(s.on_commit(stamp(4), &[commit]));
        let (_, got) = next_delta(&mut s).unwrap();
        assert_eq!(
            got.changes,
            vec![Change::Remove(EntityId(5)), Change::Remove(EntityId(6))]
        );
        s.settle([EntityId(1)]);
        let commit = delta(vec![Change::Remove(EntityId(5))], vec![]);
        assert!(!s.on_commit(stamp(5), &[commit]));
        let commit = delta(vec![Change::Remove(EntityId(1))], vec![]);
        assert!(s.on_commit(stamp(6), &[commit]));
    }

    #[test]
    fn the_avatar_location_follows_upserts_and_rejections() {
        let loc = Arc::new(AvatarLocation::new(EntityId(1), RegionId::new(5, 5)));
        let area = Area::new(Vec3::new(10.0, 0.0, 10.0), 20.0);
        let mut s = Subscriber::new(7, area, 1 << 20).with_avatar(loc.clone());
        s.start_snapshot(vec![], stamp(1));
        let mut commit = delta(vec![Change::Upsert(entity(1, 12.0))], vec![]);
        assert!(s.on_commit(stamp(2), std::slice::from_ref(&commit)));
        assert_eq!(loc.region(), RegionId::new(0, 0));
        commit.changes.clear();
        commit.outcomes = vec![Outcome {
            player: 7,
            seq: 3,
            accepted: false,
            reason: "no avatar in region".into(),
        }];
        assert!(s.on_commit(stamp(3), &[commit]));
        assert!(loc.is_stale());
    }
}
