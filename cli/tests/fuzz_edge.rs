//! A small fuzz burst against an in-process edge over real QUIC on loopback (fixed seed, every
//! fuzz kind, a few hundred messages): afterwards the edge still logs a well-behaved client in,
//! acknowledges its input and serves its subscription. No timing is asserted.

#[path = "../../edge/tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{area, wait_until, World};
use sekai_cli::fuzz_edge::attack::run_fuzzers;
use sekai_cli::fuzz_edge::{FuzzCounts, FuzzKind, FuzzPlan, FuzzTarget};
use sekai_layer::world::model::Action;
use sekai_schema::Vec3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_still_serves_after_a_fuzz_burst() {
    let world = World::start(true).await;
    let counts = Arc::new(FuzzCounts::default());
    let target = FuzzTarget {
        server: world.edge.local_addr().expect("edge address"),
        certificate: world.edge.certificate().clone(),
        tokens: world.tokens.clone(),
        first_player: 100,
    };
    let plan = FuzzPlan {
        seed: 14,
        fuzzers: 4,
        kinds: FuzzKind::ALL.to_vec(),
        cases_per_fuzzer: Some(30),
        close_wait: Duration::from_millis(300),
    };
    run_fuzzers(
        target,
        plan,
        counts.clone(),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect("the fuzzers run");
    let messages = counts.total(|k| &k.messages);
    assert!(messages >= 200, "only {messages} fuzz messages were sent");
    assert_eq!(counts.total(|k| &k.cases), 120);
    assert!(
        counts.total(|k| &k.protocol_closes) > 0,
        "malformed messages close connections with a protocol error"
    );
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let client = world.connect(1).await;
            client
                .send(Action::Move {
                    to: Vec3::new(9.0, 0.0, 10.0),
                })
                .await
                .expect("a well-behaved input is acknowledged after the burst");
            let view = client
                .subscribe(area(), |_, _| {})
                .await
                .expect("subscribes");
            wait_until("the snapshot", || view.cursor().is_some()).await;
        })
        .await;
    world.stop.store(true, Ordering::Relaxed);
    world.edge.shutdown().await;
}
