//! World benchmarks on the durable embedded engine: how fast region processors drain their
//! inboxes with 1 and with 16 regions, and how area-query latency grows from 10,000 to
//! 1,000,000 entities. Each figure is reported with its same-run baseline as a ratio.

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_schema::{Area, EntityId, RegionId, WorldKeys};

use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::kv::{run, Database, FdbError};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::frame::HotRegion;
use sekai_layer::world::generate::{generate_region, load};
use sekai_layer::world::inbox::submit_input;
use sekai_layer::world::lease;
use sekai_layer::world::model::{Action, Entity, EntityKind, Input, Inventory, Vec3};
use sekai_layer::world::processor::{run_frame, ProcessorStats};
use sekai_layer::world::query::entities_in_area;
use sekai_layer::world::write::create_entity;

/// Throughput of processors draining pre-filled inboxes.
#[derive(Clone, Debug)]
pub struct FrameFigures {
    /// Regions processed concurrently.
    pub regions: usize,
    /// Frames committed per second, all regions together.
    pub frames_per_sec: f64,
    /// Inputs applied per second, all regions together.
    pub inputs_per_sec: f64,
}

/// Latency of area queries at one world size.
#[derive(Clone, Debug)]
pub struct AreaFigures {
    /// Entities in the world.
    pub entities: usize,
    /// Seconds it took to load them.
    pub load_seconds: f64,
    /// Median query latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Entities a query returned, on average.
    pub mean_hits: f64,
}

fn grid(n: usize) -> Vec<RegionId> {
    let side = (n as f64).sqrt().ceil() as i32;
    (0..n as i32)
        .map(|i| RegionId::new(i % side, i / side))
        .collect()
}

/// Fills `regions` with `players` avatars each and `inputs` moves per player, then runs one
/// processor per region until every inbox is empty.
pub async fn frames(
    regions: usize,
    players: u64,
    inputs: u64,
    seed: u64,
) -> Result<FrameFigures, WorldError> {
    let db = EmbeddedDatabase::temporary(EngineOptions::default())
        .map_err(|_| FdbError::from_code(1000))?;
    let keys = WorldKeys::new("bench").map_err(WorldError::Key)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let regions = grid(regions);
    let mut player = 0u64;
    for region in &regions {
        load(
            &db,
            &keys,
            generate_region(seed, *region, 0.2),
            5_000,
            |_| {},
        )
        .await?;
        let (x, z) = region.center();
        let mut batch = Vec::new();
        for _ in 0..players {
            player += 1;
            let avatar = Entity {
                id: EntityId::from_u128(rng.gen()),
                kind: EntityKind::PlayerAvatar,
                hp: 100,
                position: Vec3::new(
                    x as f32 + rng.gen_range(-50.0..50.0),
                    0.0,
                    z as f32 + rng.gen_range(-50.0..50.0),
                ),
                inventory: Inventory::default(),
                owner: player,
            };
            create_entity(&db, &keys, &avatar).await?;
            batch.extend((1..=inputs).map(|seq| Input {
                player,
                seq,
                action: Action::Move {
                    to: Vec3::new(avatar.position.x + seq as f32 * 0.1, 0.0, avatar.position.z),
                },
            }));
        }
        for chunk in batch.chunks(1_000) {
            let keys = &keys;
            run(&db, |trx, _| async move {
                for (i, input) in chunk.iter().enumerate() {
                    submit_input(&trx, keys, *region, input, i as u16);
                }
                Ok::<_, FdbError>(())
            })
            .await?;
        }
    }
    let stats = Arc::new(ProcessorStats::default());
    let started = Instant::now();
    let tasks: Vec<_> = regions
        .iter()
        .enumerate()
        .map(|(i, region)| {
            let (db, keys, stats, region) = (db.clone(), keys.clone(), stats.clone(), *region);
            tokio::spawn(async move {
                let lease = lease::acquire(&db, &keys, region, i as u128 + 1)
                    .await?
                    .ok_or(WorldError::LeaseLost(region))?;
                let mut hot = HotRegion::new(region);
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ i as u64);
                let mut new_id = move || EntityId::from_u128(rng.gen());
                while run_frame(&db, &keys, &lease, &mut hot, &mut new_id, &stats, &[])
                    .await?
                    .is_ok()
                {}
                Ok::<_, WorldError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|_| FdbError::from_code(1000))??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count =
        |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as f64;
    Ok(FrameFigures {
        regions: regions.len(),
        frames_per_sec: count(&stats.frames) / elapsed,
        inputs_per_sec: count(&stats.inputs) / elapsed,
    })
}

/// Loads a world of about `entities` entities and measures `queries` area queries of radius
/// `radius` at random points in it.
pub async fn area_queries(
    entities: usize,
    queries: usize,
    radius: f32,
    seed: u64,
) -> Result<AreaFigures, WorldError> {
    // The same density at every size, so a query finds as much in a small world as in a big one.
    const PER_REGION: usize = 10_000;
    let db = EmbeddedDatabase::temporary(EngineOptions::default())
        .map_err(|_| FdbError::from_code(1000))?;
    let keys = WorldKeys::new("bench").map_err(WorldError::Key)?;
    let regions = grid(entities.div_ceil(PER_REGION));
    let density = PER_REGION as f32 / 655.36;
    let started = Instant::now();
    let mut loaded = 0;
    for region in &regions {
        loaded += load(
            &db,
            &keys,
            generate_region(seed, *region, density),
            5_000,
            |_| {},
        )
        .await?;
        tracing::info!(loaded, "loading world");
    }
    let load_seconds = started.elapsed().as_secs_f64();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut histogram = Histogram::<u64>::new(3).map_err(|_| FdbError::from_code(1000))?;
    let mut hits = 0usize;
    for _ in 0..queries {
        let region = regions[rng.gen_range(0..regions.len())];
        let (x, z) = region.min_corner();
        let center = Vec3::new(
            x as f32 + rng.gen_range(0.0..256.0),
            0.0,
            z as f32 + rng.gen_range(0.0..256.0),
        );
        let t = Instant::now();
        let trx = db.create_trx()?;
        hits += entities_in_area(&trx, &keys, &Area::new(center, radius), true)
            .await?
            .len();
        let _ = histogram.record(t.elapsed().as_micros() as u64);
    }
    Ok(AreaFigures {
        entities: loaded,
        load_seconds,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        mean_hits: hits as f64 / queries.max(1) as f64,
    })
}
