//! `sekai bench stall`: a tenth of the clients stop reading while the others play.
//!
//! A `sekai serve` child process (so its memory is the edge's alone) serves `bots` clients: the
//! well-behaved bots ([`crate::bots`]) and the stalling clients ([`client`]), half of which stop
//! completing their `DeltaSink` calls and half stop reading their stream. One measured window
//! with every client reading, then one of the same length after the stalling clients stop: the
//! well-behaved bots' input-to-delta p99 in both (their ratio, same run), the server's resident
//! memory sampled every second, and the stall resets the sink-stalled clients still received.
//!
//! Invariants: the stalling clients are players after the bots'; every random choice comes
//! from the printed seed; the last stdout line is the JSON report.

pub mod client;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;

use crate::bots::{start_bots, BotConfig, BotStats, BOT_AREA_RADIUS};
use crate::chaos::server::{free_udp_address, kept_certificate, ServeChild};
use crate::proc_stats::rss_mib;
use crate::world_setup::WorldShape;
use client::{StallKind, StallingClient};
use sekai_edge::token::{unix_now, TokenKey};

const SECRET: &str = "stall-secret";

/// `sekai bench stall`.
#[derive(clap::Args, Debug)]
pub struct StallArgs {
    /// Clients in all (well-behaved bots plus stalling clients).
    #[arg(long, default_value_t = 100)]
    pub bots: usize,
    /// Percent of the clients that stop reading.
    #[arg(long, default_value_t = 10)]
    pub stalled_percent: usize,
    /// Seconds of each measured window.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 15.0)]
    pub seconds: f64,
    /// The edge's stall timeout, in seconds.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 5.0)]
    pub stall_timeout_secs: f64,
    /// Radius of the stalling clients' areas of interest, in metres (large: much traffic).
    #[arg(long, default_value_t = 64.0)]
    pub radius: f32,
    /// Seed of the bots and the world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What the stalling clients' thread reports.
#[derive(Default)]
struct StallSide {
    connected: AtomicU64,
    stall: AtomicBool,
    done: AtomicBool,
    resets: AtomicU64,
    calls: AtomicU64,
}

/// Runs the stalled-client benchmark.
pub async fn bench_stall(args: StallArgs) -> Result<(), String> {
    let stalled = (args.bots * args.stalled_percent)
        .div_ceil(100)
        .min(args.bots);
    let healthy = args.bots - stalled;
    println!(
        "sekai bench stall: seed {}, {healthy} bots reading, {stalled} stalling (half sink, half \
         stream), stall timeout {} s, two windows of {} s",
        args.seed, args.stall_timeout_secs, args.seconds
    );
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let listen = free_udp_address()?;
    let shape = WorldShape {
        regions_per_side: 2,
        density: 0.5,
        seed: args.seed,
    };
    let extra = [
        "--stall-timeout-secs".to_string(),
        args.stall_timeout_secs.to_string(),
    ];
    let mut serve = ServeChild::start(&exe, dir.path(), listen, SECRET, &shape, &extra).await?;
    let pid = serve.pid().ok_or("sekai serve has no pid")?;
    let certificate = kept_certificate(dir.path())?;
    let tokens = TokenKey::new(SECRET.as_bytes().to_vec());
    let stats = Arc::new(BotStats::default());
    let bot_threads = start_bots(
        BotConfig {
            server: listen,
            certificate: certificate.clone(),
            tokens: tokens.clone(),
            bots: healthy,
            first_player: 1,
            seed: args.seed,
            threads: 1,
            on_applied: None,
            area_radius: BOT_AREA_RADIUS,
        },
        stats.clone(),
    );
    let side = Arc::new(StallSide::default());
    let stall_thread = {
        let (side, certificate, tokens, radius) = (
            side.clone(),
            certificate.clone(),
            tokens.clone(),
            args.radius,
        );
        let first = healthy as u64 + 1;
        std::thread::Builder::new()
            .name("sekai-stalling".into())
            .spawn(move || run_stalling(listen, certificate, tokens, first, stalled, radius, side))
            .map_err(|e| format!("stalling thread: {e}"))?
    };
    let started = Instant::now();
    while (stats.connected.load(Ordering::Relaxed) as usize) < healthy
        || (side.connected.load(Ordering::Relaxed) as usize) < stalled
    {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the clients did not all connect within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs_f64(args.seconds.max(1.0));
    let before = measure(&stats, pid, window, "every client reading").await;
    side.stall.store(true, Ordering::Relaxed);
    let during = measure(&stats, pid, window, "stalling clients stopped reading").await;
    stats.stop();
    side.done.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || {
        bot_threads.into_iter().for_each(|t| drop(t.join()));
        drop(stall_thread.join());
    })
    .await;
    serve.kill().await;
    let ratio = during.p99_us as f64 / before.p99_us.max(1) as f64;
    println!(
        "well-behaved bots' p99: {:.2} ms reading, {:.2} ms with {stalled} stalled ({ratio:.2}x); \
         edge RSS {:.1} MiB max reading, {:.1} MiB max stalled, {:.1} MiB at the end; {} stall \
         resets reached the sink-stalled clients",
        before.p99_us as f64 / 1e3,
        during.p99_us as f64 / 1e3,
        before.rss_max,
        during.rss_max,
        during.rss_last,
        side.resets.load(Ordering::Relaxed),
    );
    println!(
        "{{\"bots\":{healthy},\"stalled\":{stalled},\"p99_before_us\":{},\"p99_stalled_us\":{},\
         \"p99_ratio\":{ratio:.3},\"rss_before_max_mib\":{:.1},\"rss_stalled_max_mib\":{:.1},\
         \"rss_end_mib\":{:.1},\"stall_resets_seen\":{}}}",
        before.p99_us,
        during.p99_us,
        before.rss_max,
        during.rss_max,
        during.rss_last,
        side.resets.load(Ordering::Relaxed)
    );
    Ok(())
}

/// One window's figures.
struct Window {
    p99_us: u64,
    rss_max: f64,
    rss_last: f64,
}

/// Measures one window: the bots' p99 and the server's RSS every second.
async fn measure(stats: &BotStats, pid: u32, window: Duration, what: &str) -> Window {
    stats.reset_histograms();
    let started = Instant::now();
    let (mut rss_max, mut rss_last) = (0.0f64, 0.0);
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_last = rss_mib(pid).unwrap_or(0.0);
        rss_max = rss_max.max(rss_last);
        let (_, p99, _) = stats.total_quantiles();
        println!(
            "[{what}] {:>3.0} s: p99 {:.2} ms, edge RSS {rss_last:.1} MiB",
            started.elapsed().as_secs_f64(),
            p99 as f64 / 1e3
        );
    }
    Window {
        p99_us: stats.total_quantiles().1,
        rss_max,
        rss_last,
    }
}

/// The stalling clients' thread: connect, read until told to stall, then stall until done.
fn run_stalling(
    server: std::net::SocketAddr,
    certificate: CertificateDer<'static>,
    tokens: TokenKey,
    first_player: u64,
    count: usize,
    radius: f32,
    side: Arc<StallSide>,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("cannot start the stalling clients' runtime");
        return;
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let bind = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let endpoint = match crate::bots::shared_endpoint(bind, &certificate) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!(%error, "cannot open the stalling clients' endpoint");
                return;
            }
        };
        let mut clients = Vec::new();
        for i in 0..count {
            let player = first_player + i as u64;
            let kind = if i % 2 == 0 {
                StallKind::Sink
            } else {
                StallKind::Stream
            };
            let token = tokens.issue(player, unix_now() + 86_400);
            match StallingClient::connect(&endpoint, server, &token, radius, kind).await {
                Ok(client) => {
                    side.connected.fetch_add(1, Ordering::Relaxed);
                    clients.push(client);
                }
                Err(error) => tracing::warn!(player, %error, "stalling client did not connect"),
            }
        }
        while !side.stall.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        clients.iter().for_each(StallingClient::stall);
        while !side.done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let resets: usize = clients.iter().map(|c| c.resets().len()).sum();
        let calls: u64 = clients.iter().map(StallingClient::calls).sum();
        side.resets.store(resets as u64, Ordering::Relaxed);
        side.calls.store(calls, Ordering::Relaxed);
        clients.iter().for_each(StallingClient::close);
    });
}
