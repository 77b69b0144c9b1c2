//! `sekai bench fuzz-edge`: a black-box fuzzer against a live edge while well-behaved bots
//! play.
//!
//! A `sekai serve` child process serves N bots ([`crate::bots`]) for a baseline window; then M
//! fuzzers ([`attack`]) hammer the same edge for a window of the same length with malformed,
//! truncated and oversized Cap'n Proto RPC messages ([`messages`]), extra and unidirectional
//! streams and random datagrams, each case on a new QUIC connection. The report: the bots'
//! p50/p99 in both windows and their ratio (same run), the fuzz messages sent per kind, how
//! the edge closed the fuzzers' connections (protocol error = close code 1), panics in the
//! child's log, whether the child is still alive, and whether a fresh client still logs in and
//! gets an input acknowledged at the end.
//!
//! Invariants: every random choice comes from the printed seed (`--seed` reproduces the cases
//! each fuzzer makes, in order); the bots are players 1..=N, the fuzzers N+1..=N+M, the fresh
//! client N+M+1; the serve child is killed when the command ends; a dead child, a panic in its
//! log or a failed fresh login is a failure (non-zero exit); the last stdout line is the JSON
//! report.

pub mod attack;
pub mod messages;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use sekai_layer::world::model::Action;

use crate::bots::{start_bots, BotConfig, BotStats, BOT_AREA_RADIUS};
use crate::chaos::server::{free_udp_address, kept_certificate, ServeChild};
use crate::proc_stats::{cpu_seconds, rss_mib};
use crate::world_setup::WorldShape;
pub use attack::{FuzzCounts, FuzzKind, FuzzPlan, FuzzTarget};
use sekai_client::{client_endpoint, ClientConfig, EdgeClient};
use sekai_edge::tls::SELF_SIGNED_NAME;
use sekai_edge::token::{unix_now, TokenKey};

const SECRET: &str = "fuzz-edge-secret";

/// How long the fresh client at the end may take to log in and get its input acknowledged.
const FRESH_LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `sekai bench fuzz-edge`.
#[derive(clap::Args, Debug)]
pub struct FuzzEdgeArgs {
    /// Well-behaved bots, playing through both windows; their input-to-delta p99 with the
    /// fuzzers is compared with their p99 without (same run).
    #[arg(long, default_value_t = 100)]
    pub bots: usize,
    /// Concurrent fuzzing connections in the second window. Each fuzzer runs one case after
    /// another, each case on a new QUIC connection (handshake included).
    #[arg(long, default_value_t = 8)]
    pub fuzzers: usize,
    /// Seconds of each window: the baseline (bots only), then the fuzzed one.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 20.0)]
    pub seconds: f64,
    /// Seed of the fuzz cases, the bots and the world; random when absent (printed either way,
    /// so a run can be repeated case for case).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fuzz kinds to draw from, comma-separated (all by default): random_bytes,
    /// garbage_segments, truncated, oversized_header, wrong_ids, malformed_params, mutated,
    /// bogus_rpc, many_streams, uni_streams, datagrams.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub kinds: Vec<FuzzKind>,
    /// Milliseconds a case waits for the edge to close its connection (after the case's bytes
    /// are written) before closing it itself and counting it as left open.
    #[arg(long, default_value_t = 1000)]
    pub close_wait_ms: u64,
}

/// One window's figures for the bots.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    p50_us: u64,
    p99_us: u64,
    applied: u64,
    errors: u64,
    /// The serve child's CPU over the window, in cores.
    edge_cores: f64,
    /// The serve child's largest resident memory sampled, MiB.
    rss_max: f64,
    /// False when the serve child exited during the window.
    alive: bool,
}

/// Runs the fuzz benchmark; `Err` when the edge died, panicked or stopped serving.
pub async fn bench_fuzz_edge(args: FuzzEdgeArgs) -> Result<(), String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let kinds = if args.kinds.is_empty() {
        FuzzKind::ALL.to_vec()
    } else {
        args.kinds.clone()
    };
    println!(
        "sekai bench fuzz-edge: seed {seed}, {} bots, {} fuzzers, two windows of {} s, kinds {}",
        args.bots,
        args.fuzzers,
        args.seconds,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
    );
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let listen = free_udp_address()?;
    let shape = WorldShape {
        regions_per_side: 2,
        density: 0.5,
        seed,
    };
    let mut serve = ServeChild::start(&exe, dir.path(), listen, SECRET, &shape, &[]).await?;
    let certificate = kept_certificate(dir.path())?;
    let tokens = TokenKey::new(SECRET.as_bytes().to_vec());
    let stats = Arc::new(BotStats::default());
    let bot_threads = start_bots(
        BotConfig {
            server: listen,
            certificate: certificate.clone(),
            tokens: tokens.clone(),
            bots: args.bots,
            first_player: 1,
            seed,
            threads: 1,
            on_applied: None,
            area_radius: BOT_AREA_RADIUS,
        },
        stats.clone(),
    );
    let result = fuzz_while_playing(
        &args,
        seed,
        kinds,
        listen,
        &certificate,
        &tokens,
        &stats,
        &mut serve,
    )
    .await;
    stats.stop();
    let _ = tokio::task::spawn_blocking(move || {
        bot_threads.into_iter().for_each(|t| drop(t.join()));
    })
    .await;
    let panics = panic_lines(&dir.path().join("serve.log"));
    for line in panics.iter().take(5) {
        println!("serve child: {line}");
    }
    serve.kill().await;
    let run = result?;
    report(&args, seed, &run, panics.len() as u64)
}

/// What the two windows and the end checks found.
struct Run {
    baseline: Window,
    fuzzed: Window,
    counts: Arc<FuzzCounts>,
    alive: bool,
    fresh_login: Result<u64, String>,
}

/// The two windows and the end checks (the bots are started and stopped by the caller).
#[allow(clippy::too_many_arguments)]
async fn fuzz_while_playing(
    args: &FuzzEdgeArgs,
    seed: u64,
    kinds: Vec<FuzzKind>,
    server: SocketAddr,
    certificate: &CertificateDer<'static>,
    tokens: &TokenKey,
    stats: &Arc<BotStats>,
    serve: &mut ServeChild,
) -> Result<Run, String> {
    wait_for_bots(stats, args.bots, serve).await?;
    let window = Duration::from_secs_f64(args.seconds.max(1.0));
    let counts = Arc::new(FuzzCounts::default());
    let baseline = measure(stats, serve, window, "baseline", &counts).await;
    let stop = Arc::new(AtomicBool::new(false));
    let target = FuzzTarget {
        server,
        certificate: certificate.clone(),
        tokens: tokens.clone(),
        first_player: args.bots as u64 + 1,
    };
    let plan = FuzzPlan {
        seed,
        fuzzers: args.fuzzers,
        kinds,
        cases_per_fuzzer: None,
        close_wait: Duration::from_millis(args.close_wait_ms),
    };
    let fuzz_thread = {
        let (counts, stop) = (counts.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sekai-fuzzers".into())
            .spawn(move || {
                crate::bots::block_on_local(async move {
                    if let Err(error) = attack::run_fuzzers(target, plan, counts, stop).await {
                        tracing::error!(%error, "the fuzzers could not start");
                    }
                })
            })
            .map_err(|e| format!("fuzz thread: {e}"))?
    };
    let fuzzed = measure(stats, serve, window, "fuzzing", &counts).await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || fuzz_thread.join()).await;
    let alive = serve.exit_status().is_none();
    let fresh_player = (args.bots + args.fuzzers) as u64 + 1;
    let fresh_login = if alive {
        fresh_login(server, certificate, tokens, fresh_player).await
    } else {
        Err("the serve child is dead".into())
    };
    Ok(Run {
        baseline,
        fuzzed: Window {
            alive: fuzzed.alive && alive,
            ..fuzzed
        },
        counts,
        alive,
        fresh_login,
    })
}

/// Waits (at most 60 s) until every bot is logged in and subscribed, then 2 s more.
async fn wait_for_bots(
    stats: &BotStats,
    bots: usize,
    serve: &mut ServeChild,
) -> Result<(), String> {
    let started = Instant::now();
    while (stats.connected.load(Ordering::Relaxed) as usize) < bots {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the bots did not all connect within 60 s".into());
        }
        if serve.exit_status().is_some() {
            return Err("sekai serve exited before the bots connected".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// Measures one window: the bots' latency quantiles, with a progress line every second; stops
/// early if the serve child exits.
async fn measure(
    stats: &BotStats,
    serve: &mut ServeChild,
    window: Duration,
    what: &str,
    counts: &FuzzCounts,
) -> Window {
    stats.reset_histograms();
    let applied_start = stats.applied.load(Ordering::Relaxed);
    let errors_start = stats.errors.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut alive = true;
    let pid = serve.pid().unwrap_or(0);
    let mut cpu_last = cpu_seconds(pid).unwrap_or(0.0);
    let (mut rss_max, mut cpu_total) = (0.0f64, 0.0);
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(status) = serve.exit_status() {
            println!("[{what}] sekai serve EXITED: {status}");
            alive = false;
            break;
        }
        let cpu = cpu_seconds(pid).unwrap_or(cpu_last);
        let rss = rss_mib(pid).unwrap_or(0.0);
        rss_max = rss_max.max(rss);
        cpu_total += cpu - cpu_last;
        let (_, p99, _) = stats.total_quantiles();
        println!(
            "[{what}] {:>3.0} s: bots p99 {:.2} ms; edge {:.2} cores, RSS {rss:.0} MiB; fuzz cases \
             {}, messages {}, protocol closes {}",
            started.elapsed().as_secs_f64(),
            p99 as f64 / 1e3,
            cpu - cpu_last,
            counts.total(|k| &k.cases),
            counts.total(|k| &k.messages),
            counts.total(|k| &k.protocol_closes),
        );
        cpu_last = cpu;
    }
    let (p50_us, p99_us, _) = stats.total_quantiles();
    Window {
        edge_cores: cpu_total / started.elapsed().as_secs_f64().max(1e-3),
        rss_max,
        p50_us,
        p99_us,
        applied: stats.applied.load(Ordering::Relaxed) - applied_start,
        errors: stats.errors.load(Ordering::Relaxed) - errors_start,
        alive,
    }
}

/// A fresh client logs in and gets one input acknowledged; returns the acknowledged seq.
async fn fresh_login(
    server: SocketAddr,
    certificate: &CertificateDer<'static>,
    tokens: &TokenKey,
    player: u64,
) -> Result<u64, String> {
    let bind = SocketAddr::from(([0, 0, 0, 0], 0));
    let endpoint = client_endpoint(bind, certificate).map_err(|e| e.to_string())?;
    let attempt = async {
        let client = EdgeClient::connect(
            &endpoint,
            ClientConfig {
                server,
                server_name: SELF_SIGNED_NAME.into(),
                token: tokens.issue(player, unix_now() + 3_600),
            },
        )
        .await
        .map_err(|e| format!("login: {e}"))?;
        let seq = client
            .send(Action::Idle)
            .await
            .map_err(|e| format!("send: {e}"))?;
        client.disconnect();
        Ok(seq)
    };
    let result = tokio::time::timeout(FRESH_LOGIN_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no ack within {FRESH_LOGIN_TIMEOUT:?}"))
        .and_then(|r| r);
    endpoint.close(0u32.into(), b"fresh login done");
    result
}

/// Lines of `log` that report a panic (`thread '…' panicked at …`), in order.
fn panic_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|text| {
            text.lines()
                .filter(|l| l.contains("panicked at"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Prints the tables and the JSON line; `Err` when the edge failed.
fn report(args: &FuzzEdgeArgs, seed: u64, run: &Run, panics: u64) -> Result<(), String> {
    let c = &run.counts;
    println!(
        "{:<18} {:>7} {:>9} {:>11} {:>9} {:>8} {:>7} {:>6} {:>8}",
        "kind", "cases", "messages", "bytes", "protocol", "normal", "other", "open", "no conn"
    );
    for kind in FuzzKind::ALL {
        let k = c.kind(kind);
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        println!(
            "{:<18} {:>7} {:>9} {:>11} {:>9} {:>8} {:>7} {:>6} {:>8}",
            kind.name(),
            get(&k.cases),
            get(&k.messages),
            get(&k.bytes),
            get(&k.protocol_closes),
            get(&k.normal_closes),
            get(&k.other_closes),
            get(&k.left_open),
            get(&k.connect_failures),
        );
    }
    println!(
        "extra bidi streams granted: {}, uni streams granted: {}, cases without datagram support: {}",
        c.extra_bidi_opened.load(Ordering::Relaxed),
        c.uni_opened.load(Ordering::Relaxed),
        c.datagrams_unsupported.load(Ordering::Relaxed)
    );
    let mut reasons: Vec<(String, u64)> = c.close_reasons().into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    println!("most frequent protocol-error close reasons:");
    for (reason, n) in reasons.iter().take(8) {
        println!("  {n:>6}  {reason}");
    }
    let ratio = run.fuzzed.p99_us as f64 / run.baseline.p99_us.max(1) as f64;
    println!(
        "bots' p50/p99: {:.2}/{:.2} ms baseline, {:.2}/{:.2} ms fuzzed ({ratio:.2}x p99); inputs \
         applied {} / {}, bot errors {} / {}",
        run.baseline.p50_us as f64 / 1e3,
        run.baseline.p99_us as f64 / 1e3,
        run.fuzzed.p50_us as f64 / 1e3,
        run.fuzzed.p99_us as f64 / 1e3,
        run.baseline.applied,
        run.fuzzed.applied,
        run.baseline.errors,
        run.fuzzed.errors,
    );
    println!(
        "edge CPU {:.2} cores baseline, {:.2} cores fuzzed; edge RSS max {:.0} MiB baseline, {:.0} \
         MiB fuzzed",
        run.baseline.edge_cores, run.fuzzed.edge_cores, run.baseline.rss_max, run.fuzzed.rss_max
    );
    match &run.fresh_login {
        Ok(seq) => println!(
            "edge alive: {}; a fresh client logged in and got ack {seq}",
            run.alive
        ),
        Err(error) => println!("edge alive: {}; fresh login FAILED: {error}", run.alive),
    }
    println!("panics in the serve child's log: {panics}");
    let by_kind: Vec<String> = FuzzKind::ALL
        .iter()
        .map(|kind| {
            let k = c.kind(*kind);
            format!(
                "\"{}\":{{\"cases\":{},\"messages\":{},\"protocol_closes\":{}}}",
                kind.name(),
                k.cases.load(Ordering::Relaxed),
                k.messages.load(Ordering::Relaxed),
                k.protocol_closes.load(Ordering::Relaxed)
            )
        })
        .collect();
    println!(
        "{{\"seed\":{seed},\"bots\":{},\"fuzzers\":{},\"fuzz_connections\":{},\"messages\":{},\
         \"protocol_closes\":{},\"normal_closes\":{},\"other_closes\":{},\"left_open\":{},\
         \"baseline_p50_us\":{},\"baseline_p99_us\":{},\"fuzzed_p50_us\":{},\"fuzzed_p99_us\":{},\
         \"p99_ratio\":{ratio:.3},\"edge_cores_baseline\":{:.3},\"edge_cores_fuzzed\":{:.3},\"edge_rss_max_mib\":{:.1},\"bot_errors_fuzzed\":{},\"edge_panics\":{panics},\
         \"edge_alive\":{},\"fresh_login\":{},\"by_kind\":{{{}}}}}",
        args.bots,
        args.fuzzers,
        c.total(|k| &k.cases),
        c.total(|k| &k.messages),
        c.total(|k| &k.protocol_closes),
        c.total(|k| &k.normal_closes),
        c.total(|k| &k.other_closes),
        c.total(|k| &k.left_open),
        run.baseline.p50_us,
        run.baseline.p99_us,
        run.fuzzed.p50_us,
        run.fuzzed.p99_us,
        run.baseline.edge_cores,
        run.fuzzed.edge_cores,
        run.fuzzed.rss_max.max(run.baseline.rss_max),
        run.fuzzed.errors,
        run.alive && run.fuzzed.alive,
        run.fresh_login.is_ok(),
        by_kind.join(",")
    );
    if run.alive && run.fuzzed.alive && run.fresh_login.is_ok() && panics == 0 {
        return Ok(());
    }
    let recent: Vec<String> = c
        .recent()
        .iter()
        .map(|id| {
            format!(
                "fuzzer {} case {} {} (case seed {})",
                id.fuzzer,
                id.case,
                id.kind.name(),
                id.case_seed
            )
        })
        .collect();
    Err(format!(
        "the edge failed under fuzz (alive {}, fresh login {:?}, panics {panics}); seed {seed}; \
         last cases: {}",
        run.alive,
        run.fresh_login,
        recent.join("; ")
    ))
}
