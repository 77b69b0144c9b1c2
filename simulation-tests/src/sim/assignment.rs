//! The quiet-time check of region assignment across processor nodes.
//!
//! Invariants checked (at one read version, once the run is quiet):
//! - every region has exactly one live processor: its lease is unexpired and names an up node's
//!   current holder, that node processes the region under that very lease (holder and epoch),
//!   and no other up node processes it;
//! - shares are balanced: the regions held by each up node differ by at most one.

use std::collections::BTreeMap;

use sekai_layer::kv::{Database, Transaction};
use sekai_layer::world::lease;

use super::Simulation;
use sekai_layer::world::audit::Violation;

/// Name of the one-processor check.
pub const ONE_PROCESSOR: &str = "every region has exactly one live processor";

/// Name of the balance check.
pub const BALANCED: &str = "processor shares within one of each other";

impl Simulation {
    /// Checks the assignment invariants (see the module docs).
    pub(super) async fn check_assignment(&self) -> Result<(), Violation> {
        let db = self
            .engine
            .db()
            .map_err(|e| Violation::new("engine open", e.to_string()))?;
        let read = |e: &dyn std::fmt::Display| Violation::new("database read", e.to_string());
        let trx = db.inner().create_trx().map_err(|e| read(&e))?;
        let now = trx.get_read_version().await.map_err(|e| read(&e))?;
        let leases = lease::snapshot_all(&trx, &self.keys)
            .await
            .map_err(|e| read(&e))?;
        let mut shares: BTreeMap<usize, usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_up())
            .map(|i| (i, 0))
            .collect();
        for region in &self.world.regions {
            let lease = leases
                .get(region)
                .filter(|l| l.expires > now && l.holder != lease::NO_HOLDER);
            let processing: Vec<usize> = shares
                .keys()
                .copied()
                .filter(|i| self.nodes[*i].regions.contains_key(region))
                .collect();
            let owner = lease.and_then(|l| {
                shares.keys().copied().find(|i| {
                    let node = &self.nodes[*i];
                    node.holder == l.holder
                        && node
                            .regions
                            .get(region)
                            .is_some_and(|p| p.lease.holder == l.holder && p.lease.epoch == l.epoch)
                })
            });
            match (owner, processing.as_slice()) {
                (Some(i), [only]) if i == *only => {
                    if let Some(count) = shares.get_mut(&i) {
                        *count += 1;
                    }
                }
                _ => {
                    let detail = format!(
                        "{region}: lease {lease:?} at {now}, processed by nodes {processing:?}"
                    );
                    return Err(Violation::new(ONE_PROCESSOR, detail));
                }
            }
        }
        let (min, max) = (shares.values().min(), shares.values().max());
        if let (Some(min), Some(max)) = (min, max) {
            if max - min > 1 {
                return Err(Violation::new(
                    BALANCED,
                    format!("shares by node {shares:?}"),
                ));
            }
        }
        Ok(())
    }
}
