//! `sekai`: run the demo, benchmarks and tools of the Sekai game backend.

use clap::{Parser, Subcommand};
use sekai_layer::kv_bench::{self, BenchConfig};
use tracing_subscriber::EnvFilter;

/// Sekai: a database-native game runtime on FoundationDB's model.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmarks (figures are reported against a baseline measured in the same run).
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Durable KV benchmarks on the embedded engine: read-modify-write at 1/16/256 tasks,
    /// keynote-2-shaped transfers at Zipf 0 and 1.5, commits per fsync.
    Kv {
        /// Seconds per workload.
        #[arg(long, default_value_t = 5.0)]
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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
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
        None => Err("no demo yet: run `sekai bench kv`".to_string()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sekai: {message}");
            std::process::ExitCode::FAILURE
        }
    }
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
