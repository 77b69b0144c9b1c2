//! The edge protocol's promises to any client (issue: holes found from outside), each through
//! real QUIC on loopback: seq semantics that never drop an acknowledged input, keep-alives,
//! close reasons, checks in the acknowledgement, certificate names and persistence, and
//! reconnection after the edge goes away.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use sekai_client::tls::client_config;
use sekai_client::{client_endpoint, ClientConfig, EdgeClient};
use sekai_edge::server::{CloseCode, EdgeConfig, EdgeServer};
use sekai_edge::tls::{TlsSource, CERT_FILE};
use sekai_edge::token::TokenKey;
use sekai_layer::world::model::Action;
use sekai_schema::edge_capnp::ack;
use sekai_schema::Vec3;

/// Sends `seq` with `action` on the raw capability; the ack's error text, or `None` if accepted.
async fn raw_send(client: &EdgeClient, seq: u64, action: &Action) -> Option<String> {
    let mut request = client.avatar_capability().send_request();
    sekai_model::wire::fill_send(request.get(), seq, action).expect("fill");
    let reply = request.send().promise.await.expect("answered");
    let ack = reply.get().expect("reply").get_ack().expect("ack");
    match ack.which().expect("known ack") {
        ack::Error(e) => Some(e.expect("text").to_string().expect("utf-8")),
        ack::Accepted(_) => None,
    }
}

fn move_to(x: f32) -> Action {
    Action::Move {
        to: Vec3::new(x, 0.0, 10.0),
    }
}

/// (1) Acknowledged inputs not yet applied: a new login reports them as durable, so the client
/// continues after them and none is dropped; a durable seq reused for another action is refused;
/// no session may skip ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_inputs_are_never_dropped_by_a_relogin() {
    let world = World::start(false).await; // no processor yet: acked inputs stay unapplied
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let endpoint = world.endpoint();
            let first = EdgeClient::connect(&endpoint, world.config(world.token(1)))
                .await
                .expect("logs in");
            assert_eq!(first.last_seq_at_login(), 0);
            for x in [9.0, 10.0, 11.0] {
                first.send(move_to(x)).await.expect("acked");
            }
            assert_eq!(
                raw_send(&first, 9, &Action::Idle).await.as_deref(),
                Some("input seq 9 is out of order: expected 4"),
                "a session may not open a gap"
            );
            first.disconnect();

            let second = EdgeClient::connect(&endpoint, world.config(world.token(1)))
                .await
                .expect("logs in again");
            assert_eq!(
                second.last_seq_at_login(),
                3,
                "lastSeq counts acknowledged inputs that are not applied yet"
            );
            let conflict = raw_send(&second, 3, &Action::Idle).await;
            assert!(
                conflict
                    .as_deref()
                    .is_some_and(|e| e.contains("already durable with a different action")),
                "{conflict:?}"
            );
            assert_eq!(raw_send(&second, 3, &move_to(11.0)).await, None, "a resend");
            assert_eq!(second.next_seq(), 4);
            second.send(move_to(12.0)).await.expect("seq 4 acked");

            start_processor(&world.db, &world.keys, &world.stop, &world.direct);
            let view = second
                .subscribe(area(), |_, _| {})
                .await
                .expect("subscribes");
            let avatar = second.avatar_id();
            wait_until("every acknowledged move applied", || {
                view.with_mirror(|m| m.entities.get(&avatar).map(|e| e.position.x) == Some(12.0))
            })
            .await;
        })
        .await;
    world.stop.store(true, Ordering::Relaxed);
    world.edge.shutdown().await;
}

/// A second login of a player replaces the first session on the edge: the older one can no
/// longer store inputs, so two sessions never number inputs from the same `lastSeq` side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_login_of_a_player_wins() {
    let world = World::start(false).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let first = world.connect(1).await;
            first.send(move_to(9.0)).await.expect("acked");
            let second = world.connect(1).await;
            assert_eq!(second.last_seq_at_login(), 1);
            let refused = raw_send(&first, 2, &Action::Idle).await;
            assert!(
                refused.as_deref().is_some_and(|e| e.contains("replaced")),
                "{refused:?}"
            );
            second
                .send(move_to(10.0))
                .await
                .expect("the newest session works");
        })
        .await;
    world.edge.shutdown().await;
}

/// (4) What the edge can check alone is refused in the Ack, not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_actions_are_refused_in_the_ack() {
    let world = World::start(false).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let client = world.connect(1).await;
            let cases = [
                (
                    Action::Move {
                        to: Vec3::new(f32::NAN, 0.0, 1.0),
                    },
                    "invalid action: position is not finite",
                ),
                (
                    Action::Move {
                        to: Vec3::new(1.0, 0.0, 5.0e6),
                    },
                    "invalid action: position is outside the world",
                ),
                (
                    Action::Build {
                        at: Vec3::new(10.0, 0.0, f32::INFINITY),
                        kind: sekai_layer::world::model::EntityKind::StructureWall,
                    },
                    "invalid action: position is not finite",
                ),
                (
                    Action::Build {
                        at: Vec3::new(10.0, 0.0, 10.0),
                        kind: sekai_layer::world::model::EntityKind::Tree,
                    },
                    "invalid action: only walls can be built",
                ),
            ];
            for (action, expected) in cases {
                let error = raw_send(&client, 1, &action).await;
                assert!(
                    error.as_deref().is_some_and(|e| e.starts_with(expected)),
                    "{action:?}: {error:?}"
                );
            }
            // An input with no action at all is malformed, not a move to the origin.
            let mut bare = client.avatar_capability().send_request();
            bare.get().set_seq(1);
            let reply = bare.send().promise.await.expect("answered");
            match reply.get().unwrap().get_ack().unwrap().which().unwrap() {
                ack::Error(e) => {
                    let e = e.unwrap().to_string().unwrap();
                    assert!(e.starts_with("malformed action"), "{e}")
                }
                ack::Accepted(_) => panic!("an input without an action was accepted"),
            }
            // Nothing was stored: seq 1 is still free.
            assert_eq!(raw_send(&client, 1, &Action::Idle).await, None);
        })
        .await;
    world.edge.shutdown().await;
}

/// (2) An idle client without keep-alives of its own stays connected past twice the idle
/// timeout: the edge pings it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_outlives_twice_the_idle_timeout() {
    let idle = Duration::from_millis(600);
    let world = world_with(false, |config| config.limits.idle_timeout = idle).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            // A client endpoint that never sends keep-alives.
            let mut endpoint =
                quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("endpoint");
            let mut quiet = client_config(world.edge.certificate()).expect("config");
            let mut transport = quinn::TransportConfig::default();
            transport.keep_alive_interval(None);
            quiet.transport_config(std::sync::Arc::new(transport));
            endpoint.set_default_client_config(quiet);
            let client = EdgeClient::connect(&endpoint, world.config(world.token(1)))
                .await
                .expect("logs in");
            tokio::time::sleep(idle * 3).await;
            assert!(
                client.close_reason().is_none(),
                "{:?}",
                client.close_reason()
            );
            client.send(Action::Idle).await.expect("still connected");
        })
        .await;
    world.edge.shutdown().await;
}

/// (3) A fatal protocol error closes the connection with the protocol's close code and a
/// reason the client can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_with_a_code_and_reason() {
    let world = World::start(false).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let client = world.connect(1).await;
            let mut huge = client.session_capability().subscribe_request();
            area().write_capnp(huge.get().init_area());
            huge.get().set_sink(capnp_rpc::new_client(NoSink));
            huge.get().set_resume_from(&vec![0u8; 1 << 20]);
            assert!(huge.send().promise.await.is_err());
            wait_until("the connection to close", || {
                client.close_reason().is_some()
            })
            .await;
            match client.close_reason() {
                Some(quinn::ConnectionError::ApplicationClosed(close)) => {
                    assert_eq!(
                        close.error_code,
                        quinn::VarInt::from(CloseCode::ProtocolError)
                    );
                    let reason = String::from_utf8_lossy(&close.reason).to_string();
                    assert!(reason.starts_with("protocol error:"), "{reason}");
                    assert!(reason.contains("limit"), "{reason}");
                }
                other => panic!("expected an application close, got {other:?}"),
            }
        })
        .await;
    world.edge.shutdown().await;
}

/// (5) The self-signed certificate names the listen address: a client connects by IP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_connect_by_ip_address() {
    let world = World::start(false).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let endpoint = world.endpoint();
            let mut config = world.config(world.token(1));
            config.server_name = "127.0.0.1".into();
            EdgeClient::connect(&endpoint, config)
                .await
                .expect("connects with SNI 127.0.0.1");
        })
        .await;
    world.edge.shutdown().await;
}

/// (11) The certificate kept in a data directory is reused by the next start, (7) so clients
/// that pinned it reconnect to the restarted edge, resume and resend without stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edge_keeps_its_certificate_and_clients_resume() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let world = World::start(true).await;
    let tokens = TokenKey::new(b"edge-test-secret".to_vec());
    let start = |listen: std::net::SocketAddr| {
        let mut config = EdgeConfig::new(listen, tokens.clone());
        config.workers = 1;
        config.spawn = std::sync::Arc::new(|p| Vec3::new(8.0 + 2.0 * p as f32, 0.0, 10.0));
        config.tls = TlsSource::SelfSignedIn {
            dir: dir.path().to_path_buf(),
            names: vec!["edge.example".into()],
        };
        EdgeServer::start(world.db.clone(), world.keys.clone(), config)
    };
    let edge = start("127.0.0.1:0".parse().unwrap()).await.expect("starts");
    let listen = edge.local_addr().expect("address");
    let pinned = std::fs::read(dir.path().join(CERT_FILE)).expect("certificate kept");
    assert_eq!(pinned, edge.certificate().to_vec());
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let endpoint = client_endpoint(
                "127.0.0.1:0".parse().unwrap(),
                &rustls::pki_types::CertificateDer::from(pinned.clone()),
            )
            .expect("endpoint");
            let config = ClientConfig {
                server: listen,
                server_name: "edge.example".into(),
                token: tokens.issue(7, sekai_edge::token::unix_now() + 3_600),
            };
            let mut client = EdgeClient::connect(&endpoint, config)
                .await
                .expect("logs in");
            let view = client
                .subscribe(area(), |_, _| {})
                .await
                .expect("subscribes");
            client.send(move_to(9.0)).await.expect("acked");
            edge.shutdown().await;
            match client.send(move_to(10.0)).await {
                Err(error) => assert!(error.is_connection_lost(), "{error}"),
                Ok(_) => panic!("an input was acked by a stopped edge"),
            }
            // The old endpoint's driver releases the socket soon after shutdown.
            let mut tries = 0;
            let restarted = loop {
                match start(listen).await {
                    Ok(edge) => break edge,
                    Err(error) if tries < 100 => {
                        tries += 1;
                        tracing::debug!(%error, "address still in use");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(error) => panic!("cannot restart on {listen}: {error}"),
                }
            };
            assert_eq!(
                restarted.certificate().to_vec(),
                pinned,
                "the kept certificate was reused"
            );
            let attempts = client
                .reconnect_with_backoff(Default::default())
                .await
                .expect("reconnects");
            assert!(attempts >= 1);
            assert!(client.unacked().is_empty(), "the lost input was resent");
            let avatar = client.avatar_id();
            wait_until("the resent move applied and seen", || {
                view.with_mirror(|m| m.entities.get(&avatar).map(|e| e.position.x) == Some(10.0))
            })
            .await;
            client.send(move_to(11.0)).await.expect("keeps playing");
            restarted.shutdown().await;
        })
        .await;
    world.stop.store(true, Ordering::Relaxed);
    world.edge.shutdown().await;
}

/// An address already taken is a clear error from `EdgeServer::start`, whether the endpoint
/// would run on a worker's runtime (`workers >= 1`) or the caller's (`workers == 0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_is_an_error_not_a_panic() {
    let world = World::start(false).await;
    let taken = world.edge.local_addr().expect("address");
    for workers in [1, 0] {
        let mut config = EdgeConfig::new(taken, world.tokens.clone());
        config.workers = workers;
        match EdgeServer::start(world.db.clone(), world.keys.clone(), config).await {
            Err(error) => assert!(error.to_string().contains("listen"), "{error}"),
            Ok(_) => panic!("a second edge bound {taken} (workers {workers})"),
        }
    }
    world.edge.shutdown().await;
}
