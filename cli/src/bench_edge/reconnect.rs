//! `sekai bench reconnect`: a network blip for N clients at once, with the edge's region cache
//! off and then on, in one run.
//!
//! One process: the embedded engine with a generated 4×4-region world, its processors, one edge
//! and N SDK clients (real QUIC on loopback) on a thread of their own. Every client connects and
//! subscribes to a circle around its avatar. Then, once with the cache off and once with it on,
//! every client drops its subscription and makes it again at the same moment (a fresh snapshot,
//! as after a blip): the figures are the time until every client has its snapshot and the store
//! range reads (and estimated bytes) the snapshots cost. Last, 300 bots play for a few seconds
//! with the cache on, for the steady hit rate of snapshot lookups under the demo's load.
//!
//! Invariants: both phases resubscribe the same clients to the same areas against the same
//! world; the only difference is the cache switch; a phase that does not complete within its
//! deadline is an error, never a figure.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::world::processor::ProcessorStats;
use sekai_schema::{Area, WorldKeys};
use tokio::sync::mpsc;

use crate::bots::{start_bots, BotConfig, BotStats, BOT_AREA_RADIUS};
use crate::world_setup::{load_world, spawn_near_resources, start_processors, WorldShape};
use sekai_client::{client_endpoint, ClientConfig, EdgeClient, MirrorEvent, SubscriptionHandle};
use sekai_edge::fanout::Fanout;
use sekai_edge::server::{EdgeConfig, EdgeServer};
use sekai_edge::tls::SELF_SIGNED_NAME;
use sekai_edge::token::{unix_now, TokenKey};

/// `sekai bench reconnect` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchReconnectArgs {
    /// Clients that resubscribe at once.
    #[arg(long, default_value_t = 1_000)]
    pub bots: usize,
    /// Bots playing during the steady hit-rate phase.
    #[arg(long, default_value_t = 300)]
    pub steady_bots: usize,
    /// Seconds of the steady phase.
    #[arg(long, value_parser = crate::flags::duration, default_value_t = 5.0)]
    pub steady_seconds: f64,
    /// Seed of the world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Storms with the cache off and with it on, alternating; the figures are their medians.
    #[arg(long, default_value_t = 5)]
    pub storms: usize,
}

/// What one resubscription storm cost.
#[derive(Clone, Copy, Debug, Default)]
struct Storm {
    seconds: f64,
    reads: u64,
    bytes: u64,
}

/// Commands from the bench to the clients' thread.
enum ToClients {
    /// Drop every subscription and make it again; answer when all snapshots arrived.
    Resubscribe(tokio::sync::oneshot::Sender<Result<(), String>>),
    /// Disconnect and stop.
    Stop,
}

/// Runs the benchmark and prints its report (last line JSON).
pub async fn bench_reconnect(args: BenchReconnectArgs) -> Result<(), String> {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).map_err(|e| e.to_string())?;
    let keys = WorldKeys::new("sekai/bench-reconnect").map_err(|e| e.to_string())?;
    let shape = WorldShape {
        regions_per_side: 4,
        density: 0.5,
        seed: args.seed,
    };
    let resources = load_world(&db, &keys, &shape).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let (processors, direct) = start_processors(
        &db,
        &keys,
        &shape,
        &stop,
        &Arc::new(ProcessorStats::default()),
        |_| {},
    );
    let tokens = TokenKey::new(rand::random::<[u8; 32]>().to_vec());
    let mut config = EdgeConfig::new(
        "127.0.0.1:0"
            .parse()
            .map_err(|e: std::net::AddrParseError| e.to_string())?,
        tokens.clone(),
    );
    config.workers = 1;
    config.direct = direct;
    config.spawn = spawn_near_resources(&shape, &resources);
    let edge = EdgeServer::start(db.clone(), keys.clone(), config)
        .await
        .map_err(|e| e.to_string())?;
    let server = edge.local_addr().map_err(|e| e.to_string())?;
    let fanout = edge.fanout().clone();
    fanout.set_cache_enabled(false);

    let (commands, inbox) = mpsc::unbounded_channel();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let clients = {
        let (certificate, tokens, bots) = (edge.certificate().clone(), tokens.clone(), args.bots);
        std::thread::Builder::new()
            .name("sekai-reconnect-clients".into())
            .spawn(move || run_clients(server, certificate, tokens, bots, inbox, ready_tx))
            .map_err(|e| format!("cannot start the client thread: {e}"))?
    };
    ready
        .await
        .map_err(|_| "the clients' thread stopped".to_string())??;
    println!("{} clients connected and subscribed", args.bots);

    let (mut offs, mut ons) = (Vec::new(), Vec::new());
    for round in 1..=args.storms.max(1) {
        for on in [false, true] {
            let figures = storm(&fanout, &commands, on).await?;
            println!(
                "storm {round}, cache {}: every snapshot after {:.0} ms, {} store range reads, \
                 ~{} KiB",
                if on { "on " } else { "off" },
                figures.seconds * 1e3,
                figures.reads,
                figures.bytes / 1024
            );
            if on { &mut ons } else { &mut offs }.push(figures);
        }
    }
    let (off, on) = (Storm::median(offs), Storm::median(ons));
    let _ = commands.send(ToClients::Stop);
    let _ = tokio::task::spawn_blocking(move || clients.join()).await;

    let hit_rate = steady_hit_rate(&edge, &tokens, &args).await;
    println!(
        "steady hit rate of snapshot lookups with {} bots: {hit_rate:.3}",
        args.steady_bots
    );
    let reads_ratio = off.reads as f64 / on.reads.max(1) as f64;
    let time_ratio = off.seconds / on.seconds.max(1e-9);
    println!(
        "off/on (medians of {} storms each): store reads {reads_ratio:.1}x, time to all \
         snapshots {time_ratio:.1}x",
        args.storms.max(1)
    );
    println!(
        "{{\"bots\":{},\"reads_ratio\":{reads_ratio:.2},\"time_ratio\":{time_ratio:.2},\
         \"hit_rate\":{hit_rate:.4},\"off\":{{\"ms\":{:.1},\"reads\":{},\"bytes\":{}}},\
         \"on\":{{\"ms\":{:.1},\"reads\":{},\"bytes\":{}}}}}",
        args.bots,
        off.seconds * 1e3,
        off.reads,
        off.bytes,
        on.seconds * 1e3,
        on.reads,
        on.bytes
    );
    stop.store(true, Ordering::Relaxed);
    edge.shutdown().await;
    for processor in processors {
        let _ = processor.await;
    }
    Ok(())
}

impl Storm {
    /// The median of each figure over `storms` (at least one).
    fn median(storms: Vec<Storm>) -> Storm {
        fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v[v.len() / 2]
        }
        Storm {
            seconds: mid(storms.iter().map(|s| s.seconds).collect()),
            reads: mid(storms.iter().map(|s| s.reads).collect()),
            bytes: mid(storms.iter().map(|s| s.bytes).collect()),
        }
    }
}

/// One storm: every client resubscribes at once with the cache `on`.
async fn storm(
    fanout: &Fanout,
    commands: &mpsc::UnboundedSender<ToClients>,
    on: bool,
) -> Result<Storm, String> {
    fanout.set_cache_enabled(on);
    let stats = fanout.stats();
    let (reads, bytes) = (
        stats.snapshot_reads.load(Ordering::Relaxed),
        stats.snapshot_bytes.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let (done, answer) = tokio::sync::oneshot::channel();
    commands
        .send(ToClients::Resubscribe(done))
        .map_err(|_| "the clients' thread stopped".to_string())?;
    answer
        .await
        .map_err(|_| "the clients' thread stopped".to_string())??;
    Ok(Storm {
        seconds: started.elapsed().as_secs_f64(),
        reads: stats.snapshot_reads.load(Ordering::Relaxed) - reads,
        bytes: stats.snapshot_bytes.load(Ordering::Relaxed) - bytes,
    })
}

/// Hits / lookups of the region cache while bots play.
async fn steady_hit_rate(edge: &EdgeServer, tokens: &TokenKey, args: &BenchReconnectArgs) -> f64 {
    let Some(cache) = edge.fanout().cache() else {
        return 0.0;
    };
    edge.fanout().set_cache_enabled(true);
    let before = cache.stats();
    let stats = Arc::new(BotStats::default());
    let Ok(server) = edge.local_addr() else {
        return 0.0;
    };
    let threads = start_bots(
        BotConfig {
            server,
            certificate: edge.certificate().clone(),
            tokens: tokens.clone(),
            bots: args.steady_bots,
            first_player: 1_000_000,
            seed: args.seed,
            threads: 1,
            on_applied: None,
            area_radius: BOT_AREA_RADIUS,
        },
        stats.clone(),
    );
    tokio::time::sleep(Duration::from_secs_f64(args.steady_seconds)).await;
    stats.stop();
    let _ =
        tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    let after = cache.stats();
    let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
    hits as f64 / (hits + misses).max(1) as f64
}

/// The clients' thread: connects and subscribes `bots` clients, then obeys `commands`.
fn run_clients(
    server: SocketAddr,
    certificate: CertificateDer<'static>,
    tokens: TokenKey,
    bots: usize,
    mut commands: mpsc::UnboundedReceiver<ToClients>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error.to_string()));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let snapshots = Rc::new(Cell::new(0usize));
        let clients = match connect_all(server, &certificate, &tokens, bots, &snapshots).await {
            Ok(clients) => clients,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let mut clients = clients;
        while let Some(command) = commands.recv().await {
            match command {
                ToClients::Resubscribe(done) => {
                    let result = resubscribe_all(&mut clients, &snapshots).await;
                    let _ = done.send(result);
                }
                ToClients::Stop => break,
            }
        }
        for (client, _, _) in &clients {
            client.disconnect();
        }
    });
}

type Subscribed = (Rc<EdgeClient>, Area, SubscriptionHandle);

/// Connects and subscribes every client (at most 64 handshakes at a time); waits (bounded) for
/// every first snapshot.
async fn connect_all(
    server: SocketAddr,
    certificate: &CertificateDer<'static>,
    tokens: &TokenKey,
    bots: usize,
    snapshots: &Rc<Cell<usize>>,
) -> Result<Vec<Subscribed>, String> {
    let bind: SocketAddr = "127.0.0.1:0"
        .parse()
        .map_err(|e: std::net::AddrParseError| e.to_string())?;
    let endpoint = client_endpoint(bind, certificate).map_err(|e| e.to_string())?;
    let mut clients = Vec::with_capacity(bots);
    for chunk in (1..=bots as u64).collect::<Vec<_>>().chunks(64) {
        let mut tasks = Vec::new();
        for &player in chunk {
            let config = ClientConfig {
                server,
                server_name: SELF_SIGNED_NAME.into(),
                token: tokens.issue(player, unix_now() + 3_600),
            };
            let (endpoint, snapshots) = (endpoint.clone(), snapshots.clone());
            tasks.push(tokio::task::spawn_local(async move {
                let client = EdgeClient::connect(&endpoint, config)
                    .await
                    .map_err(|e| e.to_string())?;
                let area = Area::new(client.avatar_at_login().position, BOT_AREA_RADIUS);
                let handle = client
                    .subscribe(area, counter(&snapshots))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((Rc::new(client), area, handle))
            }));
        }
        for task in tasks {
            clients.push(task.await.map_err(|e| e.to_string())??);
        }
    }
    wait_for(snapshots, bots, "every first snapshot").await?;
    Ok(clients)
}

/// Every client drops its subscription and subscribes again at once; returns when all have a
/// fresh snapshot.
async fn resubscribe_all(
    clients: &mut [Subscribed],
    snapshots: &Rc<Cell<usize>>,
) -> Result<(), String> {
    let target = snapshots.get() + clients.len();
    let mut tasks = Vec::new();
    for (client, area, handle) in clients.iter() {
        client.unsubscribe(handle);
        let (client, area, snapshots) = (client.clone(), *area, snapshots.clone());
        tasks.push(tokio::task::spawn_local(async move {
            client
                .subscribe(area, counter(&snapshots))
                .await
                .map_err(|e| e.to_string())
        }));
    }
    for (slot, task) in clients.iter_mut().zip(tasks) {
        slot.2 = task.await.map_err(|e| e.to_string())??;
    }
    wait_for(snapshots, target, "every snapshot after the blip").await
}

/// A handler that counts snapshots.
fn counter(snapshots: &Rc<Cell<usize>>) -> impl FnMut(&MirrorEvent<'_>, &sekai_client::Mirror) {
    let snapshots = snapshots.clone();
    move |event, _| {
        if let MirrorEvent::Snapshot { .. } = event {
            snapshots.set(snapshots.get() + 1);
        }
    }
}

/// Waits (at most a minute) until `count` reaches `target`.
async fn wait_for(count: &Rc<Cell<usize>>, target: usize, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.get() < target {
        if Instant::now() > deadline {
            return Err(format!("{what}: {} of {target} after 60 s", count.get()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}
