//! The change-log entries this process's processors committed, kept in memory so this process's
//! fan-out can take them instead of reading them back from the database.
//!
//! A processor records each frame's delta once its transaction committed
//! ([`LocalLog::record`], from `processor::run_direct_frame`). A fan-out pass that finds a
//! region's head moved asks [`LocalLog::entries_after`] for the entries after its cursor; it
//! reads the database only when the answer is `None`.
//!
//! Invariants:
//! - **only committed entries**: an entry is recorded after the transaction that appended it
//!   committed, under that commit's versionstamp, so every recorded entry is in the database's
//!   log (the newest [`KEPT_PER_REGION`] of a region are kept, in stamp order; the trim never
//!   reaches them, it keeps the newest `processor::FRAMES_KEEP` frames);
//! - **whole or nothing**: every change-log entry is appended together with one bump of its
//!   region's head (`frame::append_delta`), and no entry without one. So between a cursor and a
//!   read version, the log holds at most as many entries as the head rose, and the recorded ones
//!   are among them: when the recorded entries there are exactly as many as the head rose, they
//!   are all of them. [`LocalLog::entries_after`] answers only then; entries this process did
//!   not record (another process's frames, arrivals written by another region's frame, a world
//!   generation's bumps) make it answer `None`, never a log with a gap.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use sekai_schema::RegionId;

use super::model::Delta;

/// A commit versionstamp (the 10 bytes every entry of one commit shares).
pub type Stamp = [u8; 10];

/// Entries kept per region: a fan-out that keeps up takes a few per pass; one further behind
/// reads the database.
pub const KEPT_PER_REGION: usize = 256;

/// Each region's newest recorded entries, in stamp order.
type ByRegion = HashMap<RegionId, VecDeque<(Stamp, Delta)>>;

/// The entries this process's processors committed, by region (cheap to clone; every clone is
/// the same log).
#[derive(Clone, Debug, Default)]
pub struct LocalLog {
    regions: Arc<Mutex<ByRegion>>,
}

impl LocalLog {
    /// Records `delta`, appended to `region`'s log by the commit whose versionstamp is `stamp`
    /// (call only after that commit succeeded).
    pub fn record(&self, region: RegionId, stamp: Stamp, delta: &Delta) {
        let mut regions = self.lock();
        let entries = regions.entry(region).or_default();
        // Commits of one region end one after another, so stamps arrive in order; a late one
        // (a lease taken back and forth inside this process) is put in its place.
        let at = entries.partition_point(|(s, _)| *s < stamp);
        if entries.get(at).is_some_and(|(s, _)| *s == stamp) {
            debug_assert!(false, "a commit appends one entry to a region's log");
            return;
        }
        entries.insert(at, (stamp, delta.clone()));
        if entries.len() > KEPT_PER_REGION {
            entries.pop_front();
        }
    }

    /// `region`'s entries after `after` (all when `None`) committed at or before
    /// `read_version`, if this log holds every one of them: that is, if it holds exactly
    /// `head_rise` of them, the number of times the region's head rose between the read that
    /// left the cursor at `after` and `read_version`. `None` also when more than `limit` would
    /// be returned.
    pub fn entries_after(
        &self,
        region: RegionId,
        after: Option<Stamp>,
        read_version: i64,
        head_rise: u64,
        limit: usize,
    ) -> Option<Vec<(Stamp, Delta)>> {
        if head_rise > limit as u64 {
            return None;
        }
        let regions = self.lock();
        let entries = regions.get(&region)?;
        let from = after.map_or(0, |after| entries.partition_point(|(s, _)| *s <= after));
        let found: Vec<(Stamp, Delta)> = entries
            .range(from..)
            .take_while(|(stamp, _)| commit_version(stamp) <= read_version)
            .map(|(stamp, delta)| (*stamp, delta.clone()))
            .collect();
        (found.len() as u64 == head_rise).then_some(found)
    }

    fn lock(&self) -> MutexGuard<'_, ByRegion> {
        self.regions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The commit version a commit versionstamp starts with (its first 8 bytes, big-endian).
pub fn commit_version(stamp: &Stamp) -> i64 {
    let mut version = [0u8; 8];
    version.copy_from_slice(&stamp[..8]);
    i64::from_be_bytes(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: RegionId = RegionId { x: 0, z: 0 };

    fn stamp(version: i64) -> Stamp {
        let mut stamp = [0u8; 10];
        stamp[..8].copy_from_slice(&version.to_be_bytes());
        stamp
    }

    fn delta(frame: u64) -> Delta {
        Delta {
            region: A,
            frame,
            changes: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    fn frames(entries: &[(Stamp, Delta)]) -> Vec<u64> {
        entries.iter().map(|(_, d)| d.frame).collect()
    }

    #[test]
    fn entries_after_a_cursor_are_given_only_when_they_account_for_every_head_rise() {
        let log = LocalLog::default();
        for version in [10, 20, 30] {
            log.record(A, stamp(version), &delta(version as u64));
        }
        let got = log.entries_after(A, Some(stamp(10)), 30, 2, 100);
        assert_eq!(got.as_deref().map(frames), Some(vec![20, 30]));
        // One more rise than recorded entries: an entry this process did not record.
        assert_eq!(log.entries_after(A, Some(stamp(10)), 30, 3, 100), None);
        // Entries committed after the read version are not the pass's.
        let got = log.entries_after(A, Some(stamp(10)), 25, 1, 100);
        assert_eq!(got.as_deref().map(frames), Some(vec![20]));
        // Too many for one pass, and a region never recorded.
        assert_eq!(log.entries_after(A, Some(stamp(10)), 30, 2, 1), None);
        let b = RegionId { x: 1, z: 0 };
        assert_eq!(log.entries_after(b, None, 30, 1, 100), None);
    }

    #[test]
    fn a_region_keeps_its_newest_entries_in_stamp_order() {
        let log = LocalLog::default();
        for version in (1..=KEPT_PER_REGION as i64 + 5).rev() {
            log.record(A, stamp(version), &delta(version as u64));
        }
        let newest = KEPT_PER_REGION as i64 + 5;
        // Recorded newest first: the oldest ones were dropped as they came, in place.
        let got = log.entries_after(A, Some(stamp(newest - 2)), newest, 2, 100);
        assert_eq!(
            got.as_deref().map(frames),
            Some(vec![newest as u64 - 1, newest as u64])
        );
        // Behind what is kept: the entries since the cursor are not all here.
        assert_eq!(
            log.entries_after(A, None, newest, newest as u64, usize::MAX),
            None
        );
    }
}
