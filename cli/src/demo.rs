//! `sekai demo`: the critical loop live, end to end, in one process.
//!
//! The embedded engine (in a temporary or given directory), a generated world, one processor per
//! region (T2), one edge over QUIC on loopback, and N bots (real QUIC clients) that move at 10 Hz
//! and act once a second. Each input's latency runs from the bot's send until the delta carrying
//! its outcome reaches the bot, split into stages: send → frame committed (T1, waiting for the
//! frame, and T2 itself), frame committed → delta at the client (watch, change-log read, filter,
//! push). The acknowledgement time (send → ack: T1, plus up to `EdgeLimits::answer_hold` while the
//! answer waits to ride in the packet of the player's next push) is reported beside them. The
//! measurement starts once every bot is connected.
//!
//! With `http` set the live map (and `/metrics`) is served while the demo runs; the caller
//! writes the report's JSON and the stages' latency CDFs (SVG) with `plot::write_report`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::world::processor::{CommittedFrame, ProcessorStats};
use sekai_schema::{PlayerId, WorldKeys};

use crate::bots::{histogram, start_bots, BotConfig, BotStats, InputTimeline, BOT_AREA_RADIUS};
use crate::plot::Cdf;
use crate::world_setup::{load_world, spawn_near_resources, start_processors, WorldShape};
use sekai_edge::observe::{ObserveConfig, Observer};
use sekai_edge::server::{EdgeConfig, EdgeServer};
use sekai_edge::token::TokenKey;

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Number of bots.
    pub bots: usize,
    /// How long the bots play (after all connected).
    pub seconds: f64,
    /// Regions per side of the square world.
    pub regions_per_side: i32,
    /// Resources per 100 m².
    pub density: f32,
    /// Seed of the world and the bots.
    pub seed: u64,
    /// Data directory; a temporary one when `None`.
    pub dir: Option<std::path::PathBuf>,
    /// Threads serving the edge's connections.
    pub edge_workers: usize,
    /// Threads running the bots.
    pub bot_threads: usize,
    /// Address of the live map (and `/metrics`); `None` for none.
    pub http: Option<SocketAddr>,
    /// Address of a separate Prometheus endpoint; `None` for none.
    pub metrics: Option<SocketAddr>,
}

/// One stage's percentiles, in microseconds.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The stage.
    pub name: &'static str,
    /// Inputs measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
}

/// The demo's final figures.
#[derive(Debug)]
pub struct DemoReport {
    /// Seconds measured.
    pub seconds: f64,
    /// Inputs whose outcome reached their bot, per second.
    pub inputs_per_sec: f64,
    /// Inputs the processors applied, per second.
    pub processed_per_sec: f64,
    /// Frames per second over all regions.
    pub frames_per_sec: f64,
    /// Per-stage percentiles; the last is the whole input-to-delta latency.
    pub stages: Vec<Stage>,
    /// Inputs the rules rejected.
    pub rejected: u64,
    /// Sends that failed at the edge.
    pub errors: u64,
    /// Bots that connected.
    pub connected: u64,
    /// Median latency of one durable single-key commit on the same engine, measured before the
    /// bots start: the run's own baseline (one fsync round trip), since machines are noisy.
    pub commit_baseline_us: u64,
    /// Each stage's latency CDF, in the order of `stages`.
    pub cdfs: Vec<Cdf>,
}

/// The median of `samples` sequential single-key durable commits, in microseconds.
async fn commit_baseline(db: &EmbeddedDatabase, samples: usize) -> Result<u64, String> {
    let mut micros = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        sekai_layer::kv::run(db, |trx, _| async move {
            sekai_layer::kv::Transaction::set(&trx, b"demo-baseline", &(i as u64).to_le_bytes());
            Ok::<_, sekai_layer::kv::FdbError>(())
        })
        .await
        .map_err(|e| e.to_string())?;
        micros.push(started.elapsed().as_micros() as u64);
    }
    micros.sort_unstable();
    Ok(micros.get(micros.len() / 2).copied().unwrap_or(0))
}

/// When each input's frame committed: (player, seq) → instant.
type FrameTimes = Arc<Mutex<HashMap<(PlayerId, u64), Instant>>>;

/// Stage histograms fed by the bots' timelines (every applied input); the send-to-ack stage is
/// the bots' own histogram, since an answer may ride in the same packet as the delta.
struct StageHistograms {
    to_frame: Histogram<u64>,
    push: Histogram<u64>,
    total: Histogram<u64>,
}

impl StageHistograms {
    fn new() -> Self {
        Self {
            to_frame: histogram(),
            push: histogram(),
            total: histogram(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs the demo and returns its report.
pub async fn run_demo(config: DemoConfig) -> Result<DemoReport, String> {
    let db = match &config.dir {
        Some(dir) => EmbeddedDatabase::open(dir),
        None => EmbeddedDatabase::temporary(EngineOptions::default()),
    }
    .map_err(|e| e.to_string())?;
    let keys = WorldKeys::numbered(crate::commands::WORLD);
    let shape = WorldShape {
        regions_per_side: config.regions_per_side.max(1),
        density: config.density,
        seed: config.seed,
    };
    let started = Instant::now();
    let resources = load_world(&db, &keys, &shape).await?;
    println!(
        "world: {} regions, {} resources loaded in {:.1?}",
        shape.regions().len(),
        resources.values().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );

    let commit_baseline_us = commit_baseline(&db, 200).await?;
    println!(
        "baseline: one durable single-key commit takes {:.2} ms (median of 200)",
        commit_baseline_us as f64 / 1e3
    );

    let stop = Arc::new(AtomicBool::new(false));
    let processor_stats = Arc::new(ProcessorStats::default());
    let frame_times: FrameTimes = Arc::default();
    let on_frame = {
        let frame_times = frame_times.clone();
        move |frame: &CommittedFrame| {
            let now = Instant::now();
            if let Ok(mut times) = frame_times.lock() {
                for key in &frame.record.inputs {
                    times.insert(*key, now);
                }
            }
        }
    };
    let (processors, direct) =
        start_processors(&db, &keys, &shape, &stop, &processor_stats, on_frame);

    let tokens = TokenKey::new(rand::random::<[u8; 32]>().to_vec());
    let mut edge_config = EdgeConfig::new(
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        tokens.clone(),
    );
    edge_config.workers = config.edge_workers.max(1);
    edge_config.direct = direct;
    edge_config.spawn = spawn_near_resources(&shape, &resources);
    let edge = EdgeServer::start(db.clone(), keys.clone(), edge_config)
        .await
        .map_err(|e| e.to_string())?;
    let addr = edge.local_addr().map_err(|e| e.to_string())?;
    println!(
        "edge: quic://{addr}, {} workers",
        config.edge_workers.max(1)
    );
    let observe = ObserveConfig {
        http: config.http,
        metrics: config.metrics,
    };
    let observer = Observer::start(observe, &db, &keys, edge.fanout(), shape.regions()).await?;
    if let Some(url) = observer.map_url() {
        println!("map: {url}");
    }
    if let Some(url) = observer.metrics_url() {
        println!("metrics: {url}");
    }

    let stages = Arc::new(Mutex::new(StageHistograms::new()));
    let hook = {
        let (stages, frame_times) = (stages.clone(), frame_times.clone());
        Arc::new(move |t: &InputTimeline| {
            let framed = frame_times
                .lock()
                .ok()
                .and_then(|mut times| times.remove(&(t.player, t.seq)));
            if let Ok(mut h) = stages.lock() {
                let _ = h.total.record(micros(t.delivered.duration_since(t.sent)));
                if let Some(framed) = framed {
                    let _ = h
                        .to_frame
                        .record(micros(framed.saturating_duration_since(t.sent)));
                    let _ = h
                        .push
                        .record(micros(t.delivered.saturating_duration_since(framed)));
                }
            }
        })
    };
    let bot_stats = Arc::new(BotStats::default());
    let bot_threads = start_bots(
        BotConfig {
            server: addr,
            certificate: edge.certificate().clone(),
            tokens,
            bots: config.bots,
            first_player: 1,
            seed: config.seed,
            threads: config.bot_threads.max(1),
            on_applied: Some(hook),
            area_radius: BOT_AREA_RADIUS,
        },
        bot_stats.clone(),
    );

    let connecting = Instant::now();
    while bot_stats.connected.load(Ordering::Relaxed) < config.bots as u64
        && connecting.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = bot_stats.connected.load(Ordering::Relaxed);
    println!(
        "{connected}/{} bots connected in {:.1?}",
        config.bots,
        connecting.elapsed()
    );

    // Measure from here on.
    if let Ok(mut h) = stages.lock() {
        *h = StageHistograms::new();
    }
    let base = Counters::read(&bot_stats, &processor_stats);
    let measuring = Instant::now();
    let progress = progress_bar(config.seconds);
    let mut last = base;
    while measuring.elapsed().as_secs_f64() < config.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Counters::read(&bot_stats, &processor_stats);
        let (p50, p99) = stages
            .lock()
            .map(|h| {
                (
                    h.total.value_at_quantile(0.5),
                    h.total.value_at_quantile(0.99),
                )
            })
            .unwrap_or_default();
        let line = format!(
            "{:>6} inputs/s {:>5} frames/s  input-to-delta p50 {:>6.2} ms p99 {:>6.2} ms",
            now.applied - last.applied,
            now.frames - last.frames,
            p50 as f64 / 1e3,
            p99 as f64 / 1e3
        );
        if progress.is_hidden() {
            eprintln!("[{:>4.0}s] {line}", measuring.elapsed().as_secs_f64());
        } else {
            progress.set_position(measuring.elapsed().as_secs());
            progress.set_message(line);
        }
        last = now;
    }
    progress.finish_and_clear();
    let end = Counters::read(&bot_stats, &processor_stats);
    let elapsed = measuring.elapsed().as_secs_f64();

    bot_stats.stop();
    let _ = tokio::task::spawn_blocking(move || {
        for thread in bot_threads {
            let _ = thread.join();
        }
    })
    .await;
    observer.shutdown().await;
    edge.shutdown().await;
    stop.store(true, Ordering::Relaxed);
    for processor in processors {
        let _ = processor.await;
    }

    let h = stages
        .lock()
        .map_err(|_| "stage histograms poisoned".to_string())?;
    let acks = bot_stats
        .t1
        .lock()
        .map_err(|_| "ack histogram poisoned".to_string())?
        .clone();
    let cdfs = vec![
        Cdf::of("send -> ack (store + hold)", &acks),
        Cdf::of("send -> frame committed", &h.to_frame),
        Cdf::of("frame -> delta at client", &h.push),
        Cdf::of("input -> delta (total)", &h.total),
    ];
    let stage = |name, h: &Histogram<u64>| Stage {
        name,
        count: h.len(),
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
    };
    Ok(DemoReport {
        seconds: elapsed,
        inputs_per_sec: (end.applied - base.applied) as f64 / elapsed,
        processed_per_sec: (end.processed - base.processed) as f64 / elapsed,
        frames_per_sec: (end.frames - base.frames) as f64 / elapsed,
        stages: vec![
            stage("send -> ack (store + hold)", &acks),
            stage("send -> frame committed", &h.to_frame),
            stage("frame -> delta at client", &h.push),
            stage("input -> delta (total)", &h.total),
        ],
        rejected: end.rejected - base.rejected,
        errors: end.errors - base.errors,
        connected,
        commit_baseline_us,
        cdfs,
    })
}

/// Counters sampled once a second.
#[derive(Clone, Copy)]
struct Counters {
    applied: u64,
    rejected: u64,
    errors: u64,
    processed: u64,
    frames: u64,
}

impl Counters {
    fn read(bots: &BotStats, processors: &ProcessorStats) -> Self {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Self {
            applied: get(&bots.applied),
            rejected: get(&bots.rejected),
            errors: get(&bots.errors),
            processed: get(&processors.inputs),
            frames: get(&processors.frames),
        }
    }
}

fn progress_bar(seconds: f64) -> ProgressBar {
    let bar = ProgressBar::new(seconds.ceil() as u64);
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:20}] {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Prints the report as text and JSON.
pub fn print_report(config: &DemoConfig, report: &DemoReport) {
    print_text(config, report);
    println!("{}", report_json(config, report));
}

/// The report as text.
fn print_text(config: &DemoConfig, report: &DemoReport) {
    println!(
        "\nsekai demo: {} bots ({} connected) over QUIC, {} regions, {:.0} s measured, seed {}",
        config.bots,
        report.connected,
        config.regions_per_side.pow(2),
        report.seconds,
        config.seed
    );
    println!(
        "inputs/s {:.0} (outcome at the bot)   processed/s {:.0}   frames/s {:.0}   rejected by rules {}   edge errors {}",
        report.inputs_per_sec, report.processed_per_sec, report.frames_per_sec, report.rejected, report.errors
    );
    let baseline = report.commit_baseline_us.max(1) as f64;
    println!(
        "{:<28} {:>9} {:>10} {:>10} {:>10} {:>14}",
        "stage (ms)", "inputs", "p50", "p99", "p999", "p50/baseline"
    );
    for s in &report.stages {
        println!(
            "{:<28} {:>9} {:>10.2} {:>10.2} {:>10.2} {:>13.1}x",
            s.name,
            s.count,
            s.p50 as f64 / 1e3,
            s.p99 as f64 / 1e3,
            s.p999 as f64 / 1e3,
            s.p50 as f64 / baseline
        );
    }
    println!(
        "baseline (one durable single-key commit, same engine, before the run): {:.2} ms",
        baseline / 1e3
    );
}

/// The report as one JSON object.
pub fn report_json(config: &DemoConfig, report: &DemoReport) -> String {
    let stages: Vec<String> = report
        .stages
        .iter()
        .map(|s| {
            format!(
                "{{\"stage\":\"{}\",\"count\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}}}",
                s.name, s.count, s.p50, s.p99, s.p999
            )
        })
        .collect();
    format!(
        "{{\"bots\":{},\"connected\":{},\"seconds\":{:.1},\"seed\":{},\"commit_baseline_us\":{},\"inputs_per_sec\":{:.1},\"processed_per_sec\":{:.1},\"frames_per_sec\":{:.1},\"rejected\":{},\"errors\":{},\"stages\":[{}]}}",
        config.bots, report.connected, report.seconds, config.seed, report.commit_baseline_us, report.inputs_per_sec, report.processed_per_sec, report.frames_per_sec, report.rejected, report.errors, stages.join(",")
    )
}
