//! Which subscriptions one commit concerns, so a pass hands each commit only to the
//! subscriptions that see it instead of to every subscription of its regions.
//!
//! A subscriber ([`Subscriber::on_commit`]) keeps an upsert inside its area, turns an upsert or
//! removal of an entity it holds into a removal, records its own player's outcomes, and watches
//! its avatar's upserts. So a commit concerns it only when one of these holds, and [`Reach`]
//! lists exactly these for each commit:
//! - a change lands in a cell its area overlaps (an upsert's new cell), or involves an entity
//!   whose previous cell its area overlaps (only there can it hold the entity);
//! - an outcome is its player's;
//! - an upsert is of its avatar.
//!
//! The previous cell comes from the [`Router`]: the cell of each entity's newest upsert among the
//! commits handed over. An entity it does not know (never upserted since its region was
//! followed) makes the commit concern every subscription of that delta's region.
//!
//! Invariants:
//! - **an entry is exact**: the router holds `(region, cell)` for entity `e` only when the
//!   fan-out has followed `region`'s log without a break since it recorded the entry (entries in
//!   a region the fan-out stops following are dropped by [`Router::follow_only`] at the next
//!   pass, before that region can be followed again, and an entity moving into a region not
//!   followed is dropped at once), and `cell` is where `e`'s newest handed-over upsert put it
//!   (every change to an entity is written to the log of the region it is in, so none is missed
//!   while that region is followed);
//! - **holders overlap the entry**: a live subscription holds `e` only if `e`'s position in the
//!   newest upsert it was handed lay in its area (or came in its snapshot, taken at the same pass
//!   as commits the router records), so its area overlaps `e`'s entry;
//! - **so skipping is exact**: a subscription a commit does not reach would queue nothing and
//!   observe nothing from it. Only its cursor does not move, and a cursor is only ever compared
//!   with later commits.
//!
//! Replays (a resuming subscription, whose held entities are unknown) are not routed.

use rustc_hash::FxHashMap;
use sekai_layer::world::model::{Change, Delta};
use sekai_schema::{CellId, EntityId, PlayerId, RegionId};

use super::core::{Commits, PlantedFanoutBug};
use crate::session::Subscriber;

/// A region and one of its cells.
pub type Cell = (RegionId, CellId);

/// Whom one commit concerns (see the module docs). Lists are short and may repeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// Regions whose every subscription it concerns (a delta with an entity the router did not
    /// know).
    pub regions: Vec<RegionId>,
    /// Cells it changes: new cells of upserts, previous cells of moved or removed entities.
    pub cells: Vec<Cell>,
    /// Players with an outcome in it.
    pub players: Vec<PlayerId>,
    /// Entities it upserts (a subscription watches its avatar's).
    pub upserted: Vec<EntityId>,
}

impl Reach {
    /// Whether the commit this reach describes concerns `subscriber`.
    pub fn concerns(&self, subscriber: &Subscriber) -> bool {
        let regions = subscriber.regions();
        self.regions.iter().any(|r| regions.contains(r))
            || self.players.contains(&subscriber.player())
            || subscriber
                .avatar_id()
                .is_some_and(|id| self.upserted.contains(&id))
            || match subscriber.cells() {
                Some(cells) => self.cells.iter().any(|c| cells.contains(c)),
                // An area over too many cells to index: any change in its regions.
                None => self.cells.iter().any(|(r, _)| regions.contains(r)),
            }
    }

    /// The positions of the `reaches` (one per commit of a pass) that concern `subscriber`, for
    /// [`Handed::Only`](super::core::Handed::Only).
    pub fn concerning(reaches: &[Reach], subscriber: &Subscriber) -> Vec<usize> {
        reaches
            .iter()
            .enumerate()
            .filter(|(_, reach)| reach.concerns(subscriber))
            .map(|(at, _)| at)
            .collect()
    }
}

/// The cell of each entity's newest upsert that a fan-out handed over (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Router {
    cells: FxHashMap<EntityId, Cell>,
    bug: Option<PlantedFanoutBug>,
}

impl Router {
    /// A router that knows no entity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plants a bug (the simulator's self-test of its checks; never in production).
    pub fn plant(&mut self, bug: Option<PlantedFanoutBug>) {
        self.bug = bug;
    }

    /// Forgets every entity whose region is not followed any more. Call it after a committed
    /// pass that stopped following a region, before [`Router::route`] (with no region dropped
    /// it forgets nothing: only followed regions' entities are recorded).
    pub fn follow_only(&mut self, followed: impl Fn(RegionId) -> bool) {
        self.cells.retain(|_, (region, _)| followed(*region));
    }

    /// Whether every entry is in a region `followed` accepts (what [`Router::follow_only`]
    /// leaves).
    pub fn follows_only(&self, followed: impl Fn(RegionId) -> bool) -> bool {
        self.cells.values().all(|(region, _)| followed(*region))
    }

    /// The reach of each of `commits`, in order, recording where each upsert puts its entity
    /// (only in a `followed` region). Call it once per committed pass, with everything the pass
    /// hands over.
    pub fn route(&mut self, commits: &Commits, followed: impl Fn(RegionId) -> bool) -> Vec<Reach> {
        commits
            .values()
            .map(|deltas| {
                let reach = self.reach_of(deltas);
                self.record(deltas, &followed);
                reach
            })
            .collect()
    }

    /// Whom one commit concerns, from where its entities were before it. An entity it does not
    /// know may have been in any region whose delta changes it (the region it was in publishes
    /// the change), so each of those is reached whole.
    fn reach_of(&self, deltas: &[Delta]) -> Reach {
        let mut reach = Reach::default();
        for delta in deltas {
            let mut unknown = false;
            for change in &delta.changes {
                let id = match change {
                    Change::Upsert(entity) => {
                        reach.upserted.push(entity.id);
                        reach.cells.push(entity.cell());
                        entity.id
                    }
                    Change::Remove(id) => *id,
                };
                match self.cells.get(&id) {
                    _ if self.bug == Some(PlantedFanoutBug::RouteByNewCellOnly) => {}
                    Some(previous) => reach.cells.push(*previous),
                    None => unknown = true,
                }
            }
            if unknown {
                reach.regions.push(delta.region);
            }
            reach
                .players
                .extend(delta.outcomes.iter().map(|outcome| outcome.player));
        }
        reach
    }

    /// Records where one commit left its entities: the newest upsert's cell, when that is in a
    /// `followed` region.
    fn record(&mut self, deltas: &[Delta], followed: &impl Fn(RegionId) -> bool) {
        for change in deltas.iter().flat_map(|delta| &delta.changes) {
            match change {
                Change::Upsert(entity) if followed(entity.region()) => {
                    self.cells.insert(entity.id, entity.cell());
                }
                Change::Upsert(entity) => {
                    self.cells.remove(&entity.id);
                }
                Change::Remove(id) => {
                    self.cells.remove(id);
                }
            }
        }
    }

    /// How many entities it knows.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// True when it knows none.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use sekai_layer::world::model::{Entity, EntityKind, Inventory, Outcome};
    use sekai_schema::{Area, Vec3};

    use super::*;
    use crate::fanout::core::{hand_over, FanoutCore, Handed, Start};
    use crate::fanout::registry::{Registry, Slot};
    use crate::session::AvatarLocation;

    const A: RegionId = RegionId { x: 0, z: 0 };
    const B: RegionId = RegionId { x: 1, z: 0 };

    fn entity(id: u128, x: f32, z: f32) -> Entity {
        Entity {
            id: EntityId(id),
            kind: EntityKind::Rock,
            hp: 3,
            position: Vec3::new(x, 0.0, z),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    fn stamp(n: u64) -> [u8; 10] {
        let mut stamp = [0; 10];
        stamp[..8].copy_from_slice(&n.to_be_bytes());
        stamp
    }

    fn commit(n: u64, deltas: Vec<Delta>) -> Commits {
        BTreeMap::from([(stamp(n), deltas)])
    }

    fn upserts(region: RegionId, entities: &[Entity]) -> Delta {
        Delta {
            region,
            changes: entities.iter().cloned().map(Change::Upsert).collect(),
            ..Delta::default()
        }
    }

    #[test]
    fn an_unknown_entity_reaches_its_region_then_its_previous_and_new_cells() {
        let mut router = Router::new();
        let followed = |_| true;
        let first = router.route(
            &commit(1, vec![upserts(A, &[entity(1, 10.0, 10.0)])]),
            followed,
        );
        assert_eq!(first[0].regions, vec![A], "never seen: the whole region");
        assert_eq!(first[0].upserted, vec![EntityId(1)]);
        let moved = router.route(
            &commit(2, vec![upserts(A, &[entity(1, 40.0, 10.0)])]),
            followed,
        );
        assert!(moved[0].regions.is_empty());
        let old = entity(1, 10.0, 10.0).cell();
        let new = entity(1, 40.0, 10.0).cell();
        assert_eq!(
            moved[0].cells,
            vec![new, old],
            "its new cell, then where it was"
        );
        let removed = Delta {
            region: A,
            changes: vec![Change::Remove(EntityId(1))],
            outcomes: vec![Outcome {
                player: 7,
                seq: 1,
                accepted: true,
                reason: String::new(),
            }],
            ..Delta::default()
        };
        let gone = router.route(&commit(3, vec![removed]), followed);
        assert_eq!(gone[0].cells, vec![new]);
        assert_eq!(gone[0].players, vec![7]);
        assert!(router.is_empty(), "a removed entity is forgotten");
    }

    #[test]
    fn entities_in_regions_no_longer_followed_are_forgotten() {
        let mut router = Router::new();
        router.route(
            &commit(
                1,
                vec![upserts(A, &[entity(1, 10.0, 10.0), entity(2, 300.0, 10.0)])],
            ),
            |_| true,
        );
        assert_eq!(router.len(), 2);
        router.follow_only(|region| region == A);
        assert_eq!(router.len(), 1, "entity 2 is in B");
        // An entity walking into a region not followed is forgotten at once.
        router.route(
            &commit(2, vec![upserts(A, &[entity(1, 300.0, 10.0)])]),
            |r| r == A,
        );
        assert!(router.is_empty());
    }

    /// The delta of `region` in a commit being built.
    fn delta_of(deltas: &mut BTreeMap<RegionId, Delta>, region: RegionId) -> &mut Delta {
        deltas.entry(region).or_insert_with(|| Delta {
            region,
            ..Delta::default()
        })
    }

    /// A random entity of `world` (0 when it is empty).
    fn pick(world: &BTreeMap<u128, Entity>, rng: &mut StdRng) -> u128 {
        let at = rng.gen_range(0..world.len().max(1));
        world.keys().nth(at).copied().unwrap_or(0)
    }

    /// One subscription, three times: handed every commit of its regions, handed the commits
    /// whose reach concerns it, and live in a registry whose index finds them (the fan-out's
    /// way).
    struct Copies {
        all: Subscriber,
        routed: Subscriber,
        indexed: Arc<Slot>,
        avatars: [Arc<AvatarLocation>; 3],
    }

    /// Random worlds across the border of A and B: entities walk (some far, some across the
    /// border, with an arrival delta as frames write), appear and vanish; outcomes go to random
    /// players. Routed and unrouted subscribers must queue exactly the same messages.
    #[test]
    fn routed_hand_over_queues_exactly_what_the_full_hand_over_does() {
        for seed in 0..200u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut world: BTreeMap<u128, Entity> = (0..40)
                .map(|id| {
                    (
                        id,
                        entity(id, rng.gen_range(200.0..312.0), rng.gen_range(0.0..60.0)),
                    )
                })
                .collect();
            let mut registry = Registry::default();
            let mut copies: Vec<Copies> = (0..12)
                .map(|i| {
                    let center =
                        Vec3::new(rng.gen_range(200.0..312.0), 0.0, rng.gen_range(0.0..60.0));
                    // Every sixth area overlaps too many cells to be indexed by cell.
                    let radius = if i % 6 == 5 {
                        rng.gen_range(150.0..200.0)
                    } else {
                        rng.gen_range(4.0..40.0)
                    };
                    let area = Area::new(center, radius);
                    let avatar = EntityId(rng.gen_range(0..40));
                    let avatars = [(); 3].map(|_| Arc::new(AvatarLocation::new(avatar, A)));
                    let inside: Vec<Entity> = world
                        .values()
                        .filter(|e| area.contains(&e.position))
                        .cloned()
                        .collect();
                    let make = |location: &Arc<AvatarLocation>| {
                        let mut s =
                            Subscriber::new(i % 5, area, 1 << 30).with_avatar(location.clone());
                        s.start_snapshot(inside.clone(), stamp(0));
                        s
                    };
                    let (id, indexed) = registry.join(make(&avatars[2]), Start::Snapshot);
                    registry.take_joining();
                    registry.go_live(id, indexed.clone());
                    Copies {
                        all: make(&avatars[0]),
                        routed: make(&avatars[1]),
                        indexed,
                        avatars,
                    }
                })
                .collect();
            let mut core = FanoutCore::starting_after([A, B], stamp(0));
            let mut next_id = 1_000u128;
            for n in 1..=150u64 {
                let mut deltas: BTreeMap<RegionId, Delta> = BTreeMap::new();
                for _ in 0..rng.gen_range(1..4) {
                    let roll = rng.gen_range(0..10);
                    if roll < 6 && !world.is_empty() {
                        let id = pick(&world, &mut rng);
                        let Some(e) = world.get_mut(&id) else {
                            continue;
                        };
                        let from = e.region();
                        let far = rng.gen_bool(0.1);
                        let step = if far { 100.0 } else { 12.0 };
                        e.position.x =
                            (e.position.x + rng.gen_range(-step..step)).clamp(150.0, 360.0);
                        e.position.z =
                            (e.position.z + rng.gen_range(-step..step)).clamp(0.0, 100.0);
                        let change = Change::Upsert(e.clone());
                        delta_of(&mut deltas, from).changes.push(change.clone());
                        if e.region() != from {
                            let to = e.region();
                            delta_of(&mut deltas, to).changes.push(change);
                        }
                    } else if roll < 8 && !world.is_empty() {
                        let id = pick(&world, &mut rng);
                        if let Some(e) = world.remove(&id) {
                            let region = e.region();
                            delta_of(&mut deltas, region)
                                .changes
                                .push(Change::Remove(e.id));
                        }
                    } else {
                        next_id += 1;
                        let e = entity(
                            next_id,
                            rng.gen_range(200.0..312.0),
                            rng.gen_range(0.0..60.0),
                        );
                        let region = e.region();
                        world.insert(next_id, e.clone());
                        delta_of(&mut deltas, region)
                            .changes
                            .push(Change::Upsert(e));
                    }
                }
                let region = if rng.gen_bool(0.5) { A } else { B };
                delta_of(&mut deltas, region).outcomes.push(Outcome {
                    player: rng.gen_range(0..5),
                    seq: n,
                    accepted: true,
                    reason: String::new(),
                });
                let commits = commit(n, deltas.into_values().collect());
                let reaches = core.route(&commits);
                let live = registry.live();
                for copy in &mut copies {
                    let regions: BTreeSet<RegionId> = copy.all.regions().clone();
                    hand_over(&mut copy.all, &commits, Handed::Touching(&regions));
                    let concerning = Reach::concerning(&reaches, &copy.routed);
                    hand_over(&mut copy.routed, &commits, Handed::Only(&concerning));
                }
                for (slot, concerning) in live.reached(&reaches) {
                    hand_over(&mut slot.lock(), &commits, Handed::Only(&concerning));
                }
            }
            for (i, copy) in copies.iter_mut().enumerate() {
                let drain = |s: &mut Subscriber| {
                    std::iter::from_fn(|| s.poll_transmit()).collect::<Vec<_>>()
                };
                let all = drain(&mut copy.all);
                let routed = drain(&mut copy.routed);
                let indexed = drain(&mut copy.indexed.lock());
                for (way, got) in [("routed", &routed), ("indexed", &indexed)] {
                    let first = got.iter().zip(&all).position(|(r, a)| r != a);
                    assert!(
                        first.is_none() && got.len() == all.len(),
                        "seed {seed}, subscriber {i}: {} messages {way}, {} in full; first \
                         difference at {first:?}: {way} {:?}, full {:?}",
                        got.len(),
                        all.len(),
                        first.and_then(|f| got.get(f)),
                        first.and_then(|f| all.get(f)),
                    );
                }
                let [full, routed, indexed] = copy.avatars.each_ref().map(|a| a.region());
                assert_eq!(
                    (routed, indexed),
                    (full, full),
                    "seed {seed}, subscriber {i}: avatar"
                );
            }
        }
    }
}
