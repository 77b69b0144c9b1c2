//! A client that stops reading: it logs in and subscribes like any client, reads normally until
//! told to stall, and then either never completes its `DeltaSink` calls ([`StallKind::Sink`]) or
//! stops reading its QUIC stream altogether ([`StallKind::Stream`]).
//!
//! It speaks the protocol directly (not through the SDK, whose sink always answers) and must
//! run inside a tokio `LocalSet`, like every Cap'n Proto RPC client.
//!
//! Invariants: once stalled, a client never reads or answers again (a paused stream returns
//! `Pending` without registering a waker, a stalled sink call never resolves); a `reset` that
//! still reaches a sink-stalled client is counted, with its reason kept.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::io::AsyncRead;
use sekai_schema::edge_capnp::{delta_sink, subscription};
use sekai_schema::Area;

use sekai_client::ClientError;
use sekai_edge::tls::SELF_SIGNED_NAME;
use sekai_model::wire::read_entity;

/// How a client stops reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallKind {
    /// The client reads its stream but never completes a `DeltaSink` call.
    Sink,
    /// The client stops reading its QUIC stream (QUIC still acknowledges packets).
    Stream,
}

/// What a stalling client shares with its sink and its reader.
#[derive(Default)]
struct Shared {
    stalled: Cell<bool>,
    calls: Cell<u64>,
    resets: RefCell<Vec<String>>,
}

/// A logged-in client with one subscription that can be told to stop reading.
pub struct StallingClient {
    connection: quinn::Connection,
    shared: Rc<Shared>,
    kind: StallKind,
    _subscription: subscription::Client,
}

impl StallingClient {
    /// Connects to `server` through `endpoint`, logs in with `token` and subscribes to a circle
    /// of `radius` metres around the avatar (batched deltas).
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        server: SocketAddr,
        token: &str,
        radius: f32,
        kind: StallKind,
    ) -> Result<Self, ClientError> {
        let connection = endpoint.connect(server, SELF_SIGNED_NAME)?.await?;
        let (send, recv) = connection.open_bi().await?;
        let shared = Rc::new(Shared::default());
        let reader = Pausable {
            inner: recv,
            paused: if kind == StallKind::Stream {
                Some(shared.clone())
            } else {
                None
            },
        };
        let gateway = sekai_client::start_rpc(reader, send);
        let mut login = gateway.login_request();
        login.get().set_token(token);
        let session = login.send().promise.await?.get()?.get_session()?;
        let info = session.info_request().send().promise.await?;
        let avatar = read_entity(info.get()?.get_avatar()?)?;
        let mut request = session.subscribe_request();
        let mut params = request.get();
        Area::new(avatar.position, radius).write_capnp(params.reborrow().init_area());
        let sink = Sink {
            shared: shared.clone(),
        };
        params.set_sink(capnp_rpc::new_client(sink));
        params.set_resume_from(&[]);
        params.set_batched(true);
        let reply = request.send().promise.await?;
        let subscription = reply.get()?.get_subscription()?;
        Ok(Self {
            connection,
            shared,
            kind,
            _subscription: subscription,
        })
    }

    /// Stops reading, for good.
    pub fn stall(&self) {
        self.shared.stalled.set(true);
    }

    /// How this client stalls.
    pub fn kind(&self) -> StallKind {
        self.kind
    }

    /// Sink calls received (snapshot, delta, deltas).
    pub fn calls(&self) -> u64 {
        self.shared.calls.get()
    }

    /// The reasons of the resets received.
    pub fn resets(&self) -> Vec<String> {
        self.shared.resets.borrow().clone()
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.connection.close(0u32.into(), b"stalling client done");
    }
}

/// The sink: answers until stalled, then never again.
struct Sink {
    shared: Rc<Shared>,
}

impl Sink {
    async fn take(&self) {
        self.shared.calls.set(self.shared.calls.get() + 1);
        if self.shared.stalled.get() {
            futures::future::pending::<()>().await;
        }
    }
}

impl delta_sink::Server for Sink {
    async fn snapshot(
        self: Rc<Self>,
        _: delta_sink::SnapshotParams,
        _: delta_sink::SnapshotResults,
    ) -> Result<(), capnp::Error> {
        self.take().await;
        Ok(())
    }

    async fn delta(
        self: Rc<Self>,
        _: delta_sink::DeltaParams,
        _: delta_sink::DeltaResults,
    ) -> Result<(), capnp::Error> {
        self.take().await;
        Ok(())
    }

    async fn deltas(
        self: Rc<Self>,
        _: delta_sink::DeltasParams,
        _: delta_sink::DeltasResults,
    ) -> Result<(), capnp::Error> {
        self.take().await;
        Ok(())
    }

    async fn reset(
        self: Rc<Self>,
        params: delta_sink::ResetParams,
        _: delta_sink::ResetResults,
    ) -> Result<(), capnp::Error> {
        let reason = params.get()?.get_reason()?.to_string()?;
        self.shared.resets.borrow_mut().push(reason);
        Ok(())
    }
}

/// A stream reader that stops for good once its client stalls (when `paused` is set).
struct Pausable<R> {
    inner: R,
    paused: Option<Rc<Shared>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Pausable<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.paused.as_ref().is_some_and(|s| s.stalled.get()) {
            // Never woken: this client has stopped reading.
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
