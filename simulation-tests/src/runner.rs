//! Running many seeds on all cores, and the report.
//!
//! Invariants: each seed runs on its own fresh current-thread runtime (so no state leaks between
//! seeds), on one of `jobs` std threads that take seeds from a shared counter; results are sorted
//! by seed before reporting, so the report does not depend on thread timing (except wall time).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::SimConfig;
use crate::faults::FaultTally;
use crate::sim::{run_seed, RunResult};

/// Failures printed in full in a report.
pub const SHOWN_FAILURES: usize = 5;

/// The outcome of many seeds.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every run, by seed.
    pub runs: Vec<RunResult>,
    /// Wall-clock time of the whole batch.
    pub wall: Duration,
    /// Threads used.
    pub jobs: usize,
}

impl Report {
    /// Runs that passed.
    pub fn passed(&self) -> usize {
        self.runs.iter().filter(|r| r.violation.is_none()).count()
    }

    /// Runs that failed.
    pub fn failed(&self) -> impl Iterator<Item = &RunResult> {
        self.runs.iter().filter(|r| r.violation.is_some())
    }

    /// Faults injected over all runs.
    pub fn faults(&self) -> FaultTally {
        let mut total = FaultTally::default();
        for run in &self.runs {
            total.merge(&run.faults);
        }
        total
    }
}

/// Runs `count` seeds from `first` on `jobs` threads.
pub fn run_seeds(first: u64, count: u64, jobs: usize, config: &SimConfig) -> Report {
    let jobs = jobs.max(1);
    let next = AtomicU64::new(0);
    let results = Mutex::new(Vec::with_capacity(count as usize));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let result = run_seed(first + i, config);
                if let Ok(mut all) = results.lock() {
                    all.push(result);
                }
            });
        }
    });
    let mut runs = results.into_inner().unwrap_or_else(|p| p.into_inner());
    runs.sort_by_key(|r| r.seed);
    Report {
        runs,
        wall: start.elapsed(),
        jobs,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for run in self.failed().take(SHOWN_FAILURES) {
            if let Some((violation, trace)) = &run.violation {
                writeln!(f, "FAILED seed {}: {violation}", run.seed)?;
                writeln!(
                    f,
                    "  replay: cargo run -p sekai-simulation --release -- --seed {}",
                    run.seed
                )?;
                writeln!(f, "{trace}")?;
            }
        }
        let failed = self.runs.len() - self.passed();
        let frames: u64 = self.runs.iter().map(|r| r.summary.frames).sum();
        let inputs: u64 = self.runs.iter().map(|r| r.summary.inputs).sum();
        let rejected: u64 = self.runs.iter().map(|r| r.summary.rejected).sum();
        let events: u64 = self.runs.iter().map(|r| r.events).sum();
        let virtual_s: f64 = self.runs.iter().map(|r| r.virtual_us as f64 / 1e6).sum();
        writeln!(
            f,
            "seeds: {}  passed: {}  failed: {failed}",
            self.runs.len(),
            self.passed()
        )?;
        writeln!(
            f,
            "frames: {frames}  inputs applied: {inputs} ({rejected} rejected by the rules)  \
             trace events: {events}  virtual time: {virtual_s:.1}s"
        )?;
        if let [only] = self.runs.as_slice() {
            writeln!(f, "trace hash: {:016x}", only.trace_hash)?;
        }
        writeln!(f, "faults injected:")?;
        write!(f, "{}", self.faults())?;
        let secs = self.wall.as_secs_f64();
        writeln!(
            f,
            "wall time: {secs:.2}s on {} threads ({:.1} seeds/s)",
            self.jobs,
            self.runs.len() as f64 / secs.max(1e-9)
        )
    }
}
