//! Seeded fault injection, for tests and the simulator.
//!
//! Invariants:
//! - every decision comes from one ChaCha stream seeded by `FaultConfig::seed`, so a
//!   single-threaded caller replays the same faults from the same seed;
//! - injected errors are the ones FDB's own simulator injects client-side: `not_committed` and
//!   `transaction_too_old` before commit, `commit_unknown_result` without the commit applied, and
//!   `commit_unknown_result` after a commit that did apply; plus delayed and spurious watch fires;
//! - each injected fault is counted, so a report shows every kind was reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::kv::{codes, FdbError};

/// How often each fault fires (probabilities in `[0, 1]`).
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Seed of the fault stream.
    pub seed: u64,
    /// A commit fails with `not_committed` before applying.
    pub not_committed: f64,
    /// A commit fails with `transaction_too_old` before applying.
    pub too_old: f64,
    /// A commit fails with `commit_unknown_result` and does not apply.
    pub unknown_not_applied: f64,
    /// A commit applies and then reports `commit_unknown_result`.
    pub unknown_applied: f64,
    /// A watch fires spuriously as soon as it is registered.
    pub spurious_watch: f64,
    /// A watch fire is delayed by up to `max_watch_delay`.
    pub delayed_watch: f64,
    /// The longest injected watch delay.
    pub max_watch_delay: Duration,
}

impl FaultConfig {
    /// Every commit fault at probability `p`, watch faults too, from `seed`.
    pub fn uniform(seed: u64, p: f64) -> Self {
        Self {
            seed,
            not_committed: p,
            too_old: p,
            unknown_not_applied: p,
            unknown_applied: p,
            spurious_watch: p,
            delayed_watch: p,
            max_watch_delay: Duration::from_millis(20),
        }
    }
}

/// How many faults of each kind were injected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Injected `not_committed`.
    pub not_committed: u64,
    /// Injected `transaction_too_old`.
    pub too_old: u64,
    /// Injected `commit_unknown_result`, not applied.
    pub unknown_not_applied: u64,
    /// Injected `commit_unknown_result` after applying.
    pub unknown_applied: u64,
    /// Spurious watch fires.
    pub spurious_watch: u64,
    /// Delayed watch fires.
    pub delayed_watch: u64,
}

/// What the injector decided for one commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFault {
    /// No fault.
    None,
    /// Fail before applying, with this error.
    FailBefore(FdbError),
    /// Apply, then report `commit_unknown_result`.
    UnknownAfterApply,
}

/// The metric label of each fault kind, in the order of `FaultInjector::counts`.
const FAULT_KINDS: [&str; 6] = [
    "not_committed",
    "transaction_too_old",
    "unknown_not_applied",
    "unknown_applied",
    "spurious_watch",
    "delayed_watch",
];

/// The seeded source of faults.
#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    rng: Mutex<ChaCha8Rng>,
    counts: [AtomicU64; 6],
}

impl FaultInjector {
    /// An injector for `config`.
    pub fn new(config: FaultConfig) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed)),
            config,
            counts: Default::default(),
        }
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0
            && self
                .rng
                .lock()
                .map(|mut r| r.gen_bool(p.min(1.0)))
                .unwrap_or(false)
    }

    fn count(&self, index: usize) {
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        crate::telemetry::fault_injected(FAULT_KINDS[index]);
    }

    /// Decides the fault for one commit with writes.
    pub fn commit_fault(&self) -> CommitFault {
        let c = &self.config;
        let before = [
            (c.not_committed, codes::NOT_COMMITTED, 0),
            (c.too_old, codes::TRANSACTION_TOO_OLD, 1),
            (c.unknown_not_applied, codes::COMMIT_UNKNOWN_RESULT, 2),
        ];
        for (p, code, index) in before {
            if self.roll(p) {
                self.count(index);
                return CommitFault::FailBefore(FdbError::from_code(code));
            }
        }
        if self.roll(c.unknown_applied) {
            self.count(3);
            return CommitFault::UnknownAfterApply;
        }
        CommitFault::None
    }

    /// True when a new watch should fire spuriously.
    pub fn spurious_watch(&self) -> bool {
        let fire = self.roll(self.config.spurious_watch);
        if fire {
            self.count(4);
        }
        fire
    }

    /// The delay to add to one watch fire.
    pub fn watch_delay(&self) -> Duration {
        if !self.roll(self.config.delayed_watch) {
            return Duration::ZERO;
        }
        self.count(5);
        let max = self.config.max_watch_delay.as_micros().max(1) as u64;
        let micros = self
            .rng
            .lock()
            .map(|mut r| r.gen_range(0..max))
            .unwrap_or(0);
        Duration::from_micros(micros)
    }

    /// The faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        let n = |i: usize| self.counts[i].load(Ordering::Relaxed);
        FaultCounts {
            not_committed: n(0),
            too_old: n(1),
            unknown_not_applied: n(2),
            unknown_applied: n(3),
            spurious_watch: n(4),
            delayed_watch: n(5),
        }
    }
}
