//! Region assignment: which regions each processor node holds, when many nodes share one
//! database.
//!
//! Every [`ASSIGN_EVERY`] a node surveys ([`survey`]: announces itself, reads the live nodes and
//! every lease at one read version), decides with the pure [`plan`], releases what it should give
//! up and acquires what it should take. [`run_node`] is that loop with one task per held region
//! (`processor::hold_region`). Invariants:
//! - with `R` regions and `N` live processor nodes, a node's share is between
//!   `floor = R / N` and `ceil = ⌈R / N⌉`: it never acquires past `ceil` and releases what it
//!   holds above it; it takes regions past `floor` only from what nodes below `floor` do not
//!   need; a node at `ceil` releases one region when the nodes below `floor` cannot fill up from
//!   free and orphaned regions. At rest (no plan acquires or releases) every region is held by
//!   a live node and shares differ by at most one;
//! - a node acquires only free regions (no lease, released, or expired), always through
//!   `lease::acquire` (a takeover bumps the epoch), so a crashed node's regions are taken once its
//!   leases expire (`LEASE_VERSIONS`, about 2 s) and a stalled node's frames fail afterwards;
//! - a node releases a region only after its processor stopped (its frame in flight ended), with
//!   `lease::release`, so a graceful leave hands every region over at once;
//! - [`plan`] is a pure function of (view, node, running regions); it ranks regions by a hash of
//!   (node, region), so nodes prefer different regions and a seed fixes every choice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_schema::{EntityId, RegionId, WorldKeys};

use super::direct::DirectInputs;
use super::error::WorldError;
use super::lease::{self, Lease, NO_HOLDER};
use super::nodes::{self, Roles};
use super::processor::{hold_region, CommittedFrame, ProcessorStats};
use crate::kv::{run, Database, Transaction};

/// How often a node surveys and rebalances.
pub const ASSIGN_EVERY: Duration = Duration::from_millis(250);

/// What a node saw in one survey, at one read version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The read version.
    pub now: i64,
    /// The world's regions.
    pub regions: Vec<RegionId>,
    /// Live processor nodes, sorted (always including the surveying node).
    pub nodes: Vec<u128>,
    /// Every stored lease, by region.
    pub leases: BTreeMap<RegionId, Lease>,
}

/// What a node should do after a survey.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Regions to stop processing and hand over.
    pub release: Vec<RegionId>,
    /// Free regions to try to take, best first.
    pub acquire: Vec<RegionId>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.release.is_empty() && self.acquire.is_empty()
    }
}

/// The fair share bounds `(floor, ceil)` of `regions` over `nodes` live processor nodes.
pub fn fair_share(regions: usize, nodes: usize) -> (usize, usize) {
    let nodes = nodes.max(1);
    (regions / nodes, regions.div_ceil(nodes))
}

/// Announces `me` (with `roles`), clears expired announcements, and reads the live processor
/// nodes and every lease, in one transaction whose reads are snapshot reads (it conflicts only
/// when an expired announcement it clears was renewed meanwhile).
pub async fn survey<D: Database>(
    db: &D,
    keys: &WorldKeys,
    regions: &[RegionId],
    me: u128,
    roles: Roles,
) -> Result<View, WorldError> {
    run(db, |trx, _| async move {
        let now = trx.get_read_version().await?;
        let entries = nodes::read_all(&trx, keys).await?;
        let leases = lease::snapshot_all(&trx, keys).await?;
        nodes::announce(&trx, keys, me, roles, now);
        nodes::clear_expired(&trx, keys, &entries, now)?;
        let mut live: Vec<u128> = entries
            .iter()
            .filter(|e| e.expires > now && e.roles.processor)
            .map(|e| e.holder)
            .collect();
        if roles.processor {
            live.push(me);
        }
        live.sort_unstable();
        live.dedup();
        Ok(View {
            now,
            regions: regions.to_vec(),
            nodes: live,
            leases,
        })
    })
    .await
}

/// A node's preference for a region: a mix of both ids (higher is preferred).
fn score(me: u128, region: RegionId) -> u64 {
    let mut x = (me as u64) ^ ((me >> 64) as u64).rotate_left(17);
    x ^= (u64::from(region.x as u32) << 32) | u64::from(region.z as u32);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Decides what `me`, processing `running`, should release and acquire given `view` (see the
/// module's invariants).
pub fn plan(view: &View, me: u128, running: &BTreeSet<RegionId>) -> Plan {
    let live: BTreeSet<u128> = view.nodes.iter().copied().chain([me]).collect();
    let (floor, ceil) = fair_share(view.regions.len(), live.len());
    let mut out = Plan::default();
    let mut mine = Vec::new();
    let mut free = Vec::new();
    let mut orphaned = 0usize;
    let mut counts: BTreeMap<u128, usize> = live.iter().map(|n| (*n, 0)).collect();
    for region in &view.regions {
        let lease = view.leases.get(region);
        let ours = lease.is_some_and(|l| l.holder == me);
        if running.contains(region) {
            if ours {
                mine.push(*region);
            } else {
                // Taken over (its processor fails its next frame): stop it.
                out.release.push(*region);
            }
            continue;
        }
        match lease {
            Some(l) if l.holder != NO_HOLDER && l.holder != me && l.expires > view.now => {
                match counts.get_mut(&l.holder) {
                    Some(count) => *count += 1,
                    None => orphaned += 1,
                }
            }
            // Free, released, expired, or ours without a running processor.
            _ => free.push(*region),
        }
    }
    // Regions this plan stops (taken over) are not in `running` for the rest.
    let held = mine.len();
    let deficit: usize = counts
        .iter()
        .filter(|(n, _)| **n != me)
        .map(|(_, c)| floor.saturating_sub(*c))
        .sum();
    mine.sort_by_key(|r| score(me, *r));
    free.sort_by_key(|r| std::cmp::Reverse(score(me, *r)));
    if held > ceil {
        out.release.extend(mine.iter().take(held - ceil));
    } else if held < floor {
        out.acquire.extend(free.iter().take(floor - held));
    } else {
        let spare = free.len().saturating_sub(deficit);
        if held < ceil && spare > 0 {
            out.acquire
                .extend(free.iter().take((ceil - held).min(spare)));
        } else if held == ceil && ceil > floor && deficit > free.len() + orphaned {
            out.release.extend(mine.first());
        }
    }
    out
}

/// Who a processor node is and what it serves.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Its lease-holder id (odd, unique per process: from the OS's randomness).
    pub holder: u128,
    /// Its roles, as announced (the processor role is what assignment counts).
    pub roles: Roles,
    /// The world's regions.
    pub regions: Vec<RegionId>,
    /// Where the edges of this process hand inputs to its processors (`direct`); an empty
    /// registry nobody sends to when the process runs no edge.
    pub direct: DirectInputs,
}

/// One held region: its stop flag and its task.
struct Held {
    lease: Lease,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs processor node `spec` until `stop` is set: survey, plan, release and acquire every
/// [`ASSIGN_EVERY`], one `hold_region` task per held region; then stops every region's
/// processor, releases its leases and leaves the node list.
pub async fn run_node<D: Database>(
    db: D,
    keys: WorldKeys,
    spec: NodeSpec,
    stop: Arc<AtomicBool>,
    stats: Arc<ProcessorStats>,
    on_frame: impl Fn(&CommittedFrame) + Send + Sync + Clone + 'static,
) {
    let NodeSpec {
        holder,
        roles,
        regions,
        direct,
    } = spec;
    let mut held: BTreeMap<RegionId, Held> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        held.retain(|_, h| !h.task.is_finished());
        match survey(&db, &keys, &regions, holder, roles).await {
            Ok(view) => {
                let running: BTreeSet<RegionId> = held.keys().copied().collect();
                let plan = plan(&view, holder, &running);
                for region in plan.release {
                    if let Some(h) = held.remove(&region) {
                        hand_over(&db, &keys, region, holder, h).await;
                    }
                }
                for region in plan.acquire {
                    match lease::acquire(&db, &keys, region, holder).await {
                        Ok(Some(lease)) => {
                            let h = start(&db, &keys, (region, lease), &direct, &stats, &on_frame);
                            held.insert(region, h);
                        }
                        Ok(None) => {}
                        Err(error) => tracing::warn!(%region, %error, "lease acquisition failed"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "region survey failed"),
        }
        tokio::time::sleep(ASSIGN_EVERY).await;
    }
    for h in held.values() {
        h.stop.store(true, Ordering::Relaxed);
    }
    for (region, h) in held {
        hand_over(&db, &keys, region, holder, h).await;
    }
    if let Err(error) = nodes::leave(&db, &keys, holder).await {
        tracing::warn!(%error, "leaving the node list failed");
    }
}

/// Starts the processor of `region` under `lease`.
fn start<D: Database>(
    db: &D,
    keys: &WorldKeys,
    (region, lease): (RegionId, Lease),
    direct: &DirectInputs,
    stats: &Arc<ProcessorStats>,
    on_frame: &(impl Fn(&CommittedFrame) + Send + Sync + Clone + 'static),
) -> Held {
    let stop = Arc::new(AtomicBool::new(false));
    let (db, keys, flag, stats, direct, on_frame) = (
        db.clone(),
        keys.clone(),
        stop.clone(),
        stats.clone(),
        direct.clone(),
        on_frame.clone(),
    );
    let task = tokio::spawn(async move {
        // Built entities need ids unique across processes and tenures: seed from the OS.
        let mut rng = ChaCha8Rng::from_rng(rand::rngs::OsRng)
            .unwrap_or_else(|_| ChaCha8Rng::seed_from_u64(rand::random()));
        let mut new_id = move || EntityId::from_u128(rng.gen());
        hold_region(
            &db,
            &keys,
            region,
            lease,
            &flag,
            &stats,
            &direct,
            &mut new_id,
            &on_frame,
        )
        .await;
    });
    Held { lease, stop, task }
}

/// Stops the processor of `region` (its frame in flight ends first) and releases its lease.
async fn hand_over<D: Database>(db: &D, keys: &WorldKeys, region: RegionId, holder: u128, h: Held) {
    h.stop.store(true, Ordering::Relaxed);
    let _ = h.task.await;
    if let Err(error) = lease::release(db, keys, region, holder, h.lease.epoch).await {
        tracing::warn!(%region, %error, "lease release failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(n: i32) -> Vec<RegionId> {
        (0..n).map(|x| RegionId::new(x, 0)).collect()
    }

    fn lease(holder: u128) -> Lease {
        Lease {
            holder,
            epoch: 1,
            expires: 100,
        }
    }

    fn view(n: i32, nodes: &[u128], held: &[(i32, u128)]) -> View {
        View {
            now: 50,
            regions: regions(n),
            nodes: nodes.to_vec(),
            leases: held
                .iter()
                .map(|(x, h)| (RegionId::new(*x, 0), lease(*h)))
                .collect(),
        }
    }

    fn running(xs: &[i32]) -> BTreeSet<RegionId> {
        xs.iter().map(|x| RegionId::new(*x, 0)).collect()
    }

    #[test]
    fn shares() {
        assert_eq!(fair_share(4, 3), (1, 2));
        assert_eq!(fair_share(4, 2), (2, 2));
        assert_eq!(fair_share(4, 0), (4, 4));
        assert_eq!(fair_share(3, 5), (0, 1));
    }

    #[test]
    fn a_lone_node_takes_everything() {
        let plan = plan(&view(4, &[3], &[]), 3, &running(&[]));
        assert_eq!(plan.acquire.len(), 4);
        assert!(plan.release.is_empty());
    }

    #[test]
    fn a_node_above_its_share_releases_for_a_newcomer() {
        let all = [(0, 3), (1, 3), (2, 3), (3, 3)];
        let plan = plan(&view(4, &[3, 5], &all), 3, &running(&[0, 1, 2, 3]));
        assert_eq!(plan.release.len(), 2);
        assert!(plan.acquire.is_empty());
    }

    #[test]
    fn a_node_at_ceil_releases_one_for_a_starving_node() {
        // 4 regions over 3 nodes: 2, 2, 0 must become 2, 1, 1.
        let held = [(0, 3), (1, 3), (2, 5), (3, 5)];
        let plan = plan(&view(4, &[3, 5, 7], &held), 3, &running(&[0, 1]));
        assert_eq!(plan.release.len(), 1);
        let starving = super::plan(&view(4, &[3, 5, 7], &held), 7, &running(&[]));
        assert!(starving.is_empty(), "nothing free yet");
    }

    #[test]
    fn expired_and_released_leases_are_free_and_live_ones_are_not() {
        let mut v = view(3, &[3], &[(0, 5), (1, 9)]);
        v.leases.get_mut(&RegionId::new(1, 0)).unwrap().expires = 10;
        v.leases.insert(RegionId::new(2, 0), lease(NO_HOLDER));
        let plan = plan(&v, 3, &running(&[]));
        assert_eq!(plan.acquire.len(), 2);
        assert!(!plan.acquire.contains(&RegionId::new(0, 0)));
    }

    #[test]
    fn a_taken_over_region_is_stopped() {
        let plan = plan(&view(2, &[3, 5], &[(0, 5), (1, 3)]), 3, &running(&[0, 1]));
        assert_eq!(plan.release, vec![RegionId::new(0, 0)]);
    }
}
