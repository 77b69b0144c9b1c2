//! The edge end to end on loopback: an embedded engine, a region processor, one edge over QUIC,
//! and SDK clients. No timing is asserted; every wait is bounded and says what it waited for.

mod common;

use std::rc::Rc;

use common::*;
use sekai_client::{ClientError, EdgeClient};
use sekai_edge::token::{unix_now, TokenKey};
use sekai_layer::world::model::Action;
use sekai_schema::Vec3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_each_other_resume_exactly_and_bad_clients_stay_isolated() {
    let world = World::start(true).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let endpoint = world.endpoint();
            let a = EdgeClient::connect(&endpoint, world.config(world.token(1)))
                .await
                .expect("A logs in");
            let mut b = EdgeClient::connect(&endpoint, world.config(world.token(2)))
                .await
                .expect("B logs in");
            assert_ne!(a.avatar_id(), b.avatar_id());
            let a_stamps: Stamps = Rc::default();
            let b_stamps: Stamps = Rc::default();
            let a_view = a.subscribe(area(), recorder(&a_stamps)).await.unwrap();
            let b_view = b.subscribe(area(), recorder(&b_stamps)).await.unwrap();
            let (a_id, b_id) = (a.avatar_id(), b.avatar_id());
            wait_until("both snapshots with the tree and both avatars", || {
                [&a_view, &b_view].iter().all(|v| {
                    v.with_mirror(|m| {
                        m.entities.contains_key(&TREE)
                            && m.entities.contains_key(&a_id)
                            && m.entities.contains_key(&b_id)
                    })
                })
            })
            .await;

            // 1. A harvests; B sees the tree lose a unit and A's avatar gain wood.
            let hp0 = tree_hp(&b_view).expect("B sees the tree");
            a.send(Action::Harvest { target: TREE })
                .await
                .expect("harvest acknowledged");
            wait_until("B to see A's harvest", || {
                tree_hp(&b_view) == Some(hp0 - 1) && wood_of(&b_view, a_id) == 1
            })
            .await;

            // 2. B drops off; A harvests twice more and moves; B resumes from its cursor.
            wait_until("A to see its own harvest", || wood_of(&a_view, a_id) == 1).await;
            let b_cursor = b_view.cursor().expect("B has a cursor");
            let b_before = b_stamps.borrow().len();
            b.disconnect();
            for _ in 0..2 {
                a.send(Action::Harvest { target: TREE })
                    .await
                    .expect("harvest");
            }
            a.send(Action::Move {
                to: Vec3::new(11.0, 0.0, 9.0),
            })
            .await
            .expect("move");
            wait_until("A to see its three inputs applied", || {
                wood_of(&a_view, a_id) == 3
                    && a_view
                        .with_mirror(|m| m.entities.get(&a_id).map(|e| e.position.z) == Some(9.0))
            })
            .await;
            let missed: Vec<[u8; 10]> = a_stamps
                .borrow()
                .iter()
                .copied()
                .filter(|s| *s > b_cursor)
                .collect();
            assert!(
                missed.len() >= 2,
                "A saw {} deltas while B was away",
                missed.len()
            );
            b.reconnect().await.expect("B reconnects");
            wait_until("B to catch up with A", || {
                b_view.with_mirror(|bm| a_view.with_mirror(|am| bm.entities == am.entities))
            })
            .await;
            let resumed: Vec<[u8; 10]> = b_stamps.borrow()[b_before..].to_vec();
            assert_eq!(
                resumed, missed,
                "B got exactly the deltas it missed, in order"
            );
            b_view.with_mirror(|m| {
                assert_eq!(m.duplicates, 0, "no delta was sent twice");
                assert_eq!(
                    m.snapshots, 1,
                    "the resume replayed the log, no new snapshot"
                );
            });

            // 3. A forged token is refused; A keeps working.
            let forged = TokenKey::new(b"not-the-secret".to_vec()).issue(3, unix_now() + 60);
            match EdgeClient::connect(&endpoint, world.config(forged)).await {
                Err(ClientError::LoginRefused(e)) => assert!(e.contains("forged"), "{e}"),
                Err(other) => panic!("expected a forged-token error, got {other}"),
                Ok(_) => panic!("a forged token logged in"),
            }
            let expired = world.tokens.issue(3, unix_now().saturating_sub(1));
            match EdgeClient::connect(&endpoint, world.config(expired)).await {
                Err(ClientError::LoginRefused(e)) => assert!(e.contains("expired"), "{e}"),
                Err(other) => panic!("expected an expired-token error, got {other}"),
                Ok(_) => panic!("an expired token logged in"),
            }

            // 4. B cannot act on A's avatar: its avatar capability is bound to player 2, so an
            // attempt to take A's avatar is refused by the rules and A's avatar is unchanged;
            // an out-of-order seq is refused by the edge.
            let a_before = a_view.with_mirror(|m| m.entities.get(&a_id).cloned());
            b.send(Action::Interact { target: a_id })
                .await
                .expect("stored, then refused by rules");
            let mut raw = b.avatar_capability().send_request();
            sekai_model::wire::fill_send(raw.get(), b.next_seq() + 5, &Action::Idle).unwrap();
            let reply = raw.send().promise.await.expect("answered");
            let ack = reply.get().unwrap().get_ack().unwrap();
            match ack.which().unwrap() {
                sekai_schema::edge_capnp::ack::Error(e) => {
                    assert!(e.unwrap().to_str().unwrap().contains("out of order"))
                }
                sekai_schema::edge_capnp::ack::Accepted(_) => panic!("a seq gap was accepted"),
            }
            a.send(Action::Move {
                to: Vec3::new(11.5, 0.0, 9.0),
            })
            .await
            .expect("A keeps working");
            wait_until("A to see its move after B's attempts", || {
                a_view.with_mirror(|m| m.entities.get(&a_id).map(|e| e.position.x) == Some(11.5))
            })
            .await;
            let a_after = a_view.with_mirror(|m| m.entities.get(&a_id).cloned());
            assert_eq!(
                a_before.map(|e| e.inventory),
                a_after.map(|e| e.inventory),
                "B's interact did not touch A's avatar"
            );

            // 5. An oversized message ends only its own connection.
            let c = EdgeClient::connect(&endpoint, world.config(world.token(4)))
                .await
                .expect("C logs in");
            let mut huge = c.session_capability().subscribe_request();
            area().write_capnp(huge.get().init_area());
            huge.get().set_sink(capnp_rpc::new_client(NoSink));
            huge.get().set_resume_from(&vec![0u8; 1 << 20]);
            assert!(
                huge.send().promise.await.is_err(),
                "an oversized message was accepted"
            );
            a.send(Action::Idle)
                .await
                .expect("A unaffected by C's oversized message");
            b.send(Action::Idle)
                .await
                .expect("B unaffected by C's oversized message");
        })
        .await;
    world.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = (&world.db, &world.keys);
    world.edge.shutdown().await;
}
