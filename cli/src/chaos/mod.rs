//! `sekai chaos`: crash the server under load and check that no acknowledged input was lost.
//!
//! A real `sekai serve` child process runs on a temporary data directory while in-process bots
//! ([`acks`]) play against it. At seeded random moments the server is SIGKILLed and restarted
//! at once on the same address and directory (the restarted server reuses its kept certificate
//! and waits for the store's lock; the bots reconnect with the SDK's backoff by themselves).
//! After the last kill the bots play a little longer and stop; the server runs quiet, is
//! stopped with SIGINT, and [`check::check_store`] reads the directory: every acknowledged
//! (player, seq) must be applied exactly once and in order. A player whose inputs are still in
//! an inbox gets the server run again (bounded rounds) before anything counts as lost.
//!
//! Recovery time of a kill: from the SIGKILL until every bot has had a fresh input
//! acknowledged by the restarted server (the time to first ack, by any bot, is printed too).
//!
//! Invariants: every random choice (kill moments, the bots' moves) comes from the printed seed;
//! the child server is killed when this command ends, however it ends; the last stdout line is
//! the JSON report, and the command fails when any acknowledged input was lost, doubled or
//! reordered.

pub mod acks;
pub mod check;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_schema::WorldKeys;

use crate::commands::{open_waiting, WORLD};
use crate::world_setup::WorldShape;
use acks::{AckLog, ChaosBots};
use sekai_edge::token::TokenKey;
use sekai_layer::embedded::EngineOptions;
use server::ServeChild;

/// The secret of the chaos run's tokens.
const SECRET: &str = "chaos-secret";

/// `sekai chaos`.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// How many times the server is SIGKILLed.
    #[arg(long, default_value_t = 5)]
    pub kills: usize,
    /// Number of bots.
    #[arg(long, default_value_t = 50)]
    pub bots: usize,
    /// Seed of every random choice (a random one, printed, when absent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Shortest time between a recovery and the next kill, in seconds.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 0.5)]
    pub min_gap: f64,
    /// Longest time between a recovery and the next kill, in seconds.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 3.0)]
    pub max_gap: f64,
    /// Seconds a recovery may take before the run fails.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 60.0)]
    pub recovery_timeout: f64,
    /// Regions per side of the generated world.
    #[arg(long, default_value_t = 2)]
    pub regions_per_side: i32,
    /// Threads running the bots.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Keep the data directory here instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The figures of a chaos run.
#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    /// Kills done.
    pub kills: usize,
    /// Acknowledged inputs.
    pub acked: u64,
    /// Acknowledged inputs missing from the store.
    pub lost: u64,
    /// Inputs applied twice, and seqs applied out of order.
    pub duplicates: u64,
    /// Seqs applied after a higher one.
    pub out_of_order: u64,
    /// Kill → every bot acknowledged again, in milliseconds (sorted).
    pub recoveries_ms: Vec<f64>,
    /// Kill → first acknowledgement by any bot, in milliseconds (sorted).
    pub first_ack_ms: Vec<f64>,
}

impl ChaosReport {
    /// The JSON line.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"kills\":{},\"acked\":{},\"lost\":{},\"duplicates\":{},\"out_of_order\":{},\
             \"recovery_p50_ms\":{:.0},\"recovery_p99_ms\":{:.0},\"first_ack_p50_ms\":{:.0}}}",
            self.kills,
            self.acked,
            self.lost,
            self.duplicates,
            self.out_of_order,
            quantile(&self.recoveries_ms, 0.5),
            quantile(&self.recoveries_ms, 0.99),
            quantile(&self.first_ack_ms, 0.5),
        )
    }
}

/// The `q` quantile (nearest rank) of sorted `values`; 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs the chaos test; fails when an acknowledged input was lost, doubled or reordered.
pub async fn chaos(args: ChaosArgs) -> Result<(), String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "sekai chaos: seed {seed}, {} kills, {} bots (replay with --seed {seed})",
        args.kills, args.bots
    );
    let temp = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let listen = server::free_udp_address()?;
    let shape = WorldShape {
        regions_per_side: args.regions_per_side.max(1),
        density: 0.5,
        seed,
    };
    let mut serve = ServeChild::start(&exe, &dir, listen, SECRET, &shape, &[]).await?;
    let cert = server::kept_certificate(&dir)?;
    let log = Arc::new(AckLog::new(args.bots, 1));
    let threads = acks::start(
        ChaosBots {
            server: listen,
            certificate: cert,
            tokens: TokenKey::new(SECRET.as_bytes().to_vec()),
            seed,
            threads: args.threads,
        },
        log.clone(),
    );
    let started = Instant::now();
    let timeout = Duration::from_secs_f64(args.recovery_timeout.max(1.0));
    // Everyone playing before the first kill.
    let ready = wait_until(timeout, || log.all_acked_since(started)).await;
    println!(
        "[{:>5.1}s] bots playing: {}",
        started.elapsed().as_secs_f64(),
        if ready { "all" } else { "not all (continuing)" }
    );

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut report = ChaosReport::default();
    let (min_gap, max_gap) = (args.min_gap.max(0.0), args.max_gap.max(args.min_gap));
    let mut outcome = Ok(());
    for kill in 1..=args.kills {
        let gap = if max_gap > min_gap {
            rng.gen_range(min_gap..max_gap)
        } else {
            min_gap
        };
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        let killed_at = Instant::now();
        serve.kill().await;
        serve = match ServeChild::start(&exe, &dir, listen, SECRET, &shape, &[]).await {
            Ok(serve) => serve,
            Err(error) => {
                outcome = Err(format!("restart after kill {kill}: {error}"));
                break;
            }
        };
        let restarted = killed_at.elapsed();
        let first = wait_until(timeout, || log.any_acked_since(killed_at)).await;
        let first_ms = killed_at.elapsed().as_secs_f64() * 1e3;
        let all = wait_until(timeout, || log.all_acked_since(killed_at)).await;
        let all_ms = killed_at.elapsed().as_secs_f64() * 1e3;
        report.kills += 1;
        println!(
            "[{:>5.1}s] kill {kill}: restarted in {:.0} ms, first ack after {first_ms:.0} ms, \
             every bot after {all_ms:.0} ms",
            started.elapsed().as_secs_f64(),
            restarted.as_secs_f64() * 1e3,
        );
        if !(first && all) {
            outcome = Err(format!(
                "kill {kill}: the bots did not recover within {timeout:?}"
            ));
            break;
        }
        report.first_ack_ms.push(first_ms);
        report.recoveries_ms.push(all_ms);
    }
    // A little more play after the last restart, then quiet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    log.stop();
    let _ =
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    let acked = log.acked();
    println!(
        "bots stopped: {} reconnects, {} refused inputs, {} bots gave up",
        log.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        log.refused.load(std::sync::atomic::Ordering::Relaxed),
        log.stopped.load(std::sync::atomic::Ordering::Relaxed)
    );

    let keys = WorldKeys::numbered(WORLD);
    let mut checked = None;
    for round in 1..=5 {
        // Quiet: the processors drain the inboxes; then a clean stop frees the directory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        serve.stop().await;
        let db = open_waiting(&dir, EngineOptions::default(), Duration::from_secs(30)).await?;
        let result = check::check_store(&db, &keys, &shape.regions(), &acked).await?;
        drop(db);
        let behind = result.behind;
        checked = Some(result);
        if behind == 0 {
            break;
        }
        println!("check round {round}: {behind} players still have inputs in an inbox; running the server again");
        serve = ServeChild::start(&exe, &dir, listen, SECRET, &shape, &[]).await?;
    }
    serve.kill().await;
    let checked = checked.unwrap_or_default();
    report.acked = checked.acked;
    report.lost = checked.lost;
    report.duplicates = checked.duplicates;
    report.out_of_order = checked.out_of_order;
    report.recoveries_ms.sort_by(f64::total_cmp);
    report.first_ack_ms.sort_by(f64::total_cmp);
    println!(
        "{} kills; {} acknowledged inputs checked in {} frame records: {} lost, {} applied twice, \
         {} out of order, {} players still behind; recovery (kill -> every bot acknowledged \
         again) p50 {:.0} ms p99 {:.0} ms; first ack p50 {:.0} ms",
        report.kills,
        report.acked,
        checked.frames,
        report.lost,
        report.duplicates,
        report.out_of_order,
        checked.behind,
        quantile(&report.recoveries_ms, 0.5),
        quantile(&report.recoveries_ms, 0.99),
        quantile(&report.first_ack_ms, 0.5),
    );
    println!("{}", report.to_json());
    outcome?;
    if !checked.holds() {
        return Err(format!(
            "acknowledged inputs lost ({}), applied twice ({}) or out of order ({}); seed {seed}",
            report.lost, report.duplicates, report.out_of_order
        ));
    }
    if checked.behind > 0 {
        return Err(format!(
            "{} players' acknowledged inputs were never applied; seed {seed}",
            checked.behind
        ));
    }
    Ok(())
}

/// Polls `done` every 10 ms until it holds (true) or `timeout` passes (false).
async fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() >= timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
    }

    #[test]
    fn the_report_line_is_json_with_the_issue_fields() {
        let report = ChaosReport {
            kills: 3,
            acked: 10,
            recoveries_ms: vec![100.0, 200.0],
            ..ChaosReport::default()
        };
        let line = report.to_json();
        for field in [
            "kills",
            "acked",
            "lost",
            "recovery_p50_ms",
            "recovery_p99_ms",
        ] {
            assert!(
                crate::commands::json_number(&line, field).is_some(),
                "{field}"
            );
        }
    }
}
