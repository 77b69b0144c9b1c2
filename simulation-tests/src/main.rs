//! `sekai-simulation`: runs seeds of the deterministic simulation and prints a report.
//!
//! `--seeds N` runs seeds `first..first+N` on `--jobs` threads (all cores by default); `--seed S`
//! replays one seed (its trace tail is printed on failure). Exits non-zero when any seed fails.

use std::process::ExitCode;

use clap::Parser;
use sekai_simulation::config::SimConfig;
use sekai_simulation::runner::run_seeds;

/// Deterministic simulation of the Sekai world with fault injection.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Replay exactly this seed (overrides --seeds and --first).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Scheduler steps per seed before the run goes quiet.
    #[arg(long)]
    steps: Option<usize>,
    /// Print every trace event to stderr (best with --seed).
    #[arg(long)]
    trace: bool,
    /// Players (one bot client each).
    #[arg(long)]
    players: Option<usize>,
    /// Processor nodes sharing the regions (default 2).
    #[arg(long)]
    nodes: Option<usize>,
    /// Edge nodes (default 2).
    #[arg(long)]
    edges: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = SimConfig::default();
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    config.echo_trace = args.trace;
    if let Some(players) = args.players {
        config.players = players;
    }
    if let Some(nodes) = args.nodes {
        config.nodes = nodes.max(1);
    }
    if let Some(edges) = args.edges {
        config.edges = edges.max(1);
    }
    let (first, count) = match args.seed {
        Some(seed) => (seed, 1),
        None => (args.first, args.seeds),
    };
    let jobs = args
        .jobs
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let report = run_seeds(first, count, jobs, &config);
    print!("{report}");
    if report.passed() == report.runs.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
