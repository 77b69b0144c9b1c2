//! The `sekai serve`, `sekai bots` and `sekai inspect` commands.
//!
//! - `serve`: the embedded engine on a data directory, the generated world (only when the
//!   directory holds none yet), with `--roles` a processor node (its fair share of the regions,
//!   shared with every other processor node on the same database) and an edge, until Ctrl-C;
//!   with `--http` the live map and with `--metrics` Prometheus metrics (see `observe`). It keeps
//!   the edge's self-signed certificate (DER) in `<dir>/edge-cert.der` for clients to pin,
//!   reused on every start; a directory still locked by a dying process is waited for;
//! - `bots`: N bots against a running edge, with the edge's certificate and token secret;
//! - `inspect`: read-only views of a stopped server's directory: entities near a point, a
//!   region's frame log, and the region heads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustls::pki_types::CertificateDer;
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::kv::{Database, RangeOption, Transaction};
use sekai_layer::world::audit;
use sekai_layer::world::direct::DirectInputs;
use sekai_layer::world::nodes::{run_heartbeat, Roles};
use sekai_layer::world::processor::ProcessorStats;
use sekai_layer::world::query::{entities_in_area, frames};
use sekai_schema::{Area, KeyKind, KeyRange, RegionId, Vec3, WorldKeys};

use crate::bots::{quantiles, start_bots, BotConfig, BotStats};
use crate::plot::Cdf;
use crate::thread_policy::{self, ThreadPolicy};
use crate::world_setup::{load_world, node_holder, spawn_near_resources, start_node, WorldShape};
use sekai_edge::observe::{ObserveConfig, Observer};
use sekai_edge::server::{EdgeConfig, EdgeServer};
use sekai_edge::tls::TlsSource;
use sekai_edge::token::TokenKey;

/// The number of the world the commands serve: its keys start with the one-byte prefix `(0,)`
/// (`WorldKeys::numbered`).
pub const WORLD: u32 = 0;

/// The world's prefix in data written before 2026-11-30 (the string `"sekai/world"`, with
/// string subspace tags), which this build does not read.
const LEGACY_WORLD: &str = "sekai/world";

/// The keys of the commands' world in `db`; refuses a store that holds a world in the key layout
/// of earlier builds, rather than serving an empty world beside it.
pub async fn world_keys<D: Database>(db: &D) -> Result<WorldKeys, String> {
    let legacy = WorldKeys::new(LEGACY_WORLD).map_err(|e| e.to_string())?;
    if holds_any(db, legacy.range()).await? {
        return Err(format!(
            "this store holds a world in the key layout of sekai builds before 2026-11-30 \
             (prefix {LEGACY_WORLD:?}), which this build cannot read: serve a new data \
             directory, or run the build that wrote it"
        ));
    }
    Ok(WorldKeys::numbered(WORLD))
}

pub use sekai_edge::tls::CERT_FILE;

/// `sekai serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Data directory of the embedded engine.
    #[arg(long)]
    pub dir: PathBuf,
    /// UDP address of the edge.
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub listen: SocketAddr,
    /// Secret of the login tokens (or the SEKAI_EDGE_SECRET environment variable).
    #[arg(long, env = "SEKAI_EDGE_SECRET")]
    pub secret: String,
    /// Certificate chain (PEM); when absent, a self-signed one kept in `--dir` (made on first
    /// start, reused after) names localhost, the listen address and every `--hostname`.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `--cert`.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Regions per side of the generated world.
    #[arg(long, default_value_t = 2)]
    pub regions_per_side: i32,
    /// Resources per 100 m² of the generated world.
    #[arg(long, default_value_t = 0.5)]
    pub density: f32,
    /// Seed of the generated world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Extra DNS name or IP address for the self-signed certificate (repeatable).
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
    /// Threads serving connections; 0 runs the whole server (connections, processors, fan-out)
    /// on one thread, with only the store's committer apart: the fewest hand-offs between
    /// threads, best when the server has one core.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// How the server's threads are scheduled (Linux): `batch` makes them `SCHED_BATCH`, so a
    /// thread handing messages to another is not preempted by it after each one (the receiver
    /// takes the burst in one run), and the store's flushes and compactions `SCHED_IDLE`, so
    /// they never hold a server thread back; `normal` leaves the system's default.
    #[arg(long, value_enum, default_value_t = ThreadPolicy::Batch)]
    pub thread_policy: ThreadPolicy,
    /// Seconds without a packet before a connection is closed (the edge keeps quiet clients
    /// alive with pings every third of it).
    #[arg(long, default_value_t = 30)]
    pub idle_timeout_secs: u64,
    /// MiB of whole-region snapshots the edge keeps current from the change log, so subscribe
    /// and resume snapshots cost no range read; 0 turns the cache off.
    #[arg(long, default_value_t = 64)]
    pub cache_mb: u64,
    /// Seconds a subscription's full push window may stay unanswered (a client that stopped
    /// reading) before the edge resets the subscription.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 10.0)]
    pub stall_timeout_secs: f64,
    /// Milliseconds an input stream's answers may wait for a push of the player to carry them
    /// in the same packet (while a streamed subscription of the player is open); 0 writes each
    /// answer at once, in its own packet.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = sekai_edge::server::DEFAULT_ANSWER_HOLD.as_secs_f64() * 1e3)]
    pub answer_hold_ms: f64,
    /// Milliseconds of standing queue the edge tolerates before it sheds load: when, for a whole
    /// 100 ms, every input took this much longer from admission to outcome than the fastest ever,
    /// or the connection thread never paused this long, it refuses 5 % more of the inputs it
    /// would store (`overloaded`: not stored, send again later), up to 95 %; 1 % less after each
    /// calm 100 ms. 0 never sheds (every input queues, however long the queue grows).
    #[arg(long, value_parser = crate::flags::duration, default_value_t = sekai_edge::session::shedding::DEFAULT_SHED_TARGET.as_secs_f64() * 1e3)]
    pub shed_target_ms: f64,
    /// Print a JSON line of counters to stdout every second (for `sekai bench edge`).
    #[arg(long)]
    pub stats: bool,
    /// Seconds to wait for the data directory's lock (held by another process, or by one that
    /// was just killed) before giving up.
    #[arg(long, default_value_t = 30)]
    pub lock_wait_secs: u64,
    /// Run on a FoundationDB cluster (this cluster file) instead of the embedded engine; `--dir`
    /// then only receives the edge certificate. Needs a build with `--features fdb`.
    #[arg(long)]
    pub fdb: Option<PathBuf>,
    /// Serve the live world map (and `/metrics`) over HTTP on this address, e.g.
    /// 127.0.0.1:8080 (off by default).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Serve Prometheus metrics (`/metrics`) on this address, e.g. 127.0.0.1:9100 (off by
    /// default).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// What this node does: `edge` (serve clients in any region), `processor` (take a fair share
    /// of the regions, shared with the other processor nodes), or both.
    #[arg(long, default_value = "edge,processor")]
    pub roles: Roles,
    /// Microseconds between the starts of two commit groups of the embedded engine (as FDB's
    /// commit proxies batch): under load, commits arriving sooner share the next group and its
    /// fsync; an idle engine commits at once. 0 commits each group as soon as the last is durable.
    #[arg(long, default_value_t = 1000)]
    pub commit_interval_us: u64,
    /// MiB of the embedded engine's memtable before it is flushed.
    #[arg(long, default_value_t = 64)]
    pub memtable_mb: u64,
    /// Nice value (Linux) of the embedded engine's background thread (memtable flushes,
    /// compaction); 0 runs it at the server's own priority. Used with `--thread-policy normal`
    /// only: under `batch` (the default) that thread is `SCHED_IDLE`, which has no nice value.
    #[arg(long, default_value_t = EngineOptions::default().background_nice)]
    pub background_nice: i32,
}

/// Runs an edge with its processors until Ctrl-C, on the embedded engine or (`--fdb`) on
/// FoundationDB.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    match args.fdb.clone() {
        None => {
            let options = EngineOptions {
                commit_interval: Duration::from_micros(args.commit_interval_us),
                memtable_bytes: args.memtable_mb << 20,
                background_nice: args.background_nice,
                ..EngineOptions::default()
            };
            let wait = Duration::from_secs(args.lock_wait_secs);
            let db = open_waiting(&args.dir, options, wait).await?;
            serve_on(db, args).await
        }
        Some(cluster_file) => serve_on_fdb(&cluster_file, args).await,
    }
}

/// Opens the embedded engine at `dir`, waiting up to `wait` while another process holds its
/// lock (a server killed a moment ago releases it once the OS reaps it).
pub(crate) async fn open_waiting(
    dir: &std::path::Path,
    options: EngineOptions,
    wait: Duration,
) -> Result<EmbeddedDatabase, String> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        match EmbeddedDatabase::open_with(dir, options.clone()) {
            Ok(db) => return Ok(db),
            Err(error) if error.is_locked() && started.elapsed() < wait => {
                if !warned {
                    tracing::warn!(
                        dir = %dir.display(),
                        wait_secs = wait.as_secs(),
                        "the data directory is locked by another process; waiting for it"
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) if error.is_locked() => {
                return Err(format!(
                    "{error}: another process still holds {} after {} s (is a `sekai serve` \
                     already running on it?)",
                    dir.display(),
                    wait.as_secs()
                ))
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

#[cfg(feature = "fdb")]
async fn serve_on_fdb(cluster_file: &std::path::Path, args: ServeArgs) -> Result<(), String> {
    use sekai_layer::fdb_backend::{shutdown_network, FdbDatabase};
    let path = cluster_file
        .to_str()
        .ok_or("the cluster file path is not UTF-8")?;
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let db = FdbDatabase::open(Some(path)).map_err(|e| format!("opening {path}: {e}"))?;
    let served = serve_on(db, args).await;
    shutdown_network();
    served
}

#[cfg(not(feature = "fdb"))]
async fn serve_on_fdb(_cluster_file: &std::path::Path, _args: ServeArgs) -> Result<(), String> {
    Err(
        "this build has no FoundationDB backend: rebuild with `--features fdb` \
         (needs libclang to build and libfdb_c to run)"
            .to_string(),
    )
}

async fn serve_on<D: Database>(db: D, args: ServeArgs) -> Result<(), String> {
    let keys = world_keys(&db).await?;
    let shape = WorldShape {
        regions_per_side: args.regions_per_side.max(1),
        density: args.density,
        seed: args.seed,
    };
    let resources = if world_is_empty(&db, &keys).await? {
        let resources = load_world(&db, &keys, &shape).await?;
        println!(
            "generated {} resources",
            resources.values().map(Vec::len).sum::<usize>()
        );
        resources
    } else {
        Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(ProcessorStats::default());
    let roles = args.roles;
    let (processors, direct) = if roles.processor {
        start_node(&db, &keys, &shape, roles, &stop, &stats, |_| {})
    } else {
        let beat = run_heartbeat(db.clone(), keys.clone(), node_holder(), roles, stop.clone());
        (vec![tokio::spawn(beat)], DirectInputs::default())
    };
    if !roles.edge {
        println!("processor node running (no edge); Ctrl-C stops and hands its regions over");
        let _ = tokio::signal::ctrl_c().await;
        stop.store(true, Ordering::Relaxed);
        for processor in processors {
            let _ = processor.await;
        }
        return Ok(());
    }
    let mut config = EdgeConfig::new(args.listen, TokenKey::new(args.secret.into_bytes()));
    config.workers = args.workers;
    config.direct = direct;
    config.spawn = spawn_near_resources(&shape, &resources);
    config.limits.idle_timeout = Duration::from_secs(args.idle_timeout_secs.max(1));
    config.region_cache_bytes = args.cache_mb << 20;
    config.limits.stall_timeout = Duration::from_secs_f64(args.stall_timeout_secs.max(0.1));
    // At most a second: longer would only let a quiet subscription hold answers back.
    config.limits.answer_hold = Duration::from_secs_f64(args.answer_hold_ms.min(1e3) / 1e3);
    config.limits.shed.target = (args.shed_target_ms > 0.0)
        .then(|| Duration::from_secs_f64(args.shed_target_ms.min(1e6) / 1e3));
    config.tls = match (args.cert, args.key) {
        (Some(cert), Some(key)) => TlsSource::Files { cert, key },
        _ => TlsSource::SelfSignedIn {
            dir: args.dir.clone(),
            names: args.hostnames.clone(),
        },
    };
    let files = matches!(config.tls, TlsSource::Files { .. });
    let edge = EdgeServer::start(db.clone(), keys.clone(), config)
        .await
        .map_err(|e| e.to_string())?;
    let observe = ObserveConfig {
        http: args.http,
        metrics: args.metrics,
    };
    let observer = Observer::start(observe, &db, &keys, edge.fanout(), shape.regions()).await?;
    let cert_path = args.dir.join(CERT_FILE);
    if files {
        std::fs::write(&cert_path, edge.certificate().as_ref())
            .map_err(|e| format!("writing {}: {e}", cert_path.display()))?;
    }
    // Every thread runs by now: the runtime's, the connections', the committer, the store's.
    thread_policy::apply(args.thread_policy);
    println!(
        "edge on quic://{}; certificate in {}; Ctrl-C stops",
        edge.local_addr().map_err(|e| e.to_string())?,
        cert_path.display()
    );
    if let Some(url) = observer.map_url() {
        println!("map on {url}");
    }
    if let Some(url) = observer.metrics_url() {
        println!("metrics on {url}");
    }
    let reporter = args.stats.then(|| {
        let (fanout, inputs, stats) = (edge.fanout().clone(), edge.input_stats(), stats.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let f = fanout.stats();
                println!(
                    "{{\"sessions\":{},\"t1_commits\":{},\"inputs_stored\":{},\"frames\":{},\
                     \"inputs_applied\":{},\"passes\":{},\"coalesced\":{}}}",
                    fanout.live_count(),
                    inputs.commits.load(Ordering::Relaxed),
                    inputs.inputs.load(Ordering::Relaxed),
                    stats.frames.load(Ordering::Relaxed),
                    stats.inputs.load(Ordering::Relaxed),
                    f.passes.load(Ordering::Relaxed),
                    f.coalesced.load(Ordering::Relaxed),
                );
            }
        })
    });
    let _ = tokio::signal::ctrl_c().await;
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    observer.shutdown().await;
    edge.shutdown().await;
    stop.store(true, Ordering::Relaxed);
    for processor in processors {
        let _ = processor.await;
    }
    Ok(())
}

/// True when the world has no entity yet.
async fn world_is_empty<D: Database>(db: &D, keys: &WorldKeys) -> Result<bool, String> {
    Ok(!holds_any(db, keys.kind_range(KeyKind::Entity)).await?)
}

/// True when `db` holds any key in `[begin, end)` (one snapshot read of at most one key).
async fn holds_any<D: Database>(db: &D, (begin, end): KeyRange) -> Result<bool, String> {
    let trx = db.create_trx().map_err(|e| e.to_string())?;
    let page = trx
        .get_range(&RangeOption::new(begin, end).limit(1), true)
        .await
        .map_err(|e| e.to_string())?;
    Ok(!page.kvs.is_empty())
}

/// The load a generator puts on an edge and how it measures (shared by `sekai bots` and the
/// raw baseline's clients).
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Number of bots.
    #[arg(long, default_value_t = 100)]
    pub bots: usize,
    /// Seconds of the measured window.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 20.0)]
    pub seconds: f64,
    /// Seed of the bots' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads running the bots.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seconds to play before the measured window starts (after everyone connected).
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds to wait for every bot to connect before starting anyway.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 60.0)]
    pub connect_timeout: f64,
    /// Every this many seconds of the window, print a `soak {...}` JSON line with that
    /// period's own latency percentiles and input rate (0: never), for long runs.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 0.0)]
    pub report_every: f64,
}

/// `sekai bots`.
#[derive(clap::Args, Debug)]
pub struct BotsArgs {
    /// The edge's UDP address.
    #[arg(long)]
    pub connect: SocketAddr,
    /// The edge's certificate (DER), as `serve` writes it.
    #[arg(long)]
    pub cert: PathBuf,
    /// Secret of the login tokens (or the SEKAI_EDGE_SECRET environment variable).
    #[arg(long, env = "SEKAI_EDGE_SECRET")]
    pub secret: String,
    /// Player id of the first bot.
    #[arg(long, default_value_t = 1)]
    pub first_player: u64,
    /// Radius of each bot's area of interest, in metres: the bigger, the more of the others'
    /// moves each bot sees (entity updates per input), up to 1024.
    #[arg(long, default_value_t = crate::bots::BOT_AREA_RADIUS, value_parser = crate::flags::area_radius)]
    pub area_radius: f32,
    /// The load.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Runs bots against a running edge and prints their latency.
pub async fn bots(args: BotsArgs) -> Result<(), String> {
    let cert =
        std::fs::read(&args.cert).map_err(|e| format!("reading {}: {e}", args.cert.display()))?;
    let stats = Arc::new(BotStats::default());
    let threads = start_bots(
        BotConfig {
            server: args.connect,
            certificate: CertificateDer::from(cert),
            tokens: TokenKey::new(args.secret.into_bytes()),
            bots: args.load.bots,
            first_player: args.first_player,
            seed: args.load.seed,
            threads: args.load.threads,
            on_applied: None,
            area_radius: args.area_radius,
        },
        stats.clone(),
    );
    println!(
        "sekai bots: {} bots, seed {}",
        args.load.bots, args.load.seed
    );
    let report = measure_window(&stats, &args.load).await;
    let _ =
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    print_load_report(&report);
    Ok(())
}

/// Waits (bounded) for every bot to connect, warms up, measures one window (printing
/// `window start` and `window end` on stdout), then stops the bots; returns the window's report.
pub async fn measure_window(stats: &Arc<BotStats>, load: &LoadArgs) -> BotsReport {
    let started = Instant::now();
    let deadline = Duration::from_secs_f64(load.connect_timeout);
    while (stats.connected.load(Ordering::Relaxed) as usize) < load.bots
        && stats.stopped.load(Ordering::Relaxed) == 0
        && started.elapsed() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "[{:>4.1}s] {} of {} bots connected; warming up {} s",
        started.elapsed().as_secs_f64(),
        stats.connected.load(Ordering::Relaxed),
        load.bots,
        load.warmup
    );
    tokio::time::sleep(Duration::from_secs_f64(load.warmup)).await;
    stats.reset_histograms();
    let before = WindowCounters::read(stats);
    let window = Instant::now();
    println!("window start");
    // A period's latencies are the window's histogram less its state at the period's start, so
    // the window's own percentiles (the final report) still cover the whole window.
    let mut period = (
        Instant::now(),
        stats.applied.load(Ordering::Relaxed),
        stats.total_histogram(),
    );
    while window.elapsed().as_secs_f64() < load.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if load.report_every > 0.0 && period.0.elapsed().as_secs_f64() >= load.report_every {
            let now = stats.total_histogram();
            let (p50, p99, p999) = quantiles(&since(&now, &period.2));
            let applied = stats.applied.load(Ordering::Relaxed);
            let rate = (applied - period.1) as f64 / period.0.elapsed().as_secs_f64();
            println!(
                "soak {{\"t_s\":{:.0},\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999},\
                 \"inputs_per_sec\":{rate:.1}}}",
                window.elapsed().as_secs_f64()
            );
            period = (Instant::now(), applied, now);
        }
        let (p50, p99, _) = stats.total_quantiles();
        eprintln!(
            "[{:>4.0}s] {} connected, {} applied, p50 {:.2} ms p99 {:.2} ms",
            started.elapsed().as_secs_f64(),
            stats.connected.load(Ordering::Relaxed),
            stats.applied.load(Ordering::Relaxed),
            p50 as f64 / 1e3,
            p99 as f64 / 1e3
        );
    }
    let after = WindowCounters::read(stats);
    let elapsed = window.elapsed().as_secs_f64();
    let (p50_us, p99_us, p999_us) = stats.total_quantiles();
    let cdf = {
        let total = stats.total.lock().unwrap_or_else(|e| e.into_inner());
        Cdf::of("input -> delta", &total).points
    };
    println!("window end");
    stats.stop();
    let rate = |f: fn(&WindowCounters) -> u64| (f(&after) - f(&before)) as f64 / elapsed;
    BotsReport {
        bots: load.bots,
        connected: stats.connected.load(Ordering::Relaxed),
        inputs_per_sec: rate(|c| c.applied),
        updates_per_sec: rate(|c| c.updates),
        datagrams_per_sec: rate(|c| c.datagrams),
        p50_us,
        p99_us,
        p999_us,
        bot_cores: (after.cpu_secs - before.cpu_secs) / elapsed,
        errors: after.errors - before.errors,
        shed_per_sec: rate(|c| c.shed),
        reconnects: stats.reconnects.load(Ordering::Relaxed),
        stopped: stats.stopped.load(Ordering::Relaxed),
        cdf,
    }
}

/// `now` less `earlier` (an earlier copy of the same histogram): what was recorded in between.
fn since(now: &Histogram<u64>, earlier: &Histogram<u64>) -> Histogram<u64> {
    let mut between = now.clone();
    // Every count in `earlier` is also in `now`, so subtracting cannot fail; if it did, the
    // period reports the whole window instead.
    if between.subtract(earlier).is_err() {
        between = now.clone();
    }
    between
}

/// The start of the line [`print_load_report`] writes the latency CDF on.
pub const CDF_LINE: &str = "cdf ";

/// Prints a load report: a human line, the latency CDF (a [`CDF_LINE`]), then the JSON line.
pub fn print_load_report(report: &BotsReport) {
    println!(
        "inputs/s {:.0}, input-to-delta p50 {:.2} ms p99 {:.2} ms p999 {:.2} ms, errors {}, \
         shed {:.0}/s, reconnects {}, bots stopped {}",
        report.inputs_per_sec,
        report.p50_us as f64 / 1e3,
        report.p99_us as f64 / 1e3,
        report.p999_us as f64 / 1e3,
        report.errors,
        report.shed_per_sec,
        report.reconnects,
        report.stopped
    );
    let cdf = Cdf {
        label: String::new(),
        points: report.cdf.clone(),
    };
    println!("{CDF_LINE}{}", cdf.points_json());
    println!("{}", report.to_json());
}

/// Counters read at the edges of the measured window.
struct WindowCounters {
    applied: u64,
    updates: u64,
    datagrams: u64,
    errors: u64,
    shed: u64,
    cpu_secs: f64,
}

impl WindowCounters {
    fn read(stats: &BotStats) -> Self {
        Self {
            applied: stats.applied.load(Ordering::Relaxed),
            updates: stats.updates.load(Ordering::Relaxed),
            datagrams: stats.datagrams.load(Ordering::Relaxed),
            errors: stats.errors.load(Ordering::Relaxed),
            shed: stats.shed.load(Ordering::Relaxed),
            cpu_secs: crate::proc_stats::cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }
}

/// What `sekai bots` measured in its window (its last line, as JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BotsReport {
    /// Bots started.
    pub bots: usize,
    /// Bots that connected and subscribed.
    pub connected: u64,
    /// Inputs whose outcome arrived, per second.
    pub inputs_per_sec: f64,
    /// Entity updates delivered to the bots, per second.
    pub updates_per_sec: f64,
    /// UDP datagrams the server sent the bots, per second.
    pub datagrams_per_sec: f64,
    /// Input → delta latency percentiles, microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// CPU cores the bot process used.
    pub bot_cores: f64,
    /// Failed sends in the window (shedding aside).
    pub errors: u64,
    /// Inputs the edge refused to shed load, per second of the window.
    pub shed_per_sec: f64,
    /// Reconnections (whole run).
    pub reconnects: u64,
    /// Bots that stopped early.
    pub stopped: u64,
    /// Input → delta latency CDF: (microseconds, fraction at or below); not part of the JSON
    /// (see [`print_load_report`]).
    pub cdf: Vec<(u64, f64)>,
}

impl BotsReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        format!(
            "{{{},\"bot_cores\":{:.3},\"errors\":{},\"shed_per_sec\":{:.1},\"reconnects\":{},\
             \"stopped\":{}}}",
            self.traffic_json(),
            self.bot_cores,
            self.errors,
            self.shed_per_sec,
            self.reconnects,
            self.stopped
        )
    }

    /// The traffic and latency fields as JSON members (`"bots":..` to `"p999_us":..`), shared by
    /// every report that carries them.
    pub fn traffic_json(&self) -> String {
        format!(
            "\"bots\":{},\"connected\":{},\"inputs_per_sec\":{:.1},\"updates_per_sec\":{:.1},\
             \"datagrams_per_sec\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}",
            self.bots,
            self.connected,
            self.inputs_per_sec,
            self.updates_per_sec,
            self.datagrams_per_sec,
            self.p50_us,
            self.p99_us,
            self.p999_us
        )
    }

    /// Parses [`BotsReport::to_json`]'s output (the fields it writes, in any order).
    pub fn from_json(line: &str) -> Option<Self> {
        let field = |name: &str| json_number(line, name);
        Some(Self {
            bots: field("bots")? as usize,
            connected: field("connected")? as u64,
            inputs_per_sec: field("inputs_per_sec")?,
            updates_per_sec: field("updates_per_sec")?,
            datagrams_per_sec: field("datagrams_per_sec")?,
            p50_us: field("p50_us")? as u64,
            p99_us: field("p99_us")? as u64,
            p999_us: field("p999_us")? as u64,
            bot_cores: field("bot_cores")?,
            errors: field("errors")? as u64,
            shed_per_sec: field("shed_per_sec")?,
            reconnects: field("reconnects")? as u64,
            stopped: field("stopped")? as u64,
            cdf: Vec::new(),
        })
    }
}

/// The number after `"name":` in a flat JSON object.
pub fn json_number(line: &str, name: &str) -> Option<f64> {
    let key = format!("\"{name}\":");
    let start = line.find(&key)? + key.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// `sekai inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Data directory of a stopped server.
    #[arg(long)]
    pub dir: PathBuf,
    /// What to show.
    #[command(subcommand)]
    pub what: Inspect,
}

/// What `sekai inspect` shows.
#[derive(clap::Subcommand, Debug)]
pub enum Inspect {
    /// Entities within `radius` of (x, z).
    Near {
        /// x in metres.
        #[arg(long, allow_hyphen_values = true)]
        x: f32,
        /// z in metres.
        #[arg(long, allow_hyphen_values = true)]
        z: f32,
        /// Radius in metres.
        #[arg(long, default_value_t = 20.0)]
        radius: f32,
    },
    /// A region's frame log.
    Frames {
        /// Region x.
        #[arg(long, allow_hyphen_values = true)]
        rx: i32,
        /// Region z.
        #[arg(long, allow_hyphen_values = true)]
        rz: i32,
        /// First frame.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most frames shown.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Every region head (the counter edges watch).
    Heads,
    /// Checks the world's invariants (the layer's one checker, `world::audit`): frame records
    /// contiguous and matching the change log, each player's inputs applied in order, the
    /// spatial index agreeing with the entities. Exits non-zero on a violation.
    Audit,
}

/// Prints what was asked of a data directory.
pub async fn inspect(args: InspectArgs) -> Result<(), String> {
    let db = EmbeddedDatabase::open(&args.dir).map_err(|e| e.to_string())?;
    let keys = world_keys(&db).await?;
    let trx = db.create_trx().map_err(|e| e.to_string())?;
    match args.what {
        Inspect::Near { x, z, radius } => {
            let area = Area::new(Vec3::new(x, 0.0, z), radius);
            if !area.is_valid() {
                return Err("invalid area".into());
            }
            let entities = entities_in_area(&trx, &keys, &area, true)
                .await
                .map_err(|e| e.to_string())?;
            for e in &entities {
                println!(
                    "{:?} {:?} hp {} at ({:.1}, {:.1}) owner {} inventory {:?}",
                    e.id, e.kind, e.hp, e.position.x, e.position.z, e.owner, e.inventory.0
                );
            }
            println!("{} entities", entities.len());
        }
        Inspect::Frames {
            rx,
            rz,
            from,
            limit,
        } => {
            let records = frames(&trx, &keys, RegionId::new(rx, rz), from, limit)
                .await
                .map_err(|e| e.to_string())?;
            for r in &records {
                println!(
                    "frame {} of {}: {} inputs, {} rejected",
                    r.frame,
                    r.region,
                    r.inputs.len(),
                    r.rejected
                );
            }
        }
        Inspect::Heads => {
            let (begin, end) = keys.kind_range(KeyKind::Head);
            let mut next = Some(RangeOption::new(begin, end).limit(1_000));
            while let Some(range) = next {
                let page = trx
                    .get_range(&range, true)
                    .await
                    .map_err(|e| e.to_string())?;
                next = range.next_range(&page);
                for kv in &page.kvs {
                    let region = keys.decode_head(&kv.key).map_err(|e| e.to_string())?;
                    let head = <[u8; 8]>::try_from(kv.value.as_slice())
                        .map(u64::from_le_bytes)
                        .unwrap_or_default();
                    println!("{region}: head {head}");
                }
            }
        }
        Inspect::Audit => {
            let regions = audit::regions_in_use(&trx, &keys)
                .await
                .map_err(|e| e.to_string())?;
            let summary = audit::check_world(&db, &keys, &regions, audit::Expect::default())
                .await
                .map_err(|violation| format!("audit failed: {violation}"))?;
            println!(
                "audit passed: {} regions, {} frames, {} inputs applied ({} rejected by the \
                 rules), {} waiting in inboxes, {} entities",
                regions.len(),
                summary.frames,
                summary.inputs,
                summary.rejected,
                summary.pending,
                summary.entities
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekai_schema::EntityId;

    #[tokio::test]
    async fn world_keys_refuses_a_store_of_the_earlier_layout() {
        let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
        assert_eq!(world_keys(&db).await.unwrap(), WorldKeys::numbered(WORLD));
        let trx = db.create_trx().unwrap();
        let legacy = WorldKeys::new(LEGACY_WORLD).unwrap();
        trx.set(&legacy.entity(EntityId(1)), b"an entity");
        trx.commit().await.unwrap();
        let error = world_keys(&db).await.unwrap_err();
        assert!(error.contains("before 2026-11-30"), "{error}");
    }
}
