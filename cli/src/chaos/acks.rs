//! Chaos bots: in-process SDK clients that play against the server under test and record every
//! acknowledgement they receive.
//!
//! Each bot logs in, subscribes to its surroundings, and sends a small move every 100 ms
//! (staying in its home region, so its inputs are never forwarded). When the connection is lost
//! it reconnects with the SDK's backoff, which resends the unacknowledged inputs that are not
//! durable.
//!
//! Invariants:
//! - an edge stores a player's seqs without gaps and acknowledges only durable inputs, so the
//!   acknowledged inputs of a bot are exactly the prefix `1..=max_acked`: `max_acked` is raised
//!   by every acknowledgement of [`EdgeClient::send`], and after a successful
//!   [`EdgeClient::reconnect_with_backoff`] to `next_seq - 1` (the reconnect resent and had
//!   acknowledged every input below it);
//! - `last_ack` is the time of the bot's newest acknowledgement of a fresh send (a recovery
//!   ends when every bot has one later than the kill);
//! - every choice comes from a ChaCha8 RNG seeded with `seed ^ player`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::CertificateDer;
use sekai_layer::world::model::{Action, Vec3};
use sekai_schema::geometry::region_of;
use sekai_schema::{Area, PlayerId};

use sekai_client::{ClientConfig, ClientError, EdgeClient, ReconnectPolicy};
use sekai_edge::tls::SELF_SIGNED_NAME;
use sekai_edge::token::{unix_now, TokenKey};

/// What one bot has been acknowledged.
#[derive(Default)]
pub struct BotAcks {
    /// Every seq at or below it was acknowledged.
    pub max_acked: AtomicU64,
    /// Nanoseconds after [`AckLog::origin`] of the newest acknowledgement (0: none yet).
    pub last_ack_nanos: AtomicU64,
}

/// The acknowledgements of every chaos bot, shared with the bot threads.
pub struct AckLog {
    /// The time origin of `last_ack_nanos`.
    pub origin: Instant,
    /// Player id of the first bot; bot `i` is player `first_player + i`.
    pub first_player: PlayerId,
    /// One entry per bot.
    pub bots: Vec<BotAcks>,
    /// Reconnections that succeeded.
    pub reconnects: AtomicU64,
    /// Inputs the edge refused (not stored).
    pub refused: AtomicU64,
    /// Bots that gave up (could not reconnect within the policy, or were refused a login).
    pub stopped: AtomicU64,
    stop: AtomicBool,
}

impl AckLog {
    /// An empty log for `bots` bots from `first_player` on.
    pub fn new(bots: usize, first_player: PlayerId) -> Self {
        Self {
            origin: Instant::now(),
            first_player,
            bots: (0..bots).map(|_| BotAcks::default()).collect(),
            reconnects: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Asks every bot to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// True when every bot still playing was acknowledged an input after `at`.
    pub fn all_acked_since(&self, at: Instant) -> bool {
        let since = at.saturating_duration_since(self.origin).as_nanos() as u64;
        self.bots
            .iter()
            .all(|b| b.last_ack_nanos.load(Ordering::Relaxed) > since)
    }

    /// True when some bot was acknowledged an input after `at`.
    pub fn any_acked_since(&self, at: Instant) -> bool {
        let since = at.saturating_duration_since(self.origin).as_nanos() as u64;
        self.bots
            .iter()
            .any(|b| b.last_ack_nanos.load(Ordering::Relaxed) > since)
    }

    /// (player, highest acknowledged seq) of every bot.
    pub fn acked(&self) -> Vec<(PlayerId, u64)> {
        self.bots
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    self.first_player + i as PlayerId,
                    b.max_acked.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    fn record(&self, bot: usize, acked_through: u64, fresh: bool) {
        if let Some(b) = self.bots.get(bot) {
            b.max_acked.fetch_max(acked_through, Ordering::Relaxed);
            if fresh {
                let now = self.origin.elapsed().as_nanos() as u64;
                b.last_ack_nanos.fetch_max(now.max(1), Ordering::Relaxed);
            }
        }
    }
}

/// Where the chaos bots connect and how they choose.
#[derive(Clone)]
pub struct ChaosBots {
    /// The edge's address (the same across restarts).
    pub server: SocketAddr,
    /// The edge's kept certificate.
    pub certificate: CertificateDer<'static>,
    /// Mints the tokens.
    pub tokens: TokenKey,
    /// Seed of the bots' moves.
    pub seed: u64,
    /// OS threads running the bots.
    pub threads: usize,
}

/// Starts the bots of `log` on their threads; they play until [`AckLog::stop`].
pub fn start(config: ChaosBots, log: Arc<AckLog>) -> Vec<std::thread::JoinHandle<()>> {
    let threads = config.threads.max(1);
    (0..threads)
        .filter_map(|t| {
            let (config, log) = (config.clone(), log.clone());
            std::thread::Builder::new()
                .name(format!("sekai-chaos-bots-{t}"))
                .spawn(move || run_thread(t, threads, config, log))
                .map_err(|error| tracing::error!(%error, "cannot start a bot thread"))
                .ok()
        })
        .collect()
}

fn run_thread(index: usize, threads: usize, config: ChaosBots, log: Arc<AckLog>) {
    crate::bots::block_on_local(async move {
        let bind = SocketAddr::from(([0, 0, 0, 0], 0));
        let endpoint = match crate::bots::shared_endpoint(bind, &config.certificate) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!(%error, "cannot open a bot endpoint");
                return;
            }
        };
        let mut tasks = Vec::new();
        for bot in (index..log.bots.len()).step_by(threads) {
            let (endpoint, config, log) = (endpoint.clone(), config.clone(), log.clone());
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(error) = play(&endpoint, &config, bot, &log).await {
                    log.stopped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(bot, %error, "chaos bot stopped");
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        endpoint.close(0u32.into(), b"chaos done");
        endpoint.wait_idle().await;
    });
}

/// Connects, retrying with backoff while the edge is down (it may be restarting).
async fn connect(
    endpoint: &quinn::Endpoint,
    config: ClientConfig,
    log: &AckLog,
) -> Result<EdgeClient, ClientError> {
    let mut delay = Duration::from_millis(50);
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(3),
            EdgeClient::connect(endpoint, config.clone()),
        )
        .await
        .unwrap_or(Err(ClientError::Timeout(Duration::from_secs(3))));
        match attempt {
            Ok(client) => return Ok(client),
            Err(error) if error.is_connection_lost() && !log.stopping() => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(error) => return Err(error),
        }
    }
}

async fn play(
    endpoint: &quinn::Endpoint,
    config: &ChaosBots,
    bot: usize,
    log: &AckLog,
) -> Result<(), ClientError> {
    let player = log.first_player + bot as PlayerId;
    let client_config = ClientConfig {
        server: config.server,
        server_name: SELF_SIGNED_NAME.into(),
        token: config.tokens.issue(player, unix_now() + 86_400),
    };
    let mut client = connect(endpoint, client_config, log).await?;
    log.record(bot, client.last_seq_at_login(), false);
    let home = client.avatar_at_login().position;
    let _view = client.subscribe(Area::new(home, 16.0), |_, _| {}).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ player);
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..100))).await;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // Skip, not Delay: a bot keeps its clock's phase across a server restart (see `bots`).
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !log.stopping() {
        tick.tick().await;
        let to = Vec3::new(
            home.x + rng.gen_range(-0.5..0.5),
            0.0,
            home.z + rng.gen_range(-0.5..0.5),
        );
        let to = if region_of(&to) == region_of(&home) {
            to
        } else {
            home
        };
        match client.send(Action::Move { to }).await {
            Ok(seq) => log.record(bot, seq, true),
            Err(error) if !error.is_connection_lost() => {
                log.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(player, %error, "input refused");
            }
            Err(error) => {
                tracing::debug!(player, %error, "connection lost; reconnecting");
                client
                    .reconnect_with_backoff(ReconnectPolicy::default())
                    .await?;
                log.reconnects.fetch_add(1, Ordering::Relaxed);
                log.record(bot, client.next_seq().saturating_sub(1), false);
            }
        }
    }
    client.disconnect();
    Ok(())
}
