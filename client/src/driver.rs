//! The quinn driver of [`ClientCore`]: connect to an edge over QUIC, log in, subscribe (streamed:
//! `Session.subscribeStream`, read by [`crate::streams`]), send inputs (on the input stream,
//! `Avatar.openInputs`, written by [`crate::inputs`]), and resume after a reconnect. Every decision (seqs, resends, mirrors, where a
//! subscription resumes) is the core's; this module does the I/O.
//!
//! Cap'n Proto RPC is not `Send`: an [`EdgeClient`] lives on one thread and must be used inside
//! a tokio `LocalSet` (its RPC system runs as a local task). A game that wants a `Send` handle
//! polled once per frame keeps a [`ClientCore`] of its own and drives it (see the crate docs).
//!
//! Invariants: those of [`crate::core`]; in addition, a subscription's handler sees every mirror
//! change right after the core applied it, in the order the edge sent them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use capnp::message::ReaderOptions;
use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::{twoparty, RpcSystem};
use rustls::pki_types::CertificateDer;
use sekai_model::protocol::Stamp;
use sekai_model::stream::StreamEvent;
use sekai_model::wire::{fill_send, read_entity, WireError};
use sekai_model::{Action, Delta, Entity};
use sekai_schema::edge_capnp::{ack, avatar, gateway, session, subscription};
use sekai_schema::{Area, EntityId, PlayerId};

use crate::backoff::{overload_wait, Backoff, ReconnectPolicy};
use crate::core::{ClientCore, Mirror, SubId};
use crate::inputs::InputStream;
use crate::streams::{read_streams, StreamHandler};
use crate::tls::{client_config, ClientTlsError};

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
    Tls(#[from] ClientTlsError),
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
    /// The input stream broke or was closed by the edge (the unanswered inputs may or may not
    /// be durable: reconnect and resend).
    #[error("input stream: {0}")]
    InputStream(String),
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

    /// Whether the edge refused an input to shed load: it was not stored, its seq is free again,
    /// and the same input (or a newer one in its place) may be sent later.
    pub fn is_overloaded(&self) -> bool {
        matches!(self, ClientError::Refused { reason, .. }
            if sekai_model::input_stream::is_overloaded(reason))
    }
}

/// Where and how to reach an edge.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The edge's UDP address.
    pub server: SocketAddr,
    /// The name in the edge's certificate (`sekai_model::protocol::SELF_SIGNED_NAME` for a self-signed one).
    pub server_name: String,
    /// The login token.
    pub token: String,
}

/// A QUIC client endpoint that trusts only `server_cert`; many clients may share one.
pub fn client_endpoint(
    bind: SocketAddr,
    server_cert: &CertificateDer<'_>,
) -> Result<quinn::Endpoint, ClientError> {
    client_endpoint_on(std::net::UdpSocket::bind(bind)?, server_cert)
}

/// A QUIC client endpoint on an already bound `socket` (e.g. one with larger kernel buffers, for
/// many clients sharing it) that trusts only `server_cert`.
pub fn client_endpoint_on(
    socket: std::net::UdpSocket,
    server_cert: &CertificateDer<'_>,
) -> Result<quinn::Endpoint, ClientError> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for QUIC"))?;
    let mut endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?;
    endpoint.set_default_client_config(client_config(server_cert)?);
    Ok(endpoint)
}

/// What a subscription's handler is told.
#[derive(Debug)]
pub enum MirrorEvent<'a> {
    /// The mirror was replaced by a snapshot as of `at`.
    Snapshot {
        /// Its versionstamp.
        at: Stamp,
    },
    /// A delta was applied.
    Delta {
        /// Its versionstamp.
        stamp: Stamp,
        /// The delta (changes filtered to the area, the player's own outcomes).
        delta: &'a Delta,
    },
    /// The edge gave up on this subscription; the client subscribes afresh.
    Reset {
        /// The edge's reason.
        reason: &'a str,
    },
}

/// A callback per mirror event; it must not call back into its client.
pub type Handler = Box<dyn FnMut(&MirrorEvent<'_>, &Mirror)>;

/// The state a client shares with its sinks: the core, and each subscription's handler and
/// live capability.
#[derive(Default)]
struct Shared {
    core: RefCell<ClientCore>,
    handlers: RefCell<BTreeMap<SubId, Handler>>,
    /// The live subscription capabilities (dropping one ends the subscription at the edge).
    live: RefCell<BTreeMap<SubId, subscription::Client>>,
}

impl Shared {
    /// Calls `sub`'s handler with `event` and the mirror.
    fn tell(&self, sub: SubId, event: &MirrorEvent<'_>) {
        let core = self.core.borrow();
        let mut handlers = self.handlers.borrow_mut();
        if let (Some(mirror), Some(handler)) = (core.mirror(sub), handlers.get_mut(&sub)) {
            handler(event, mirror);
        }
    }
}

impl Shared {
    /// Hands one event of subscription `sub`'s stream to the core and tells the handler.
    fn on_stream_event(&self, sub: SubId, event: StreamEvent) {
        match event {
            StreamEvent::Opened(_) => {}
            StreamEvent::Snapshot { entities, at } => {
                self.core.borrow_mut().on_snapshot(sub, at, entities);
                self.tell(sub, &MirrorEvent::Snapshot { at });
            }
            StreamEvent::Deltas(deltas) => {
                for (stamp, delta) in &deltas {
                    if self.core.borrow_mut().on_delta(sub, *stamp, delta) {
                        self.tell(
                            sub,
                            &MirrorEvent::Delta {
                                stamp: *stamp,
                                delta,
                            },
                        );
                    }
                }
            }
            StreamEvent::Reset(reason) => {
                self.core.borrow_mut().on_reset(sub, reason.clone());
                self.tell(sub, &MirrorEvent::Reset { reason: &reason });
            }
        }
    }

    /// Reads `connection`'s subscription streams into this state, as a task of the `LocalSet`.
    fn read_streams_of(self: &Rc<Self>, connection: &quinn::Connection) {
        let shared = Rc::downgrade(self);
        let on_event: StreamHandler = Rc::new(move |tag, event| {
            if let (Some(shared), Ok(sub)) = (shared.upgrade(), usize::try_from(tag)) {
                shared.on_stream_event(SubId(sub), event);
            }
        });
        tokio::task::spawn_local(read_streams(connection.clone(), reader_options(), on_event));
    }
}

/// A handle to one subscription of an [`EdgeClient`].
#[derive(Clone)]
pub struct SubscriptionHandle {
    shared: Rc<Shared>,
    sub: SubId,
}

impl SubscriptionHandle {
    /// Runs `f` on the mirror (an empty one once unsubscribed).
    pub fn with_mirror<R>(&self, f: impl FnOnce(&Mirror) -> R) -> R {
        let core = self.shared.core.borrow();
        match core.mirror(self.sub) {
            Some(mirror) => f(mirror),
            None => f(&Mirror::default()),
        }
    }

    /// The mirror's cursor.
    pub fn cursor(&self) -> Option<Stamp> {
        self.with_mirror(|m| m.cursor)
    }

    /// The subscription's id in the client's core.
    pub fn id(&self) -> SubId {
        self.sub
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
    /// The input stream (`None` when the edge does not offer one: inputs go by `Avatar.send`).
    inputs: Option<InputStream>,
}

/// A logged-in client of one edge.
pub struct EdgeClient {
    endpoint: quinn::Endpoint,
    config: ClientConfig,
    link: Link,
    shared: Rc<Shared>,
}

impl EdgeClient {
    /// Connects through `endpoint` and logs in with the configured token.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let link = open(endpoint, &config).await?;
        let shared = Rc::new(Shared::default());
        shared.read_streams_of(&link.connection);
        let resume = shared.core.borrow_mut().on_login(link.last_seq);
        debug_assert!(resume.subscribe.is_empty() && resume.resend.is_empty());
        Ok(Self {
            endpoint: endpoint.clone(),
            config,
            link,
            shared,
        })
    }

    /// The logged-in player.
    pub fn player(&self) -> PlayerId {
        self.link.player
    }

    /// The player's avatar entity.
    pub fn avatar_id(&self) -> EntityId {
        self.link.avatar_at_login.id
    }

    /// The avatar's state when this client last logged in.
    pub fn avatar_at_login(&self) -> &Entity {
        &self.link.avatar_at_login
    }

    /// The seq the next input gets.
    pub fn next_seq(&self) -> u64 {
        self.shared.core.borrow().next_seq()
    }

    /// Inputs sent but not acknowledged, by seq.
    pub fn unacked(&self) -> Vec<u64> {
        self.shared
            .core
            .borrow()
            .unacked()
            .keys()
            .copied()
            .collect()
    }

    /// Sends one input and waits for its acknowledgement (durable at the edge); returns its seq.
    ///
    /// A refused input ([`ClientError::Refused`]) was not stored and its seq is given back; an
    /// input whose call failed stays unacknowledged for [`EdgeClient::reconnect`] to resend.
    pub async fn send(&self, action: Action) -> Result<u64, ClientError> {
        let seq = self.shared.core.borrow_mut().send(action.clone());
        self.send_seq(seq, &action).await
    }

    /// Sends input `seq` on the current link and hands the answer to the core.
    async fn send_seq(&self, seq: u64, action: &Action) -> Result<u64, ClientError> {
        let answer = self.answer_of(seq, action).await;
        self.settle(answer)
    }

    /// Resends unacknowledged input `seq` after a login: an `overloaded` refusal is waited out
    /// ([`overload_wait`]) and the same input sent again, since later unacknowledged inputs
    /// follow it and its seq must not be given back.
    async fn resend_seq(&self, seq: u64, action: &Action) -> Result<u64, ClientError> {
        loop {
            match self.answer_of(seq, action).await {
                Err(error) if error.is_overloaded() => {
                    tokio::time::sleep(overload_wait(rand::random())).await;
                }
                answer => return self.settle(answer),
            }
        }
    }

    /// The edge's answer to input `seq` on the current link. An edge that died without closing
    /// answers nothing: past the timeout the connection counts as lost (the input stays
    /// unacknowledged, for the reconnect to resend).
    async fn answer_of(&self, seq: u64, action: &Action) -> Result<u64, ClientError> {
        match &self.link.inputs {
            Some(inputs) => tokio::time::timeout(ACK_TIMEOUT, inputs.send(seq, action)).await,
            None => tokio::time::timeout(ACK_TIMEOUT, self.send_seq_by_call(seq, action)).await,
        }
        .map_err(|_| ClientError::Timeout(ACK_TIMEOUT))?
    }

    /// Hands an answer to the core (an acceptance, or a refusal giving the seq back).
    fn settle(&self, answer: Result<u64, ClientError>) -> Result<u64, ClientError> {
        match answer {
            Ok(acked) => self.shared.core.borrow_mut().on_accepted(acked),
            Err(ClientError::Refused { seq, ref reason }) => {
                self.shared
                    .core
                    .borrow_mut()
                    .on_refused(seq, reason.clone());
            }
            Err(_) => {}
        }
        answer
    }

    /// Sends input `seq` with an `Avatar.send` call (an edge without input streams).
    async fn send_seq_by_call(&self, seq: u64, action: &Action) -> Result<u64, ClientError> {
        let mut request = self.link.avatar.send_request();
        fill_send(request.get(), seq, action)?;
        let reply = request.send().promise.await?;
        match reply.get()?.get_ack()?.which()? {
            ack::Accepted(acked) => Ok(acked),
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
        let sub = self.shared.core.borrow_mut().subscribe(area);
        self.shared
            .handlers
            .borrow_mut()
            .insert(sub, Box::new(handler));
        if let Err(error) = self.start(sub, area, None).await {
            self.forget(sub);
            return Err(error);
        }
        Ok(SubscriptionHandle {
            shared: self.shared.clone(),
            sub,
        })
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, handle: &SubscriptionHandle) {
        self.forget(handle.sub);
    }

    fn forget(&self, sub: SubId) {
        self.shared.live.borrow_mut().remove(&sub);
        self.shared.handlers.borrow_mut().remove(&sub);
        self.shared.core.borrow_mut().unsubscribe(sub);
    }

    /// Subscribes afresh every subscription the edge reset.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let stale = self.shared.core.borrow().to_refresh();
        for (sub, area) in stale {
            if self.shared.live.borrow_mut().remove(&sub).is_some() {
                self.start(sub, area, None).await?;
            }
        }
        Ok(())
    }

    /// Asks the edge for subscription `sub` of `area`, resuming after `resume` when given.
    async fn start(
        &self,
        sub: SubId,
        area: Area,
        resume: Option<Stamp>,
    ) -> Result<(), ClientError> {
        let mut request = self.link.session.subscribe_stream_request();
        let mut params = request.get();
        area.write_capnp(params.reborrow().init_area());
        params.set_resume_from(resume.as_ref().map_or(&[][..], |r| &r[..]));
        params.set_tag(sub.0 as u64);
        let reply = request.send().promise.await?;
        let live = reply.get()?.get_subscription()?;
        self.shared.live.borrow_mut().insert(sub, live);
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
        self.shared.live.borrow_mut().clear();
        self.link
            .connection
            .close(0u32.into(), b"client disconnect");
    }

    /// Connects and logs in again, then does what the core decides: resubscribe every
    /// subscription from its mirror's cursor (or afresh after a reset), and resend the
    /// unacknowledged inputs that are not durable.
    pub async fn reconnect(&mut self) -> Result<(), ClientError> {
        self.disconnect();
        self.link = open(&self.endpoint, &self.config).await?;
        self.shared.read_streams_of(&self.link.connection);
        let resume = self.shared.core.borrow_mut().on_login(self.link.last_seq);
        for (sub, area, from) in resume.subscribe {
            self.start(sub, area, from).await?;
        }
        for (seq, action) in resume.resend {
            self.resend_seq(seq, &action).await?;
        }
        Ok(())
    }

    /// [`EdgeClient::reconnect`] until it succeeds, waiting as [`Backoff`] says between
    /// attempts; returns the attempts made, or the last error once `policy` gives up.
    pub async fn reconnect_with_backoff(
        &mut self,
        policy: ReconnectPolicy,
    ) -> Result<u32, ClientError> {
        let mut backoff = Backoff::new(policy);
        let started = Instant::now();
        loop {
            let error = match tokio::time::timeout(policy.attempt_timeout, self.reconnect()).await {
                Ok(Ok(())) => return Ok(backoff.attempts() + 1),
                Ok(Err(error)) => error,
                Err(_) => ClientError::Timeout(policy.attempt_timeout),
            };
            let wait = backoff.after_failure(
                error.is_connection_lost(),
                started.elapsed(),
                rand::random::<f64>(),
            );
            let Some(wait) = wait else {
                return Err(error);
            };
            tracing::debug!(attempts = backoff.attempts(), %error, "reconnect failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// How the client reads the edge's messages, on the RPC stream and on subscription streams.
fn reader_options() -> ReaderOptions {
    *ReaderOptions::new().traversal_limit_in_words(Some(CLIENT_MAX_MESSAGE_WORDS))
}

/// Runs the client side of Cap'n Proto RPC over a connection's stream halves, as a task of the
/// current `LocalSet`; returns the edge's bootstrap capability.
pub fn start_rpc<R, W>(recv: R, send: W) -> gateway::Client
where
    R: futures::AsyncRead + Unpin + 'static,
    W: futures::AsyncWrite + Unpin + 'static,
{
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(recv),
        futures::io::BufWriter::new(send),
        Side::Client,
        reader_options(),
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
    let inputs = match InputStream::open(&connection, &avatar, 1, reader_options()).await {
        Ok(inputs) => Some(inputs),
        Err(ClientError::Rpc(error)) if error.kind == capnp::ErrorKind::Unimplemented => None,
        Err(error) => return Err(error),
    };
    Ok(Link {
        inputs,
        connection,
        player: info.get_player(),
        avatar_at_login: read_entity(info.get_avatar()?)?,
        last_seq: info.get_last_seq(),
        session,
        avatar,
    })
}
