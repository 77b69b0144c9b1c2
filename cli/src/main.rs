//! `sekai`: run the demo, benchmarks and tools of the Sekai game backend.

use clap::{Parser, Subcommand};
use sekai_cli::demo::{print_report, report_json, run_demo, DemoConfig};
use sekai_cli::kv_bench::{self, BenchConfig};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: the hot path allocates many small, short-lived buffers
/// (Cap'n Proto segments, RPC bookkeeping, transaction write maps) from several threads, and
/// glibc spent about 18 % of the server's CPU in `_int_malloc`, `malloc_consolidate` and
/// `_int_free` at 800 bots (`perf`; see issue 9's closing note).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sekai: a database-native game runtime on FoundationDB's model.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The live demo (the default): the embedded engine, a generated world, region processors
    /// (T2), one edge over QUIC on loopback and N bots (real QUIC clients), with throughput and
    /// input-to-delta latency per stage.
    Demo(DemoArgs),
    /// Processors and one edge on a data directory, until Ctrl-C.
    Serve(sekai_cli::commands::ServeArgs),
    /// Bots against a running edge, with their input-to-delta latency.
    Bots(sekai_cli::commands::BotsArgs),
    /// Read-only views of a stopped server's data directory.
    Inspect(sekai_cli::commands::InspectArgs),
    /// Crash under load: SIGKILLs a `sekai serve` child at seeded random moments while bots
    /// play, restarts it, then checks every acknowledged input was applied exactly once, in
    /// order. Last line JSON; fails when one was lost.
    Chaos(sekai_cli::chaos::ChaosArgs),
    /// Benchmarks (figures are reported against a baseline measured in the same run).
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(clap::Parser, Debug)]
struct DemoArgs {
    /// Number of bots.
    #[arg(long, default_value_t = 300)]
    bots: usize,
    /// Seconds the bots play.
    #[arg(long, value_parser = sekai_cli::flags::duration, default_value_t = 20.0)]
    seconds: f64,
    /// Regions per side of the square world.
    #[arg(long, default_value_t = 2)]
    regions_per_side: i32,
    /// Trees and rocks per 100 m².
    #[arg(long, default_value_t = 0.5)]
    density: f32,
    /// Seed of the world and the bots.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Data directory (a temporary one by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Threads serving the edge's connections.
    #[arg(long, default_value_t = 2)]
    edge_workers: usize,
    /// Threads running the bots.
    #[arg(long, default_value_t = 1)]
    bot_threads: usize,
    /// Address of the live world map (which also serves `/metrics`); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    http: std::net::SocketAddr,
    /// Do not serve the map.
    #[arg(long)]
    no_http: bool,
    /// Also serve Prometheus metrics (`/metrics`) on this address, e.g. 127.0.0.1:9100.
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Directory the JSON report and the latency CDF plot (SVG) are written to.
    #[arg(long, default_value = sekai_cli::plot::REPORT_DIR)]
    out: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Players per server core: `sekai serve` pinned to core 0 and `sekai bots` to core 1 over
    /// real QUIC, swept over bot counts, against a raw quinn baseline (no database, no RPC, one
    /// datagram per message) carrying the same traffic; capacity at p99 <= 11 ms; an overload
    /// run at 4x Sekai's capacity. Last line JSON.
    Edge(sekai_cli::bench_edge::BenchEdgeArgs),
    /// A network blip: N clients drop and remake their subscriptions at once, with the edge's
    /// region cache off and then on (time to every snapshot, store reads), and the cache's hit
    /// rate while bots play. Last line JSON.
    Reconnect(sekai_cli::bench_edge::reconnect::BenchReconnectArgs),
    /// Stalled clients: a tenth of the clients stop reading (half never complete their sink
    /// calls, half stop reading their stream) while bots play against a `sekai serve` child;
    /// the bots' p99 with vs without, and the edge's memory. Last line JSON.
    Stall(sekai_cli::stall::StallArgs),
    /// The demo's load for a long time: server RSS, store size and each period's own p99,
    /// minute by minute, their slopes, a plot. Last line JSON.
    Soak(sekai_cli::bench_edge::soak::BenchSoakArgs),
    /// Black-box fuzzing of a live edge: a `sekai serve` child, bots playing a baseline window,
    /// then M fuzzers sending malformed, truncated and oversized Cap'n Proto RPC messages,
    /// extra streams and datagrams in a second window; the bots' p99 ratio, fuzz messages per
    /// kind, protocol-error closes, and whether the edge survived and still logs a fresh client
    /// in. Fails if the edge died or panicked. Last line JSON.
    FuzzEdge(sekai_cli::fuzz_edge::FuzzEdgeArgs),
    /// The raw baseline's server (started by `bench edge`).
    #[command(hide = true)]
    RawServer(sekai_cli::bench_edge::RawServerArgs),
    /// The raw baseline's clients (started by `bench edge`).
    #[command(hide = true)]
    RawClients(sekai_cli::bench_edge::RawClientsArgs),
    /// Durable KV benchmarks on the embedded engine: read-modify-write at 1/16/256 tasks,
    /// keynote-2-shaped transfers at Zipf 0 and 1.5, commits per fsync.
    Kv {
        /// Seconds per workload.
        #[arg(long, value_parser = sekai_cli::flags::duration, default_value_t = 5.0)]
        seconds: f64,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Accounts for the transfer workload.
        #[arg(long, default_value_t = 100_000)]
        accounts: u64,
        /// Concurrent tasks for the transfer workload.
        #[arg(long, default_value_t = 64)]
        transfer_tasks: usize,
    },
    /// World benchmarks: frames/s and inputs/s of processors with 1 vs 16 regions; area-query
    /// latency at 10,000 vs 1,000,000 entities (loads the big world first; takes minutes).
    World {
        /// Players per region.
        #[arg(long, default_value_t = 50)]
        players: u64,
        /// Inputs per player queued before the processors start.
        #[arg(long, default_value_t = 40)]
        inputs: u64,
        /// Entities of the large world (the small one has 10,000).
        #[arg(long, default_value_t = 1_000_000)]
        large: usize,
        /// Area queries per world size.
        #[arg(long, default_value_t = 2_000)]
        queries: usize,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// The log filter when `RUST_LOG` is not set: Sekai's own INFO lines, only warnings and errors
/// of the dependencies (fjall, lsm_tree, quinn, ...).
const DEFAULT_LOG_FILTER: &str =
    "warn,sekai=info,sekai_cli=info,sekai_edge=info,sekai_client=info,sekai_layer=info,sekai_cache=info";

fn main() -> std::process::ExitCode {
    sekai_cli::allocator::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // `serve --workers 0` runs on one thread; everything else on tokio's multi-thread runtime.
    // Both inside a `LocalSet`, so a server may serve connections on the main thread.
    let single_thread = matches!(&cli.command, Some(Command::Serve(args)) if args.workers == 0);
    let runtime = if single_thread {
        // The connections run on this thread: its pauses tell load shedding whether datagrams
        // wait in the socket (`session::shedding::WorkerBusy`), as on a connection worker.
        let mut builder = tokio::runtime::Builder::new_current_thread();
        sekai_edge::session::shedding::WorkerBusy::track(&mut builder);
        builder
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build();
    let result = match runtime {
        Ok(runtime) => tokio::task::LocalSet::new().block_on(&runtime, run(cli)),
        Err(error) => Err(format!("cannot start the async runtime: {error}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sekai: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the chosen command.
async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Some(Command::Bench {
            which:
                Bench::Kv {
                    seconds,
                    seed,
                    accounts,
                    transfer_tasks,
                },
        }) => {
            bench_kv(BenchConfig {
                seconds,
                seed,
                accounts,
                transfer_tasks,
            })
            .await
        }
        Some(Command::Bench {
            which:
                Bench::World {
                    players,
                    inputs,
                    large,
                    queries,
                    seed,
                },
        }) => bench_world(players, inputs, large, queries, seed).await,
        Some(Command::Bench {
            which: Bench::Edge(args),
        }) => sekai_cli::bench_edge::bench_edge(args).await,
        Some(Command::Bench {
            which: Bench::Reconnect(args),
        }) => sekai_cli::bench_edge::reconnect::bench_reconnect(args).await,
        Some(Command::Bench {
            which: Bench::Stall(args),
        }) => sekai_cli::stall::bench_stall(args).await,
        Some(Command::Bench {
            which: Bench::Soak(args),
        }) => sekai_cli::bench_edge::soak::bench_soak(args).await,
        Some(Command::Bench {
            which: Bench::FuzzEdge(args),
        }) => sekai_cli::fuzz_edge::bench_fuzz_edge(args).await,
        Some(Command::Bench {
            which: Bench::RawServer(args),
        }) => sekai_cli::bench_edge::raw_server_command(args).await,
        Some(Command::Bench {
            which: Bench::RawClients(args),
        }) => sekai_cli::bench_edge::raw_clients_command(args).await,
        Some(Command::Demo(args)) => demo(args).await,
        Some(Command::Serve(args)) => sekai_cli::commands::serve(args).await,
        Some(Command::Bots(args)) => sekai_cli::commands::bots(args).await,
        Some(Command::Inspect(args)) => sekai_cli::commands::inspect(args).await,
        Some(Command::Chaos(args)) => sekai_cli::chaos::chaos(args).await,
        None => demo(DemoArgs::parse_from(["demo"])).await,
    }
}

async fn demo(args: DemoArgs) -> Result<(), String> {
    let config = DemoConfig {
        bots: args.bots,
        seconds: args.seconds,
        regions_per_side: args.regions_per_side.max(1),
        density: args.density,
        seed: args.seed,
        dir: args.dir,
        edge_workers: args.edge_workers,
        bot_threads: args.bot_threads,
        http: (!args.no_http).then_some(args.http),
        metrics: args.metrics,
    };
    let report = run_demo(config.clone()).await?;
    print_report(&config, &report);
    let (json, svg) = sekai_cli::plot::write_report(
        &args.out,
        "demo",
        &report_json(&config, &report),
        "sekai demo: latency CDF per stage",
        &report.cdfs,
    )?;
    println!("report: {}", json.display());
    println!("latency CDF plot: {}", svg.display());
    Ok(())
}

async fn bench_world(
    players: u64,
    inputs: u64,
    large: usize,
    queries: usize,
    seed: u64,
) -> Result<(), String> {
    use sekai_cli::world_bench::{area_queries, frames};
    println!("sekai bench world: seed {seed}, {players} players x {inputs} inputs per region");
    let one = frames(1, players, inputs, seed)
        .await
        .map_err(|e| e.to_string())?;
    let many = frames(16, players, inputs, seed)
        .await
        .map_err(|e| e.to_string())?;
    for f in [&one, &many] {
        println!(
            "{:>3} regions: {:>8.0} frames/s {:>9.0} inputs/s",
            f.regions, f.frames_per_sec, f.inputs_per_sec
        );
    }
    println!(
        "16 vs 1 region: {:.2}x inputs/s",
        many.inputs_per_sec / one.inputs_per_sec.max(1e-9)
    );
    let small = area_queries(10_000, queries, 30.0, seed)
        .await
        .map_err(|e| e.to_string())?;
    let big = area_queries(large, queries, 30.0, seed)
        .await
        .map_err(|e| e.to_string())?;
    for a in [&small, &big] {
        println!(
            "{:>9} entities (loaded in {:>6.1} s): area query r=30 m p50 {:>6} us p99 {:>7} us, {:.0} hits",
            a.entities, a.load_seconds, a.p50_us, a.p99_us, a.mean_hits
        );
    }
    println!(
        "area query p50 at {} vs {} entities: {:.2}x",
        big.entities,
        small.entities,
        big.p50_us as f64 / small.p50_us.max(1) as f64
    );
    Ok(())
}

async fn bench_kv(config: BenchConfig) -> Result<(), String> {
    println!(
        "sekai bench kv: seed {}, {} s per workload",
        config.seed, config.seconds
    );
    let figures = kv_bench::run_all(&config)
        .await
        .map_err(|e| e.to_string())?;
    for f in &figures {
        println!("{f}");
    }
    if let Some(baseline) = figures.first() {
        println!(
            "\nratios against the 1-task read-modify-write baseline ({:.0} tx/s):",
            baseline.tps
        );
        for f in &figures[1..] {
            println!(
                "  {:<28} {:>6.1}x throughput",
                f.name,
                f.tps / baseline.tps.max(1e-9)
            );
        }
    }
    Ok(())
}
