//! The simulated world: four regions meeting at one corner, a busy zone around that corner, and
//! what the bots know about it.
//!
//! Invariants:
//! - [`WorldSpec::build`] is a pure function of `(seed, players, density)`;
//! - every entity lies in one of [`WorldSpec::regions`], and the zone straddles all four, so bots
//!   cross region borders all the time;
//! - the zone holds few trees and rocks with many hit points, so many players harvest the same
//!   resource in the same frames;
//! - [`WorldSpec::totals`] is the resource count the rules must conserve.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::kv::{run, Database, FdbResult};
use sekai_layer::world::generate::{generate_region, load};
use sekai_layer::world::model::{Entity, EntityKind, Inventory};
use sekai_layer::world::players::bind_avatar;
use sekai_layer::world::rules::{resource_totals, ResourceTotals};
use sekai_schema::geometry::REGION_SIZE;
use sekai_schema::{Area, EntityId, PlayerId, RegionId, Vec3, WorldKeys};

/// The world number of simulated runs: the one-byte prefix `sekai serve` uses too, so the
/// simulation drives the shipped key layout.
pub const WORLD: u32 = 0;

/// Half the side of the busy zone around the corner, in metres.
pub const ZONE_HALF: f32 = 24.0;

/// Hit points of a zone tree or rock.
pub const ZONE_RESOURCE_HP: u32 = 30;

/// Items lying on the ground in the zone at the start.
pub const ZONE_ITEMS: usize = 10;

/// A player, its avatar and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayerSpec {
    /// The player.
    pub player: PlayerId,
    /// Its avatar entity.
    pub avatar: EntityId,
    /// Where the avatar starts.
    pub spawn: Vec3,
    /// The client's area of interest.
    pub area: Area,
}

/// The generated world and what bots may know of it.
#[derive(Clone, Debug)]
pub struct WorldSpec {
    /// The regions simulated (each gets processors).
    pub regions: Vec<RegionId>,
    /// Every entity at the start.
    pub entities: Vec<Entity>,
    /// The players.
    pub players: Vec<PlayerSpec>,
    /// Trees and rocks in the zone (bots harvest them).
    pub resources: Vec<(EntityId, Vec3)>,
    /// Resources the world holds; the rules conserve them.
    pub totals: ResourceTotals,
}

/// The corner the four regions meet at.
pub fn corner() -> Vec3 {
    Vec3::new(REGION_SIZE, 0.0, REGION_SIZE)
}

/// A uniformly random point in the zone.
pub fn zone_point(rng: &mut impl Rng) -> Vec3 {
    let c = corner();
    Vec3::new(
        c.x + rng.gen_range(-ZONE_HALF..ZONE_HALF),
        0.0,
        c.z + rng.gen_range(-ZONE_HALF..ZONE_HALF),
    )
}

impl WorldSpec {
    /// Builds the world of `seed` for `players` players; generated resources have `density`.
    pub fn build(seed: u64, players: usize, density: f32) -> Self {
        let regions = vec![
            RegionId::new(0, 0),
            RegionId::new(1, 0),
            RegionId::new(0, 1),
            RegionId::new(1, 1),
        ];
        let mut entities: Vec<Entity> = regions
            .iter()
            .flat_map(|r| generate_region(seed, *r, density))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0f2_011d);
        let c = corner();
        let mut resources = Vec::new();
        let zone_resources = [
            (EntityKind::Tree, -6.0, -6.0),
            (EntityKind::Tree, 6.0, 2.0),
            (EntityKind::Rock, 2.0, -7.0),
            (EntityKind::Rock, -7.0, 5.0),
        ];
        for (kind, dx, dz) in zone_resources {
            let entity = plain(&mut rng, kind, Vec3::new(c.x + dx, 0.0, c.z + dz));
            resources.push((entity.id, entity.position));
            entities.push(entity.with_hp(ZONE_RESOURCE_HP));
        }
        for i in 0..ZONE_ITEMS {
            let kind = if i % 2 == 0 {
                EntityKind::ItemWood
            } else {
                EntityKind::ItemStone
            };
            let at = zone_point(&mut rng);
            entities.push(plain(&mut rng, kind, at).with_hp(1));
        }
        let players: Vec<PlayerSpec> = (1..=players as PlayerId)
            .map(|player| {
                let spawn = zone_point(&mut rng);
                let area_center = zone_point(&mut rng);
                PlayerSpec {
                    player,
                    avatar: EntityId::from_u128((u128::from(player) << 64) | 0xA7A7),
                    spawn,
                    area: Area::new(area_center, rng.gen_range(10.0..40.0)),
                }
            })
            .collect();
        for p in &players {
            entities.push(Entity {
                id: p.avatar,
                kind: EntityKind::PlayerAvatar,
                hp: 100,
                position: p.spawn,
                inventory: Inventory::default(),
                owner: p.player,
            });
        }
        let totals = resource_totals(&entities);
        Self {
            regions,
            entities,
            players,
            resources,
            totals,
        }
    }

    /// The world's keys.
    pub fn keys() -> WorldKeys {
        WorldKeys::numbered(WORLD)
    }

    /// Writes every entity with its indexes and records each player's avatar (so frames
    /// forward inputs that reach a region the avatar has left); idempotent, retried.
    pub async fn load<D: Database>(&self, db: &D, keys: &WorldKeys) -> FdbResult<usize> {
        let loaded = load(db, keys, self.entities.iter().cloned(), 256, |_| {}).await?;
        let players = &self.players;
        run(db, |trx, _| async move {
            for p in players {
                bind_avatar(&trx, keys, p.player, p.avatar);
            }
            Ok(())
        })
        .await?;
        Ok(loaded)
    }
}

/// An unowned entity of `kind` at `at` with a random id.
fn plain(rng: &mut impl Rng, kind: EntityKind, at: Vec3) -> Entity {
    Entity {
        id: EntityId::from_u128(rng.gen()),
        kind,
        hp: 1,
        position: at,
        inventory: Inventory::default(),
        owner: 0,
    }
}

/// Builder-style hit points.
trait WithHp {
    fn with_hp(self, hp: u32) -> Self;
}

impl WithHp for Entity {
    fn with_hp(mut self, hp: u32) -> Self {
        self.hp = hp;
        self
    }
}
