//! Streamed subscriptions (`Session.subscribeStream`) from outside, as a C++ client would use
//! them: raw Cap'n Proto RPC for the call and the QUIC unidirectional stream the edge opens,
//! read message by message. The stream starts with the client's tag and a snapshot, carries
//! deltas, finishes when the subscription is cancelled, and a stream the client stops reading is
//! reset with code 1 (stalled) while another player keeps playing. Waits are bounded; no timing
//! is asserted.

mod common;

use std::time::Duration;

use common::*;
use sekai_layer::world::model::Action;
use sekai_model::stream::{StreamEvent, STREAM_RESET_STALLED};
use sekai_schema::Vec3;

fn move_to(x: f32) -> Action {
    Action::Move {
        to: Vec3::new(x, 0.0, 10.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opens_with_its_tag_carries_deltas_and_finishes_on_cancel() {
    let world = world(true).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let raw = raw_login(&world, 1, None).await;
            let (subscription, mut stream) = subscribe_stream(&raw, 77).await;
            let Some(StreamEvent::Snapshot { entities, .. }) =
                next_event(&mut stream).await.unwrap()
            else {
                panic!("the second message is not a snapshot");
            };
            assert!(
                entities.iter().any(|e| e.id == TREE),
                "the snapshot holds the tree"
            );
            // Another player moves inside the area: its avatar arrives in a deltas message.
            let mover = world.connect(2).await;
            mover.send(move_to(12.0)).await.expect("move acked");
            loop {
                match next_event(&mut stream).await.unwrap() {
                    Some(StreamEvent::Deltas(deltas)) => {
                        assert!(!deltas.is_empty(), "a deltas message is never empty");
                        if deltas.iter().any(|(_, d)| !d.changes.is_empty()) {
                            break;
                        }
                    }
                    other => panic!("expected deltas, got {other:?}"),
                }
            }
            subscription
                .cancel_request()
                .send()
                .promise
                .await
                .expect("cancelled");
            // Deltas already written may come first; then the stream finishes cleanly.
            while let Some(event) = next_event(&mut stream).await.expect("a clean finish") {
                assert!(
                    matches!(event, StreamEvent::Deltas(_)),
                    "unexpected {event:?}"
                );
            }
            wait_until("the subscription to leave the fan-out", || {
                world.edge.fanout().live_count() == 0
            })
            .await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_stream_is_reset_as_stalled_and_the_others_keep_playing() {
    let world = world_with(true, |config| {
        config.limits.stall_timeout = Duration::from_millis(300);
    })
    .await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            // A 1 KiB window: a few deltas fill it once the client stops reading.
            let stalled = raw_login(&world, 1, Some(1024)).await;
            let (_subscription, mut stream) = subscribe_stream(&stalled, 5).await;
            let healthy = world.connect(2).await;
            let view = healthy
                .subscribe(area(), |_, _| {})
                .await
                .expect("healthy client subscribes");
            wait_until("two live subscriptions", || {
                view.cursor().is_some() && world.edge.fanout().live_count() == 2
            })
            .await;
            // The stalled client reads nothing more; the healthy one moves until the stalled
            // subscription is gone.
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut step = 0u32;
            while world.edge.fanout().live_count() > 1 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the unread stream was not reset"
                );
                step += 1;
                let x = 14.0 + (step % 2) as f32 * 0.5;
                healthy
                    .send(move_to(x))
                    .await
                    .expect("the healthy client keeps playing");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Reading on, the client finds what was buffered, then the reset with code 1.
            let error = loop {
                match next_event(&mut stream).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("the stream finished instead of being reset"),
                    Err(error) => break error,
                }
            };
            let code = format!("{}", quinn::VarInt::from_u32(STREAM_RESET_STALLED));
            assert!(
                error
                    .to_string()
                    .contains(&format!("reset by peer: error {code}")),
                "not the stall reset: {error}"
            );
            // The healthy player is unaffected.
            healthy.send(move_to(15.0)).await.expect("still playing");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_area_opens_no_stream() {
    let world = world(false).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let raw = raw_login(&world, 1, None).await;
            let mut request = raw.session.subscribe_stream_request();
            let mut params = request.get();
            let mut area = params.reborrow().init_area();
            area.set_radius(f32::NAN);
            params.set_tag(1);
            let error = match request.send().promise.await {
                Ok(_) => panic!("a NaN radius was accepted"),
                Err(error) => error,
            };
            assert!(
                error.to_string().contains("invalid area"),
                "unexpected error: {error}"
            );
            // The refusal opened no stream and left no subscription behind.
            let opened =
                tokio::time::timeout(Duration::from_millis(300), raw.connection.accept_uni()).await;
            assert!(opened.is_err(), "a stream was opened for a refused area");
            assert_eq!(world.edge.fanout().live_count(), 0);
        })
        .await;
}
