//! The entity cache returns exactly what the database holds, inside the caller's transaction:
//! served from memory only while the entity's region head is unchanged, read again after a frame
//! or a service write, and a serializable cached read still conflicts with a later writer.

use sekai_cache::EntityCache;
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::kv::{Database, FdbError, Transaction};
use sekai_layer::world::model::{Change, Entity, EntityKind, Inventory};
use sekai_layer::world::write::{create_entity, write_entities};
use sekai_schema::{EntityId, Vec3, WorldKeys};

fn tree(hp: u32, x: f32) -> Entity {
    Entity {
        id: EntityId(0x7733),
        kind: EntityKind::Tree,
        hp,
        position: Vec3::new(x, 0.0, 10.0),
        inventory: Inventory::default(),
        owner: 0,
    }
}

#[tokio::test]
async fn cached_entities_are_current_and_conflict_like_reads() {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = WorldKeys::new("entity-cache").unwrap();
    create_entity(&db, &keys, &tree(5, 10.0)).await.unwrap();
    let cache = EntityCache::new(1 << 20);
    let id = EntityId(0x7733);

    let read = |cache: EntityCache| {
        let (db, keys) = (db.clone(), keys.clone());
        async move {
            let trx = db.create_trx().unwrap();
            cache
                .get(&trx, &keys, id, true)
                .await
                .unwrap()
                .map(|e| e.hp)
        }
    };
    assert_eq!(read(cache.clone()).await, Some(5));
    assert_eq!(read(cache.clone()).await, Some(5));
    assert_eq!(cache.stats().hits, 1, "the second read came from memory");

    // A service write changes the tree: the head moves, the next read sees the new value.
    let trx = db.create_trx().unwrap();
    write_entities(&trx, &keys, &[Change::Upsert(tree(4, 10.0))])
        .await
        .unwrap();
    trx.commit().await.unwrap();
    assert_eq!(read(cache.clone()).await, Some(4));
    // It moves to another region: still current (the cached region no longer matches).
    let trx = db.create_trx().unwrap();
    write_entities(&trx, &keys, &[Change::Upsert(tree(4, 300.0))])
        .await
        .unwrap();
    trx.commit().await.unwrap();
    let trx = db.create_trx().unwrap();
    let moved = cache.get(&trx, &keys, id, true).await.unwrap().unwrap();
    assert_eq!(moved.position.x, 300.0);

    // A serializable read served from memory conflicts with a write committed after it.
    let _ = read(cache.clone()).await; // cached at the current head
    let reader = db.create_trx().unwrap();
    let hits = cache.stats().hits;
    assert!(cache
        .get(&reader, &keys, id, false)
        .await
        .unwrap()
        .is_some());
    assert_eq!(cache.stats().hits, hits + 1);
    let writer = db.create_trx().unwrap();
    write_entities(&writer, &keys, &[Change::Upsert(tree(3, 300.0))])
        .await
        .unwrap();
    writer.commit().await.unwrap();
    reader.set(b"something", b"to commit");
    let outcome: Result<(), FdbError> = reader.commit().await;
    assert_eq!(outcome.map_err(|e| e.code()), Err(1020));
}
