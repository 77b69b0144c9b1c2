//! A playable world for `sekai demo` and `sekai serve`: generated resources loaded into the
//! database, this process's processor node (its fair share of the regions), and spawn points
//! next to resources.
//!
//! Invariants: the world is a function of (seed, regions per side, density); player `p` spawns
//! within a metre of a resource of region `p mod regions`, inside that region.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::kv::Database;
use sekai_layer::world::assign::{run_node, NodeSpec};
use sekai_layer::world::direct::DirectInputs;
use sekai_layer::world::generate::{generate_region, load};
use sekai_layer::world::model::{Entity, Vec3};
use sekai_layer::world::nodes::Roles;
use sekai_layer::world::processor::{CommittedFrame, ProcessorStats};
use sekai_schema::geometry::region_of;
use sekai_schema::{PlayerId, RegionId, WorldKeys};

use sekai_edge::server::SpawnFn;

/// The shape of a generated world.
#[derive(Clone, Copy, Debug)]
pub struct WorldShape {
    /// Regions per side of the square world (regions (0..n, 0..n)).
    pub regions_per_side: i32,
    /// Resources per 100 m².
    pub density: f32,
    /// Seed of the generation and the spawn points.
    pub seed: u64,
}

impl WorldShape {
    /// The world's regions.
    pub fn regions(&self) -> Vec<RegionId> {
        let n = self.regions_per_side.max(1);
        (0..n)
            .flat_map(|x| (0..n).map(move |z| RegionId::new(x, z)))
            .collect()
    }
}

/// Generates and loads the world's resources; returns them by region.
pub async fn load_world<D: Database>(
    db: &D,
    keys: &WorldKeys,
    shape: &WorldShape,
) -> Result<HashMap<RegionId, Vec<Entity>>, String> {
    let mut resources = HashMap::new();
    for region in shape.regions() {
        let entities = generate_region(shape.seed, region, shape.density);
        load(db, keys, entities.clone(), 5_000, |_| {})
            .await
            .map_err(|e| format!("loading {region}: {e}"))?;
        resources.insert(region, entities);
    }
    Ok(resources)
}

/// Spawn points: player `p` near a resource of region `p mod regions` (the region's centre
/// when it has none).
pub fn spawn_near_resources(
    shape: &WorldShape,
    resources: &HashMap<RegionId, Vec<Entity>>,
) -> SpawnFn {
    let regions = shape.regions();
    let by_region: Vec<Vec<Vec3>> = regions
        .iter()
        .map(|r| {
            resources
                .get(r)
                .map(|list| list.iter().map(|e| e.position).collect())
                .unwrap_or_default()
        })
        .collect();
    let seed = shape.seed;
    Arc::new(move |player: PlayerId| {
        let index = (player as usize) % regions.len().max(1);
        let region = regions.get(index).copied().unwrap_or_default();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ player.rotate_left(17));
        let near = by_region
            .get(index)
            .filter(|list| !list.is_empty())
            .map(|list| list[rng.gen_range(0..list.len())])
            .unwrap_or_else(|| {
                let (x, z) = region.center();
                Vec3::new(x as f32, 0.0, z as f32)
            });
        let at = Vec3::new(
            near.x + rng.gen_range(-1.0..1.0),
            0.0,
            near.z + rng.gen_range(-1.0..1.0),
        );
        if region_of(&at) == region {
            at
        } else {
            near
        }
    })
}

/// Starts this process's processor node on the current runtime: it announces itself, takes its
/// fair share of the world's regions (all of them when it is alone) and runs one processor per
/// held region, until `stop` is set; then it hands its regions over (`assign::run_node`).
/// Returns its task and where this process's edge hands inputs to its processors
/// (`EdgeConfig::direct`).
pub fn start_processors<D: Database>(
    db: &D,
    keys: &WorldKeys,
    shape: &WorldShape,
    stop: &Arc<AtomicBool>,
    stats: &Arc<ProcessorStats>,
    on_frame: impl Fn(&CommittedFrame) + Send + Sync + Clone + 'static,
) -> (Vec<tokio::task::JoinHandle<()>>, DirectInputs) {
    start_node(db, keys, shape, Roles::BOTH, stop, stats, on_frame)
}

/// Like [`start_processors`], announcing `roles` (which must include the processor role).
pub fn start_node<D: Database>(
    db: &D,
    keys: &WorldKeys,
    shape: &WorldShape,
    roles: Roles,
    stop: &Arc<AtomicBool>,
    stats: &Arc<ProcessorStats>,
    on_frame: impl Fn(&CommittedFrame) + Send + Sync + Clone + 'static,
) -> (Vec<tokio::task::JoinHandle<()>>, DirectInputs) {
    let direct = DirectInputs::default();
    let spec = NodeSpec {
        holder: node_holder(),
        roles,
        regions: shape.regions(),
        direct: direct.clone(),
    };
    let task = tokio::spawn(run_node(
        db.clone(),
        keys.clone(),
        spec,
        stop.clone(),
        stats.clone(),
        on_frame,
    ));
    (vec![task], direct)
}

/// A fresh lease-holder id for this process: from the OS's randomness, never from the world's
/// seed (every process serving a world must be a distinct holder), and odd (0 means "no holder").
pub fn node_holder() -> u128 {
    let holder: u128 = rand::rngs::OsRng.gen::<u128>() | 1;
    tracing::info!(holder = %format!("{holder:032x}"), "node lease holder id");
    holder
}
