//! The edge protocol's capabilities, served per connection (on the connection's `LocalSet`).
//!
//! Invariants (object capabilities):
//! - the only bootstrap capability is the [`Gateway`]; a [`Session`] exists only for a token
//!   that verified, and its [`Avatar`] is bound to the token's player, so a client can send
//!   inputs for its own avatar only (there is no player field to forge);
//! - every refusal (bad token, bad area, bad seq, rate limit, malformed action) is an error
//!   answer to that one call, logged with the player, and never touches other clients;
//! - an avatar's inputs are admitted by its `InputGate` and queued to the edge's batcher in seq
//!   order (`turn`); each is acknowledged only once it is durable (its T1, or the frame that
//!   stored it directly, committed);
//! - what the edge can check alone (a malformed or unknown action, a position that is not finite
//!   or outside the world, a seq out of order or reused) is refused in `Ack.error`, never acked;
//! - dropping a [`Subscription`] (or the connection) ends it in the fan-out.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use capnp::capability::Rc;
use metrics::counter;
use sekai_layer::kv::Database;
use sekai_layer::world::inbox::action_digest;
use sekai_layer::world::model::Input;
use sekai_layer::world::rules::check_action;
use sekai_schema::edge_capnp::{avatar, gateway, session, subscription};
use sekai_schema::{Area, PlayerId};

use super::held_answers::HeldAnswers;
use super::input_stream::serve_inputs;
use super::inputs::{SessionMark, StoreError};
use super::login::{ensure_avatar, t1_region};
use super::push::push;
use super::stream_push::push_stream;
use super::{EdgeContext, GaugeGuard};
use crate::fanout::{Slot, Start};
use crate::observe::metrics as names;
use crate::session::{Admission, AvatarLocation, InputGate, InputTiming, Subscriber};
use crate::token::unix_now;
use sekai_model::input_stream::InputAnswer;
use sekai_model::wire::{read_input, read_stamp, with_entity, WireError};

/// The bootstrap capability: logs players in.
pub struct Gateway<D: Database> {
    ctx: Arc<EdgeContext<D>>,
    peer: SocketAddr,
    connection: quinn::Connection,
}

impl<D: Database> Gateway<D> {
    /// A gateway for `connection` (streamed subscriptions open their streams on it).
    pub fn new(ctx: Arc<EdgeContext<D>>, connection: quinn::Connection) -> Self {
        Self {
            ctx,
            peer: connection.remote_address(),
            connection,
        }
    }
}

impl<D: Database> gateway::Server for Gateway<D> {
    async fn login(
        self: Rc<Self>,
        params: gateway::LoginParams,
        mut results: gateway::LoginResults,
    ) -> Result<(), capnp::Error> {
        let token = params.get()?.get_token()?.to_str()?;
        let claims = self.ctx.tokens.verify(token, unix_now()).map_err(|error| {
            tracing::warn!(peer = %self.peer, %error, "login refused");
            counter!(names::LOGINS, "outcome" => "refused").increment(1);
            capnp::Error::failed(error.to_string())
        })?;
        let player = claims.player;
        let spawn = (self.ctx.spawn)(player);
        let state = ensure_avatar(
            &self.ctx.db,
            &self.ctx.keys,
            player,
            spawn,
            sekai_schema::EntityId(rand::random()),
        )
        .await
        .map_err(|error| {
            tracing::error!(player, %error, "login failed");
            counter!(names::LOGINS, "outcome" => "failed").increment(1);
            // Transient (the database): `overloaded` tells the client to retry, unlike a refused token.
            capnp::Error::overloaded(format!("login failed: {error}"))
        })?;
        tracing::debug!(peer = %self.peer, player, "logged in");
        counter!(names::LOGINS, "outcome" => "ok").increment(1);
        let location = Arc::new(AvatarLocation::new(state.avatar.id, state.avatar.region()));
        let avatar = std::rc::Rc::new(Avatar {
            ctx: self.ctx.clone(),
            player,
            location: location.clone(),
            gate: RefCell::new(InputGate::new(
                state.durable,
                self.ctx.limits.input,
                self.ctx.epoch.elapsed(),
            )),
            mark: self.ctx.sessions.begin(player),
            timing: Arc::new(InputTiming::new(self.ctx.shedder.clone())),
            turn: tokio::sync::Mutex::new(()),
            connection: self.connection.clone(),
            input_stream: std::cell::Cell::new(false),
            held_answers: Rc::default(),
        });
        results.get().set_session(capnp_rpc::new_client(Session {
            ctx: self.ctx.clone(),
            player,
            location,
            client: capnp_rpc::new_client_from_rc(avatar.clone()),
            avatar,
            login_avatar: state.avatar,
            connection: self.connection.clone(),
            _live: GaugeGuard::new(names::SESSIONS),
        }));
        Ok(())
    }
}

/// One logged-in player.
pub struct Session<D: Database> {
    ctx: Arc<EdgeContext<D>>,
    player: PlayerId,
    location: Arc<AvatarLocation>,
    avatar: std::rc::Rc<Avatar<D>>,
    client: avatar::Client,
    login_avatar: sekai_layer::world::model::Entity,
    connection: quinn::Connection,
    _live: GaugeGuard,
}

/// How long the edge waits for the client to allow one more unidirectional stream (QUIC's
/// stream limit) before it refuses a streamed subscription.
pub const OPEN_STREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a stream of `kind` with `open`, refused as `overloaded` when the client allows none
/// within [`OPEN_STREAM_TIMEOUT`].
async fn open_within<T>(
    kind: &str,
    open: impl Future<Output = Result<T, quinn::ConnectionError>>,
) -> Result<T, capnp::Error> {
    tokio::time::timeout(OPEN_STREAM_TIMEOUT, open)
        .await
        .map_err(|_| {
            capnp::Error::overloaded(format!(
                "the client allowed no new {kind} stream within {} s",
                OPEN_STREAM_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|error| capnp::Error::disconnected(error.to_string()))
}

impl<D: Database> Session<D> {
    /// Joins the fan-out with a subscription of the area in `area` (refused when invalid),
    /// starting from a snapshot or after the versionstamp in `resume` (when not empty).
    fn join(
        &self,
        area: sekai_schema::edge_capnp::area::Reader<'_>,
        resume: &[u8],
    ) -> Result<(u64, Arc<Slot>), capnp::Error> {
        let area = Area::read_capnp(area)?;
        if !area.is_valid() {
            tracing::warn!(
                player = self.player,
                ?area,
                "subscription refused: invalid area"
            );
            return Err(capnp::Error::failed(format!(
                "invalid area of interest: centre must be finite and radius in 0..={}",
                sekai_schema::geometry::MAX_QUERY_RADIUS
            )));
        }
        let start = if resume.is_empty() {
            Start::Snapshot
        } else {
            Start::Resume(read_stamp(resume)?)
        };
        let subscriber = Subscriber::new(self.player, area, self.ctx.limits.outbox_budget)
            .with_avatar(self.location.clone())
            .with_inputs(self.avatar.timing.clone());
        let joined = self.ctx.fanout.subscribe(subscriber, start);
        tracing::debug!(player = self.player, ?area, ?start, "subscribed");
        Ok(joined)
    }

    /// The capability that ends subscription `id` when cancelled or dropped.
    fn subscription(&self, id: u64, slot: Arc<Slot>) -> subscription::Client {
        capnp_rpc::new_client(Subscription {
            fanout: self.ctx.fanout.clone(),
            id,
            slot,
        })
    }
}

impl<D: Database> session::Server for Session<D> {
    async fn avatar(
        self: Rc<Self>,
        _: session::AvatarParams,
        mut results: session::AvatarResults,
    ) -> Result<(), capnp::Error> {
        results.get().set_avatar(self.client.clone());
        Ok(())
    }

    async fn info(
        self: Rc<Self>,
        _: session::InfoParams,
        mut results: session::InfoResults,
    ) -> Result<(), capnp::Error> {
        let mut r = results.get();
        r.set_player(self.player);
        with_entity(&self.login_avatar, |avatar| r.set_avatar(avatar))?;
        r.set_last_seq(self.avatar.gate.borrow().durable());
        Ok(())
    }

    async fn subscribe(
        self: Rc<Self>,
        params: session::SubscribeParams,
        mut results: session::SubscribeResults,
    ) -> Result<(), capnp::Error> {
        let params = params.get()?;
        let sink = params.get_sink()?;
        let (id, slot) = self.join(params.get_area()?, params.get_resume_from()?)?;
        tokio::task::spawn_local(push(
            slot.clone(),
            sink,
            self.ctx.limits.push_window,
            params.get_batched(),
            self.ctx.limits.stall_timeout,
        ));
        results.get().set_subscription(self.subscription(id, slot));
        Ok(())
    }

    /// Like `subscribe`, but pushes on a unidirectional stream opened for the subscription.
    async fn subscribe_stream(
        self: Rc<Self>,
        params: session::SubscribeStreamParams,
        mut results: session::SubscribeStreamResults,
    ) -> Result<(), capnp::Error> {
        let params = params.get()?;
        // Join first, so a refused area opens no stream; the capability ends the subscription
        // if the stream cannot be opened.
        let (id, slot) = self.join(params.get_area()?, params.get_resume_from()?)?;
        let subscription = self.subscription(id, slot.clone());
        let stream = open_within("unidirectional", self.connection.open_uni()).await?;
        tokio::task::spawn_local(push_stream(
            slot,
            stream,
            params.get_tag(),
            self.ctx.limits.stall_timeout,
            self.avatar.held_answers.clone(),
        ));
        results.get().set_subscription(subscription);
        Ok(())
    }
}

/// A player's avatar: the only way to send inputs.
pub struct Avatar<D: Database> {
    ctx: Arc<EdgeContext<D>>,
    player: PlayerId,
    location: Arc<AvatarLocation>,
    gate: RefCell<InputGate>,
    mark: Arc<SessionMark>,
    /// When this session's inputs were admitted, until their outcomes are seen (shedding's
    /// samples).
    timing: Arc<InputTiming>,
    turn: tokio::sync::Mutex<()>,
    /// The connection (input streams are opened on it).
    connection: quinn::Connection,
    /// Whether an input stream of this avatar is open (one at a time).
    input_stream: std::cell::Cell<bool>,
    /// The input stream's answers waiting for a push of this player to carry them.
    held_answers: Rc<HeldAnswers>,
}

impl<D: Database> Avatar<D> {
    /// The region to send T1 to: the last known one, re-read when proven stale.
    async fn region(&self) -> sekai_schema::RegionId {
        t1_region(&self.ctx.db, &self.ctx.keys, &self.location).await
    }
}

impl<D: Database> avatar::Server for Avatar<D> {
    async fn send(
        self: Rc<Self>,
        params: avatar::SendParams,
        mut results: avatar::SendResults,
    ) -> Result<(), capnp::Error> {
        let params = params.get()?;
        let seq = params.get_seq();
        let input = if params.has_action() {
            params
                .get_action()
                .map_err(WireError::from)
                .and_then(|action| read_input(self.player, seq, action))
        } else {
            Err(capnp::Error::failed("no action".into()).into())
        };
        let pending = self.submit(seq, input).await;
        match self.settle(pending).await {
            InputAnswer::Accepted(seq) => results.get().init_ack().set_accepted(seq),
            InputAnswer::Refused { reason, .. } => results.get().init_ack().set_error(reason),
            InputAnswer::Closed(reason) => return Err(capnp::Error::failed(reason)),
            InputAnswer::Opened(_) => unreachable!("an input's answer is never `opened`"),
        }
        Ok(())
    }

    /// Opens a bidirectional stream for this avatar's inputs and serves it as a local task.
    async fn open_inputs(
        self: Rc<Self>,
        params: avatar::OpenInputsParams,
        _: avatar::OpenInputsResults,
    ) -> Result<(), capnp::Error> {
        let tag = params.get()?.get_tag();
        let open_already = || {
            capnp::Error::failed(
                "an input stream of this avatar is open already: finish it before opening another"
                    .into(),
            )
        };
        if self.input_stream.get() {
            return Err(open_already());
        }
        let (mut send, recv) = open_within("bidirectional", self.connection.open_bi()).await?;
        // Marked only once open (a call cancelled while opening leaves no mark); a concurrent
        // call that won the race keeps its stream, this one gives its own up.
        if self.input_stream.replace(true) {
            let _ = send.finish();
            return Err(open_already());
        }
        tracing::debug!(player = self.player, tag, "input stream opened");
        let limits = self.ctx.limits;
        tokio::task::spawn_local(serve_inputs(self, send, recv, tag, limits));
        Ok(())
    }
}

/// An input on its way to its answer.
pub enum Pending {
    /// Answered already (refused, or a durable seq acknowledged again).
    Answered(InputAnswer),
    /// Queued to the batcher; accepted once it is durable (T1, or a frame storing it directly).
    Storing {
        /// The input's seq.
        seq: u64,
        /// Resolves when its batch committed (or failed).
        stored: Pin<Box<dyn Future<Output = Result<(), StoreError>>>>,
    },
}

impl<D: Database> Avatar<D> {
    /// The avatar's player.
    pub fn player(&self) -> PlayerId {
        self.player
    }

    /// The connection the avatar's session is served on.
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Admits input `seq` (read from the wire, or why it does not read) through the gate and,
    /// when it is to be stored, queues it for T1 in this session's order.
    pub async fn submit(&self, seq: u64, input: Result<Input, WireError>) -> Pending {
        counter!(names::INPUTS_RECEIVED).increment(1);
        match self.admit(seq, input) {
            Err((label, reason)) => self.refuse(seq, label, reason),
            Ok(None) => Pending::Answered(InputAnswer::Accepted(seq)),
            Ok(Some(input)) => {
                // The turn orders this session's inputs into the batcher's queue; the answer is
                // awaited outside it, so a session's inputs pipeline into consecutive batches.
                let _turn = self.turn.lock().await;
                let region = self.region().await;
                // Broken while this input waited (an input stream of the session broke with an
                // input admitted but never queued): storing this one could open a gap.
                if self.gate.borrow().is_broken() {
                    let error = crate::session::InputError::Broken;
                    return self.refuse(seq, error.label(), error.to_string());
                }
                let stored = self.ctx.inputs.store(region, input, self.mark.clone());
                Pending::Storing {
                    seq,
                    stored: Box::pin(stored),
                }
            }
        }
    }

    /// Refuses input `seq` for `reason` (counted under `label`).
    fn refuse(&self, seq: u64, label: &'static str, reason: String) -> Pending {
        counter!(names::INPUTS_REFUSED, "reason" => label).increment(1);
        tracing::debug!(player = self.player, seq, %reason, "input refused");
        Pending::Answered(InputAnswer::Refused { seq, reason })
    }

    /// Waits for `pending`'s store (T1 or direct; settles are awaited in admission order) and
    /// answers it: a failed store breaks the session and closes (the client must log in again
    /// and resend).
    pub async fn settle(&self, pending: Pending) -> InputAnswer {
        let answer = match pending {
            Pending::Answered(answer) => answer,
            Pending::Storing { seq, stored } => match stored.await {
                Ok(()) => {
                    self.gate.borrow_mut().stored(seq);
                    InputAnswer::Accepted(seq)
                }
                Err(error) => {
                    self.gate.borrow_mut().failed();
                    tracing::error!(player = self.player, seq, %error, "T1 failed");
                    InputAnswer::Closed(error.to_string())
                }
            },
        };
        if matches!(answer, InputAnswer::Accepted(_)) {
            counter!(names::INPUTS_ACKED).increment(1);
        }
        answer
    }

    /// Marks the session broken: every later input is refused until the player logs in again
    /// (an input stream ended with inputs admitted but maybe not answered).
    pub fn break_session(&self) {
        self.gate.borrow_mut().failed();
        self.mark.set_broken();
    }

    /// Where the input stream's answers wait for a push to carry them.
    pub fn held_answers(&self) -> &HeldAnswers {
        &self.held_answers
    }

    /// The avatar's input stream ended: another may be opened.
    pub fn input_stream_ended(&self) {
        self.input_stream.set(false);
    }

    /// Checks input `seq` and admits it through the gate: the input to store, `None` for a
    /// durable seq to acknowledge again, or the refusal's label (a metric label) and text (for
    /// `Ack.error`).
    fn admit(
        &self,
        seq: u64,
        input: Result<Input, WireError>,
    ) -> Result<Option<Input>, (&'static str, String)> {
        let input = input.map_err(|error| ("malformed", format!("malformed action: {error}")))?;
        check_action(&input.action)
            .map_err(|rejection| ("invalid_action", format!("invalid action: {rejection}")))?;
        if self.mark.is_replaced() {
            return Err((
                "replaced",
                format!(
                    "session replaced by a newer login of player {} on this edge",
                    self.player
                ),
            ));
        }
        let digest = action_digest(&input.action);
        let admission = self
            .gate
            .borrow_mut()
            .admit_unless_shed(seq, digest, self.ctx.epoch.elapsed(), || self.timing.shed())
            .map_err(|error| (error.label(), error.to_string()))?;
        Ok(match admission {
            Admission::Store => {
                self.timing.admitted(seq);
                Some(input)
            }
            Admission::AlreadyDurable => None,
        })
    }
}

impl<D: Database> Drop for Avatar<D> {
    fn drop(&mut self) {
        self.ctx.sessions.end(self.player, &self.mark);
    }
}

/// A live subscription; dropping it ends it.
pub struct Subscription {
    fanout: crate::fanout::Fanout,
    id: u64,
    slot: Arc<Slot>,
}

impl subscription::Server for Subscription {
    async fn cancel(
        self: Rc<Self>,
        _: subscription::CancelParams,
        _: subscription::CancelResults,
    ) -> Result<(), capnp::Error> {
        self.slot.close();
        self.fanout.unsubscribe(self.id);
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.slot.close();
        self.fanout.unsubscribe(self.id);
    }
}
