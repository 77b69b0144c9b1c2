//! Many processor nodes on one embedded engine in one process: each node runs the shipped
//! `assign::run_node` on its own tokio runtime, so stopping a node is a graceful leave and
//! shutting its runtime down is a crash (no release, no goodbye).
//!
//! Checks: the regions split fairly over three nodes; after a graceful stop the other two take
//! the leaver's regions (epochs bumped); after a crash the survivor takes the crashed node's
//! regions once their leases expire. Waits are bounded (a generous deadline, polled), never
//! timed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions};
use sekai_layer::kv::{Database, Transaction};
use sekai_layer::world::assign::{run_node, NodeSpec};
use sekai_layer::world::lease::{self, Lease};
use sekai_layer::world::nodes::{self, Roles};
use sekai_layer::world::processor::ProcessorStats;
use sekai_schema::{RegionId, WorldKeys};

/// Longest a step may take to settle before the test gives up (a bound, not a measurement).
const DEADLINE: Duration = Duration::from_secs(60);

/// One node: its runtime, stop flag and loop.
struct Node {
    holder: u128,
    runtime: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(db: &EmbeddedDatabase, keys: &WorldKeys, holder: u128, regions: &[RegionId]) -> Node {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spec = NodeSpec {
        holder,
        roles: Roles::BOTH,
        regions: regions.to_vec(),
        direct: Default::default(),
    };
    let task = runtime.spawn(run_node(
        db.clone(),
        keys.clone(),
        spec,
        stop.clone(),
        Arc::new(ProcessorStats::default()),
        |_| {},
    ));
    Node {
        holder,
        runtime,
        stop,
        task,
    }
}

/// The live leases (unexpired, with a holder) and the read version.
async fn leases(db: &EmbeddedDatabase, keys: &WorldKeys) -> (BTreeMap<RegionId, Lease>, i64) {
    let trx = db.create_trx().unwrap();
    let now = trx.get_read_version().await.unwrap();
    let all = lease::snapshot_all(&trx, keys).await.unwrap();
    let live = all
        .into_iter()
        .filter(|(_, l)| l.expires > now && l.holder != lease::NO_HOLDER)
        .collect();
    (live, now)
}

/// Regions per holder among `holders`, when every region is held by one of them.
async fn split(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    regions: &[RegionId],
    holders: &[u128],
) -> Option<BTreeMap<u128, usize>> {
    let (live, _) = leases(db, keys).await;
    let mut counts: BTreeMap<u128, usize> = holders.iter().map(|h| (*h, 0)).collect();
    for region in regions {
        *counts.get_mut(&live.get(region)?.holder)? += 1;
    }
    Some(counts)
}

/// Polls until the regions are spread over exactly `holders` within ±1, every one holding some.
async fn wait_balanced(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    regions: &[RegionId],
    holders: &[u128],
    what: &str,
) -> BTreeMap<u128, usize> {
    let started = Instant::now();
    loop {
        if let Some(counts) = split(db, keys, regions, holders).await {
            let (min, max) = (counts.values().min(), counts.values().max());
            if let (Some(&min), Some(&max)) = (min, max) {
                if min >= 1 && max - min <= 1 {
                    return counts;
                }
            }
        }
        let (live, _) = leases(db, keys).await;
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not balanced over {holders:x?}: {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn regions_split_over_nodes_and_fail_over() {
    let db = EmbeddedDatabase::temporary(EngineOptions::default()).unwrap();
    let keys = WorldKeys::new("sekai/nodes-test").unwrap();
    let regions: Vec<RegionId> = (0..2)
        .flat_map(|x| (0..2).map(move |z| RegionId::new(x, z)))
        .collect();
    let observer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b, c) = (0xa1, 0xb1, 0xc1);
    let nodes: Vec<Node> = [a, b, c]
        .into_iter()
        .map(|h| start(&db, &keys, h, &regions))
        .collect();
    let mut nodes = nodes.into_iter();
    let (node_a, node_b, node_c) = (
        nodes.next().unwrap(),
        nodes.next().unwrap(),
        nodes.next().unwrap(),
    );

    // Three nodes, four regions: 2, 1, 1 in some order.
    let counts = observer.block_on(wait_balanced(&db, &keys, &regions, &[a, b, c], "start"));
    println!("three nodes: {counts:x?}");
    let (before, _) = observer.block_on(leases(&db, &keys));

    // A leaves gracefully: it releases its leases, B and C take them at once (epoch bumped).
    node_a.stop.store(true, Ordering::Relaxed);
    node_a.runtime.block_on(node_a.task).unwrap();
    let counts = observer.block_on(wait_balanced(&db, &keys, &regions, &[b, c], "A left"));
    println!("after A left: {counts:x?}");
    let (after, _) = observer.block_on(leases(&db, &keys));
    for (region, old) in before.iter().filter(|(_, l)| l.holder == a) {
        assert!(after[region].epoch > old.epoch, "{region}: epoch bumped");
    }
    let entries = observer.block_on(async {
        let trx = db.create_trx().unwrap();
        nodes::read_all(&trx, &keys).await.unwrap()
    });
    assert!(
        entries.iter().all(|e| e.holder != node_a.holder),
        "A left the node list"
    );

    // C crashes (its runtime dies: no release); B takes everything once C's leases expire.
    let held_by_c: Vec<(RegionId, Lease)> = after
        .iter()
        .filter(|(_, l)| l.holder == c)
        .map(|(r, l)| (*r, *l))
        .collect();
    node_c.runtime.shutdown_background();
    let counts = observer.block_on(wait_balanced(&db, &keys, &regions, &[b], "C crashed"));
    println!("after C crashed: {counts:x?}");
    assert_eq!(counts[&b], regions.len());
    let (last, _) = observer.block_on(leases(&db, &keys));
    for (region, old) in held_by_c {
        assert!(last[&region].epoch > old.epoch, "{region}: taken over");
    }

    node_b.stop.store(true, Ordering::Relaxed);
    node_b.runtime.block_on(node_b.task).unwrap();
    let (left, _) = observer.block_on(leases(&db, &keys));
    assert!(left.is_empty(), "B released everything: {left:?}");
}
