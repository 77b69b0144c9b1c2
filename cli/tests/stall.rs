//! Stalled clients: a subscription whose full push window stays unanswered past
//! `EdgeLimits::stall_timeout` is reset with the stall reason and ended, whether the client
//! stopped completing its sink calls or stopped reading its stream; a healthy client on the
//! same edge keeps playing. Waits are bounded; no timing is asserted.

#[path = "../../edge/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{wait_until, world_with};
use sekai_cli::stall::client::{StallKind, StallingClient};
use sekai_client::EdgeClient;
use sekai_layer::world::model::Action;
use sekai_schema::Vec3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriptions_are_reset_and_the_others_keep_playing() {
    let world = world_with(true, |config| {
        config.limits.push_window = 2;
        config.limits.stall_timeout = Duration::from_millis(300);
    })
    .await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let endpoint = world.endpoint();
            let server = world.edge.local_addr().expect("edge address");
            let sink_stalled =
                StallingClient::connect(&endpoint, server, &world.token(1), 30.0, StallKind::Sink)
                    .await
                    .expect("sink-stalling client subscribes");
            let stream_stalled = StallingClient::connect(
                &endpoint,
                server,
                &world.token(2),
                30.0,
                StallKind::Stream,
            )
            .await
            .expect("stream-stalling client subscribes");
            let healthy = EdgeClient::connect(&endpoint, world.config(world.token(3)))
                .await
                .expect("healthy client logs in");
            let view = healthy
                .subscribe(common::area(), |_, _| {})
                .await
                .expect("healthy client subscribes");
            // All three subscriptions live (the healthy one may still be joining when the
            // stalled ones already have their snapshots).
            wait_until("the snapshots and three live subscriptions", || {
                sink_stalled.calls() > 0
                    && stream_stalled.calls() > 0
                    && view.cursor().is_some()
                    && world.edge.fanout().live_count() == 3
            })
            .await;
            sink_stalled.stall();
            stream_stalled.stall();
            // The healthy player moves until both stalled subscriptions are gone.
            let deadline = tokio::time::Instant::now() + common::WAIT;
            let mut step = 0u32;
            while sink_stalled.resets().is_empty() || world.edge.fanout().live_count() > 1 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "stalled subscriptions not reset: resets {:?}, live {}",
                    sink_stalled.resets(),
                    world.edge.fanout().live_count()
                );
                step += 1;
                let x = 14.0 + (step % 2) as f32 * 0.5;
                healthy
                    .send(Action::Move {
                        to: Vec3::new(x, 0.0, 10.0),
                    })
                    .await
                    .expect("the healthy client keeps playing");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let reasons = sink_stalled.resets();
            assert!(
                reasons.iter().all(|r| r.starts_with("client stalled: ")),
                "{reasons:?}"
            );
            // The healthy subscription is still served.
            let before = view.cursor();
            healthy
                .send(Action::Move {
                    to: Vec3::new(14.2, 0.0, 10.0),
                })
                .await
                .expect("still playing");
            wait_until("a delta for the healthy client", || view.cursor() != before).await;
            sink_stalled.close();
            stream_stalled.close();
        })
        .await;
    world.edge.shutdown().await;
}
