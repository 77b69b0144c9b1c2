//! The final check of a chaos run: every acknowledged input applied exactly once, in order.
//!
//! Read from a stopped server's data directory: each region's frame records (`query::frames`)
//! list the (player, seq) of every input each frame processed; `frame::applied_seq` is the last
//! seq applied per player.
//!
//! Invariants checked, per player whose acknowledged prefix is `1..=acked`:
//! - none missing: every seq of the prefix appears in some frame record (`lost` counts those
//!   that do not);
//! - exactly once: no (player, seq) appears in two frame records or twice in one
//!   (`duplicates`);
//! - in order: within a region's frame log a player's seqs strictly increase (`out_of_order`).
//!
//! A player whose `applied_seq` is below its acknowledged prefix still has inputs in an inbox:
//! the caller runs the server again for a while instead of counting them lost (`behind`).

use std::collections::{BTreeMap, HashMap, HashSet};

use sekai_layer::embedded::EmbeddedDatabase;
use sekai_layer::kv::Database;
use sekai_layer::world::frame::applied_seq;
use sekai_layer::world::query::frames;
use sekai_schema::{PlayerId, RegionId, WorldKeys};

/// Frame records read per transaction.
const PAGE: usize = 1_000;

/// What the store says about the acknowledged inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Acknowledged inputs (the sum of every player's acknowledged prefix).
    pub acked: u64,
    /// Acknowledged inputs in no frame record.
    pub lost: u64,
    /// (player, seq) applied more than once.
    pub duplicates: u64,
    /// Seqs applied after a higher seq of the same player in one region.
    pub out_of_order: u64,
    /// Players whose `applied_seq` is still below their acknowledged prefix.
    pub behind: u64,
    /// Frame records read.
    pub frames: u64,
}

impl CheckReport {
    /// True when nothing acknowledged was lost, doubled or reordered.
    pub fn holds(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.out_of_order == 0
    }
}

/// Checks `acked` (player, highest acknowledged seq) against the frame logs of `regions`.
pub async fn check_store(
    db: &EmbeddedDatabase,
    keys: &WorldKeys,
    regions: &[RegionId],
    acked: &[(PlayerId, u64)],
) -> Result<CheckReport, String> {
    let wanted: HashMap<PlayerId, u64> = acked.iter().copied().collect();
    let mut report = CheckReport {
        acked: acked.iter().map(|(_, seq)| seq).sum(),
        ..CheckReport::default()
    };
    {
        let trx = db.create_trx().map_err(|e| e.to_string())?;
        for (player, seq) in acked {
            let applied = applied_seq(&trx, keys, *player)
                .await
                .map_err(|e| e.to_string())?;
            if applied < *seq {
                report.behind += 1;
            }
        }
    }
    let mut seen: HashMap<PlayerId, HashSet<u64>> = HashMap::new();
    for region in regions {
        let mut last_in_region: BTreeMap<PlayerId, u64> = BTreeMap::new();
        let mut from = 1;
        loop {
            let trx = db.create_trx().map_err(|e| e.to_string())?;
            let page = frames(&trx, keys, *region, from, PAGE)
                .await
                .map_err(|e| format!("reading the frames of {region}: {e}"))?;
            for record in &page {
                report.frames += 1;
                from = from.max(record.frame + 1);
                for (player, seq) in &record.inputs {
                    if !wanted.contains_key(player) {
                        continue;
                    }
                    if !seen.entry(*player).or_default().insert(*seq) {
                        report.duplicates += 1;
                    }
                    let last = last_in_region.entry(*player).or_default();
                    if *seq <= *last {
                        report.out_of_order += 1;
                    }
                    *last = (*last).max(*seq);
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
    }
    for (player, through) in acked {
        let applied = seen.get(player);
        report.lost += (1..=*through)
            .filter(|seq| !applied.is_some_and(|s| s.contains(seq)))
            .count() as u64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_holds_only_without_loss_doubling_or_reordering() {
        assert!(CheckReport::default().holds());
        for broken in [
            CheckReport {
                lost: 1,
                ..CheckReport::default()
            },
            CheckReport {
                duplicates: 1,
                ..CheckReport::default()
            },
            CheckReport {
                out_of_order: 1,
                ..CheckReport::default()
            },
        ] {
            assert!(!broken.holds());
        }
    }
}
