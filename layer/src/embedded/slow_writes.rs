//! Reports commit groups whose durable write stalled.
//!
//! The committer writes one group at a time, and every commit of the server waits for the group
//! it joins, so a slow write (a store flush holding the journal, a slow fsync) stalls the whole
//! world at once: on one core at 400 bots, a single 40 ms write shows as a 40 ms step in every
//! input's latency for that instant. Each group's write time goes to the
//! `sekai_kv_group_write_seconds` histogram; this module adds a log line for the stalls, so
//! their times can be set beside the store's flushes and the clients' latencies.
//!
//! Invariants: a write of [`SLOW_GROUP_WRITE`] or more is counted once; at most one warning per
//! [`REPORT_EVERY`] is logged, covering every slow write counted since the previous one, so a
//! disk that stays slow costs one line a second, not one per group.

use std::time::{Duration, Instant};

/// A group write at least this long is a stall: longer than a 90 Hz frame.
pub const SLOW_GROUP_WRITE: Duration = Duration::from_millis(11);

/// The least time between two warnings.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The slow writes since the last warning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowWrites {
    /// Slow writes counted.
    pub count: u64,
    /// The longest of them.
    pub longest: Duration,
    /// Commits in the groups they wrote.
    pub commits: u64,
}

/// Counts slow group writes and says when to report them.
#[derive(Debug, Default)]
pub struct SlowWriteReporter {
    pending: SlowWrites,
    last_report: Option<Instant>,
}

impl SlowWriteReporter {
    /// Notes a group of `commits` written in `took`, at `now`; returns the slow writes to report,
    /// if a warning is due.
    pub fn note(&mut self, now: Instant, took: Duration, commits: u64) -> Option<SlowWrites> {
        if took < SLOW_GROUP_WRITE {
            return None;
        }
        self.pending.count += 1;
        self.pending.longest = self.pending.longest.max(took);
        self.pending.commits += commits;
        let due = self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_EVERY);
        if !due {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.pending))
    }

    /// Notes a group write as [`Self::note`] does, and logs the warning when one is due.
    pub fn note_and_warn(&mut self, now: Instant, took: Duration, commits: u64) {
        if let Some(slow) = self.note(now, took, commits) {
            tracing::warn!(
                slow_writes = slow.count,
                longest_ms = slow.longest.as_secs_f64() * 1e3,
                commits_held = slow.commits,
                "commit groups took {} ms or more to write durably, and every commit waited \
                 (a store flush or compaction holding the journal, or a slow disk)",
                SLOW_GROUP_WRITE.as_millis()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_writes_are_never_reported() {
        let mut reporter = SlowWriteReporter::default();
        let start = Instant::now();
        for i in 0..100 {
            let took = SLOW_GROUP_WRITE - Duration::from_micros(1);
            assert_eq!(reporter.note(start + REPORT_EVERY * i, took, 5), None);
        }
    }

    #[test]
    fn slow_writes_are_reported_at_most_once_per_period_and_none_is_lost() {
        let mut reporter = SlowWriteReporter::default();
        let start = Instant::now();
        let slow = SLOW_GROUP_WRITE;
        let first = reporter.note(start, slow, 3);
        assert_eq!(
            first,
            Some(SlowWrites {
                count: 1,
                longest: slow,
                commits: 3
            })
        );
        // Within the period: counted, not reported.
        let ms = Duration::from_millis;
        assert_eq!(reporter.note(start + ms(10), slow * 4, 7), None);
        assert_eq!(reporter.note(start + ms(20), slow * 2, 1), None);
        // A fast write in between changes nothing.
        assert_eq!(reporter.note(start + ms(30), ms(1), 9), None);
        let second = reporter.note(start + REPORT_EVERY, slow, 2);
        assert_eq!(
            second,
            Some(SlowWrites {
                count: 3,
                longest: slow * 4,
                commits: 10
            })
        );
        // The next period starts empty.
        let third = reporter.note(start + REPORT_EVERY * 2, slow, 1);
        assert_eq!(
            third,
            Some(SlowWrites {
                count: 1,
                longest: slow,
                commits: 1
            })
        );
    }
}
