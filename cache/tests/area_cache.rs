//! The area cache returns exactly what the database holds, and serves from memory only while
//! the region head proves the cached cells current.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_cache::AreaCache;
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::kv::{run, Database};
use sekai_layer::world::generate::{generate_region, load};
use sekai_layer::world::model::Change;
use sekai_layer::world::query::entities_in_area;
use sekai_layer::world::write::write_entities;
use sekai_schema::{Area, RegionId, Vec3, WorldKeys};

fn sorted(mut ids: Vec<sekai_schema::EntityId>) -> Vec<sekai_schema::EntityId> {
    ids.sort();
    ids
}

#[tokio::test]
async fn cached_areas_match_the_database_and_go_stale_on_writes() {
    let seed = 11;
    println!("seed {seed}");
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = WorldKeys::new("cache").unwrap();
    let region = RegionId::new(0, 0);
    let world = generate_region(seed, region, 1.0);
    load(&db, &keys, world.clone(), 1_000, |_| {})
        .await
        .unwrap();
    let cache = AreaCache::new(1_000);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let area = Area::new(Vec3::new(128.0, 0.0, 128.0), 40.0);

    let check = |trx| {
        let (cache, keys) = (cache.clone(), keys.clone());
        async move {
            let cached = cache.entities_in_area(&trx, &keys, &area).await.unwrap();
            let direct = entities_in_area(&trx, &keys, &area, true).await.unwrap();
            assert_eq!(
                sorted(cached.iter().map(|e| e.id).collect()),
                sorted(direct.iter().map(|e| e.id).collect())
            );
            assert_eq!(cached.len(), direct.len());
        }
    };
    check(db.create_trx().unwrap()).await;
    let cold = cache.stats();
    check(db.create_trx().unwrap()).await;
    let warm = cache.stats();
    assert_eq!(
        warm.misses, cold.misses,
        "an unchanged region is served from memory"
    );
    assert!(warm.hits > cold.hits);

    let inside: Vec<_> = world
        .iter()
        .filter(|e| area.contains(&e.position))
        .collect();
    let mut moved = inside[rng.gen_range(0..inside.len())].clone();
    moved.position = Vec3::new(128.0, 0.0, 128.0);
    run(&db, |trx, _| {
        let (keys, moved) = (keys.clone(), moved.clone());
        async move { write_entities(&trx, &keys, &[Change::Upsert(moved)]).await }
    })
    .await
    .unwrap();
    check(db.create_trx().unwrap()).await;
    assert!(
        cache.stats().misses > warm.misses,
        "a write to the region invalidates its cells"
    );
}
