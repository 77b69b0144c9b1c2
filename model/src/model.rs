//! The world model: entities, inputs, and what a frame produces.
//!
//! Invariants:
//! - an entity's region is a function of its position (`sekai_schema::geometry::region_of`);
//! - inventories hold only positive counts (a count that reaches zero is removed);
//! - `owner == 0` means the entity belongs to nobody.

use std::collections::BTreeMap;

pub use sekai_schema::{CellId, EntityId, PlayerId, RegionId, Vec3};

/// What an entity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A player's body in the world.
    PlayerAvatar,
    /// A tree: harvest for wood.
    Tree,
    /// A rock: harvest for stone.
    Rock,
    /// A piece of wood lying on the ground.
    ItemWood,
    /// A piece of stone lying on the ground.
    ItemStone,
    /// A wall a player built.
    StructureWall,
}

/// A kind of item an inventory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// Wood, from trees.
    Wood,
    /// Stone, from rocks.
    Stone,
}

/// Item counts; absent means zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory(pub BTreeMap<ItemKind, u32>);

impl Inventory {
    /// How many of `item` the inventory holds.
    pub fn count(&self, item: ItemKind) -> u32 {
        self.0.get(&item).copied().unwrap_or(0)
    }

    /// Adds `n` of `item` (saturating).
    pub fn add(&mut self, item: ItemKind, n: u32) {
        if n > 0 {
            let count = self.0.entry(item).or_insert(0);
            *count = count.saturating_add(n);
        }
    }

    /// Removes `n` of `item`; false (and unchanged) when there are fewer.
    pub fn take(&mut self, item: ItemKind, n: u32) -> bool {
        let have = self.count(item);
        if have < n {
            return false;
        }
        if have == n {
            self.0.remove(&item);
        } else {
            self.0.insert(item, have - n);
        }
        true
    }
}

/// One entity's full state.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    /// Its id.
    pub id: EntityId,
    /// What it is.
    pub kind: EntityKind,
    /// Hit points (for resources: what is left to harvest).
    pub hp: u32,
    /// Where it is.
    pub position: Vec3,
    /// What it carries.
    pub inventory: Inventory,
    /// The owning player, 0 for none.
    pub owner: PlayerId,
}

impl Entity {
    /// The region the entity is in.
    pub fn region(&self) -> RegionId {
        sekai_schema::geometry::region_of(&self.position)
    }

    /// The region and cell the entity is in (its spatial-index key).
    pub fn cell(&self) -> (RegionId, CellId) {
        sekai_schema::geometry::cell_of(&self.position)
    }
}

/// What a player asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Walk toward a point (speed-limited).
    Move {
        /// Where to.
        to: Vec3,
    },
    /// Harvest a tree or rock in reach.
    Harvest {
        /// The resource.
        target: EntityId,
    },
    /// Build a structure at a point in reach, paying from the inventory.
    Build {
        /// Where.
        at: Vec3,
        /// What (only `StructureWall` is buildable).
        kind: EntityKind,
    },
    /// Pick up an item in reach.
    Interact {
        /// The item.
        target: EntityId,
    },
    /// Do nothing.
    Idle,
}

/// One input of one player, numbered by the player's own sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// Who sent it.
    pub player: PlayerId,
    /// The player's sequence number (inputs apply in this order, each at most once).
    pub seq: u64,
    /// What to do.
    pub action: Action,
}

/// A change to one entity, as a delta carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The entity now has this state (created or changed).
    Upsert(Entity),
    /// The entity is gone.
    Remove(EntityId),
}

/// What became of one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The player.
    pub player: PlayerId,
    /// The input's sequence number.
    pub seq: u64,
    /// Whether the rules accepted it.
    pub accepted: bool,
    /// Why it was rejected (empty when accepted).
    pub reason: String,
}

/// Everything one frame of one region changed, in the order the rules applied it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    /// The region.
    pub region: RegionId,
    /// The frame number.
    pub frame: u64,
    /// Entity changes.
    pub changes: Vec<Change>,
    /// One outcome per input the frame processed.
    pub outcomes: Vec<Outcome>,
}

/// The durable record of one processed frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameRecord {
    /// The region.
    pub region: RegionId,
    /// The frame number (one more than the region's previous frame).
    pub frame: u64,
    /// The (player, seq) of every input the frame processed.
    pub inputs: Vec<(PlayerId, u64)>,
    /// How many of them the rules rejected.
    pub rejected: u32,
}
