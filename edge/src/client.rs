//! The client SDK: connect to an edge over QUIC, log in, subscribe with a local mirror, send
//! inputs with sequence numbers, and resume after a reconnect.
//!
//! Cap'n Proto RPC is not `Send`: an [`EdgeClient`] lives on one thread and must be used inside
//! a tokio `LocalSet` (its RPC system runs as a local task).
//!
//! Invariants:
//! - the mirror of a subscription holds exactly the entities the edge reported in the area: a
//!   snapshot replaces it, each delta is applied in order, and a delta at or before the mirror's
//!   cursor is ignored (never applied twice);
//! - inputs get consecutive seqs; an input stays in `unacked` until its acknowledgement arrives;
//! - after a login, every seq at or below the session's `lastSeq` is durable (the protocol's
//!   rule), so [`EdgeClient::reconnect`] forgets the unacknowledged inputs at or below it and
//!   resends the others in order, numbered from `lastSeq + 1` (none of them is durable);
//! - after a reconnect each subscription resumes from its mirror's cursor; after a `reset` it
//!   starts again from a fresh snapshot.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use capnp::message::ReaderOptions;
use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::{twoparty, RpcSystem};
use rustls::pki_types::CertificateDer;
use sekai_layer::world::model::{Action, Change, Delta, Entity};
use sekai_schema::edge_capnp::{ack, avatar, delta_sink, gateway, session, subscription};
use sekai_schema::{Area, EntityId, PlayerId};

use crate::tls::{client_config, TlsError};
use sekai_model::wire::{fill_send, read_delta, read_entity, read_stamp, WireError};

/// How long the client waits for an input's acknowledgement before it counts the connection
/// as lost.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest message the client reads, in words (snapshots of big areas can be large).
pub const CLIENT_MAX_MESSAGE_WORDS: usize = 8 * 1024 * 1024;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The socket could not be bound.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The QUIC connection could not be set up.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The edge answered with an error, or the connection broke during a call.
    #[error("edge: {0}")]
    Rpc(#[from] capnp::Error),
    /// The edge sent a value that does not decode.
    #[error("edge sent a bad value: {0}")]
    Wire(#[from] WireError),
    /// The edge sent a value outside the schema.
    #[error("edge sent a value outside the schema: {0}")]
    NotInSchema(#[from] capnp::NotInSchema),
    /// The edge sent text that is not UTF-8.
    #[error("edge sent invalid UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// The edge refused an input (it was not stored; the seq can be reused).
    #[error("input {seq} refused: {reason}")]
    Refused {
        /// The refused seq.
        seq: u64,
        /// The edge's reason.
        reason: String,
    },
    /// The edge refused the login (a bad or expired token): reconnecting will not help.
    #[error("login refused: {0}")]
    LoginRefused(String),
    /// Connecting took longer than the attempt's deadline.
    #[error("no answer from the edge within {0:?}")]
    Timeout(Duration),
}

impl ClientError {
    /// Whether the connection is gone (reconnecting may help), as opposed to a refusal.
    pub fn is_connection_lost(&self) -> bool {
        !matches!(
            self,
            ClientError::Refused { .. }
                | ClientError::LoginRefused(_)
                | ClientError::Tls(_)
                | ClientError::Wire(_)
        )
    }
}

/// How [`EdgeClient::reconnect_with_backoff`] retries: exponential backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub struct ReconnectPolicy {
    /// The first wait after a failed attempt.
    pub first_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
    /// How long one attempt (connect, login, resubscribe, resend) may take.
    pub attempt_timeout: Duration,
    /// Give up after trying for this long.
    pub give_up_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(3),
            give_up_after: Duration::from_secs(120),
        }
    }
}

/// Where and how to reach an edge.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The edge's UDP address.
    pub server: SocketAddr,
    /// The name in the edge's certificate (`tls::SELF_SIGNED_NAME` for a self-signed one).
    pub server_name: String,
    /// The login token.
    pub token: String,
}

/// A QUIC client endpoint that trusts only `server_cert`; many clients may share one.
pub fn client_endpoint(
    bind: SocketAddr,
    server_cert: &CertificateDer<'_>,
) -> Result<quinn::Endpoint, ClientError> {
    let mut endpoint = quinn::Endpoint::client(bind)?;
    endpoint.set_default_client_config(client_config(server_cert)?);
    Ok(endpoint)
}

/// What a subscription's handler is told.
#[derive(Debug)]
pub enum MirrorEvent<'a> {
    /// The mirror was replaced by a snapshot as of `at`.
    Snapshot {
        /// Its versionstamp.
        at: [u8; 10],
    },
    /// A delta was applied.
    Delta {
        /// Its versionstamp.
        stamp: [u8; 10],
        /// The delta (changes filtered to the area, the player's own outcomes).
        delta: &'a Delta,
    },
    /// The edge gave up on this subscription; the client subscribes afresh.
    Reset {
        /// The edge's reason.
        reason: &'a str,
    },
}

/// The local copy of a subscribed area.
#[derive(Debug, Default)]
pub struct Mirror {
    /// The entities in the area, by id.
    pub entities: BTreeMap<EntityId, Entity>,
    /// The versionstamp of the last snapshot or delta applied.
    pub cursor: Option<[u8; 10]>,
    /// Deltas the edge sent at or before the cursor (ignored; an edge that keeps its
    /// invariants sends none).
    pub duplicates: u64,
    /// Snapshots received.
    pub snapshots: u64,
}

/// A callback per mirror event.
pub type Handler = Box<dyn FnMut(&MirrorEvent<'_>, &Mirror)>;

/// One subscription as the client keeps it across reconnects.
struct Subscribed {
    area: Area,
    mirror: RefCell<Mirror>,
    handler: RefCell<Handler>,
    /// The live subscription capability (dropping it ends the subscription at the edge).
    live: RefCell<Option<subscription::Client>>,
    /// Set by a reset: the next [`EdgeClient::reconnect`] or [`EdgeClient::refresh`] subscribes
    /// afresh.
    needs_snapshot: Cell<bool>,
}

/// The client's `DeltaSink`: applies what the edge pushes to one mirror.
struct Sink {
    sub: Rc<Subscribed>,
}

impl delta_sink::Server for Sink {
    async fn snapshot(
        self: Rc<Self>,
        params: delta_sink::SnapshotParams,
        _: delta_sink::SnapshotResults,
    ) -> Result<(), capnp::Error> {
        let params = params.get()?;
        let at = read_stamp(params.get_at()?)?;
        let mut entities = BTreeMap::new();
        for entity in params.get_entities()? {
            let entity = read_entity(entity)?;
            entities.insert(entity.id, entity);
        }
        let mut mirror = self.sub.mirror.borrow_mut();
        mirror.entities = entities;
        mirror.cursor = Some(at);
        mirror.snapshots += 1;
        self.sub.needs_snapshot.set(false);
        (self.sub.handler.borrow_mut())(&MirrorEvent::Snapshot { at }, &mirror);
        Ok(())
    }

    async fn delta(
        self: Rc<Self>,
        params: delta_sink::DeltaParams,
        _: delta_sink::DeltaResults,
    ) -> Result<(), capnp::Error> {
        let params = params.get()?;
        let stamp = read_stamp(params.get_versionstamp()?)?;
        self.apply(stamp, read_delta(params.get_delta()?)?);
        Ok(())
    }

    async fn deltas(
        self: Rc<Self>,
        params: delta_sink::DeltasParams,
        _: delta_sink::DeltasResults,
    ) -> Result<(), capnp::Error> {
        for item in params.get()?.get_batch()? {
            let stamp = read_stamp(item.get_versionstamp()?)?;
            self.apply(stamp, read_delta(item.get_delta()?)?);
        }
        Ok(())
    }

    async fn reset(
        self: Rc<Self>,
        params: delta_sink::ResetParams,
        _: delta_sink::ResetResults,
    ) -> Result<(), capnp::Error> {
        let reason = params.get()?.get_reason()?.to_string()?;
        let mut mirror = self.sub.mirror.borrow_mut();
        mirror.entities.clear();
        mirror.cursor = None;
        self.sub.needs_snapshot.set(true);
        (self.sub.handler.borrow_mut())(&MirrorEvent::Reset { reason: &reason }, &mirror);
        Ok(())
    }
}

impl Sink {
    /// Applies one delta to the mirror (ignored at or before its cursor) and tells the handler.
    fn apply(&self, stamp: [u8; 10], delta: Delta) {
        let mut mirror = self.sub.mirror.borrow_mut();
        if mirror.cursor.is_some_and(|cursor| stamp <= cursor) {
            tracing::warn!("ignoring a delta at or before the mirror's cursor");
            mirror.duplicates += 1;
            return;
        }
        for change in &delta.changes {
            match change {
                Change::Upsert(entity) => {
                    mirror.entities.insert(entity.id, entity.clone());
                }
                Change::Remove(id) => {
                    mirror.entities.remove(id);
                }
            }
        }
        mirror.cursor = Some(stamp);
        (self.sub.handler.borrow_mut())(
            &MirrorEvent::Delta {
                stamp,
                delta: &delta,
            },
            &mirror,
        );
    }
}

/// A handle to one subscription of an [`EdgeClient`].
#[derive(Clone)]
pub struct SubscriptionHandle {
    sub: Rc<Subscribed>,
}

impl SubscriptionHandle {
    /// Runs `f` on the mirror.
    pub fn with_mirror<R>(&self, f: impl FnOnce(&Mirror) -> R) -> R {
        f(&self.sub.mirror.borrow())
    }

    /// The mirror's cursor.
    pub fn cursor(&self) -> Option<[u8; 10]> {
        self.sub.mirror.borrow().cursor
    }
}

/// One live connection's capabilities.
struct Link {
    connection: quinn::Connection,
    session: session::Client,
    avatar: avatar::Client,
    player: PlayerId,
    avatar_at_login: Entity,
    /// Every seq at or below it is durable.
    last_seq: u64,
}

/// A logged-in client of one edge.
pub struct EdgeClient {
    endpoint: quinn::Endpoint,
    config: ClientConfig,
    link: Link,
    player: PlayerId,
    avatar_at_login: Entity,
    next_seq: Cell<u64>,
    unacked: RefCell<BTreeMap<u64, Action>>,
    subscriptions: RefCell<Vec<Rc<Subscribed>>>,
}

impl EdgeClient {
    /// Connects through `endpoint` and logs in with the configured token.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let link = open(endpoint, &config).await?;
        Ok(Self {
            endpoint: endpoint.clone(),
            player: link.player,
            avatar_at_login: link.avatar_at_login.clone(),
            next_seq: Cell::new(link.last_seq + 1),
            unacked: RefCell::default(),
            subscriptions: RefCell::default(),
            config,
            link,
        })
    }

    /// The logged-in player.
    pub fn player(&self) -> PlayerId {
        self.player
    }

    /// The player's avatar entity.
    pub fn avatar_id(&self) -> EntityId {
        self.avatar_at_login.id
    }

    /// The avatar's state when this client logged in.
    pub fn avatar_at_login(&self) -> &Entity {
        &self.avatar_at_login
    }

    /// The seq the next input gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.get()
    }

    /// Inputs sent but not acknowledged, by seq.
    pub fn unacked(&self) -> Vec<u64> {
        self.unacked.borrow().keys().copied().collect()
    }

    /// Sends one input and waits for its acknowledgement (durable at the edge); returns its seq.
    ///
    /// A refused input ([`ClientError::Refused`]) was not stored and its seq is given back if it
    /// was the newest; an input whose call failed stays unacknowledged for
    /// [`EdgeClient::reconnect`] to resend.
    pub async fn send(&self, action: Action) -> Result<u64, ClientError> {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        self.unacked.borrow_mut().insert(seq, action.clone());
        match self.send_seq(seq, &action).await {
            Err(ClientError::Refused { seq, reason }) => {
                // Not stored, and no later seq can be stored before it: the edge stores only
                // consecutive seqs, so the next input takes this seq again (inputs pipelined
                // behind it are refused too, and each rewinds to its own seq or lower).
                self.unacked.borrow_mut().remove(&seq);
                self.next_seq.set(self.next_seq.get().min(seq));
                Err(ClientError::Refused { seq, reason })
            }
            other => other,
        }
    }

    /// Sends input `seq` on the current link.
    async fn send_seq(&self, seq: u64, action: &Action) -> Result<u64, ClientError> {
        let mut request = self.link.avatar.send_request();
        fill_send(request.get(), seq, action)?;
        // An edge that died without closing answers nothing: past the timeout the connection
        // counts as lost (the input stays unacknowledged, for the reconnect to resend).
        let reply = tokio::time::timeout(ACK_TIMEOUT, request.send().promise)
            .await
            .map_err(|_| ClientError::Timeout(ACK_TIMEOUT))??;
        match reply.get()?.get_ack()?.which()? {
            ack::Accepted(acked) => {
                self.unacked.borrow_mut().remove(&acked);
                Ok(acked)
            }
            ack::Error(reason) => Err(ClientError::Refused {
                seq,
                reason: reason?.to_string()?,
            }),
        }
    }

    /// The avatar capability, for protocol-level requests (tests of the edge's checks).
    pub fn avatar_capability(&self) -> &avatar::Client {
        &self.link.avatar
    }

    /// The session capability, for protocol-level requests (tests of the edge's checks).
    pub fn session_capability(&self) -> &session::Client {
        &self.link.session
    }

    /// Subscribes to `area`; `handler` is called after every mirror change.
    pub async fn subscribe(
        &self,
        area: Area,
        handler: impl FnMut(&MirrorEvent<'_>, &Mirror) + 'static,
    ) -> Result<SubscriptionHandle, ClientError> {
        let sub = Rc::new(Subscribed {
            area,
            mirror: RefCell::default(),
            handler: RefCell::new(Box::new(handler)),
            live: RefCell::new(None),
            needs_snapshot: Cell::new(true),
        });
        self.start(&sub, None).await?;
        self.subscriptions.borrow_mut().push(sub.clone());
        Ok(SubscriptionHandle { sub })
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, handle: &SubscriptionHandle) {
        handle.sub.live.borrow_mut().take();
        self.subscriptions
            .borrow_mut()
            .retain(|s| !Rc::ptr_eq(s, &handle.sub));
    }

    /// Subscribes afresh every subscription the edge reset.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let subs: Vec<Rc<Subscribed>> = self.subscriptions.borrow().clone();
        for sub in subs
            .iter()
            .filter(|s| s.needs_snapshot.get() && s.live.borrow().is_some())
        {
            sub.live.borrow_mut().take();
            self.start(sub, None).await?;
        }
        Ok(())
    }

    /// Asks the edge for `sub`, resuming after `resume` when given.
    async fn start(
        &self,
        sub: &Rc<Subscribed>,
        resume: Option<[u8; 10]>,
    ) -> Result<(), ClientError> {
        let mut request = self.link.session.subscribe_request();
        let mut params = request.get();
        sub.area.write_capnp(params.reborrow().init_area());
        params.set_sink(capnp_rpc::new_client(Sink { sub: sub.clone() }));
        params.set_resume_from(resume.as_ref().map_or(&[][..], |r| &r[..]));
        params.set_batched(true);
        let reply = request.send().promise.await?;
        *sub.live.borrow_mut() = Some(reply.get()?.get_subscription()?);
        Ok(())
    }

    /// UDP datagrams received on the current connection.
    pub fn datagrams_received(&self) -> u64 {
        self.link.connection.stats().udp_rx.datagrams
    }

    /// Why the connection closed (the edge's close code and reason), if it has.
    pub fn close_reason(&self) -> Option<quinn::ConnectionError> {
        self.link.connection.close_reason()
    }

    /// Every seq at or below this was durable when this client last logged in.
    pub fn last_seq_at_login(&self) -> u64 {
        self.link.last_seq
    }

    /// Drops the connection (as a network failure would).
    pub fn disconnect(&self) {
        for sub in self.subscriptions.borrow().iter() {
            sub.live.borrow_mut().take();
        }
        self.link
            .connection
            .close(0u32.into(), b"client disconnect");
    }

    /// Connects and logs in again, resubscribes every subscription from its mirror's cursor
    /// (or afresh after a reset), and resends the unacknowledged inputs that are not durable.
    pub async fn reconnect(&mut self) -> Result<(), ClientError> {
        self.disconnect();
        self.link = open(&self.endpoint, &self.config).await?;
        let last_seq = self.link.last_seq;
        let subs: Vec<Rc<Subscribed>> = self.subscriptions.borrow().clone();
        for sub in &subs {
            let resume = if sub.needs_snapshot.get() {
                None
            } else {
                sub.mirror.borrow().cursor
            };
            self.start(sub, resume).await?;
        }
        let pending: Vec<Action> = {
            let mut unacked = self.unacked.borrow_mut();
            let pending = unacked.split_off(&(last_seq + 1));
            unacked.clear();
            pending.into_values().collect()
        };
        self.next_seq.set(last_seq + 1);
        for action in pending {
            let seq = self.next_seq.get();
            self.next_seq.set(seq + 1);
            self.unacked.borrow_mut().insert(seq, action.clone());
            self.send_seq(seq, &action).await?;
        }
        Ok(())
    }

    /// [`EdgeClient::reconnect`] until it succeeds, waiting with exponential backoff and jitter
    /// between attempts; returns the attempts made, or the last error once `policy` gives up.
    pub async fn reconnect_with_backoff(
        &mut self,
        policy: ReconnectPolicy,
    ) -> Result<u32, ClientError> {
        let started = Instant::now();
        let mut delay = policy.first_delay;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match tokio::time::timeout(policy.attempt_timeout, self.reconnect()).await {
                Ok(Ok(())) => return Ok(attempts),
                Ok(Err(error)) => error,
                Err(_) => ClientError::Timeout(policy.attempt_timeout),
            };
            if !error.is_connection_lost() || started.elapsed() >= policy.give_up_after {
                return Err(error);
            }
            tracing::debug!(attempts, %error, "reconnect failed; retrying");
            let jitter = rand::random::<f64>() * 0.5 + 0.75;
            tokio::time::sleep(delay.mul_f64(jitter)).await;
            delay = (delay * 2).min(policy.max_delay);
        }
    }
}

/// Runs the client side of Cap'n Proto RPC over a connection's stream halves, as a task of the
/// current `LocalSet`; returns the edge's bootstrap capability.
pub fn start_rpc<R, W>(recv: R, send: W) -> gateway::Client
where
    R: futures::AsyncRead + Unpin + 'static,
    W: futures::AsyncWrite + Unpin + 'static,
{
    let options = *ReaderOptions::new().traversal_limit_in_words(Some(CLIENT_MAX_MESSAGE_WORDS));
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(recv),
        futures::io::BufWriter::new(send),
        Side::Client,
        options,
    );
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let gateway: gateway::Client = rpc.bootstrap(Side::Server);
    tokio::task::spawn_local(async move {
        if let Err(error) = rpc.await {
            tracing::debug!(%error, "client RPC ended");
        }
    });
    gateway
}

/// Opens a connection, its RPC stream and a session.
async fn open(endpoint: &quinn::Endpoint, config: &ClientConfig) -> Result<Link, ClientError> {
    let connection = endpoint
        .connect(config.server, &config.server_name)?
        .await?;
    let (send, recv) = connection.open_bi().await?;
    let gateway = start_rpc(recv, send);
    let mut login = gateway.login_request();
    login.get().set_token(config.token.as_str());
    let session = match login.send().promise.await {
        Ok(reply) => reply.get()?.get_session()?,
        Err(error) if error.kind == capnp::ErrorKind::Failed => {
            return Err(ClientError::LoginRefused(error.extra))
        }
        Err(error) => return Err(error.into()),
    };
    let avatar = session.avatar_request().send().pipeline.get_avatar();
    let info = session.info_request().send().promise.await?;
    let info = info.get()?;
    Ok(Link {
        connection,
        player: info.get_player(),
        avatar_at_login: read_entity(info.get_avatar()?)?,
        last_seq: info.get_last_seq(),
        session,
        avatar,
    })
}
