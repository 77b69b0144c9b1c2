//! Bots: what a simulated player asks for next.
//!
//! A bot sees only what its client sees (its mirror of its area, plus the zone's trees and rocks,
//! which it knows from the map) and guesses its own position when its avatar is out of view. Its
//! choices are pure functions of that view and the rng, so a seed replays them exactly. Bots
//! walk across region borders, crowd the same few trees, build walls and pick up items; some
//! inputs are deliberately invalid, so rejections are exercised too.

use std::collections::BTreeMap;

use rand::Rng;
use sekai_layer::world::model::{Action, Entity, EntityKind};
use sekai_layer::world::rules::REACH;
use sekai_schema::{EntityId, Vec3};

use crate::world_setup::zone_point;

/// Where a bot believes its avatar is and what it is after.
#[derive(Clone, Debug)]
pub struct Bot {
    /// The avatar's id.
    pub avatar: EntityId,
    /// The last position the bot knows or asked for.
    pub guess: Vec3,
}

impl Bot {
    /// A bot whose avatar starts at `spawn`.
    pub fn new(avatar: EntityId, spawn: Vec3) -> Self {
        Self {
            avatar,
            guess: spawn,
        }
    }

    /// Chooses the next action from the client's `mirror` and the known `resources`.
    pub fn next_action(
        &mut self,
        rng: &mut impl Rng,
        mirror: &BTreeMap<EntityId, Entity>,
        resources: &[(EntityId, Vec3)],
    ) -> Action {
        if let Some(me) = mirror.get(&self.avatar) {
            self.guess = me.position;
        }
        let roll: f64 = rng.gen();
        if roll < 0.30 {
            self.walk_to(zone_point(rng))
        } else if roll < 0.60 {
            match pick(rng, resources) {
                Some((id, at)) => self.act_on(id, at, |target| Action::Harvest { target }),
                None => Action::Idle,
            }
        } else if roll < 0.75 {
            let items: Vec<(EntityId, Vec3)> = mirror
                .values()
                .filter(|e| matches!(e.kind, EntityKind::ItemWood | EntityKind::ItemStone))
                .map(|e| (e.id, e.position))
                .collect();
            match pick(rng, &items) {
                Some((id, at)) => self.act_on(id, at, |target| Action::Interact { target }),
                None => self.walk_to(zone_point(rng)),
            }
        } else if roll < 0.90 {
            let at = Vec3::new(
                self.guess.x + rng.gen_range(-2.0..2.0),
                0.0,
                self.guess.z + rng.gen_range(-2.0..2.0),
            );
            Action::Build {
                at,
                kind: EntityKind::StructureWall,
            }
        } else if roll < 0.95 {
            // Deliberately invalid: harvest an item, or pick up a tree.
            match pick(rng, resources) {
                Some((target, _)) => Action::Interact { target },
                None => Action::Idle,
            }
        } else {
            Action::Idle
        }
    }

    /// Acts on `target` when in reach, otherwise walks next to it.
    fn act_on(&mut self, target: EntityId, at: Vec3, act: impl Fn(EntityId) -> Action) -> Action {
        let reach = REACH * 0.8;
        if self.guess.ground_distance_squared(&at) <= reach * reach {
            act(target)
        } else {
            self.walk_to(Vec3::new(at.x + 1.0, 0.0, at.z + 1.0))
        }
    }

    fn walk_to(&mut self, to: Vec3) -> Action {
        self.guess = to;
        Action::Move { to }
    }
}

fn pick(rng: &mut impl Rng, from: &[(EntityId, Vec3)]) -> Option<(EntityId, Vec3)> {
    if from.is_empty() {
        None
    } else {
        Some(from[rng.gen_range(0..from.len())])
    }
}
