//! The edge server: QUIC (quinn, rustls with ring) carrying Cap'n Proto RPC.
//!
//! Threads: the fan-out and the T1 batcher run on the caller's tokio runtime; connections are
//! handed round-robin to `workers` threads, each a current-thread runtime with a `LocalSet`,
//! because capnp-rpc's `RpcSystem` is not `Send`. The QUIC endpoint's driver (the socket's
//! receive side) runs on the first worker, so with one worker a datagram is received, decrypted
//! and served on one thread; with `workers == 0` everything runs on the caller's thread. Each
//! connection carries exactly one bidirectional stream, the RPC byte stream.
//!
//! Invariants:
//! - a connection's failure (handshake, malformed or oversized message, disconnect) ends that
//!   connection only; incoming messages larger than `max_message_words` words are refused by the
//!   RPC reader, which then closes the connection;
//! - shutting down closes the endpoint, stops the fan-out and the workers.

mod held_answers;
pub mod input_stream;
pub mod inputs;
mod login;
pub mod push;
pub mod rpc;
pub mod stream_push;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use capnp::message::ReaderOptions;
use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::{twoparty, RpcSystem};
use rustls::pki_types::CertificateDer;
use sekai_layer::kv::Database;
use sekai_layer::world::direct::DirectInputs;
use sekai_schema::edge_capnp::gateway;
use sekai_schema::{PlayerId, Vec3, WorldKeys};
use tokio::sync::mpsc;

pub use login::{ensure_avatar, t1_region, LoginState};

use crate::fanout::{Fanout, FanoutConfig};
use crate::session::shedding::WorkerBusy;
use crate::session::{InputLimits, ShedConfig, Shedder};
use crate::tls::{server_config, server_endpoint, TlsError, TlsSource};
use crate::token::TokenKey;
use inputs::{BatchStats, InputBatcher};

/// Where a player's avatar appears on first login.
pub type SpawnFn = Arc<dyn Fn(PlayerId) -> Vec3 + Send + Sync>;

/// How long a full push window may stay unanswered before the subscription is reset.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The default [`EdgeLimits::answer_hold`]: the delta that shows an input applied follows its
/// answer by a frame, a millisecond or two.
pub const DEFAULT_ANSWER_HOLD: std::time::Duration = std::time::Duration::from_millis(4);

/// Per-client limits.
#[derive(Clone, Copy, Debug)]
pub struct EdgeLimits {
    /// The input rate limit of each session.
    pub input: InputLimits,
    /// Bytes of queued deltas per subscription before coalescing (see `session::outbox`).
    pub outbox_budget: usize,
    /// Unanswered `DeltaSink` calls per subscription.
    pub push_window: usize,
    /// A subscription whose full push window stays unanswered this long is reset (the client
    /// stopped answering its sink or reading its stream; see `push.rs`).
    pub stall_timeout: std::time::Duration,
    /// Largest incoming RPC message, in 8-byte words.
    pub max_message_words: usize,
    /// A connection with no packet for this long is closed; the edge sends keep-alives every
    /// third of it, so quiet clients stay connected.
    pub idle_timeout: std::time::Duration,
    /// The longest an input stream's answers wait for a push of the player to carry them in
    /// its packet (see `held_answers`), while a streamed subscription of the player is open.
    pub answer_hold: std::time::Duration,
    /// When the edge refuses inputs to keep the admitted ones fast (see `session::shedding`).
    pub shed: ShedConfig,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            input: InputLimits::default(),
            outbox_budget: 256 * 1024,
            push_window: 16,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            max_message_words: 64 * 1024,
            idle_timeout: crate::tls::DEFAULT_IDLE_TIMEOUT,
            answer_hold: DEFAULT_ANSWER_HOLD,
            shed: ShedConfig::default(),
        }
    }
}

/// The default byte budget of the fan-out's region cache (64 MiB: a few hundred thousand
/// entities).
pub const DEFAULT_REGION_CACHE_BYTES: u64 = 64 << 20;

/// How to run an edge.
#[derive(Clone)]
pub struct EdgeConfig {
    /// The UDP address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// The secret login tokens are signed with.
    pub tokens: TokenKey,
    /// The server certificate.
    pub tls: TlsSource,
    /// Threads serving connections; 0 serves them on the thread that starts the edge, which
    /// must then run a `tokio::task::LocalSet` (fewest thread hand-offs: the choice for a server
    /// pinned to one core).
    pub workers: usize,
    /// Per-client limits.
    pub limits: EdgeLimits,
    /// Fan-out settings.
    pub fanout: FanoutConfig,
    /// Bytes of whole-region snapshots the fan-out keeps current from the change log to serve
    /// subscribe and resume snapshots without range reads; 0 turns the cache off.
    pub region_cache_bytes: u64,
    /// Where new avatars appear.
    pub spawn: SpawnFn,
    /// The processors of this process that take inputs directly (`world::direct`): the inputs
    /// of their regions skip the inbox and are stored by the frame that applies them. Empty by
    /// default: every input goes through T1.
    pub direct: DirectInputs,
}

impl EdgeConfig {
    /// A configuration on `listen` with `tokens`, a self-signed certificate, one worker per core,
    /// default limits, and avatars spawning at the centre of region (0, 0).
    pub fn new(listen: SocketAddr, tokens: TokenKey) -> Self {
        let (x, z) = sekai_schema::RegionId::new(0, 0).center();
        Self {
            listen,
            tokens,
            tls: TlsSource::default(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            limits: EdgeLimits::default(),
            fanout: FanoutConfig::default(),
            region_cache_bytes: DEFAULT_REGION_CACHE_BYTES,
            spawn: Arc::new(move |_| Vec3::new(x as f32, 0.0, z as f32)),
            direct: DirectInputs::default(),
        }
    }
}

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The socket could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// What every connection of one edge shares.
pub struct EdgeContext<D> {
    /// The database.
    pub db: D,
    /// The world's keys.
    pub keys: WorldKeys,
    /// Verifies login tokens.
    pub tokens: TokenKey,
    /// The fan-out.
    pub fanout: Fanout,
    /// The edge's T1: every session's inputs, committed in batches.
    pub inputs: InputBatcher,
    /// The live session of each player on this edge.
    pub sessions: inputs::SessionTable,
    /// Per-client limits.
    pub limits: EdgeLimits,
    /// Where new avatars appear.
    pub spawn: SpawnFn,
    /// The origin of the sessions' virtual clocks.
    pub epoch: Instant,
    /// Decides when to refuse inputs under overload (shared by every session).
    pub shedder: Arc<Shedder>,
}

/// A running edge.
pub struct EdgeServer {
    endpoint: quinn::Endpoint,
    certificate: CertificateDer<'static>,
    fanout: Fanout,
    input_stats: Arc<BatchStats>,
    workers: Vec<std::thread::JoinHandle<()>>,
    accept: tokio::task::JoinHandle<()>,
}

impl EdgeServer {
    /// Starts an edge for the world `keys` in `db`; must be called inside a tokio runtime.
    pub async fn start<D: Database>(
        db: D,
        keys: WorldKeys,
        config: EdgeConfig,
    ) -> Result<Self, EdgeError> {
        let tls = server_config(&config.tls, config.listen, config.limits.idle_timeout)?;
        let certificate = tls.certificate.clone();
        // The endpoint's driver, which receives every datagram and routes it to its connection,
        // runs on the first worker, beside the connections it serves: a datagram for them wakes
        // no other thread.
        let mut first = match config.workers {
            0 => None,
            _ => Some(worker_runtime()?),
        };
        let bound = match &first {
            Some(runtime) => {
                let _context = runtime.enter();
                server_endpoint(tls, config.listen)
            }
            None => server_endpoint(tls, config.listen),
        };
        let endpoint = match bound {
            Ok(endpoint) => endpoint,
            Err(error) => {
                // Dropping a runtime inside the caller's async context would panic.
                if let Some(runtime) = first.take() {
                    runtime.shutdown_background();
                }
                return Err(error.into());
            }
        };
        let fanout = if config.region_cache_bytes > 0 {
            Fanout::with_cache(sekai_cache::RegionCache::new(config.region_cache_bytes))
        } else {
            Fanout::new()
        };
        tokio::spawn(fanout.clone().run(
            db.clone(),
            keys.clone(),
            config.fanout,
            config.direct.log().clone(),
        ));
        let input_stats = Arc::new(BatchStats::default());
        let inputs = InputBatcher::start(
            db.clone(),
            keys.clone(),
            config.direct.clone(),
            input_stats.clone(),
        );
        let ctx = Arc::new(EdgeContext {
            db,
            keys,
            tokens: config.tokens,
            fanout: fanout.clone(),
            inputs,
            sessions: inputs::SessionTable::default(),
            limits: config.limits,
            spawn: config.spawn,
            epoch: Instant::now(),
            shedder: Arc::new(Shedder::new(config.limits.shed)),
        });
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for index in 0..config.workers {
            let runtime = match first.take() {
                Some(runtime) => runtime,
                None => worker_runtime()?,
            };
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            workers.push(spawn_worker(index, runtime, ctx.clone(), rx)?);
        }
        let accept = if config.workers == 0 {
            // Connections on the caller's thread: no hand-offs between threads per message.
            tokio::task::spawn_local(local_accept_loop(endpoint.clone(), ctx.clone()))
        } else {
            tokio::spawn(accept_loop(endpoint.clone(), senders))
        };
        tracing::info!(addr = %endpoint.local_addr()?, workers = workers.len(), "edge listening");
        Ok(Self {
            endpoint,
            certificate,
            fanout,
            input_stats,
            workers,
            accept,
        })
    }

    /// The address the edge listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The certificate clients should pin (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The edge's fan-out (for its counters).
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// The edge's T1 counters (batches committed, inputs stored).
    pub fn input_stats(&self) -> Arc<BatchStats> {
        self.input_stats.clone()
    }

    /// Closes every connection and stops the edge.
    pub async fn shutdown(self) {
        self.endpoint
            .close(CloseCode::Shutdown.into(), b"edge shutting down");
        self.accept.abort();
        let _ = self.accept.await;
        self.fanout.stop();
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        self.endpoint.wait_idle().await;
    }
}

/// Accepts connections and deals them to the workers in turn.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    workers: Vec<mpsc::UnboundedSender<quinn::Incoming>>,
) {
    let mut next = 0usize;
    while let Some(incoming) = endpoint.accept().await {
        let Some(worker) = workers.get(next % workers.len().max(1)) else {
            return;
        };
        next = next.wrapping_add(1);
        if worker.send(incoming).is_err() {
            tracing::error!("an edge worker stopped; refusing connections");
            return;
        }
    }
}

/// Accepts connections and serves them on the current thread's `LocalSet`.
async fn local_accept_loop<D: Database>(endpoint: quinn::Endpoint, ctx: Arc<EdgeContext<D>>) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::task::spawn_local(serve_connection(incoming, ctx.clone()));
    }
}

/// A worker's runtime: one thread, I/O and timers.
fn worker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    WorkerBusy::track(&mut tokio::runtime::Builder::new_current_thread())
        .enable_all()
        .build()
}

/// Starts one worker thread, running `runtime`, serving the connections it receives.
fn spawn_worker<D: Database>(
    index: usize,
    runtime: tokio::runtime::Runtime,
    ctx: Arc<EdgeContext<D>>,
    mut incoming: mpsc::UnboundedReceiver<quinn::Incoming>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sekai-edge-{index}"))
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                while let Some(connection) = incoming.recv().await {
                    tokio::task::spawn_local(serve_connection(connection, ctx.clone()));
                }
            });
        })
}

/// Serves one connection: handshake, one bidirectional stream, Cap'n Proto RPC until it ends.
async fn serve_connection<D: Database>(incoming: quinn::Incoming, ctx: Arc<EdgeContext<D>>) {
    let peer = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%peer, %error, "handshake failed");
            return;
        }
    };
    let _open = GaugeGuard::new(crate::observe::metrics::CONNECTIONS);
    let (send, recv) = match connection.accept_bi().await {
        Ok(streams) => streams,
        Err(error) => {
            tracing::debug!(%peer, %error, "connection closed before its RPC stream opened");
            return;
        }
    };
    let options = *ReaderOptions::new()
        .traversal_limit_in_words(Some(ctx.limits.max_message_words))
        .nesting_limit(64);
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(recv),
        futures::io::BufWriter::new(send),
        Side::Server,
        options,
    );
    let gateway: gateway::Client =
        capnp_rpc::new_client(rpc::Gateway::new(ctx, connection.clone()));
    let rpc = RpcSystem::new(Box::new(network), Some(gateway.client));
    match rpc.await {
        Ok(()) => {
            tracing::debug!(%peer, "connection closed");
            connection.close(CloseCode::Normal.into(), b"rpc ended");
        }
        Err(error) => {
            tracing::info!(%peer, %error, "connection ended with a protocol error");
            let reason = format!("protocol error: {error}");
            let cut = (0..=MAX_CLOSE_REASON.min(reason.len()))
                .rev()
                .find(|i| reason.is_char_boundary(*i))
                .unwrap_or(0);
            connection.close(CloseCode::ProtocolError.into(), &reason.as_bytes()[..cut]);
        }
    }
}

/// Counts one open thing in a gauge for as long as it lives.
pub(crate) struct GaugeGuard(&'static str);

impl GaugeGuard {
    /// Adds one to gauge `name`; dropping the guard takes it away.
    pub(crate) fn new(name: &'static str) -> Self {
        metrics::gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// The longest close reason the edge sends, in bytes (it must fit one packet).
pub const MAX_CLOSE_REASON: usize = 512;

/// The QUIC application close codes of the edge protocol (docs/PROTOCOL.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// The RPC stream ended normally (the client closed it).
    Normal = 0,
    /// The client broke the protocol: a malformed message, one larger than the limit, or a
    /// stream that is not Cap'n Proto RPC. The reason says which.
    ProtocolError = 1,
    /// The edge is shutting down; reconnect (to it or another edge) and resume.
    Shutdown = 2,
}

impl From<CloseCode> for quinn::VarInt {
    fn from(code: CloseCode) -> Self {
        quinn::VarInt::from_u32(code as u32)
    }
}
