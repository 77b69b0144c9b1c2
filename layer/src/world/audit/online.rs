//! Checks made as things happen, not only at the end: each committed frame and each
//! acknowledgement is checked the moment a harness sees it, so a violation is reported where
//! it happens.
//!
//! Invariants checked: a region's committed frames have increasing numbers (a frame whose
//! commit outcome was unknown may leave a hole, never a repeat); within one region each
//! player's applied seqs increase from frame to frame and inside a frame; an acknowledged seq
//! was sent.

use std::collections::BTreeMap;

use sekai_schema::{PlayerId, RegionId};

use super::{Ledger, Violation};

/// The online checker's memory: the last frame and each player's last applied seq per region.
#[derive(Clone, Debug, Default)]
pub struct OnlineAudit {
    frames: BTreeMap<RegionId, u64>,
    applied: BTreeMap<(RegionId, PlayerId), u64>,
}

impl OnlineAudit {
    /// A checker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frame `frame` of `region` committed, applying `inputs` in order.
    pub fn on_frame(
        &mut self,
        region: RegionId,
        frame: u64,
        inputs: &[(PlayerId, u64)],
    ) -> Result<(), Violation> {
        if let Some(last) = self.frames.insert(region, frame) {
            if frame <= last {
                return Err(Violation::new(
                    "frames contiguous",
                    format!("region {region}: frame {frame} committed after frame {last}"),
                ));
            }
        }
        for (player, seq) in inputs {
            if let Some(last) = self.applied.insert((region, *player), *seq) {
                if *seq <= last {
                    return Err(Violation::new(
                        "inputs in each player's order",
                        format!(
                            "region {region} frame {frame}: player {player} seq {seq} applied \
                             after seq {last}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The edge acknowledged `seq` of `player`; `ledger` knows what was sent.
    pub fn on_ack(&self, player: PlayerId, seq: u64, ledger: &Ledger) -> Result<(), Violation> {
        if seq == 0 || seq > ledger.sent.get(&player).copied().unwrap_or(0) {
            return Err(Violation::new(
                "only sent inputs acknowledged",
                format!("player {player}: seq {seq} acknowledged, never sent"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_and_reorders_are_violations() {
        let region = RegionId::new(0, 0);
        let mut audit = OnlineAudit::new();
        audit.on_frame(region, 1, &[(7, 1), (8, 1)]).expect("first");
        audit
            .on_frame(region, 3, &[(7, 2)])
            .expect("a hole is allowed");
        assert!(audit.on_frame(region, 3, &[]).is_err());
        assert!(audit.on_frame(region, 4, &[(7, 2)]).is_err());
        let mut ledger = Ledger::default();
        ledger.sent.insert(7, 5);
        assert!(audit.on_ack(7, 5, &ledger).is_ok());
        assert!(audit.on_ack(7, 6, &ledger).is_err());
    }
}
