//! The game rules: pure, deterministic functions from a region's state and inputs to outcomes and
//! changes. No I/O, no clocks, no randomness: the only source of new values is the caller's
//! `new_id` generator, so a frame replays identically from the same state, inputs and ids.
//!
//! Invariants:
//! - an input is applied entirely or not at all: a rejected input leaves the state untouched and
//!   yields `Outcome { accepted: false, reason }` with no changes;
//! - nothing panics, whatever the input (non-finite coordinates, missing targets, huge counts);
//! - resources are conserved: [`resource_totals`] over the region's entities plus the entities that
//!   left it is the same before and after every input. Concretely, for wood,
//!   `tree hp + wood in inventories + wood items on the ground + WALL_COST_WOOD × walls` never
//!   changes: harvesting moves one unit from a tree's hp into an inventory, picking up moves one
//!   unit from the ground into an inventory, building moves [`WALL_COST_WOOD`] from an inventory
//!   into the wall. Equivalently, wood in inventories + wood items on the ground + wood spent on
//!   walls = wood harvested (+ the wood items that were on the ground to begin with). Stone is the
//!   same with rocks and [`WALL_COST_STONE`];
//! - changes are listed in the order they were applied, and replaying them in that order onto the
//!   state before the input gives the state after it (an entity may appear several times in a
//!   frame; the last change wins);
//! - **leaving the region**: a move whose destination lies in another region is reported as a
//!   [`Change::Upsert`] of an entity whose `region()` differs from [`RegionState::region`], and the
//!   entity is removed from [`RegionState::entities`]. The caller moves it to the other region in
//!   the same transaction (see [`departs`]).

use std::collections::BTreeMap;

use sekai_schema::geometry::{cell_of, region_of};

use super::model::{
    Action, Change, Entity, EntityId, EntityKind, Input, Inventory, ItemKind, Outcome, PlayerId,
    RegionId, Vec3,
};

/// The farthest an avatar moves per `Move` input, in metres on the ground plane.
pub const MAX_STEP: f32 = 8.0;
/// How far an avatar reaches to harvest, build or pick up, in metres on the ground plane.
pub const REACH: f32 = 3.0;
/// Wood a wall costs.
pub const WALL_COST_WOOD: u32 = 2;
/// Stone a wall costs.
pub const WALL_COST_STONE: u32 = 1;
/// Hit points of a newly built wall.
pub const WALL_HP: u32 = 100;
/// The largest absolute coordinate of a position an input may name, in metres: past it an
/// `f32` resolves worse than 6 cm, so the world ends there.
pub const MAX_COORDINATE: f32 = 1_000_000.0;

/// Why the rules refused an input; its `Display` is the [`Outcome::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The player has no avatar in this region.
    #[error("no avatar in region")]
    NoAvatar,
    /// A coordinate of the requested position is NaN or infinite.
    #[error("position is not finite")]
    NonFinite,
    /// A coordinate of the requested position is beyond [`MAX_COORDINATE`].
    #[error("position is outside the world (|coordinate| > 1000000 m)")]
    OutOfWorld,
    /// The target entity does not exist in this region.
    #[error("target not found")]
    TargetMissing,
    /// A harvest target that is neither a tree nor a rock.
    #[error("target is not a resource")]
    NotAResource,
    /// A resource with nothing left to harvest.
    #[error("resource is depleted")]
    Depleted,
    /// The target or position is farther than [`REACH`] from the avatar.
    #[error("out of reach")]
    OutOfReach,
    /// A build of anything but a wall.
    #[error("only walls can be built")]
    NotBuildable,
    /// A build position in another region.
    #[error("position is outside the region")]
    OutsideRegion,
    /// The inventory holds less than [`WALL_COST_WOOD`] wood.
    #[error("not enough wood")]
    NotEnoughWood,
    /// The inventory holds less than [`WALL_COST_STONE`] stone.
    #[error("not enough stone")]
    NotEnoughStone,
    /// The cell of the build position already holds a wall.
    #[error("cell already holds a wall")]
    CellOccupied,
    /// An interact target that is not an item lying on the ground.
    #[error("target is not an item")]
    NotAnItem,
    /// The id generator returned an id already in use in this region.
    #[error("new entity id already in use")]
    IdInUse,
}

/// The entities of one region in memory (the processor's hot tier).
///
/// The caller keeps `entities` to the entities whose `region()` is `region`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionState {
    /// The region.
    pub region: RegionId,
    /// Its entities by id.
    pub entities: BTreeMap<EntityId, Entity>,
}

impl RegionState {
    /// A region state holding `entities` (which should all lie in `region`).
    pub fn new(region: RegionId, entities: impl IntoIterator<Item = Entity>) -> Self {
        Self {
            region,
            entities: entities.into_iter().map(|e| (e.id, e)).collect(),
        }
    }

    /// The id of `player`'s avatar in this region: the `PlayerAvatar` entity owned by `player`
    /// (the smallest id if there were several). `None` for player 0, who is nobody.
    ///
    /// A linear scan: regions hold hundreds to a few thousand entities.
    pub fn avatar_of(&self, player: PlayerId) -> Option<EntityId> {
        self.owned_avatars()
            .find(|e| e.owner == player)
            .map(|e| e.id)
    }

    /// Every player's avatar in this region (the smallest id for a player with several).
    pub fn avatars(&self) -> BTreeMap<PlayerId, EntityId> {
        let mut avatars = BTreeMap::new();
        for avatar in self.owned_avatars() {
            avatars.entry(avatar.owner).or_insert(avatar.id);
        }
        avatars
    }

    /// Avatars that belong to a player (owner 0 is nobody), in id order.
    fn owned_avatars(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values().filter(|e| is_owned_avatar(e))
    }
}

/// An index of the avatars of a region's players, kept beside [`RegionState::entities`] so a
/// frame finds avatars without scanning every entity (walls and items accumulate as players
/// build; [`RegionState::avatars`] is linear in them).
///
/// Invariant: after [`AvatarIndex::new`] over a state, and [`AvatarIndex::apply`] of every change
/// the rules made to it since, [`AvatarIndex::to_map`] equals [`RegionState::avatars`] of that
/// state (checked by `debug_assert!` in the processor and by tests). Whoever replaces the
/// entities wholesale rebuilds the index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AvatarIndex {
    /// Each player's avatars in the region, by id (the smallest is the player's avatar).
    by_player: BTreeMap<PlayerId, std::collections::BTreeSet<EntityId>>,
    /// The owner of each indexed avatar.
    owner_of: BTreeMap<EntityId, PlayerId>,
}

impl AvatarIndex {
    /// The index of every owned avatar in `state` (one linear scan).
    pub fn new(state: &RegionState) -> Self {
        let mut index = Self::default();
        for avatar in state.owned_avatars() {
            index.insert(avatar.owner, avatar.id);
        }
        index
    }

    /// `player`'s avatar (the smallest id if there are several), as [`RegionState::avatar_of`].
    pub fn get(&self, player: PlayerId) -> Option<EntityId> {
        self.by_player.get(&player)?.first().copied()
    }

    /// Every player's avatar, as [`RegionState::avatars`] returns them.
    pub fn to_map(&self) -> BTreeMap<PlayerId, EntityId> {
        self.by_player
            .iter()
            .filter_map(|(player, ids)| Some((*player, *ids.first()?)))
            .collect()
    }

    /// Follows `changes`, made by the rules to `state` (which already holds their result): an
    /// upserted avatar still in `state` is indexed under its owner, one that left (or was
    /// removed) is dropped.
    pub fn apply(&mut self, state: &RegionState, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Upsert(e) => {
                    let owner = state
                        .entities
                        .get(&e.id)
                        .filter(|e| is_owned_avatar(e))
                        .map(|e| e.owner);
                    // Most upserts are an avatar moving within the region, indexed already under
                    // its owner: left as it is (unindexing and indexing it again was 0.7 % of
                    // the server's CPU at 800 bots).
                    if self.owner_of.get(&e.id).copied() != owner {
                        self.remove(e.id);
                        if let Some(owner) = owner {
                            self.insert(owner, e.id);
                        }
                    }
                }
                Change::Remove(id) => self.remove(*id),
            }
        }
    }

    fn insert(&mut self, player: PlayerId, id: EntityId) {
        self.by_player.entry(player).or_default().insert(id);
        self.owner_of.insert(id, player);
    }

    fn remove(&mut self, id: EntityId) {
        let Some(player) = self.owner_of.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_player.get_mut(&player) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_player.remove(&player);
            }
        }
    }
}

/// True for an avatar that belongs to a player (owner 0 is nobody).
fn is_owned_avatar(e: &Entity) -> bool {
    e.kind == EntityKind::PlayerAvatar && e.owner != 0
}

/// True when `change` moves an entity out of `region`: an upsert of an entity now in another
/// region, which the caller must move there (and which is no longer in the region's state).
pub fn departs(region: RegionId, change: &Change) -> bool {
    matches!(change, Change::Upsert(e) if e.region() != region)
}

/// Applies one input to `state`, calling `new_id` once for each entity it creates (and never
/// for a rejected input).
///
/// Returns the input's outcome and the changes, in application order; a rejected input changes
/// nothing. An avatar that walks into another region is removed from `state` and reported as an
/// upsert whose `region()` differs from `state.region` (see [`departs`]).
pub fn apply_input(
    state: &mut RegionState,
    input: &Input,
    new_id: &mut impl FnMut() -> EntityId,
) -> (Outcome, Vec<Change>) {
    let avatar = state.avatar_of(input.player);
    apply_with_avatar(state, input, avatar, new_id)
}

fn apply_with_avatar(
    state: &mut RegionState,
    input: &Input,
    avatar: Option<EntityId>,
    new_id: &mut impl FnMut() -> EntityId,
) -> (Outcome, Vec<Change>) {
    match try_apply(state, input, avatar, new_id) {
        Ok(changes) => (outcome(input, None), changes),
        Err(rejection) => (outcome(input, Some(rejection)), Vec::new()),
    }
}

/// Applies `inputs` in order (see [`apply_input`]): one outcome per input, and all changes in
/// application order. Avatars are looked up once per frame (no input creates one).
pub fn apply_frame(
    state: &mut RegionState,
    inputs: &[Input],
    new_id: &mut impl FnMut() -> EntityId,
) -> (Vec<Outcome>, Vec<Change>) {
    let avatars = AvatarIndex::new(state);
    apply_frame_indexed(state, &avatars, inputs, new_id)
}

/// [`apply_frame`] with the avatars looked up in `avatars`, an index of `state` as it is before
/// the frame (see [`AvatarIndex`]): no scan of the region's entities. The caller brings the
/// index up to date with [`AvatarIndex::apply`] of the returned changes.
pub fn apply_frame_indexed(
    state: &mut RegionState,
    avatars: &AvatarIndex,
    inputs: &[Input],
    new_id: &mut impl FnMut() -> EntityId,
) -> (Vec<Outcome>, Vec<Change>) {
    let mut outcomes = Vec::with_capacity(inputs.len());
    let mut changes = Vec::new();
    for input in inputs {
        let avatar = avatars.get(input.player);
        let (outcome, mut applied) = apply_with_avatar(state, input, avatar, new_id);
        outcomes.push(outcome);
        changes.append(&mut applied);
    }
    (outcomes, changes)
}

/// Wood and stone held in any form (see the module's conservation invariant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceTotals {
    /// Tree hp + wood in inventories + wood items + wood built into walls.
    pub wood: u64,
    /// Rock hp + stone in inventories + stone items + stone built into walls.
    pub stone: u64,
}

/// Sums the wood and stone that `entities` hold in any form; the rules never change this sum
/// over a region's entities plus those that left it.
pub fn resource_totals<'a>(entities: impl IntoIterator<Item = &'a Entity>) -> ResourceTotals {
    let mut totals = ResourceTotals::default();
    for e in entities {
        let (wood, stone) = embodied(e);
        totals.wood = totals
            .wood
            .saturating_add(wood)
            .saturating_add(e.inventory.count(ItemKind::Wood).into());
        totals.stone = totals
            .stone
            .saturating_add(stone)
            .saturating_add(e.inventory.count(ItemKind::Stone).into());
    }
    totals
}

/// The (wood, stone) an entity is made of, inventory aside.
fn embodied(e: &Entity) -> (u64, u64) {
    let hp = u64::from(e.hp);
    match e.kind {
        EntityKind::Tree => (hp, 0),
        EntityKind::Rock => (0, hp),
        EntityKind::ItemWood => (1, 0),
        EntityKind::ItemStone => (0, 1),
        EntityKind::StructureWall => (WALL_COST_WOOD.into(), WALL_COST_STONE.into()),
        EntityKind::PlayerAvatar => (0, 0),
    }
}

fn outcome(input: &Input, rejection: Option<Rejection>) -> Outcome {
    Outcome {
        player: input.player,
        seq: input.seq,
        accepted: rejection.is_none(),
        reason: rejection.map(|r| r.to_string()).unwrap_or_default(),
    }
}

fn try_apply(
    state: &mut RegionState,
    input: &Input,
    avatar: Option<EntityId>,
    new_id: &mut impl FnMut() -> EntityId,
) -> Result<Vec<Change>, Rejection> {
    let avatar = avatar
        .filter(|id| state.entities.contains_key(id))
        .ok_or(Rejection::NoAvatar)?;
    check_action(&input.action)?;
    match &input.action {
        Action::Move { to } => walk(state, avatar, to),
        Action::Harvest { target } => harvest(state, avatar, *target),
        Action::Build { at, kind } => build(state, avatar, at, *kind, input.player, new_id),
        Action::Interact { target } => pick_up(state, avatar, *target),
        Action::Idle => Ok(Vec::new()),
    }
}

/// What can be refused from the action alone, before any state is read: positions that are
/// not finite or outside the world, builds of anything but a wall. The edge refuses these in
/// the acknowledgement; the rules check them again (inputs may come from other writers).
pub fn check_action(action: &Action) -> Result<(), Rejection> {
    let check_position = |p: &Vec3| {
        if !p.is_finite() {
            Err(Rejection::NonFinite)
        } else if [p.x, p.y, p.z].iter().any(|c| c.abs() > MAX_COORDINATE) {
            Err(Rejection::OutOfWorld)
        } else {
            Ok(())
        }
    };
    match action {
        Action::Move { to } => check_position(to),
        Action::Build { at, kind } => {
            if *kind != EntityKind::StructureWall {
                return Err(Rejection::NotBuildable);
            }
            check_position(at)
        }
        Action::Harvest { .. } | Action::Interact { .. } | Action::Idle => Ok(()),
    }
}

/// `Move`: step toward `to` by at most [`MAX_STEP`], keeping the avatar's height.
fn walk(state: &mut RegionState, avatar: EntityId, to: &Vec3) -> Result<Vec<Change>, Rejection> {
    let from = position(state, avatar)?;
    let next = step_toward(&from, to);
    if next == from {
        return Ok(Vec::new());
    }
    let mut entity = state.entities.remove(&avatar).ok_or(Rejection::NoAvatar)?;
    entity.position = next;
    if entity.region() == state.region {
        state.entities.insert(avatar, entity.clone());
    }
    Ok(vec![Change::Upsert(entity)])
}

/// The point at most [`MAX_STEP`] from `from` toward `to` on the ground plane, at `from`'s height.
/// Computed in f64 so that finite inputs never overflow.
fn step_toward(from: &Vec3, to: &Vec3) -> Vec3 {
    let (dx, dz) = (
        f64::from(to.x) - f64::from(from.x),
        f64::from(to.z) - f64::from(from.z),
    );
    let distance = dx.hypot(dz);
    let max = f64::from(MAX_STEP);
    if distance <= max {
        return Vec3::new(to.x, from.y, to.z);
    }
    let scale = max / distance;
    Vec3::new(
        (f64::from(from.x) + dx * scale) as f32,
        from.y,
        (f64::from(from.z) + dz * scale) as f32,
    )
}

/// `Harvest`: one unit from a tree (wood) or rock (stone) in reach into the inventory.
fn harvest(
    state: &mut RegionState,
    avatar: EntityId,
    target: EntityId,
) -> Result<Vec<Change>, Rejection> {
    let from = position(state, avatar)?;
    let resource = state
        .entities
        .get(&target)
        .ok_or(Rejection::TargetMissing)?;
    let item = harvest_yield(resource.kind).ok_or(Rejection::NotAResource)?;
    if resource.hp == 0 {
        return Err(Rejection::Depleted);
    }
    check_reach(&from, &resource.position)?;
    let resource_change = match update(state, target, |e| e.hp = e.hp.saturating_sub(1))? {
        Change::Upsert(e) if e.hp == 0 => {
            state.entities.remove(&target);
            Change::Remove(target)
        }
        other => other,
    };
    let avatar_change = update(state, avatar, |e| e.inventory.add(item, 1))?;
    Ok(vec![resource_change, avatar_change])
}

/// What harvesting an entity of `kind` yields, if it is a resource.
fn harvest_yield(kind: EntityKind) -> Option<ItemKind> {
    match kind {
        EntityKind::Tree => Some(ItemKind::Wood),
        EntityKind::Rock => Some(ItemKind::Stone),
        _ => None,
    }
}

/// `Build`: a wall in reach, in this region, in a cell without a wall, paid from the inventory.
fn build(
    state: &mut RegionState,
    avatar: EntityId,
    at: &Vec3,
    kind: EntityKind,
    player: PlayerId,
    new_id: &mut impl FnMut() -> EntityId,
) -> Result<Vec<Change>, Rejection> {
    debug_assert!(check_action(&Action::Build { at: *at, kind }).is_ok());
    if region_of(at) != state.region {
        return Err(Rejection::OutsideRegion);
    }
    let builder = state.entities.get(&avatar).ok_or(Rejection::NoAvatar)?;
    check_reach(&builder.position, at)?;
    check_wall_cost(&builder.inventory)?;
    if holds_wall(state, at) {
        return Err(Rejection::CellOccupied);
    }
    let id = new_id();
    if state.entities.contains_key(&id) {
        return Err(Rejection::IdInUse);
    }
    let avatar_change = update(state, avatar, |e| {
        e.inventory.take(ItemKind::Wood, WALL_COST_WOOD);
        e.inventory.take(ItemKind::Stone, WALL_COST_STONE);
    })?;
    let wall = Entity {
        id,
        kind: EntityKind::StructureWall,
        hp: WALL_HP,
        position: *at,
        inventory: Inventory::default(),
        owner: player,
    };
    state.entities.insert(id, wall.clone());
    Ok(vec![avatar_change, Change::Upsert(wall)])
}

fn check_wall_cost(inventory: &Inventory) -> Result<(), Rejection> {
    if inventory.count(ItemKind::Wood) < WALL_COST_WOOD {
        return Err(Rejection::NotEnoughWood);
    }
    if inventory.count(ItemKind::Stone) < WALL_COST_STONE {
        return Err(Rejection::NotEnoughStone);
    }
    Ok(())
}

/// True when the cell containing `at` already holds a wall.
fn holds_wall(state: &RegionState, at: &Vec3) -> bool {
    let cell = cell_of(at);
    state
        .entities
        .values()
        .any(|e| e.kind == EntityKind::StructureWall && e.cell() == cell)
}

/// `Interact`: pick up a wood or stone item in reach (one unit), removing it from the ground.
fn pick_up(
    state: &mut RegionState,
    avatar: EntityId,
    target: EntityId,
) -> Result<Vec<Change>, Rejection> {
    let from = position(state, avatar)?;
    let item = state
        .entities
        .get(&target)
        .ok_or(Rejection::TargetMissing)?;
    let kind = item_of(item.kind).ok_or(Rejection::NotAnItem)?;
    check_reach(&from, &item.position)?;
    state.entities.remove(&target);
    let avatar_change = update(state, avatar, |e| e.inventory.add(kind, 1))?;
    Ok(vec![Change::Remove(target), avatar_change])
}

/// The item an entity of `kind` is, if it is an item lying on the ground.
fn item_of(kind: EntityKind) -> Option<ItemKind> {
    match kind {
        EntityKind::ItemWood => Some(ItemKind::Wood),
        EntityKind::ItemStone => Some(ItemKind::Stone),
        _ => None,
    }
}

fn position(state: &RegionState, avatar: EntityId) -> Result<Vec3, Rejection> {
    state
        .entities
        .get(&avatar)
        .map(|e| e.position)
        .ok_or(Rejection::NoAvatar)
}

/// `Ok` when `to` is within [`REACH`] of `from` on the ground plane (never for non-finite points).
fn check_reach(from: &Vec3, to: &Vec3) -> Result<(), Rejection> {
    if from.ground_distance_squared(to) <= REACH * REACH {
        Ok(())
    } else {
        Err(Rejection::OutOfReach)
    }
}

/// Changes entity `id` in place and returns its new state as an upsert.
fn update(
    state: &mut RegionState,
    id: EntityId,
    change: impl FnOnce(&mut Entity),
) -> Result<Change, Rejection> {
    let entity = state
        .entities
        .get_mut(&id)
        .ok_or(Rejection::TargetMissing)?;
    change(entity);
    Ok(Change::Upsert(entity.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const REGION: RegionId = RegionId::new(0, 0);
    const PLAYER: PlayerId = 7;
    const AVATAR: EntityId = EntityId(1);

    fn entity(id: u128, kind: EntityKind, hp: u32, x: f32, z: f32) -> Entity {
        Entity {
            id: EntityId(id),
            kind,
            hp,
            position: Vec3::new(x, 0.0, z),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    fn avatar_at(x: f32, z: f32, wood: u32, stone: u32) -> Entity {
        let mut avatar = entity(AVATAR.0, EntityKind::PlayerAvatar, 10, x, z);
        avatar.owner = PLAYER;
        avatar.inventory.add(ItemKind::Wood, wood);
        avatar.inventory.add(ItemKind::Stone, stone);
        avatar
    }

    /// A region with the avatar at (100, 100) holding `wood` and `stone`, plus `others`.
    fn state_with(wood: u32, stone: u32, others: Vec<Entity>) -> RegionState {
        let avatar = avatar_at(100.0, 100.0, wood, stone);
        RegionState::new(REGION, std::iter::once(avatar).chain(others))
    }

    fn ids_from(start: u128) -> impl FnMut() -> EntityId {
        let mut next = start;
        move || {
            next += 1;
            EntityId(next)
        }
    }

    fn apply(state: &mut RegionState, action: Action) -> (Outcome, Vec<Change>) {
        let input = Input {
            player: PLAYER,
            seq: 1,
            action,
        };
        apply_input(state, &input, &mut ids_from(1000))
    }

    fn assert_rejected(mut state: RegionState, action: Action, rejection: Rejection) {
        let before = state.clone();
        let (outcome, changes) = apply(&mut state, action);
        assert!(!outcome.accepted);
        assert_eq!(outcome.reason, rejection.to_string());
        assert!(changes.is_empty());
        assert_eq!(state, before, "a rejected input must change nothing");
    }

    fn avatar(state: &RegionState) -> &Entity {
        &state.entities[&AVATAR]
    }

    #[test]
    fn avatar_of_finds_the_owned_avatar_only() {
        let mut other = avatar_at(0.0, 0.0, 0, 0);
        other.id = EntityId(2);
        other.owner = 8;
        let mut tree = entity(3, EntityKind::Tree, 5, 1.0, 1.0);
        tree.owner = PLAYER;
        let state = state_with(0, 0, vec![other, tree]);
        assert_eq!(state.avatar_of(PLAYER), Some(AVATAR));
        assert_eq!(state.avatar_of(8), Some(EntityId(2)));
        assert_eq!(state.avatar_of(9), None);
        assert_eq!(state.avatar_of(0), None);
    }

    #[test]
    fn no_avatar_rejects_every_action() {
        let state = RegionState::new(REGION, [entity(3, EntityKind::Tree, 5, 1.0, 1.0)]);
        for action in [
            Action::Idle,
            Action::Move {
                to: Vec3::new(1.0, 0.0, 1.0),
            },
            Action::Harvest {
                target: EntityId(3),
            },
        ] {
            assert_rejected(state.clone(), action, Rejection::NoAvatar);
        }
        assert_eq!(Rejection::NoAvatar.to_string(), "no avatar in region");
    }

    #[test]
    fn idle_is_accepted_and_changes_nothing() {
        let mut state = state_with(0, 0, vec![]);
        let before = state.clone();
        let (outcome, changes) = apply(&mut state, Action::Idle);
        assert!(outcome.accepted && outcome.reason.is_empty());
        assert_eq!((outcome.player, outcome.seq), (PLAYER, 1));
        assert!(changes.is_empty());
        assert_eq!(state, before);
    }

    #[test]
    fn move_within_max_step_reaches_the_target_keeping_height() {
        let mut state = state_with(0, 0, vec![]);
        state.entities.get_mut(&AVATAR).unwrap().position.y = 2.5;
        let (outcome, changes) = apply(
            &mut state,
            Action::Move {
                to: Vec3::new(103.0, 50.0, 104.0),
            },
        );
        assert!(outcome.accepted);
        assert_eq!(avatar(&state).position, Vec3::new(103.0, 2.5, 104.0));
        assert_eq!(changes, vec![Change::Upsert(avatar(&state).clone())]);
    }

    #[test]
    fn move_is_speed_limited() {
        let mut state = state_with(0, 0, vec![]);
        let (outcome, _) = apply(
            &mut state,
            Action::Move {
                to: Vec3::new(200.0, 0.0, 100.0),
            },
        );
        assert!(outcome.accepted);
        assert_eq!(
            avatar(&state).position,
            Vec3::new(100.0 + MAX_STEP, 0.0, 100.0)
        );
        // Past the world's edge: refused.
        let (outcome, _) = apply(
            &mut state,
            Action::Move {
                to: Vec3::new(f32::MAX, 0.0, f32::MIN),
            },
        );
        assert!(!outcome.accepted);
        assert_eq!(outcome.reason, Rejection::OutOfWorld.to_string());
        // Diagonal: the step length is MAX_STEP, never more.
        let (outcome, _) = apply(
            &mut state,
            Action::Move {
                to: Vec3::new(MAX_COORDINATE, 0.0, -MAX_COORDINATE),
            },
        );
        assert!(outcome.accepted);
        let p = avatar(&state).position;
        let step = (p.x - 108.0).hypot(p.z - 100.0);
        assert!((step - MAX_STEP).abs() < 1e-3, "step {step}");
    }

    #[test]
    fn move_to_the_same_place_changes_nothing() {
        let mut state = state_with(0, 0, vec![]);
        let (outcome, changes) = apply(
            &mut state,
            Action::Move {
                to: Vec3::new(100.0, 9.0, 100.0),
            },
        );
        assert!(outcome.accepted);
        assert!(changes.is_empty());
    }

    #[test]
    fn move_rejects_non_finite_targets() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for to in [
                Vec3::new(bad, 0.0, 0.0),
                Vec3::new(0.0, bad, 0.0),
                Vec3::new(0.0, 0.0, bad),
            ] {
                assert_rejected(
                    state_with(0, 0, vec![]),
                    Action::Move { to },
                    Rejection::NonFinite,
                );
            }
        }
    }

    #[test]
    fn move_across_the_region_edge_departs() {
        let mut state = RegionState::new(REGION, [avatar_at(255.0, 10.0, 3, 0)]);
        let (outcome, changes) = apply(
            &mut state,
            Action::Move {
                to: Vec3::new(258.0, 0.0, 10.0),
            },
        );
        assert!(outcome.accepted);
        assert!(state.entities.is_empty(), "the avatar left the region");
        let [change] = changes.as_slice() else {
            panic!("one change expected: {changes:?}")
        };
        assert!(departs(REGION, change));
        let Change::Upsert(moved) = change else {
            panic!("upsert expected")
        };
        assert_eq!(moved.region(), RegionId::new(1, 0));
        assert_eq!(moved.inventory.count(ItemKind::Wood), 3);
        // The player now has no avatar here.
        assert_rejected(state, Action::Idle, Rejection::NoAvatar);
    }

    #[test]
    fn harvest_takes_one_unit_and_removes_depleted_resources() {
        let tree = entity(3, EntityKind::Tree, 2, 102.0, 100.0);
        let rock = entity(4, EntityKind::Rock, 1, 100.0, 97.0);
        let mut state = state_with(0, 0, vec![tree, rock]);

        let (outcome, changes) = apply(
            &mut state,
            Action::Harvest {
                target: EntityId(3),
            },
        );
        assert!(outcome.accepted);
        assert_eq!(state.entities[&EntityId(3)].hp, 1);
        assert_eq!(avatar(&state).inventory.count(ItemKind::Wood), 1);
        assert_eq!(
            changes,
            vec![
                Change::Upsert(state.entities[&EntityId(3)].clone()),
                Change::Upsert(avatar(&state).clone()),
            ]
        );

        let (outcome, changes) = apply(
            &mut state,
            Action::Harvest {
                target: EntityId(4),
            },
        );
        assert!(outcome.accepted);
        assert!(!state.entities.contains_key(&EntityId(4)));
        assert_eq!(avatar(&state).inventory.count(ItemKind::Stone), 1);
        assert_eq!(changes[0], Change::Remove(EntityId(4)));
    }

    #[test]
    fn harvest_rejections() {
        let others = vec![
            entity(3, EntityKind::Tree, 5, 103.5, 100.0),
            entity(4, EntityKind::ItemWood, 1, 101.0, 100.0),
            entity(5, EntityKind::Rock, 0, 101.0, 100.0),
        ];
        let state = state_with(0, 0, others);
        let harvest = |id| Action::Harvest {
            target: EntityId(id),
        };
        assert_rejected(state.clone(), harvest(99), Rejection::TargetMissing);
        assert_rejected(state.clone(), harvest(4), Rejection::NotAResource);
        assert_rejected(state.clone(), harvest(AVATAR.0), Rejection::NotAResource);
        assert_rejected(state.clone(), harvest(5), Rejection::Depleted);
        assert_rejected(state, harvest(3), Rejection::OutOfReach);
    }

    fn wall_at(x: f32, z: f32) -> Action {
        Action::Build {
            at: Vec3::new(x, 0.0, z),
            kind: EntityKind::StructureWall,
        }
    }

    #[test]
    fn build_pays_and_creates_an_owned_wall() {
        let mut state = state_with(3, 1, vec![]);
        let (outcome, changes) = apply(&mut state, wall_at(102.0, 100.0));
        assert!(outcome.accepted, "{outcome:?}");
        let inventory = &avatar(&state).inventory;
        assert_eq!(inventory.count(ItemKind::Wood), 1);
        assert_eq!(inventory.count(ItemKind::Stone), 0);
        let wall = &state.entities[&EntityId(1001)];
        assert_eq!(wall.kind, EntityKind::StructureWall);
        assert_eq!((wall.owner, wall.hp), (PLAYER, WALL_HP));
        assert_eq!(wall.position, Vec3::new(102.0, 0.0, 100.0));
        assert_eq!(
            changes,
            vec![
                Change::Upsert(avatar(&state).clone()),
                Change::Upsert(wall.clone())
            ]
        );
    }

    #[test]
    fn build_rejections() {
        let rich = || state_with(10, 10, vec![]);
        let tower = Action::Build {
            at: Vec3::new(101.0, 0.0, 100.0),
            kind: EntityKind::Tree,
        };
        assert_rejected(rich(), tower, Rejection::NotBuildable);
        assert_rejected(rich(), wall_at(f32::NAN, 100.0), Rejection::NonFinite);
        assert_rejected(rich(), wall_at(103.5, 100.0), Rejection::OutOfReach);
        assert_rejected(
            state_with(1, 1, vec![]),
            wall_at(101.0, 100.0),
            Rejection::NotEnoughWood,
        );
        assert_rejected(
            state_with(2, 0, vec![]),
            wall_at(101.0, 100.0),
            Rejection::NotEnoughStone,
        );
        // A wall elsewhere in the same 16 m cell (96..112) blocks the build.
        let occupied = state_with(
            10,
            10,
            vec![entity(9, EntityKind::StructureWall, 5, 110.0, 97.0)],
        );
        assert_rejected(occupied, wall_at(101.0, 100.0), Rejection::CellOccupied);
        // In reach but across the region edge.
        let edge = RegionState::new(REGION, [avatar_at(1.0, 1.0, 10, 10)]);
        assert_rejected(edge, wall_at(-1.0, 1.0), Rejection::OutsideRegion);
        // An id generator that returns an id in use.
        let mut state = rich();
        let before = state.clone();
        let input = Input {
            player: PLAYER,
            seq: 2,
            action: wall_at(101.0, 100.0),
        };
        let (outcome, changes) = apply_input(&mut state, &input, &mut || AVATAR);
        assert_eq!(outcome.reason, Rejection::IdInUse.to_string());
        assert!(changes.is_empty());
        assert_eq!(state, before);
    }

    #[test]
    fn rejected_builds_take_no_id() {
        let mut state = state_with(0, 0, vec![]);
        let mut calls = 0;
        let input = Input {
            player: PLAYER,
            seq: 1,
            action: wall_at(101.0, 100.0),
        };
        let (outcome, _) = apply_input(&mut state, &input, &mut || {
            calls += 1;
            EntityId(99)
        });
        assert!(!outcome.accepted);
        assert_eq!(calls, 0);
    }

    #[test]
    fn interact_picks_up_items() {
        let others = vec![
            entity(3, EntityKind::ItemWood, 1, 101.0, 101.0),
            entity(4, EntityKind::ItemStone, 1, 99.0, 99.0),
        ];
        let mut state = state_with(0, 0, others);
        for (id, item) in [(3, ItemKind::Wood), (4, ItemKind::Stone)] {
            let (outcome, changes) = apply(
                &mut state,
                Action::Interact {
                    target: EntityId(id),
                },
            );
            assert!(outcome.accepted);
            assert!(!state.entities.contains_key(&EntityId(id)));
            assert_eq!(avatar(&state).inventory.count(item), 1);
            assert_eq!(
                changes,
                vec![
                    Change::Remove(EntityId(id)),
                    Change::Upsert(avatar(&state).clone())
                ]
            );
        }
    }

    #[test]
    fn interact_rejections() {
        let others = vec![
            entity(3, EntityKind::ItemWood, 1, 104.0, 100.0),
            entity(4, EntityKind::Tree, 5, 101.0, 100.0),
        ];
        let state = state_with(0, 0, others);
        let interact = |id| Action::Interact {
            target: EntityId(id),
        };
        assert_rejected(state.clone(), interact(99), Rejection::TargetMissing);
        assert_rejected(state.clone(), interact(4), Rejection::NotAnItem);
        assert_rejected(state, interact(3), Rejection::OutOfReach);
    }

    #[test]
    fn apply_frame_applies_in_order() {
        let mut state = state_with(0, 0, vec![entity(3, EntityKind::Tree, 1, 110.0, 100.0)]);
        let inputs: Vec<Input> = [
            Action::Harvest {
                target: EntityId(3),
            },
            Action::Move {
                to: Vec3::new(109.0, 0.0, 100.0),
            },
            Action::Harvest {
                target: EntityId(3),
            },
            Action::Harvest {
                target: EntityId(3),
            },
        ]
        .into_iter()
        .enumerate()
        .map(|(seq, action)| Input {
            player: PLAYER,
            seq: seq as u64,
            action,
        })
        .collect();
        let (outcomes, changes) = apply_frame(&mut state, &inputs, &mut ids_from(0));
        let accepted: Vec<bool> = outcomes.iter().map(|o| o.accepted).collect();
        assert_eq!(accepted, [false, true, true, false]);
        assert_eq!(outcomes[0].reason, Rejection::OutOfReach.to_string());
        assert_eq!(outcomes[3].reason, Rejection::TargetMissing.to_string());
        assert_eq!(changes.len(), 3);
        assert_eq!(avatar(&state).inventory.count(ItemKind::Wood), 1);
    }

    #[test]
    fn the_avatar_index_follows_departures_and_removals() {
        let mut second = avatar_at(250.0, 100.0, 0, 0);
        second.id = EntityId(9);
        let mut stranger = avatar_at(50.0, 50.0, 0, 0);
        stranger.id = EntityId(20);
        stranger.owner = PLAYER + 1;
        let mut state = state_with(0, 0, vec![second.clone(), stranger.clone()]);
        let mut index = AvatarIndex::new(&state);
        assert_eq!(index.get(PLAYER), Some(AVATAR), "the smallest id");
        assert_eq!(index.to_map(), state.avatars());
        // The player's first avatar walks out of the region: the second becomes its avatar.
        state.entities.get_mut(&AVATAR).unwrap().position = Vec3::new(254.0, 0.0, 100.0);
        let to = Vec3::new(262.0, 0.0, 100.0);
        let inputs = [Input {
            player: PLAYER,
            seq: 1,
            action: Action::Move { to },
        }];
        let (outcomes, changes) =
            apply_frame_indexed(&mut state, &index, &inputs, &mut ids_from(1000));
        assert!(outcomes[0].accepted);
        assert!(changes.iter().any(|c| departs(REGION, c)));
        index.apply(&state, &changes);
        assert_eq!(index.get(PLAYER), Some(EntityId(9)));
        assert_eq!(index.to_map(), state.avatars());
        // A removal drops the stranger's avatar, and its player with it.
        state.entities.remove(&stranger.id);
        index.apply(&state, &[Change::Remove(stranger.id)]);
        assert_eq!(index.get(PLAYER + 1), None);
        assert_eq!(index.to_map(), state.avatars());
    }

    /// Replays `changes` onto `entities` the way a delta's consumer does.
    fn replay(entities: &mut BTreeMap<EntityId, Entity>, region: RegionId, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Upsert(e) if e.region() == region => {
                    entities.insert(e.id, e.clone());
                }
                Change::Upsert(e) => {
                    entities.remove(&e.id);
                }
                Change::Remove(id) => {
                    entities.remove(id);
                }
            }
        }
    }

    fn action_name(action: &Action) -> &'static str {
        match action {
            Action::Move { .. } => "move",
            Action::Harvest { .. } => "harvest",
            Action::Build { .. } => "build",
            Action::Interact { .. } => "interact",
            Action::Idle => "idle",
        }
    }

    fn around(rng: &mut ChaCha8Rng, near: Vec3, spread: f32) -> Vec3 {
        Vec3::new(
            near.x + rng.gen_range(-spread..=spread),
            0.0,
            near.z + rng.gen_range(-spread..=spread),
        )
    }

    /// The entity nearest to `near` other than the avatar at `near` itself.
    fn nearest(state: &RegionState, near: Vec3) -> Option<&Entity> {
        state
            .entities
            .values()
            .filter(|e| e.kind != EntityKind::PlayerAvatar)
            .min_by(|a, b| {
                let da = a.position.ground_distance_squared(&near);
                da.total_cmp(&b.position.ground_distance_squared(&near))
            })
    }

    /// A random action, mostly aimed at the entity nearest the player's avatar at `near`.
    fn random_action(rng: &mut ChaCha8Rng, state: &RegionState, near: Vec3) -> Action {
        let goal = nearest(state, near).filter(|_| rng.gen_bool(0.8));
        let target = match goal {
            Some(e) => e.id,
            None if rng.gen_bool(0.5) => EntityId(rng.gen()),
            None => AVATAR,
        };
        match rng.gen_range(0..10) {
            0..=2 => Action::Move {
                to: goal.map_or_else(|| around(rng, near, 12.0), |e| e.position),
            },
            3..=5 => Action::Harvest { target },
            6 => Action::Build {
                at: around(rng, near, 4.0),
                kind: if rng.gen_bool(0.9) {
                    EntityKind::StructureWall
                } else {
                    EntityKind::Rock
                },
            },
            7 | 8 => Action::Interact { target },
            _ => Action::Idle,
        }
    }

    /// Random inputs of three players: resources are conserved, changes replay to the new state,
    /// and the rules never panic.
    #[test]
    fn random_play_conserves_resources() {
        let seed: u64 = std::env::var("SEKAI_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eca1);
        println!("random_play_conserves_resources seed = {seed} (set SEKAI_SEED to replay)");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut entities = Vec::new();
        for player in 1..=3u64 {
            let mut a = avatar_at(128.0, 128.0, 0, 0);
            a.id = EntityId(u128::from(player));
            a.owner = player;
            entities.push(a);
        }
        for id in 10..200u128 {
            let kind = [
                EntityKind::Tree,
                EntityKind::Rock,
                EntityKind::ItemWood,
                EntityKind::ItemStone,
            ][rng.gen_range(0..4)];
            let (x, z) = (rng.gen_range(100.0..156.0), rng.gen_range(100.0..156.0));
            entities.push(entity(id, kind, rng.gen_range(1..4), x, z));
        }
        let mut state = RegionState::new(REGION, entities);
        let mut departed: BTreeMap<EntityId, Entity> = BTreeMap::new();
        let initial = resource_totals(state.entities.values());
        let mut ids = ids_from(1 << 64);
        let mut accepted: BTreeMap<&str, usize> = BTreeMap::new();
        let mut index = AvatarIndex::new(&state);
        for frame in 0..300u64 {
            let inputs: Vec<Input> = (0..rng.gen_range(0..6))
                .map(|i| {
                    let player = rng.gen_range(1..=4u64);
                    let near = state
                        .avatar_of(player)
                        .map_or(Vec3::new(128.0, 0.0, 128.0), |a| {
                            state.entities[&a].position
                        });
                    Input {
                        player,
                        seq: frame * 10 + i,
                        action: random_action(&mut rng, &state, near),
                    }
                })
                .collect();
            let mut replayed = state.entities.clone();
            let (outcomes, changes) = apply_frame_indexed(&mut state, &index, &inputs, &mut ids);
            index.apply(&state, &changes);
            assert_eq!(index.to_map(), state.avatars(), "seed {seed} frame {frame}");
            assert_eq!(outcomes.len(), inputs.len());
            for (input, outcome) in inputs.iter().zip(&outcomes) {
                if outcome.accepted {
                    *accepted.entry(action_name(&input.action)).or_insert(0) += 1;
                }
            }
            replay(&mut replayed, REGION, &changes);
            assert_eq!(replayed, state.entities, "seed {seed} frame {frame}");
            for change in changes.iter().filter(|c| departs(REGION, c)) {
                if let Change::Upsert(e) = change {
                    departed.insert(e.id, e.clone());
                }
            }
            let totals = resource_totals(state.entities.values().chain(departed.values()));
            assert_eq!(totals, initial, "seed {seed} frame {frame}");
        }
        println!("accepted inputs: {accepted:?}");
        for name in ["move", "harvest", "build", "interact", "idle"] {
            assert!(
                accepted.contains_key(name),
                "seed {seed}: no {name} accepted"
            );
        }
    }
}
