//! The version clock: commit versions advance about 1,000,000 per second, as FDB's do.
//!
//! Invariants:
//! - `now()` never goes backwards;
//! - after a reopen the clock starts above every version stored before, so versionstamps stay
//!   unique and increasing for the life of the database;
//! - a manual clock (tests, simulation) moves only when told to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Versions per second.
pub const VERSIONS_PER_SECOND: u64 = 1_000_000;

/// FDB's MVCC window: a read version older than this many versions is too old.
pub const MVCC_WINDOW_VERSIONS: u64 = 5 * VERSIONS_PER_SECOND;

/// A clock tests and the simulator advance by hand, in microseconds (= versions).
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Moves the clock forward by `versions` (microseconds).
    pub fn advance(&self, versions: u64) {
        self.0.fetch_add(versions, Ordering::SeqCst);
    }

    fn elapsed(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The source of commit versions.
#[derive(Clone, Debug)]
pub struct VersionClock {
    base: u64,
    source: ClockSource,
}

#[derive(Clone, Debug)]
enum ClockSource {
    Real(Instant),
    Manual(ManualClock),
}

impl VersionClock {
    /// A clock starting just above `last_version`, real or manual.
    pub fn new(last_version: u64, manual: Option<ManualClock>) -> Self {
        let source = match manual {
            Some(clock) => ClockSource::Manual(clock),
            None => ClockSource::Real(Instant::now()),
        };
        Self {
            base: last_version + 1,
            source,
        }
    }

    /// The current version by the clock.
    pub fn now(&self) -> u64 {
        let elapsed = match &self.source {
            ClockSource::Real(start) => start.elapsed().as_micros() as u64,
            ClockSource::Manual(clock) => clock.elapsed(),
        };
        self.base + elapsed
    }

    /// True when a transaction reading at `read_version` has outlived the MVCC window.
    pub fn is_too_old(&self, read_version: u64) -> bool {
        self.now().saturating_sub(read_version) > MVCC_WINDOW_VERSIONS
    }
}
