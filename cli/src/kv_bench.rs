//! KV benchmarks on the embedded engine, durable: single-key read-modify-write at several
//! concurrencies, a transfer workload shaped like SpacetimeDB's keynote-2 benchmark, and the
//! commits per fsync that group commit achieves.
//!
//! Figures are reported with a baseline from the same run (one task doing read-modify-write,
//! that is one fsync per commit), because the machines are shared and noisy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions, OpenError};
use sekai_layer::kv::{run, Database, FdbError, Transaction};

/// One workload's measured figures.
#[derive(Clone, Debug)]
pub struct BenchFigures {
    /// The workload's name.
    pub name: String,
    /// Committed transactions per second.
    pub tps: f64,
    /// Median transaction latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Commits that shared one fsync, on average.
    pub commits_per_fsync: f64,
    /// Retries (conflicts) per committed transaction.
    pub retries_per_commit: f64,
}

impl std::fmt::Display for BenchFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<28} {:>9.0} tx/s  p50 {:>6} us  p99 {:>7} us  {:>6.1} commits/fsync  {:.3} retries/commit",
            self.name, self.tps, self.p50_us, self.p99_us, self.commits_per_fsync, self.retries_per_commit
        )
    }
}

/// How to run the KV benchmarks.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Seconds per workload.
    pub seconds: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Accounts in the transfer workload.
    pub accounts: u64,
    /// Concurrent tasks in the transfer workload.
    pub transfer_tasks: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            seconds: 5.0,
            seed: 1,
            accounts: 100_000,
            transfer_tasks: 64,
        }
    }
}

fn account_key(id: u64) -> Vec<u8> {
    format!("acct/{id:08}").into_bytes()
}

fn balance(value: Option<Vec<u8>>) -> i64 {
    value
        .and_then(|v| v.try_into().ok())
        .map_or(0, i64::from_le_bytes)
}

/// Runs `tasks` copies of `op` for `seconds`, measuring each committed transaction.
async fn drive<F, Fut>(
    db: &EmbeddedDatabase,
    name: String,
    tasks: usize,
    seconds: f64,
    op: F,
) -> BenchFigures
where
    F: Fn(EmbeddedDatabase, usize, Arc<AtomicU64>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), FdbError>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let retries = Arc::new(AtomicU64::new(0));
    let before = db.stats();
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (db, stop, retries, op) = (db.clone(), stop.clone(), retries.clone(), op.clone());
            tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new(3).expect("histogram bounds are valid");
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if let Err(error) = op(db.clone(), task, retries.clone()).await {
                        tracing::warn!(%error, "benchmark transaction failed");
                        continue;
                    }
                    let _ = histogram.record(t.elapsed().as_micros() as u64);
                }
                histogram
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new(3).expect("histogram bounds are valid");
    for handle in handles {
        if let Ok(h) = handle.await {
            let _ = all.add(h);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = db.stats();
    let commits = after.commits - before.commits;
    BenchFigures {
        name,
        tps: all.len() as f64 / elapsed,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        commits_per_fsync: commits as f64 / (after.fsyncs - before.fsyncs).max(1) as f64,
        retries_per_commit: retries.load(Ordering::Relaxed) as f64 / all.len().max(1) as f64,
    }
}

/// Read-modify-write of a key of its own by each of `tasks` tasks.
pub async fn rmw(db: &EmbeddedDatabase, tasks: usize, seconds: f64) -> BenchFigures {
    drive(
        db,
        format!("rmw, {tasks} tasks"),
        tasks,
        seconds,
        |db, task, retries| async move {
            let key = format!("rmw/{task:05}").into_bytes();
            run(&db, |trx, _| {
                let key = key.clone();
                let retries = retries.clone();
                async move {
                    retries.fetch_add(1, Ordering::Relaxed);
                    let n = balance(trx.get(&key, false).await?);
                    trx.set(&key, &(n + 1).to_le_bytes());
                    Ok(())
                }
            })
            .await?;
            retries.fetch_sub(1, Ordering::Relaxed);
            Ok(())
        },
    )
    .await
}

/// Loads `accounts` accounts with a balance of 1,000 each, in transactions of 10,000.
pub async fn load_accounts(db: &EmbeddedDatabase, accounts: u64) -> Result<(), FdbError> {
    for chunk in (0..accounts).step_by(10_000) {
        let trx = db.create_trx()?;
        for id in chunk..(chunk + 10_000).min(accounts) {
            trx.set(&account_key(id), &1_000i64.to_le_bytes());
        }
        trx.commit().await?;
    }
    Ok(())
}

/// Transfers between two accounts drawn with Zipf exponent `alpha` (0 = uniform).
pub async fn transfer(db: &EmbeddedDatabase, config: &BenchConfig, alpha: f64) -> BenchFigures {
    let accounts = config.accounts;
    let seed = config.seed;
    let name = format!("transfer, zipf {alpha}, {} tasks", config.transfer_tasks);
    let zipf = match Zipf::new(accounts, alpha) {
        Ok(zipf) => zipf,
        Err(error) => {
            tracing::error!(%error, "bad zipf parameters");
            return drive(db, name, 0, 0.0, |_, _, _| async { Ok(()) }).await;
        }
    };
    let draws = Arc::new(AtomicU64::new(0));
    drive(
        db,
        name,
        config.transfer_tasks,
        config.seconds,
        move |db, _task, retries| {
            let draw = draws.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut rng =
                    ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ draw);
                let from = zipf.sample(&mut rng) as u64 - 1;
                let mut to = zipf.sample(&mut rng) as u64 - 1;
                if to == from {
                    to = (from + 1) % accounts;
                }
                run(&db, |trx, _| {
                    let retries = retries.clone();
                    async move {
                        retries.fetch_add(1, Ordering::Relaxed);
                        let a = balance(trx.get(&account_key(from), false).await?);
                        let b = balance(trx.get(&account_key(to), false).await?);
                        trx.set(&account_key(from), &(a - 1).to_le_bytes());
                        trx.set(&account_key(to), &(b + 1).to_le_bytes());
                        Ok(())
                    }
                })
                .await?;
                retries.fetch_sub(1, Ordering::Relaxed);
                Ok(())
            }
        },
    )
    .await
}

/// Runs every KV benchmark on a fresh durable engine in a temporary directory.
pub async fn run_all(config: &BenchConfig) -> Result<Vec<BenchFigures>, OpenError> {
    let db = EmbeddedDatabase::temporary(EngineOptions::default())?;
    let mut figures = Vec::new();
    for tasks in [1, 16, 256] {
        let f = rmw(&db, tasks, config.seconds).await;
        tracing::info!("{f}");
        figures.push(f);
    }
    if let Err(error) = load_accounts(&db, config.accounts).await {
        tracing::error!(%error, "loading accounts failed");
        return Ok(figures);
    }
    for alpha in [0.0, 1.5] {
        let f = transfer(&db, config, alpha).await;
        tracing::info!("{f}");
        figures.push(f);
    }
    Ok(figures)
}
