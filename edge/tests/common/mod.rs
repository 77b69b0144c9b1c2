//! The loopback harness shared by the edge's integration tests: an embedded engine with one
//! tree, optionally the processor of region (0, 0), and one edge over QUIC on 127.0.0.1.

#![allow(dead_code)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use sekai_client::{client_endpoint, ClientConfig, MirrorEvent};
use sekai_edge::server::{EdgeConfig, EdgeServer};
use sekai_edge::tls::SELF_SIGNED_NAME;
use sekai_edge::token::{unix_now, TokenKey};
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::world::direct::DirectInputs;
use sekai_layer::world::model::{Entity, EntityKind, Inventory, ItemKind};
use sekai_layer::world::processor::{run_processor, ProcessorStats};
use sekai_layer::world::write;
use sekai_schema::{Area, EntityId, PlayerId, RegionId, Vec3, WorldKeys};

pub const TREE: EntityId = EntityId(0x7733);
pub const WAIT: Duration = Duration::from_secs(20);

pub struct World {
    pub db: EmbeddedDatabase,
    pub keys: WorldKeys,
    pub edge: EdgeServer,
    pub tokens: TokenKey,
    pub stop: Arc<AtomicBool>,
    /// Where the edge hands inputs to the processor of region (0, 0) once it runs.
    pub direct: DirectInputs,
}

/// An engine with one tree at (11, 11), the processor of region (0, 0) when `processor`, and
/// an edge on 127.0.0.1:0 where player p spawns at (8 + 2p, 0, 10).
pub async fn world(processor: bool) -> World {
    world_with(processor, |_| {}).await
}

/// [`world`] with the edge's configuration adjusted by `adjust`.
pub async fn world_with(processor: bool, adjust: impl FnOnce(&mut EdgeConfig)) -> World {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).expect("temporary engine");
    let keys = WorldKeys::new("sekai/edge-test").expect("world prefix");
    let tree = Entity {
        id: TREE,
        kind: EntityKind::Tree,
        hp: 50,
        position: Vec3::new(11.0, 0.0, 11.0),
        inventory: Inventory::default(),
        owner: 0,
    };
    write::create_entity(&db, &keys, &tree).await.expect("tree");
    let stop = Arc::new(AtomicBool::new(false));
    let direct = DirectInputs::default();
    if processor {
        start_processor(&db, &keys, &stop, &direct);
    }
    let tokens = TokenKey::new(b"edge-test-secret".to_vec());
    let mut config = EdgeConfig::new("127.0.0.1:0".parse().unwrap(), tokens.clone());
    config.workers = 2;
    config.spawn = Arc::new(|p: PlayerId| Vec3::new(8.0 + 2.0 * p as f32, 0.0, 10.0));
    // A debug build on a busy test machine is slow enough to look overloaded: tests that expect
    // every input taken must not see it shed (`load_shedding.rs` turns it on).
    config.limits.shed.target = None;
    config.direct = direct.clone();
    adjust(&mut config);
    let edge = EdgeServer::start(db.clone(), keys.clone(), config)
        .await
        .expect("edge starts");
    World {
        db,
        keys,
        edge,
        tokens,
        stop,
        direct,
    }
}

/// Starts the processor of region (0, 0) until `stop` is set, taking the inputs the edge hands
/// it through `direct`.
pub fn start_processor(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    stop: &Arc<AtomicBool>,
    direct: &DirectInputs,
) {
    tokio::spawn(run_processor(
        db.clone(),
        keys.clone(),
        RegionId::new(0, 0),
        1,
        stop.clone(),
        Arc::new(ProcessorStats::default()),
        direct.clone(),
        |_| {},
    ));
}

impl World {
    /// [`world`].
    pub async fn start(processor: bool) -> World {
        world(processor).await
    }

    pub fn config(&self, token: String) -> ClientConfig {
        ClientConfig {
            server: self.edge.local_addr().expect("edge address"),
            server_name: SELF_SIGNED_NAME.into(),
            token,
        }
    }

    pub fn token(&self, player: PlayerId) -> String {
        self.tokens.issue(player, unix_now() + 3_600)
    }

    /// Connects player `player` through a new endpoint (kept alive by the client).
    pub async fn connect(&self, player: PlayerId) -> sekai_client::EdgeClient {
        sekai_client::EdgeClient::connect(&self.endpoint(), self.config(self.token(player)))
            .await
            .expect("logs in")
    }

    pub fn endpoint(&self) -> quinn::Endpoint {
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        client_endpoint(bind, self.edge.certificate()).expect("client endpoint")
    }
}

/// Waits (bounded) until `done` holds, failing with `what`.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn area() -> Area {
    Area::new(Vec3::new(10.0, 0.0, 10.0), 30.0)
}

/// Stamps of the deltas with entity changes a client received, in order.
pub type Stamps = Rc<RefCell<Vec<[u8; 10]>>>;

pub fn recorder(stamps: &Stamps) -> impl FnMut(&MirrorEvent<'_>, &sekai_client::Mirror) {
    let stamps = stamps.clone();
    move |event, _| {
        if let MirrorEvent::Delta { stamp, delta } = event {
            if !delta.changes.is_empty() {
                stamps.borrow_mut().push(*stamp);
            }
        }
    }
}

pub fn wood_of(client: &sekai_client::SubscriptionHandle, avatar: EntityId) -> u32 {
    client.with_mirror(|m| {
        m.entities
            .get(&avatar)
            .map_or(0, |e| e.inventory.count(ItemKind::Wood))
    })
}

pub fn tree_hp(client: &sekai_client::SubscriptionHandle) -> Option<u32> {
    client.with_mirror(|m| m.entities.get(&TREE).map(|e| e.hp))
}

/// A sink that implements nothing (for requests that must fail before it is used).
pub struct NoSink;

impl sekai_schema::edge_capnp::delta_sink::Server for NoSink {}

/// A raw client's session and the connection its streams arrive on.
pub struct Raw {
    pub connection: quinn::Connection,
    pub session: sekai_schema::edge_capnp::session::Client,
}

/// Connects and logs in `player` with raw RPC; `window` bounds each incoming stream's
/// flow-control window (QUIC's stream receive window) when given.
pub async fn raw_login(world: &World, player: u64, window: Option<u32>) -> Raw {
    let mut config =
        sekai_client::tls::client_config(world.edge.certificate()).expect("client config");
    if let Some(window) = window {
        let mut transport = quinn::TransportConfig::default();
        transport.stream_receive_window(window.into());
        config.transport_config(Arc::new(transport));
    }
    let server = world.edge.local_addr().expect("edge address");
    let connection = world
        .endpoint()
        .connect_with(config, server, sekai_edge::tls::SELF_SIGNED_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let (send, recv) = connection.open_bi().await.expect("rpc stream");
    let gateway = sekai_client::start_rpc(recv, send);
    let mut login = gateway.login_request();
    login.get().set_token(world.token(player).as_str());
    let session = login
        .send()
        .promise
        .await
        .expect("login")
        .get()
        .expect("reply")
        .get_session()
        .expect("session");
    Raw {
        connection,
        session,
    }
}

/// Calls `subscribeStream` on the area of the tests with `tag`; returns the subscription and
/// its stream, whose first message (checked) is `opened(tag)`.
pub async fn subscribe_stream(
    raw: &Raw,
    tag: u64,
) -> (
    sekai_schema::edge_capnp::subscription::Client,
    quinn::RecvStream,
) {
    let mut request = raw.session.subscribe_stream_request();
    let mut params = request.get();
    area().write_capnp(params.reborrow().init_area());
    params.set_resume_from(&[]);
    params.set_tag(tag);
    let subscription = request
        .send()
        .promise
        .await
        .expect("subscribeStream answered")
        .get()
        .expect("reply")
        .get_subscription()
        .expect("subscription");
    let mut stream = raw
        .connection
        .accept_uni()
        .await
        .expect("the edge opens a stream");
    assert_eq!(
        next_event(&mut stream).await.unwrap(),
        Some(sekai_model::stream::StreamEvent::Opened(tag))
    );
    (subscription, stream)
}

/// The next message on `stream`, `None` once finished (bounded wait).
pub async fn next_event(
    stream: &mut quinn::RecvStream,
) -> Result<Option<sekai_model::stream::StreamEvent>, capnp::Error> {
    let message = tokio::time::timeout(
        WAIT,
        capnp_futures::serialize::try_read_message(stream, capnp::message::ReaderOptions::new()),
    )
    .await
    .expect("a message or the stream's end in time")?;
    Ok(match message {
        None => None,
        Some(message) => {
            Some(sekai_model::stream::read(message.get_root()?).expect("a valid stream message"))
        }
    })
}
