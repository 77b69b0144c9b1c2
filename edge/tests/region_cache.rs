//! The fan-out's region cache never serves a stale snapshot: it follows the change log, and a
//! head bump the log does not explain (a bulk load) drops the region, so the next snapshot is read
//! again. Checked through real QUIC against the database's own answer.

mod common;

use common::*;
use sekai_layer::world::generate::load;
use sekai_layer::world::model::{Action, Entity, EntityKind, Inventory};
use sekai_layer::world::query::entities_in_area;
use sekai_schema::{EntityId, Vec3};

fn rock(id: u128, x: f32) -> Entity {
    Entity {
        id: EntityId(id),
        kind: EntityKind::Rock,
        hp: 5,
        position: Vec3::new(x, 0.0, 12.0),
        inventory: Inventory::default(),
        owner: 0,
    }
}

/// The entities of `area()` in the database now, sorted by id.
async fn in_database(world: &World) -> Vec<Entity> {
    use sekai_layer::kv::Database;
    let trx = world.db.create_trx().expect("transaction");
    let mut found = entities_in_area(&trx, &world.keys, &area(), true)
        .await
        .expect("area read");
    found.sort_by_key(|e| e.id);
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_snapshots_follow_the_log_and_bulk_loads_drop_them() {
    let world = World::start(true).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let a = world.connect(1).await;
            let a_view = a.subscribe(area(), |_, _| {}).await.expect("subscribes");
            wait_until("A's snapshot", || a_view.cursor().is_some()).await;
            // Changes through frames: the cache advances with the log.
            for _ in 0..3 {
                a.send(Action::Harvest { target: TREE })
                    .await
                    .expect("acked");
            }
            let avatar = a.avatar_id();
            wait_until("A's three harvests applied", || {
                wood_of(&a_view, avatar) == 3
            })
            .await;
            // A bulk load bumps the head without a log entry: the cached region must go.
            load(&world.db, &world.keys, vec![rock(0xB0CC, 14.0)], 10, |_| {})
                .await
                .expect("bulk load");
            let expected = in_database(&world).await;
            assert!(expected.iter().any(|e| e.id == EntityId(0xB0CC)));
            let b = world.connect(2).await;
            let b_view = b.subscribe(area(), |_, _| {}).await.expect("subscribes");
            wait_until("B's snapshot with the bulk-loaded rock", || {
                b_view.with_mirror(|m| m.entities.contains_key(&EntityId(0xB0CC)))
            })
            .await;
            let expected = in_database(&world).await;
            let mut seen: Vec<Entity> =
                b_view.with_mirror(|m| m.entities.values().cloned().collect());
            seen.sort_by_key(|e| e.id);
            assert_eq!(seen, expected, "B's snapshot is the database's area");
            let stats = world.edge.fanout().cache().expect("cache on").stats();
            assert!(stats.invalidations >= 1, "{stats:?}");
        })
        .await;
    world.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    world.edge.shutdown().await;
}
