//! `sekai demo`: the critical loop live on the embedded engine, in one process.
//!
//! A generated world, one processor per region (T2), and N bots that submit inputs through T1
//! at 10 Hz (moves) and 1 Hz (harvests). Each input's latency is measured from the moment the
//! bot starts T1 until the frame that applies it has committed, split into stages: T1 commit
//! and the wait for the frame. Edges over QUIC are not part of this demo yet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::world::generate::{generate_region, load};
use sekai_layer::world::inbox;
use sekai_layer::world::model::{Action, Entity, EntityKind, Input, Inventory, Vec3};
use sekai_layer::world::processor::{run_processor, CommittedFrame, ProcessorStats};
use sekai_layer::world::rules::REACH;
use sekai_schema::geometry::region_of;
use sekai_schema::{EntityId, PlayerId, RegionId, WorldKeys};

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Number of bots.
    pub bots: usize,
    /// How long the bots play.
    pub seconds: f64,
    /// Regions per side of the square world.
    pub regions_per_side: i32,
    /// Resources per 100 m².
    pub density: f32,
    /// Seed of the world and the bots.
    pub seed: u64,
    /// Data directory; a temporary one when `None`.
    pub dir: Option<std::path::PathBuf>,
}

type Pending = Arc<Mutex<HashMap<(PlayerId, u64), (Instant, Instant)>>>;

struct Latencies {
    t1: Histogram<u64>,
    frame_wait: Histogram<u64>,
    total: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("three significant figures is a valid histogram precision")
}

/// The demo's final figures.
#[derive(Debug)]
pub struct DemoReport {
    /// Inputs applied per second.
    pub inputs_per_sec: f64,
    /// Frames per second over all regions.
    pub frames_per_sec: f64,
    /// (p50, p99, p999) in microseconds for T1, frame wait, and input-to-frame.
    pub stages: Vec<(&'static str, u64, u64, u64)>,
    /// Inputs the rules rejected.
    pub rejected: u64,
}

/// Runs the demo and returns its report.
pub async fn run_demo(config: DemoConfig) -> Result<DemoReport, String> {
    let db = match &config.dir {
        Some(dir) => EmbeddedDatabase::open(dir),
        None => EmbeddedDatabase::temporary(EngineOptions::default()),
    }
    .map_err(|e| e.to_string())?;
    let keys = WorldKeys::new("sekai/demo").map_err(|e| e.to_string())?;
    let regions: Vec<RegionId> = (0..config.regions_per_side)
        .flat_map(|x| (0..config.regions_per_side).map(move |z| RegionId::new(x, z)))
        .collect();
    let mut resources: HashMap<RegionId, Vec<Entity>> = HashMap::new();
    let started = Instant::now();
    for region in &regions {
        let entities = generate_region(config.seed, *region, config.density);
        resources.insert(*region, entities.clone());
        load(&db, &keys, entities, 5_000, |_| {})
            .await
            .map_err(|e| e.to_string())?;
    }
    let total: usize = resources.values().map(Vec::len).sum();
    println!(
        "world: {} regions, {total} resources loaded in {:.1?}",
        regions.len(),
        started.elapsed()
    );

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut bots = Vec::new();
    for i in 0..config.bots {
        let region = regions[i % regions.len()];
        let list = resources
            .get(&region)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let home = match list.get(rng.gen_range(0..list.len().max(1))) {
            Some(resource) => resource.position,
            None => {
                let (x, z) = region.center();
                Vec3::new(x as f32, 0.0, z as f32)
            }
        };
        bots.push(
            spawn_avatar(&db, &keys, i as PlayerId + 1, home, &mut rng)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    println!("{} bot avatars placed", bots.len());

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(ProcessorStats::default());
    let pending: Pending = Arc::default();
    let latencies = Arc::new(Mutex::new(Latencies {
        t1: histogram(),
        frame_wait: histogram(),
        total: histogram(),
    }));
    let rejected = Arc::new(AtomicU64::new(0));
    let mut processors = Vec::new();
    for region in &regions {
        let (db, keys, stop, stats) = (db.clone(), keys.clone(), stop.clone(), stats.clone());
        let (pending, latencies, rejected) = (pending.clone(), latencies.clone(), rejected.clone());
        let holder: u128 = rng.gen();
        let region = *region;
        processors.push(tokio::spawn(async move {
            run_processor(
                db,
                keys,
                region,
                holder,
                stop,
                stats,
                move |frame: &CommittedFrame| {
                    record_frame(frame, &pending, &latencies, &rejected);
                },
            )
            .await;
        }));
    }

    let play_stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (player, position) in bots {
        let region = region_of(&position);
        let targets: Vec<(EntityId, Vec3)> = resources
            .get(&region)
            .map(|list| list.iter().map(|e| (e.id, e.position)).collect())
            .unwrap_or_default();
        let (db, keys, stop, pending) =
            (db.clone(), keys.clone(), play_stop.clone(), pending.clone());
        let seed = config.seed ^ player;
        tasks.push(tokio::spawn(async move {
            play(db, keys, player, position, targets, seed, stop, pending).await;
        }));
    }
    let play_started = Instant::now();
    let mut last = (0u64, 0u64);
    while play_started.elapsed().as_secs_f64() < config.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (
            stats.inputs.load(Ordering::Relaxed),
            stats.frames.load(Ordering::Relaxed),
        );
        let (p50, p99) = latencies
            .lock()
            .map(|l| {
                (
                    l.total.value_at_quantile(0.5),
                    l.total.value_at_quantile(0.99),
                )
            })
            .unwrap_or_default();
        eprintln!(
            "[{:>4.0}s] {:>6} inputs/s {:>5} frames/s  input-to-frame p50 {:>6.2} ms p99 {:>6.2} ms",
            play_started.elapsed().as_secs_f64(),
            now.0 - last.0,
            now.1 - last.1,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0
        );
        last = now;
    }
    play_stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for processor in processors {
        let _ = processor.await;
    }
    let elapsed = play_started.elapsed().as_secs_f64();
    let lat = latencies
        .lock()
        .map_err(|_| "latency lock poisoned".to_string())?;
    let q = |h: &Histogram<u64>| {
        (
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
        )
    };
    let stage = |name, h: &Histogram<u64>| {
        let (a, b, c) = q(h);
        (name, a, b, c)
    };
    Ok(DemoReport {
        inputs_per_sec: stats.inputs.load(Ordering::Relaxed) as f64 / elapsed,
        frames_per_sec: stats.frames.load(Ordering::Relaxed) as f64 / elapsed,
        stages: vec![
            stage("T1 commit (ack)", &lat.t1),
            stage("ack -> frame committed", &lat.frame_wait),
            stage("input -> frame committed", &lat.total),
        ],
        rejected: rejected.load(Ordering::Relaxed),
    })
}

fn record_frame(
    frame: &CommittedFrame,
    pending: &Pending,
    latencies: &Mutex<Latencies>,
    rejected: &AtomicU64,
) {
    let now = Instant::now();
    let rejected_here = frame.delta.outcomes.iter().filter(|o| !o.accepted).count();
    rejected.fetch_add(rejected_here as u64, Ordering::Relaxed);
    let (Ok(mut pending), Ok(mut lat)) = (pending.lock(), latencies.lock()) else {
        return;
    };
    for key in &frame.record.inputs {
        if let Some((sent, acked)) = pending.remove(key) {
            let _ = lat.t1.record(acked.duration_since(sent).as_micros() as u64);
            let _ = lat
                .frame_wait
                .record(now.duration_since(acked).as_micros() as u64);
            let _ = lat
                .total
                .record(now.duration_since(sent).as_micros() as u64);
        }
    }
}

async fn spawn_avatar(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    player: PlayerId,
    near: Vec3,
    rng: &mut ChaCha8Rng,
) -> Result<(PlayerId, Vec3), sekai_layer::world::error::WorldError> {
    let position = Vec3::new(
        near.x + rng.gen_range(-1.0..1.0),
        0.0,
        near.z + rng.gen_range(-1.0..1.0),
    );
    let avatar = Entity {
        id: EntityId::from_u128(rng.gen()),
        kind: EntityKind::PlayerAvatar,
        hp: 100,
        position,
        inventory: Inventory::default(),
        owner: player,
    };
    sekai_layer::world::write::create_entity(db, keys, &avatar).await?;
    Ok((player, position))
}

/// One bot: moves at 10 Hz around the resource it works on and harvests it once a second.
#[allow(clippy::too_many_arguments)]
async fn play(
    db: EmbeddedDatabase,
    keys: WorldKeys,
    player: PlayerId,
    mut position: Vec3,
    targets: Vec<(EntityId, Vec3)>,
    seed: u64,
    stop: Arc<AtomicBool>,
    pending: Pending,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let Some(&(mut target, mut target_at)) = targets.first() else {
        return;
    };
    tick.tick().await;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        seq += 1;
        let action = if seq.is_multiple_of(10) {
            if rng.gen_bool(0.1) {
                (target, target_at) = targets[rng.gen_range(0..targets.len())];
            }
            Action::Harvest { target }
        } else {
            let dx = target_at.x - position.x;
            let dz = target_at.z - position.z;
            let dist = (dx * dx + dz * dz).sqrt();
            let keep = (REACH * 0.5).min(dist);
            let step = if dist > 0.0 {
                ((dist - keep) / dist).min(1.0)
            } else {
                0.0
            };
            let to = Vec3::new(
                position.x + dx * step + rng.gen_range(-0.2..0.2),
                0.0,
                position.z + dz * step + rng.gen_range(-0.2..0.2),
            );
            let moved = to.ground_distance_squared(&position).sqrt();
            if moved <= sekai_layer::world::rules::MAX_STEP
                && region_of(&to) == region_of(&position)
            {
                position = to;
            }
            Action::Move { to: position }
        };
        let input = Input {
            player,
            seq,
            action,
        };
        let sent = Instant::now();
        match inbox::submit(&db, &keys, region_of(&position), &input).await {
            Ok(()) => {
                if let Ok(mut p) = pending.lock() {
                    p.insert((player, seq), (sent, Instant::now()));
                }
            }
            Err(error) => tracing::warn!(player, %error, "T1 failed"),
        }
    }
}

/// Prints the report as text and JSON.
pub fn print_report(config: &DemoConfig, report: &DemoReport) {
    println!(
        "\nsekai demo: {} bots, {} regions, {:.0} s, seed {}",
        config.bots,
        config.regions_per_side.pow(2),
        config.seconds,
        config.seed
    );
    println!(
        "inputs/s {:.0}   frames/s {:.0}   rejected by rules {}",
        report.inputs_per_sec, report.frames_per_sec, report.rejected
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10}",
        "stage (ms)", "p50", "p99", "p999"
    );
    for (name, p50, p99, p999) in &report.stages {
        println!(
            "{name:<26} {:>10.2} {:>10.2} {:>10.2}",
            *p50 as f64 / 1e3,
            *p99 as f64 / 1e3,
            *p999 as f64 / 1e3
        );
    }
    let stages: Vec<String> = report
        .stages
        .iter()
        .map(|(n, a, b, c)| {
            format!("{{\"stage\":\"{n}\",\"p50_us\":{a},\"p99_us\":{b},\"p999_us\":{c}}}")
        })
        .collect();
    println!(
        "{{\"bots\":{},\"seconds\":{},\"seed\":{},\"inputs_per_sec\":{:.1},\"frames_per_sec\":{:.1},\"rejected\":{},\"stages\":[{}]}}",
        config.bots, config.seconds, config.seed, report.inputs_per_sec, report.frames_per_sec, report.rejected, stages.join(",")
    );
}
