//! The world layer end to end on the embedded engine: T1 and T2 exactly once under injected
//! faults, contiguous frames, lease takeover, cross-region moves, and area queries checked
//! against a brute-force scan.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions, FaultConfig};
use sekai_layer::kv::{run, Database, RangeOption, Transaction};
use sekai_layer::world::direct::{self, DirectInputs, Stored};
use sekai_layer::world::frame::{HotRegion, MAX_APPLIED_PER_FRAME};
use sekai_layer::world::generate::{generate_region, load};
use sekai_layer::world::inbox;
use sekai_layer::world::lease::{self, Lease};
use sekai_layer::world::model::{Action, Change, Entity, EntityKind, Input, Inventory, Vec3};
use sekai_layer::world::processor::{hold_region, run_frame, ProcessorStats};
use sekai_layer::world::query::{entities_in_area, frames};
use sekai_layer::world::store;
use sekai_layer::world::write::write_entities;
use sekai_schema::{Area, EntityId, RegionId, WorldKeys};

fn keys() -> WorldKeys {
    WorldKeys::new("test").unwrap()
}

async fn place_avatar(db: &EmbeddedDatabase, keys: &WorldKeys, player: u64, at: Vec3) -> EntityId {
    let avatar = Entity {
        id: EntityId::from_u128(u128::from(player) << 64),
        kind: EntityKind::PlayerAvatar,
        hp: 100,
        position: at,
        inventory: Inventory::default(),
        owner: player,
    };
    sekai_layer::world::write::create_entity(db, keys, &avatar)
        .await
        .unwrap();
    avatar.id
}

/// Drains `region`'s inbox frame by frame as `holder`; returns the frames committed.
async fn drain(db: &EmbeddedDatabase, keys: &WorldKeys, region: RegionId, holder: u128) -> u64 {
    drain_with(db, keys, region, holder, &mut HotRegion::new(region)).await
}

/// An engine injecting every fault at rate 0.15 from `seed` (printed, so a failure reproduces).
fn faulty(seed: u64) -> EngineOptions {
    println!("seed {seed}");
    EngineOptions {
        faults: Some(FaultConfig::uniform(seed, 0.15)),
        ..EngineOptions::default()
    }
}

/// A temporary world whose `players` each have an avatar in region (0, 0), player `p` at
/// (10·p, 0, 10).
async fn players_in_region_zero(
    options: EngineOptions,
    players: &[u64],
) -> (EmbeddedDatabase, WorldKeys, RegionId) {
    let db = EmbeddedDatabase::temporary(options).unwrap();
    let keys = keys();
    for &p in players {
        place_avatar(&db, &keys, p, Vec3::new(10.0 * p as f32, 0.0, 10.0)).await;
    }
    (db, keys, RegionId::new(0, 0))
}

/// Writes `lease` of `region` back dated (holder 1), as a crashed or stalled holder's would be.
async fn expire_lease(db: &EmbeddedDatabase, keys: &WorldKeys, region: RegionId, lease: &Lease) {
    run(db, |trx, _| {
        let keys = keys.clone();
        async move {
            let mut value = 1u128.to_be_bytes().to_vec();
            value.extend_from_slice(&lease.epoch.to_be_bytes());
            value.extend_from_slice(&0i64.to_be_bytes());
            trx.set(&keys.lease(region), &value);
            Ok::<_, sekai_layer::kv::FdbError>(())
        }
    })
    .await
    .unwrap();
}

/// `holder` takes the free lease of `region`.
async fn take_lease(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    region: RegionId,
    holder: u128,
) -> Lease {
    lease::acquire(db, keys, region, holder)
        .await
        .unwrap()
        .expect("lease free")
}

/// [`drain`] with a hot tier kept across calls (as one processor keeps it).
async fn drain_with(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    region: RegionId,
    holder: u128,
    hot: &mut HotRegion,
) -> u64 {
    let lease = take_lease(db, keys, region, holder).await;
    let mut rng = ChaCha8Rng::seed_from_u64(holder as u64);
    let mut new_id = move || EntityId::from_u128(rng.gen());
    let stats = ProcessorStats::default();
    let mut committed = 0;
    loop {
        match run_frame(db, keys, &lease, hot, &mut new_id, &stats, &[])
            .await
            .unwrap()
        {
            Ok(_) => committed += 1,
            Err(watch) => {
                // A watch that is ready at once means the scan has more to read (this loop never
                // says the inbox is unchanged, so every frame scans and arms one).
                let mut watch = watch.expect("a frame that scanned armed a watch");
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if watch.as_mut().poll(&mut cx).is_pending() {
                    return committed;
                }
            }
        }
    }
}

/// Every seq the frames of `region` applied, by player, in frame order; asserts the frame
/// numbers are contiguous.
async fn applied_by_player(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    region: RegionId,
) -> BTreeMap<u64, Vec<u64>> {
    let trx = db.create_trx().unwrap();
    let records = frames(&trx, keys, region, 1, 1_000).await.unwrap();
    let numbers: Vec<u64> = records.iter().map(|r| r.frame).collect();
    assert_eq!(
        numbers,
        (1..=numbers.len() as u64).collect::<Vec<_>>(),
        "frames contiguous"
    );
    let mut applied: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for record in &records {
        for (player, seq) in &record.inputs {
            applied.entry(*player).or_default().push(*seq);
        }
    }
    applied
}

/// Asserts that `region`'s inbox holds no entry.
async fn assert_inbox_drained(db: &EmbeddedDatabase, keys: &WorldKeys, region: RegionId) {
    let trx = db.create_trx().unwrap();
    let (begin, end) = keys.inbox_range(region);
    let left = trx
        .get_range(&RangeOption::new(begin, end), false)
        .await
        .unwrap();
    assert!(left.kvs.is_empty(), "the inbox is drained");
}

#[tokio::test]
async fn inputs_apply_exactly_once_in_order_under_faults() {
    let seed = 4242;
    let players = [1u64, 2, 3];
    let (db, keys, region) = players_in_region_zero(faulty(seed), &players).await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sent = 0;
    for round in 1..=20u64 {
        for p in players {
            let to = Vec3::new(
                10.0 * p as f32 + rng.gen_range(-2.0..2.0),
                0.0,
                10.0 + round as f32,
            );
            let input = Input {
                player: p,
                seq: round,
                action: Action::Move { to },
            };
            inbox::submit(&db, &keys, region, &input).await.unwrap();
            sent += 1;
            if rng.gen_bool(0.2) {
                inbox::submit(&db, &keys, region, &input).await.unwrap();
            }
        }
        if round % 5 == 0 {
            drain(&db, &keys, region, 7).await;
        }
    }
    let applied = applied_by_player(&db, &keys, region).await;
    for p in players {
        assert_eq!(
            applied[&p],
            (1..=20).collect::<Vec<_>>(),
            "player {p}: each input once, in order"
        );
    }
    assert_eq!(applied.values().map(Vec::len).sum::<usize>(), sent);
    let counts = db.fault_counts();
    println!("{counts:?}");
    assert!(counts.unknown_applied > 0 && counts.unknown_not_applied > 0);
}

#[tokio::test]
async fn a_second_processor_takes_over_only_after_the_lease_expires() {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let region = RegionId::new(0, 0);
    let first = lease::acquire(&db, &keys, region, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(lease::acquire(&db, &keys, region, 2)
        .await
        .unwrap()
        .is_none());
    // Expire the lease by writing it back dated, as a crashed holder's lease would be.
    expire_lease(&db, &keys, region, &first).await;
    let second = lease::acquire(&db, &keys, region, 2)
        .await
        .unwrap()
        .expect("taken over");
    assert_eq!(second.epoch, first.epoch + 1);
    let trx = db.create_trx().unwrap();
    let stale = lease::renew(&trx, &keys, region, 1, first.epoch).await;
    assert!(
        stale.is_err(),
        "the old holder can no longer process frames"
    );
}

#[tokio::test]
async fn an_avatar_walks_into_the_next_region_atomically() {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let (west, east) = (RegionId::new(0, 0), RegionId::new(1, 0));
    let id = place_avatar(&db, &keys, 9, Vec3::new(254.0, 0.0, 10.0)).await;
    let input = Input {
        player: 9,
        seq: 1,
        action: Action::Move {
            to: Vec3::new(258.0, 0.0, 10.0),
        },
    };
    inbox::submit(&db, &keys, west, &input).await.unwrap();
    assert_eq!(drain(&db, &keys, west, 1).await, 1);
    let trx = db.create_trx().unwrap();
    let moved = store::get_entity(&trx, &keys, id, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.region(), east);
    let indexed = store::indexed_cell(&trx, &keys, id, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(indexed, moved.cell());
    let (begin, end) = keys.spatial_region_range(west);
    let west_ids = trx
        .get_range(&RangeOption::new(begin, end), false)
        .await
        .unwrap();
    assert!(
        west_ids.kvs.is_empty(),
        "no stale index entry in the old region"
    );
    let next = Input {
        player: 9,
        seq: 2,
        action: Action::Move {
            to: Vec3::new(260.0, 0.0, 10.0),
        },
    };
    inbox::submit(&db, &keys, east, &next).await.unwrap();
    assert_eq!(drain(&db, &keys, east, 2).await, 1);
    let trx = db.create_trx().unwrap();
    let at = store::get_entity(&trx, &keys, id, false)
        .await
        .unwrap()
        .unwrap()
        .position;
    assert_eq!(at.x, 260.0, "the destination processor now runs the avatar");
}

#[tokio::test]
async fn area_queries_match_a_brute_force_scan() {
    let seed = 99;
    println!("seed {seed}");
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let mut all = Vec::new();
    for region in [
        RegionId::new(0, 0),
        RegionId::new(1, 0),
        RegionId::new(0, 1),
    ] {
        let entities = generate_region(seed, region, 1.0);
        all.extend(entities.clone());
        load(&db, &keys, entities, 1_000, |_| {}).await.unwrap();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..20 {
        let area = Area::new(
            Vec3::new(rng.gen_range(0.0..512.0), 0.0, rng.gen_range(0.0..512.0)),
            rng.gen_range(1.0..80.0),
        );
        let trx = db.create_trx().unwrap();
        let mut found: Vec<EntityId> = entities_in_area(&trx, &keys, &area, true)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let mut expected: Vec<EntityId> = all
            .iter()
            .filter(|e| area.contains(&e.position))
            .map(|e| e.id)
            .collect();
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "area {area:?}");
    }
}

#[tokio::test]
async fn a_service_write_reaches_the_processor_hot_tier_and_the_change_log() {
    use sekai_layer::world::query::changelog_after;

    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let region = RegionId::new(0, 0);
    place_avatar(&db, &keys, 5, Vec3::new(50.0, 0.0, 50.0)).await;
    let lease = take_lease(&db, &keys, region, 1).await;
    let mut hot = HotRegion::new(region);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut new_id = move || EntityId::from_u128(rng.gen());
    let stats = ProcessorStats::default();
    let idle = Input {
        player: 5,
        seq: 1,
        action: Action::Idle,
    };
    inbox::submit(&db, &keys, region, &idle).await.unwrap();
    assert!(
        run_frame(&db, &keys, &lease, &mut hot, &mut new_id, &stats, &[])
            .await
            .unwrap()
            .is_ok()
    );

    let tree = Entity {
        id: EntityId::from_u128(77),
        kind: EntityKind::Tree,
        hp: 3,
        position: Vec3::new(51.0, 0.0, 50.0),
        inventory: Inventory::default(),
        owner: 0,
    };
    run(&db, |trx, _| {
        let (keys, tree) = (keys.clone(), tree.clone());
        async move { write_entities(&trx, &keys, &[Change::Upsert(tree)]).await }
    })
    .await
    .unwrap();

    let harvest = Input {
        player: 5,
        seq: 2,
        action: Action::Harvest { target: tree.id },
    };
    inbox::submit(&db, &keys, region, &harvest).await.unwrap();
    let frame = run_frame(&db, &keys, &lease, &mut hot, &mut new_id, &stats, &[])
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("the harvest was not processed"));
    assert!(
        frame.delta.outcomes[0].accepted,
        "{:?}",
        frame.delta.outcomes
    );

    let trx = db.create_trx().unwrap();
    let (log, _) = changelog_after(&trx, &keys, region, None, 100, true)
        .await
        .unwrap();
    let frames_in_log: Vec<u64> = log.iter().map(|(_, d)| d.frame).collect();
    assert_eq!(
        frames_in_log,
        [0, 1, 0, 2],
        "avatar, frame 1, service write, frame 2"
    );
    assert!(
        log.windows(2).all(|w| w[0].0 < w[1].0),
        "versionstamps increase"
    );
}

/// Inputs handed to the frame directly (an edge beside the processor, `world::direct`) are
/// stored and applied by it under faults: each (player, seq) once and in order, whether it came
/// directly, through the inbox, or both; one that arrives ahead of a gap waits in the inbox
/// until the missing one comes; every player's durable record ends at its last seq.
#[tokio::test]
async fn direct_inputs_are_stored_and_applied_by_the_frame_exactly_once() {
    let seed = 4343;
    let players = [1u64, 2, 3];
    let (db, keys, region) = players_in_region_zero(faulty(seed), &players).await;
    let holder = 9;
    let mut hot = HotRegion::new(region);
    let mut ids = ChaCha8Rng::seed_from_u64(seed);
    let mut new_id = move || EntityId::from_u128(ids.gen());
    let stats = ProcessorStats::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Inputs held back until a later round's frame: the ones after them arrive first.
    let mut late: Vec<(u64, Input)> = Vec::new();
    let rounds = 20u64;
    for round in 1..=rounds + 2 {
        let mut direct: Vec<Input> = Vec::new();
        late.retain(|(due, input)| {
            let now = *due <= round;
            if now {
                direct.push(input.clone());
            }
            !now
        });
        for p in players.iter().filter(|_| round <= rounds) {
            let input = Input {
                player: *p,
                seq: round,
                action: Action::Move {
                    to: Vec3::new(10.0 * *p as f32, 0.0, 10.0 + round as f32),
                },
            };
            match rng.gen_range(0..100) {
                0..60 => direct.push(input.clone()),
                60..85 => inbox::submit(&db, &keys, region, &input).await.unwrap(),
                _ => late.push((round + 2, input.clone())),
            }
            if rng.gen_bool(0.2) {
                // The same input again, the other way (a resend after a reconnect).
                inbox::submit(&db, &keys, region, &input).await.unwrap();
                direct.push(input);
            }
        }
        let lease = take_lease(&db, &keys, region, holder).await;
        run_frame(&db, &keys, &lease, &mut hot, &mut new_id, &stats, &direct)
            .await
            .unwrap()
            .ok();
        drain_with(&db, &keys, region, holder, &mut hot).await;
    }
    assert!(late.is_empty());
    let applied = applied_by_player(&db, &keys, region).await;
    for p in players {
        assert_eq!(
            applied[&p],
            (1..=rounds).collect::<Vec<_>>(),
            "player {p}: each input once, in order"
        );
        let trx = db.create_trx().unwrap();
        let durable = inbox::durable_seq(&trx, &keys, p, true).await.unwrap();
        assert_eq!(durable.seq, rounds, "player {p}: durable record");
        let last = Action::Move {
            to: Vec3::new(10.0 * p as f32, 0.0, 10.0 + rounds as f32),
        };
        assert_eq!(
            durable.digest,
            inbox::action_digest(&last),
            "player {p}: the durable seq names its action (a reuse of it is refused)"
        );
    }
    assert_inbox_drained(&db, &keys, region).await;
    let counts = db.fault_counts();
    println!("{counts:?}");
    assert!(counts.unknown_applied > 0 && counts.unknown_not_applied > 0);
}

/// A frame woken by direct inputs alone skips the inbox scan and arms no watch: an entry
/// appended meanwhile fires the watch kept from the frame before, and the next frame applies it.
#[tokio::test]
async fn a_frame_told_the_inbox_is_unchanged_leaves_a_new_entry_to_the_watch_it_kept() {
    let (db, keys, region) = players_in_region_zero(EngineOptions::default(), &[1, 2]).await;
    let lease = take_lease(&db, &keys, region, 9).await;
    let mut hot = HotRegion::new(region);
    let mut new_id = || EntityId::from_u128(7);
    let stats = ProcessorStats::default();
    let step = |player: u64| Input {
        player,
        seq: 1,
        action: Action::Move {
            to: Vec3::new(10.0 * player as f32, 0.0, 11.0),
        },
    };
    let idle = run_frame(&db, &keys, &lease, &mut hot, &mut new_id, &stats, &[])
        .await
        .unwrap();
    let Err(Some(mut watch)) = idle else {
        panic!("an empty inbox: an idle frame that armed a watch");
    };
    inbox::submit(&db, &keys, region, &step(1)).await.unwrap();
    hot.inbox_unchanged();
    let Ok(frame) = run_frame(
        &db,
        &keys,
        &lease,
        &mut hot,
        &mut new_id,
        &stats,
        &[step(2)],
    )
    .await
    .unwrap() else {
        panic!("the direct input applies");
    };
    assert_eq!(
        frame.record.inputs,
        vec![(2, 1)],
        "the inbox was not scanned"
    );
    assert!(frame.next.is_none(), "no new watch: the kept one covers it");
    tokio::time::timeout(std::time::Duration::from_secs(5), watch.as_mut())
        .await
        .expect("the kept watch fires for the entry the frame did not read")
        .unwrap();
    assert_eq!(drain_with(&db, &keys, region, 9, &mut hot).await, 1);
    let applied = applied_by_player(&db, &keys, region).await;
    assert_eq!(applied[&1], vec![1]);
    assert_eq!(applied[&2], vec![1]);
    assert_inbox_drained(&db, &keys, region).await;
}

/// More direct inputs than a frame applies: the rest go to the inbox and the next frames apply
/// them, in order, once each (some of them also came through the inbox).
#[tokio::test]
async fn direct_inputs_past_a_frames_most_wait_in_the_inbox() {
    let (db, keys, region) = players_in_region_zero(EngineOptions::default(), &[1]).await;
    let count = MAX_APPLIED_PER_FRAME as u64 + 44;
    let inputs: Vec<Input> = (1..=count)
        .map(|seq| Input {
            player: 1,
            seq,
            action: Action::Idle,
        })
        .collect();
    for input in inputs.iter().skip(250).step_by(7) {
        inbox::submit(&db, &keys, region, input).await.unwrap();
    }
    let lease = take_lease(&db, &keys, region, 3).await;
    let mut hot = HotRegion::new(region);
    let mut new_id = || EntityId::from_u128(7);
    let stats = ProcessorStats::default();
    let first = run_frame(&db, &keys, &lease, &mut hot, &mut new_id, &stats, &inputs)
        .await
        .unwrap()
        .ok()
        .expect("the first frame applies");
    assert_eq!(first.record.inputs.len(), MAX_APPLIED_PER_FRAME);
    drain_with(&db, &keys, region, 3, &mut hot).await;
    let applied = applied_by_player(&db, &keys, region).await;
    assert_eq!(applied[&1], (1..=count).collect::<Vec<_>>());
    let trx = db.create_trx().unwrap();
    let durable = inbox::durable_seq(&trx, &keys, 1, true).await.unwrap();
    assert_eq!(durable.seq, count);
    assert_inbox_drained(&db, &keys, region).await;
}

/// A processor that loses its lease gives back the direct inputs it was handed: the edge stores
/// them with T1, and the new holder applies them after the ones the old holder applied.
#[tokio::test]
async fn direct_inputs_reach_the_new_holder_after_a_takeover() {
    let (db, keys, region) = players_in_region_zero(EngineOptions::default(), &[1]).await;
    let input = |seq: u64| Input {
        player: 1,
        seq,
        action: Action::Idle,
    };
    let direct = DirectInputs::default();
    let first = lease::acquire(&db, &keys, region, 1)
        .await
        .unwrap()
        .expect("lease free");
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (db, keys, direct, stop) = (db.clone(), keys.clone(), direct.clone(), stop.clone());
        tokio::spawn(async move {
            let stats = ProcessorStats::default();
            let mut new_id = || EntityId::from_u128(11);
            hold_region(
                &db,
                &keys,
                region,
                first,
                &stop,
                &stats,
                &direct,
                &mut new_id,
                &|_| {},
            )
            .await;
        })
    };
    while !direct.serves(region) {
        tokio::task::yield_now().await;
    }
    for seq in 1..=3 {
        let stored = direct::store(&db, &keys, &direct, region, vec![input(seq)]).await;
        assert_eq!(stored.unwrap(), Stored::Directly, "seq {seq}");
    }
    // Expire the first holder's lease (as a stalled holder's would) and take it over.
    expire_lease(&db, &keys, region, &first).await;
    lease::acquire(&db, &keys, region, 2)
        .await
        .unwrap()
        .expect("taken over");
    // The old holder's next frame fails, so the batch comes back and goes through T1.
    let stored = direct::store(&db, &keys, &direct, region, vec![input(4)]).await;
    assert_eq!(stored.unwrap(), Stored::Dropped);
    task.await.unwrap();
    assert!(!direct.serves(region), "the old holder unregistered");
    drain(&db, &keys, region, 2).await;
    let applied = applied_by_player(&db, &keys, region).await;
    assert_eq!(applied[&1], [1, 2, 3, 4]);
    let trx = db.create_trx().unwrap();
    let durable = inbox::durable_seq(&trx, &keys, 1, true).await.unwrap();
    assert_eq!(durable.seq, 4);
}

#[tokio::test]
async fn an_input_behind_a_gap_waits_for_the_missing_one() {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let region = RegionId::new(0, 0);
    place_avatar(&db, &keys, 4, Vec3::new(30.0, 0.0, 30.0)).await;
    let step = |seq: u64| Input {
        player: 4,
        seq,
        action: Action::Move {
            to: Vec3::new(30.0 + seq as f32, 0.0, 30.0),
        },
    };
    inbox::submit(&db, &keys, region, &step(2)).await.unwrap();
    assert_eq!(
        drain(&db, &keys, region, 1).await,
        0,
        "seq 2 must wait for seq 1"
    );
    inbox::submit(&db, &keys, region, &step(1)).await.unwrap();
    assert_eq!(drain(&db, &keys, region, 1).await, 1);
    let trx = db.create_trx().unwrap();
    let records = frames(&trx, &keys, region, 1, 10).await.unwrap();
    assert_eq!(records.last().unwrap().inputs, vec![(4, 1), (4, 2)]);
    assert_inbox_drained(&db, &keys, region).await;
}

/// One player's inputs waiting behind a gap of thousands never delay anyone else's, and all of
/// them apply, in order, once the gap is filled.
#[tokio::test]
async fn thousands_of_waiting_inputs_delay_no_other_player() {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let region = RegionId::new(0, 0);
    let (gapped, other) = (5u64, 6u64);
    place_avatar(&db, &keys, gapped, Vec3::new(40.0, 0.0, 40.0)).await;
    place_avatar(&db, &keys, other, Vec3::new(60.0, 0.0, 60.0)).await;
    let idle = |player, seq| Input {
        player,
        seq,
        action: Action::Idle,
    };
    let waiting: Vec<(RegionId, Input)> = (2..=3_000).map(|s| (region, idle(gapped, s))).collect();
    for chunk in waiting.chunks(500) {
        inbox::submit_batch(&db, &keys, chunk).await.unwrap();
    }
    let others: Vec<(RegionId, Input)> = (1..=10).map(|s| (region, idle(other, s))).collect();
    inbox::submit_batch(&db, &keys, &others).await.unwrap();
    let mut hot = HotRegion::new(region);
    drain_with(&db, &keys, region, 9, &mut hot).await;
    let trx = db.create_trx().unwrap();
    let world = keys.clone();
    let applied = |trx, player| {
        let world = world.clone();
        async move {
            sekai_layer::world::frame::applied_seq(trx, &world, player)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        applied(&trx, other).await,
        10,
        "the other player was served"
    );
    assert_eq!(applied(&trx, gapped).await, 0, "the gapped inputs wait");
    assert_eq!(hot.waiting(), 2_999);
    inbox::submit(&db, &keys, region, &idle(gapped, 1))
        .await
        .unwrap();
    drain_with(&db, &keys, region, 9, &mut hot).await;
    let trx = db.create_trx().unwrap();
    assert_eq!(
        applied(&trx, gapped).await,
        3_000,
        "the gap's owner caught up"
    );
    assert_eq!(hot.waiting(), 0);
}

#[tokio::test]
async fn trimming_keeps_the_newest_entries_and_raises_the_floor() {
    use sekai_layer::world::query::{changelog_after, changelog_floor};
    use sekai_layer::world::trim::trim_keeping;

    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let region = RegionId::new(0, 0);
    for i in 0..5u128 {
        write_rock(&db, &keys, 100 + i, Vec3::new(10.0 + i as f32, 0.0, 10.0)).await;
    }
    let trx = db.create_trx().unwrap();
    let (all, _) = changelog_after(&trx, &keys, region, None, 100, true)
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(changelog_floor(&trx, &keys, region).await.unwrap(), None);

    let floor = trim_keeping(&db, &keys, region, 2)
        .await
        .unwrap()
        .expect("trimmed");
    assert_eq!(floor, all[2].0, "the newest entry trimmed");
    assert_eq!(
        trim_keeping(&db, &keys, region, 2).await.unwrap(),
        None,
        "nothing more to trim"
    );
    let trx = db.create_trx().unwrap();
    let (kept, _) = changelog_after(&trx, &keys, region, None, 100, true)
        .await
        .unwrap();
    let kept: Vec<[u8; 10]> = kept.into_iter().map(|(stamp, _)| stamp).collect();
    assert_eq!(kept, vec![all[3].0, all[4].0]);
    let floor = changelog_floor(&trx, &keys, region).await.unwrap().unwrap();
    assert!(
        all[1].0 <= floor,
        "a cursor at entry 1 must resume from a snapshot"
    );
    assert!(all[3].0 > floor, "a cursor at entry 3 can replay");
}

#[tokio::test]
async fn an_input_routed_to_the_old_region_is_forwarded_to_the_avatar() {
    use sekai_layer::world::players::bind_avatar;

    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = keys();
    let (west, east) = (RegionId::new(0, 0), RegionId::new(1, 0));
    let id = place_avatar(&db, &keys, 12, Vec3::new(254.0, 0.0, 10.0)).await;
    run(&db, |trx, _| {
        let keys = keys.clone();
        async move {
            bind_avatar(&trx, &keys, 12, id);
            Ok::<_, sekai_layer::kv::FdbError>(())
        }
    })
    .await
    .unwrap();
    let cross = Input {
        player: 12,
        seq: 1,
        action: Action::Move {
            to: Vec3::new(258.0, 0.0, 10.0),
        },
    };
    inbox::submit(&db, &keys, west, &cross).await.unwrap();
    assert_eq!(drain(&db, &keys, west, 1).await, 1);
    // The client still believes the avatar is in the west.
    let late = Input {
        player: 12,
        seq: 2,
        action: Action::Move {
            to: Vec3::new(261.0, 0.0, 10.0),
        },
    };
    inbox::submit(&db, &keys, west, &late).await.unwrap();
    assert_eq!(
        drain(&db, &keys, west, 1).await,
        0,
        "the west forwards instead of rejecting"
    );
    assert_eq!(drain(&db, &keys, east, 2).await, 1);
    let trx = db.create_trx().unwrap();
    let east_frames = frames(&trx, &keys, east, 1, 10).await.unwrap();
    assert_eq!(east_frames.last().unwrap().inputs, vec![(12, 2)]);
    assert_eq!(east_frames.last().unwrap().rejected, 0);
    let at = store::get_entity(&trx, &keys, id, false)
        .await
        .unwrap()
        .unwrap()
        .position;
    assert_eq!(at.x, 261.0);
}

#[tokio::test]
async fn the_frame_trimmer_keeps_the_newest_frames_a_page_at_a_time() {
    use sekai_layer::world::audit::frames::check_frames;
    use sekai_layer::world::audit::{check_world, Expect};
    use sekai_layer::world::query::{changelog_after, changelog_floor};
    use sekai_layer::world::trim::FrameTrimmer;

    let (db, keys, region) = players_in_region_zero(EngineOptions::default(), &[1]).await;
    let mut hot = HotRegion::new(region);
    for seq in 1..=30u64 {
        let to = Vec3::new(10.0 + (seq % 2) as f32, 0.0, 10.0);
        let input = Input {
            player: 1,
            seq,
            action: Action::Move { to },
        };
        inbox::submit(&db, &keys, region, &input).await.unwrap();
        assert_eq!(drain_with(&db, &keys, region, 7, &mut hot).await, 1);
        if seq % 10 == 5 {
            // A service write between frames: a change-log entry outside any frame.
            let at = Vec3::new(40.0, 0.0, 40.0 + seq as f32);
            write_rock(&db, &keys, 500 + u128::from(seq), at).await;
        }
    }
    let trx = db.create_trx().unwrap();
    let (before, _) = changelog_after(&trx, &keys, region, None, 1_000, true)
        .await
        .unwrap();
    assert_eq!(
        before.len(),
        34,
        "30 frames, 3 service writes and the avatar's creation"
    );

    // Keep 10 frames: everything up to frame 20 goes, 4 entries per transaction, 2 per call.
    let mut trimmer = FrameTrimmer::new(10, 4, 2);
    let mut calls = Vec::new();
    loop {
        let cleared = trimmer.trim(&db, &keys, region, 30).await.unwrap();
        if cleared == 0 {
            break;
        }
        assert!(cleared <= 8, "a call clears at most steps x page entries");
        calls.push(cleared);
    }
    assert!(
        calls.len() >= 3,
        "the backlog drained over several calls: {calls:?}"
    );
    let first_kept = before
        .iter()
        .position(|(_, d)| d.frame > 20)
        .expect("frame 21 is logged");
    assert_eq!(calls.iter().sum::<usize>(), first_kept);

    let trx = db.create_trx().unwrap();
    let (kept, _) = changelog_after(&trx, &keys, region, None, 1_000, true)
        .await
        .unwrap();
    assert_eq!(
        kept,
        before[first_kept..].to_vec(),
        "the newest 10 frames' entries remain"
    );
    let floor = changelog_floor(&trx, &keys, region).await.unwrap().unwrap();
    assert_eq!(
        floor,
        before[first_kept - 1].0,
        "the floor is the last cleared entry"
    );
    let numbers: Vec<u64> = frames(&trx, &keys, region, 0, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.frame)
        .collect();
    assert_eq!(
        numbers,
        (21..=30).collect::<Vec<_>>(),
        "frame records of frames 1..=20 cleared"
    );
    check_frames(&trx, &keys, region)
        .await
        .expect("a trimmed prefix is no gap");
    let expect = Expect {
        quiet: true,
        ..Expect::default()
    };
    check_world(&db, &keys, &[region], expect)
        .await
        .expect("the trimmed log still matches the kept frame records");

    // A new trimmer (a takeover) finds where the records stand; a hole is still a gap.
    let mut again = FrameTrimmer::new(10, 4, 2);
    assert_eq!(again.trim(&db, &keys, region, 30).await.unwrap(), 0);
    run(&db, |trx, _| {
        let keys = keys.clone();
        async move {
            trx.clear(&keys.frame(region, 25));
            Ok::<_, sekai_layer::kv::FdbError>(())
        }
    })
    .await
    .unwrap();
    let trx = db.create_trx().unwrap();
    assert!(check_frames(&trx, &keys, region).await.is_err());
}

/// Writes one rock as a service would (its own transaction, a change-log entry outside frames).
async fn write_rock(db: &EmbeddedDatabase, keys: &WorldKeys, id: u128, position: Vec3) {
    let rock = Entity {
        id: EntityId::from_u128(id),
        kind: EntityKind::Rock,
        hp: 2,
        position,
        inventory: Inventory::default(),
        owner: 0,
    };
    run(db, |trx, _| {
        let rock = rock.clone();
        async move { write_entities(&trx, keys, &[Change::Upsert(rock)]).await }
    })
    .await
    .unwrap();
}
