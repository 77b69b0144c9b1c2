//! Bots: simulated VR clients over real QUIC that measure input-to-delta latency.
//!
//! Each bot logs in, subscribes to a circle around its avatar, and plays: a move every 100 ms
//! (towards the resource it works on) and, every tenth tick, an action (harvest the resource,
//! pick up an item in reach, or build a wall when it carries enough). Latency of an input runs
//! from just before `Avatar.send` until the delta carrying its outcome is applied to the bot's
//! mirror; the acknowledgement time (T1, plus the time an answer waits to ride with a push) is
//! recorded apart. An input the edge refuses to shed load (`overloaded`) is counted in `shed`,
//! not in `errors`, and the bot backs off for a random 250–750 ms before its next input.
//!
//! Bots run on `threads` OS threads, each a current-thread runtime with a `LocalSet` (the RPC
//! client is not `Send`) and its own QUIC endpoint. Each bot's choices come from a ChaCha8 RNG
//! seeded with `seed ^ player`, so a run's inputs are reproducible from its seed (timings are not).
//!
//! Invariants: a bot has at most one input in flight; every latency recorded is for an input
//! whose outcome (accepted or refused by the rules) arrived in a delta; nothing here panics on
//! what the edge sends; a bot whose connection is lost reconnects with backoff and resumes
//! (counted in `reconnects`) instead of stopping.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::CertificateDer;
use sekai_layer::world::model::{Action, Entity, EntityKind, ItemKind, Vec3};
use sekai_layer::world::rules::{MAX_STEP, REACH, WALL_COST_STONE, WALL_COST_WOOD};
use sekai_schema::geometry::region_of;
use sekai_schema::{Area, PlayerId};

use sekai_client::{
    client_endpoint_on, overload_wait, ClientConfig, ClientError, EdgeClient, Mirror, MirrorEvent,
    ReconnectPolicy,
};
use sekai_edge::tls::SELF_SIGNED_NAME;
use sekai_edge::token::{unix_now, TokenKey};

/// Radius of each bot's area of interest, in metres (the default of `sekai bots --area-radius`).
pub const BOT_AREA_RADIUS: f32 = 24.0;

/// The timeline of one applied input, for per-stage reports.
#[derive(Clone, Copy, Debug)]
pub struct InputTimeline {
    /// The player.
    pub player: PlayerId,
    /// The input's seq.
    pub seq: u64,
    /// Just before `Avatar.send`.
    pub sent: Instant,
    /// When the delta with its outcome was applied to the bot's mirror.
    pub delivered: Instant,
}

/// Called for every input whose outcome a bot received.
pub type TimelineHook = Arc<dyn Fn(&InputTimeline) + Send + Sync>;

/// How to run the bots.
#[derive(Clone)]
pub struct BotConfig {
    /// The edge's address.
    pub server: SocketAddr,
    /// The edge's certificate (pinned).
    pub certificate: CertificateDer<'static>,
    /// Mints the bots' tokens.
    pub tokens: TokenKey,
    /// Number of bots.
    pub bots: usize,
    /// Player id of the first bot (the others follow).
    pub first_player: PlayerId,
    /// Seed of the bots' choices.
    pub seed: u64,
    /// OS threads the bots run on.
    pub threads: usize,
    /// Called for every applied input (e.g. to join with processor timings).
    pub on_applied: Option<TimelineHook>,
    /// Radius of each bot's area of interest, in metres (how many others' moves it sees).
    pub area_radius: f32,
}

/// Live counters and latency histograms of a bot run (shared by all bot threads).
pub struct BotStats {
    /// Bots logged in and subscribed.
    pub connected: AtomicU64,
    /// Inputs sent.
    pub sent: AtomicU64,
    /// Inputs acknowledged.
    pub acked: AtomicU64,
    /// Inputs whose outcome arrived.
    pub applied: AtomicU64,
    /// Inputs whose outcome was a rejection by the rules.
    pub rejected: AtomicU64,
    /// Sends that failed (refused by the edge or a broken connection), shedding aside.
    pub errors: AtomicU64,
    /// Inputs the edge refused to shed load (not stored; the bot backs off, then sends a fresh
    /// input under the same seq).
    pub shed: AtomicU64,
    /// Reconnections after a lost connection (each resumes its subscription and resends).
    pub reconnects: AtomicU64,
    /// Bots that stopped before the end (could not connect, or gave up reconnecting).
    pub stopped: AtomicU64,
    /// Entity updates received in deltas (all bots).
    pub updates: AtomicU64,
    /// UDP datagrams the bots' connections received (what the edge sent them).
    pub datagrams: AtomicU64,
    /// Send → acknowledgement, in microseconds.
    pub t1: Mutex<Histogram<u64>>,
    /// Send → delta with the outcome, in microseconds.
    pub total: Mutex<Histogram<u64>>,
    stop: AtomicBool,
}

/// (p50, p99, p999) of a histogram.
pub fn quantiles(h: &Histogram<u64>) -> (u64, u64, u64) {
    (
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
    )
}

/// A histogram of microseconds with three significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
}

impl Default for BotStats {
    fn default() -> Self {
        Self {
            connected: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            datagrams: AtomicU64::new(0),
            t1: Mutex::new(histogram()),
            total: Mutex::new(histogram()),
            stop: AtomicBool::new(false),
        }
    }
}

impl BotStats {
    /// Asks every bot to stop after its current input.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// True once [`BotStats::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Clears the latency histograms (the start of a measured window).
    pub fn reset_histograms(&self) {
        for h in [&self.t1, &self.total] {
            h.lock().unwrap_or_else(|e| e.into_inner()).reset();
        }
    }

    /// (p50, p99, p999) of send → delta, in microseconds.
    pub fn total_quantiles(&self) -> (u64, u64, u64) {
        quantiles(&self.total.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of the send → delta histogram.
    pub fn total_histogram(&self) -> Histogram<u64> {
        self.total.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Starts the bots on their threads; they play until [`BotStats::stop`]. Join the handles to
/// wait for them.
pub fn start_bots(config: BotConfig, stats: Arc<BotStats>) -> Vec<std::thread::JoinHandle<()>> {
    let threads = config.threads.max(1);
    (0..threads)
        .map(|t| {
            let (config, stats) = (config.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("sekai-bots-{t}"))
                .spawn(move || run_thread(t, threads, config, stats))
                .unwrap_or_else(|e| panic!("cannot start a bot thread: {e}"))
        })
        .collect()
}

/// One bot thread: its share of the bots (every `threads`-th from `index`).
fn run_thread(index: usize, threads: usize, config: BotConfig, stats: Arc<BotStats>) {
    block_on_local(async move {
        let bind: SocketAddr = if config.server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .unwrap_or_else(|_| unreachable!("a literal socket address"));
        let endpoint = match shared_endpoint(bind, &config.certificate) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!(%error, "cannot open a bot endpoint");
                return;
            }
        };
        let mut tasks = Vec::new();
        for i in (index..config.bots).step_by(threads) {
            let player = config.first_player + i as PlayerId;
            let (endpoint, config, stats) = (endpoint.clone(), config.clone(), stats.clone());
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(error) = play(&endpoint, &config, player, &stats).await {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    stats.stopped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(player, %error, "bot stopped");
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        endpoint.close(0u32.into(), b"bots done");
        endpoint.wait_idle().await;
    });
}

/// Runs `work` to completion on a current-thread runtime's `LocalSet` (the RPC client is not
/// `Send`): what every client thread does. Logs and returns when the runtime cannot start.
pub fn block_on_local(work: impl std::future::Future<Output = ()>) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => tokio::task::LocalSet::new().block_on(&runtime, work),
        Err(error) => tracing::error!(%error, "cannot start a client runtime"),
    }
}

/// Inputs of one bot waiting for their outcome: seq → when it was sent.
type InFlight = Rc<RefCell<HashMap<u64, Instant>>>;

/// One bot's life.
async fn play(
    endpoint: &quinn::Endpoint,
    config: &BotConfig,
    player: PlayerId,
    stats: &Arc<BotStats>,
) -> Result<(), sekai_client::ClientError> {
    let mut client = EdgeClient::connect(
        endpoint,
        ClientConfig {
            server: config.server,
            server_name: SELF_SIGNED_NAME.into(),
            token: config.tokens.issue(player, unix_now() + 86_400),
        },
    )
    .await?;
    let avatar = client.avatar_id();
    let in_flight: InFlight = Rc::default();
    let handler = {
        let (in_flight, stats, hook) =
            (in_flight.clone(), stats.clone(), config.on_applied.clone());
        move |event: &MirrorEvent<'_>, _: &Mirror| {
            if let MirrorEvent::Delta { delta, .. } = event {
                stats
                    .updates
                    .fetch_add(delta.changes.len() as u64, Ordering::Relaxed);
                let now = Instant::now();
                for outcome in delta.outcomes.iter().filter(|o| o.player == player) {
                    let Some(sent) = in_flight.borrow_mut().remove(&outcome.seq) else {
                        continue;
                    };
                    stats.applied.fetch_add(1, Ordering::Relaxed);
                    if !outcome.accepted {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    record(&stats.total, now.duration_since(sent));
                    if let Some(hook) = &hook {
                        hook(&InputTimeline {
                            player,
                            seq: outcome.seq,
                            sent,
                            delivered: now,
                        });
                    }
                }
            }
        }
    };
    let home = client.avatar_at_login().position;
    let view = client
        .subscribe(Area::new(home, config.area_radius), handler)
        .await?;
    stats.connected.fetch_add(1, Ordering::Relaxed);

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ player);
    let mut position = home;
    // Real clients are not phase-locked: each bot's 10 Hz clock starts at a random offset and
    // keeps it. A tick missed while an ack was late is skipped, not delayed: with `Delay`, every
    // bot waiting out one server stall restarted its clock at the same instant (when the acks
    // came back), and from then on all bots sent in one burst per 100 ms.
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks = 0u64;
    let mut datagrams_seen = 0;
    while !stats.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        ticks += 1;
        let datagrams = client.datagrams_received();
        stats
            .datagrams
            .fetch_add(datagrams.saturating_sub(datagrams_seen), Ordering::Relaxed);
        datagrams_seen = datagrams;
        let (me, target, item) = view.with_mirror(|m| {
            let me = m.entities.get(&avatar).cloned();
            let target = nearest(m, position, |e| {
                matches!(e.kind, EntityKind::Tree | EntityKind::Rock) && e.hp > 0
            });
            let item = nearest(m, position, |e| {
                matches!(e.kind, EntityKind::ItemWood | EntityKind::ItemStone)
            });
            (me, target, item)
        });
        if let Some(me) = &me {
            position = me.position;
        }
        let action = if ticks.is_multiple_of(10) {
            choose_action(
                me.as_ref(),
                position,
                target.as_ref(),
                item.as_ref(),
                &mut rng,
            )
        } else {
            step_towards(position, target.as_ref().map(|t| t.position), &mut rng)
        };
        let sent = Instant::now();
        stats.sent.fetch_add(1, Ordering::Relaxed);
        let seq = client.next_seq();
        in_flight.borrow_mut().insert(seq, sent);
        match client.send(action).await {
            Ok(_) => {
                stats.acked.fetch_add(1, Ordering::Relaxed);
                record(&stats.t1, sent.elapsed());
            }
            Err(error) => {
                in_flight.borrow_mut().remove(&seq);
                tracing::debug!(player, %error, "input failed");
                if error.is_overloaded() {
                    // The seq is free again. Back off as the protocol asks (a random wait, so
                    // the shed clients do not come back together); the ticks missed meanwhile
                    // are skipped, and the next one sends a fresh input in its place.
                    stats.shed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(overload_wait(rng.gen())).await;
                    continue;
                }
                if !error.is_connection_lost() {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // The edge went away (crash, restart, network): reconnect, resume, resend.
                client
                    .reconnect_with_backoff(ReconnectPolicy::default())
                    .await?;
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                datagrams_seen = 0;
                tracing::debug!(player, "reconnected");
            }
        }
    }
    client.disconnect();
    Ok(())
}

fn record(histogram: &Mutex<Histogram<u64>>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if let Ok(mut h) = histogram.lock() {
        let _ = h.record(micros.max(1));
    }
}

/// The nearest entity of the mirror matching `wanted`.
fn nearest(mirror: &Mirror, from: Vec3, wanted: impl Fn(&Entity) -> bool) -> Option<Entity> {
    mirror
        .entities
        .values()
        .filter(|e| wanted(e))
        .min_by(|a, b| {
            a.position
                .ground_distance_squared(&from)
                .total_cmp(&b.position.ground_distance_squared(&from))
        })
        .cloned()
}

/// The action of a tenth tick: build when the inventory pays for a wall (one time in four),
/// pick up an item in reach, else harvest the target.
fn choose_action(
    me: Option<&Entity>,
    position: Vec3,
    target: Option<&Entity>,
    item: Option<&Entity>,
    rng: &mut ChaCha8Rng,
) -> Action {
    let in_reach = |e: &Entity| e.position.ground_distance_squared(&position) <= REACH * REACH;
    let can_build = me.is_some_and(|me| {
        me.inventory.count(ItemKind::Wood) >= WALL_COST_WOOD
            && me.inventory.count(ItemKind::Stone) >= WALL_COST_STONE
    });
    if can_build && rng.gen_bool(0.25) {
        let at = Vec3::new(position.x + 1.0, 0.0, position.z + 1.0);
        if region_of(&at) == region_of(&position) {
            return Action::Build {
                at,
                kind: EntityKind::StructureWall,
            };
        }
    }
    if let Some(item) = item.filter(|i| in_reach(i)) {
        return Action::Interact { target: item.id };
    }
    match target {
        Some(target) => Action::Harvest { target: target.id },
        None => Action::Idle,
    }
}

/// A move towards `target` (stopping within reach), with a little jitter, staying in the
/// region and within one step.
fn step_towards(position: Vec3, target: Option<Vec3>, rng: &mut ChaCha8Rng) -> Action {
    let goal = target.unwrap_or(position);
    let (dx, dz) = (goal.x - position.x, goal.z - position.z);
    let dist = (dx * dx + dz * dz).sqrt();
    let keep = (REACH * 0.5).min(dist);
    let step = if dist > 0.0 {
        ((dist - keep) / dist).min(MAX_STEP * 0.9 / dist.max(1e-3))
    } else {
        0.0
    };
    let to = Vec3::new(
        position.x + dx * step + rng.gen_range(-0.2..0.2),
        0.0,
        position.z + dz * step + rng.gen_range(-0.2..0.2),
    );
    if region_of(&to) == region_of(&position) {
        Action::Move { to }
    } else {
        Action::Move { to: position }
    }
}

/// A client endpoint for many connections at once (a load generator's): one socket with the
/// edge's large kernel buffers ([`sekai_edge::tls::SOCKET_BUFFER_BYTES`]), so the generator does
/// not drop the very packets whose latency it measures.
pub fn shared_endpoint(
    bind: SocketAddr,
    certificate: &CertificateDer<'_>,
) -> Result<quinn::Endpoint, ClientError> {
    let socket = sekai_edge::tls::bind_udp(bind, sekai_edge::tls::SOCKET_BUFFER_BYTES)?;
    client_endpoint_on(socket, certificate)
}
