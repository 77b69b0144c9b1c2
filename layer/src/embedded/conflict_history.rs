//! The resolver's memory: write-conflict ranges of recent commits, by commit version.
//!
//! Invariants:
//! - entries are in non-decreasing version order (the committer is the only writer);
//! - a transaction conflicts iff one of its read ranges intersects a write range committed at a
//!   version above its read version: the same rule as FDB's resolvers;
//! - entries older than the MVCC window are dropped: a transaction that old fails with
//!   `transaction_too_old` before it is checked.

use std::collections::VecDeque;

use super::key_range::KeyRange;

/// Recent write-conflict ranges.
#[derive(Debug, Default)]
pub struct ConflictHistory {
    entries: VecDeque<(u64, Vec<KeyRange>)>,
}

impl ConflictHistory {
    /// Records the write ranges of a transaction committed at `version`.
    pub fn record(&mut self, version: u64, writes: Vec<KeyRange>) {
        if !writes.is_empty() {
            self.entries.push_back((version, writes));
        }
    }

    /// True when a range in `reads` was written after `read_version`.
    pub fn conflicts(&self, read_version: u64, reads: &[KeyRange]) -> bool {
        self.entries
            .iter()
            .rev()
            .take_while(|(version, _)| *version > read_version)
            .any(|(_, writes)| writes.iter().any(|w| reads.iter().any(|r| r.intersects(w))))
    }

    /// Forgets entries at or below `oldest`.
    pub fn trim(&mut self, oldest: u64) {
        while self.entries.front().is_some_and(|(v, _)| *v <= oldest) {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_writes_conflict() {
        let mut h = ConflictHistory::default();
        h.record(10, vec![KeyRange::point(b"a")]);
        h.record(20, vec![KeyRange::point(b"b")]);
        assert!(h.conflicts(15, &[KeyRange::point(b"b")]));
        assert!(!h.conflicts(15, &[KeyRange::point(b"a")]));
        assert!(!h.conflicts(20, &[KeyRange::point(b"b")]));
        h.trim(10);
        assert!(!h.conflicts(0, &[KeyRange::point(b"a")]));
    }
}
