//! Load shedding from outside, over real QUIC: an edge whose target no input can meet (1 ns)
//! starts refusing inputs with `overloaded` once its subscribers have seen a few outcomes. A
//! refused input is not stored and its seq is free again: the client's acknowledged seqs stay
//! consecutive, and every one of them is applied. Waits are bounded; no timing is asserted.

mod common;

use std::time::Duration;

use common::*;
use sekai_layer::kv::Database;
use sekai_layer::world::model::Action;
use sekai_schema::Vec3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_edge_refuses_inputs_without_losing_or_skipping_a_seq() {
    let world = world_with(true, |config| {
        config.limits.shed.target = Some(Duration::from_nanos(1));
    })
    .await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let client = world.connect(1).await;
            // Outcomes reach the edge's shedder through the player's subscription.
            let _view = client
                .subscribe(area(), |_, _| {})
                .await
                .expect("subscribes");
            let (mut acked, mut shed) = (Vec::new(), 0u32);
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut x = 10.0f32;
            while shed < 3 || acked.len() < 3 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{shed} inputs shed and {} acknowledged after {WAIT:?}",
                    acked.len()
                );
                x = if x > 11.0 { 9.5 } else { x + 0.5 };
                let action = Action::Move {
                    to: Vec3::new(x, 0.0, 10.0),
                };
                match client.send(action).await {
                    Ok(seq) => acked.push(seq),
                    Err(error) if error.is_overloaded() => shed += 1,
                    Err(error) => panic!("only shedding refuses these inputs: {error}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let expected: Vec<u64> = (1..=acked.len() as u64).collect();
            assert_eq!(
                acked, expected,
                "a shed seq is free again: no gap, no reuse"
            );
            let last = *acked.last().expect("some acknowledged");
            let keys = world.keys.clone();
            let db = world.db.clone();
            let mut applied = 0;
            let until = tokio::time::Instant::now() + WAIT;
            while applied < last {
                assert!(
                    tokio::time::Instant::now() < until,
                    "seq {last} never applied"
                );
                let trx = db.create_trx().expect("transaction");
                applied = sekai_layer::world::frame::applied_seq(&trx, &keys, 1)
                    .await
                    .expect("read");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
}
