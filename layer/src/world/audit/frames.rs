//! Frame records against the change log, and what was applied against what was acknowledged.
//!
//! Invariants checked: a region's stored frame records are numbered consecutively up to its
//! last frame (from 1, or from where trimming cut the oldest); its change log's frame deltas are
//! the same frames in the same order with the same inputs; applied inputs, in commit order, are
//! exactly once per acknowledged (player, seq) and increasing per player.

use std::collections::{BTreeMap, BTreeSet};

use sekai_schema::{PlayerId, RegionId, WorldKeys};

use super::{scan, Expect, Ledger, Violation, WorldSummary};
use crate::kv::{Database, Transaction};
use crate::world::codec::{decode_delta, decode_frame_record, decode_input};
use crate::world::error::WorldError;
use crate::world::model::FrameRecord;

/// The frame records of `region`, in frame order.
pub async fn frame_records<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Vec<FrameRecord>, WorldError> {
    Ok(keyed_records(trx, keys, region)
        .await?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// The frame records of `region` with the frame number of their key.
async fn keyed_records<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Vec<(u64, FrameRecord)>, WorldError> {
    let mut records = Vec::new();
    for kv in scan(trx, keys.frame_range(region)).await? {
        let (_, number) = keys.decode_frame(&kv.key)?;
        records.push((number, decode_frame_record(&kv.value)?));
    }
    Ok(records)
}

/// Checks one region's records are consecutive; returns them.
pub async fn check_frames<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
) -> Result<Vec<FrameRecord>, Violation> {
    let keyed = keyed_records(trx, keys, region).await?;
    let first = keyed.first().map_or(1, |(number, _)| *number);
    for (i, (number, record)) in keyed.iter().enumerate() {
        let due = first + i as u64;
        if *number != due || record.frame != due {
            return Err(Violation::new(
                "frames contiguous",
                format!(
                    "region {region}: frame key {number} (record {}) where {due} was due",
                    record.frame
                ),
            ));
        }
    }
    Ok(keyed.into_iter().map(|(_, record)| record).collect())
}

/// Frame records, change-log frame deltas, exactly-once and per-player order, and (on a quiet
/// world) empty inboxes.
pub(super) async fn check_frames_and_inputs<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    regions: &[RegionId],
    expect: Expect<'_>,
) -> Result<WorldSummary, Violation> {
    let mut summary = WorldSummary::default();
    let mut applied: Vec<([u8; 10], PlayerId, u64)> = Vec::new();
    for region in regions {
        let records = check_frames(trx, keys, *region).await?;
        summary.rejected += records.iter().map(|r| u64::from(r.rejected)).sum::<u64>();
        summary.frames += records.len() as u64;
        if let Some(ledger) = expect.ledger {
            check_reported_frames(*region, &records, ledger)?;
        }
        applied.extend(check_log_matches(trx, keys, *region, &records).await?);
        let pending = scan(trx, keys.inbox_range(*region)).await?;
        summary.pending += pending.len() as u64;
        if let Some(kv) = pending.first().filter(|_| expect.quiet) {
            let input = decode_input(&kv.value).map_err(WorldError::from)?;
            return Err(Violation::new(
                "inboxes drained",
                format!(
                    "region {region} still holds {} inputs, first {}#{}",
                    pending.len(),
                    input.player,
                    input.seq
                ),
            ));
        }
    }
    applied.sort_by_key(|a| a.0);
    summary.inputs = applied.len() as u64;
    check_exactly_once(&applied, expect.ledger)?;
    Ok(summary)
}

/// The region's change-log frame deltas are its frame records, in order, with the same inputs;
/// returns the inputs applied, with their commit stamps. Trimming clears the oldest frames'
/// records and log entries in bounded steps, so either may start later than the other: a log
/// entry of a frame older than the first record, or a record older than the first log entry,
/// is a trimmed prefix; from where both exist they must agree to the end.
async fn check_log_matches<T: Transaction>(
    trx: &T,
    keys: &WorldKeys,
    region: RegionId,
    records: &[FrameRecord],
) -> Result<Vec<([u8; 10], PlayerId, u64)>, Violation> {
    let mismatch = |detail: String| Violation::new("change log matches frames", detail);
    let first_record = records.first().map_or(u64::MAX, |r| r.frame);
    let mut applied = Vec::new();
    let mut logged: Option<(u64, u64)> = None; // first and last frame in the log
    for kv in scan(trx, keys.changelog_range(region)).await? {
        let (_, stamp) = keys.decode_changelog(&kv.key).map_err(WorldError::from)?;
        let delta = decode_delta(&kv.value).map_err(WorldError::from)?;
        if delta.frame == 0 {
            continue; // arrivals and service writes
        }
        if let Some((_, last)) = logged.filter(|(_, last)| delta.frame != last + 1) {
            return Err(mismatch(format!(
                "region {region}: log holds frame {} after frame {last}",
                delta.frame
            )));
        }
        logged = Some((logged.map_or(delta.frame, |(first, _)| first), delta.frame));
        let inputs: Vec<(PlayerId, u64)> =
            delta.outcomes.iter().map(|o| (o.player, o.seq)).collect();
        let mut commit = [0u8; 10];
        commit.copy_from_slice(&stamp.as_bytes()[..10]);
        applied.extend(inputs.iter().map(|(p, s)| (commit, *p, *s)));
        if delta.frame < first_record {
            continue; // its record was trimmed first
        }
        let record = records.get((delta.frame - first_record) as usize);
        if record.map(|r| &r.inputs) != Some(&inputs) {
            return Err(mismatch(format!(
                "region {region}: log holds frame {} with {inputs:?}, the record {:?}",
                delta.frame,
                record.map(|r| &r.inputs)
            )));
        }
    }
    let last_logged = logged.map(|(_, last)| last);
    if let Some(record) = records.last().filter(|r| Some(r.frame) != last_logged) {
        let logged_from = logged.map_or(u64::MAX, |(first, _)| first);
        if record.frame >= logged_from || logged.is_none() {
            return Err(mismatch(format!(
                "region {region}: frame {} has no log entry (log ends at {last_logged:?})",
                record.frame
            )));
        }
    }
    Ok(applied)
}

/// Every frame a processor saw commit is stored with the same inputs.
fn check_reported_frames(
    region: RegionId,
    records: &[FrameRecord],
    ledger: &Ledger,
) -> Result<(), Violation> {
    let first = records.first().map_or(1, |r| r.frame);
    for ((r, frame), inputs) in ledger.frames.range((region, 0)..=(region, u64::MAX)) {
        let stored = frame
            .checked_sub(first)
            .and_then(|i| records.get(i as usize));
        if stored.map(|s| &s.inputs) != Some(inputs) {
            return Err(Violation::new(
                "committed frames kept",
                format!("region {r}: frame {frame} committed with {inputs:?}, stored {stored:?}"),
            ));
        }
    }
    Ok(())
}

/// `applied` is in commit order: each player's seqs increase; with a ledger, each acked seq
/// appears once and nothing beyond what was sent appears.
fn check_exactly_once(
    applied: &[([u8; 10], PlayerId, u64)],
    ledger: Option<&Ledger>,
) -> Result<(), Violation> {
    let mut last: BTreeMap<PlayerId, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (_, player, seq) in applied {
        if let Some(prev) = last.insert(*player, *seq) {
            if *seq <= prev {
                return Err(Violation::new(
                    "inputs in each player's order",
                    format!("player {player}: seq {seq} applied after seq {prev}"),
                ));
            }
        }
        if let Some(ledger) = ledger {
            if *seq > ledger.sent.get(player).copied().unwrap_or(0) {
                return Err(Violation::new(
                    "only sent inputs applied",
                    format!("player {player}: seq {seq} was never sent"),
                ));
            }
        }
        seen.insert((*player, *seq));
    }
    let missing = ledger.and_then(|l| l.acked.iter().find(|a| !seen.contains(a)));
    if let Some((player, seq)) = missing {
        return Err(Violation::new(
            "acknowledged inputs applied exactly once",
            format!("player {player}: acknowledged seq {seq} was never applied"),
        ));
    }
    Ok(())
}

/// After a crash: every acknowledged input is in an inbox or a frame, and every frame seen
/// committed is stored unchanged.
pub async fn check_durable<D: Database>(
    db: &D,
    keys: &WorldKeys,
    regions: &[RegionId],
    ledger: &Ledger,
) -> Result<(), Violation> {
    let trx = db.create_trx().map_err(WorldError::from)?;
    let mut kept = BTreeSet::new();
    for region in regions {
        let records = frame_records(&trx, keys, *region).await?;
        check_reported_frames(*region, &records, ledger)?;
        kept.extend(records.into_iter().flat_map(|r| r.inputs));
        for kv in scan(&trx, keys.inbox_range(*region)).await? {
            let input = decode_input(&kv.value).map_err(WorldError::from)?;
            kept.insert((input.player, input.seq));
        }
    }
    match ledger.acked.iter().find(|a| !kept.contains(a)) {
        Some((player, seq)) => Err(Violation::new(
            "nothing acknowledged lost",
            format!("player {player}: acknowledged seq {seq} is in no inbox and no frame"),
        )),
        None => Ok(()),
    }
}
