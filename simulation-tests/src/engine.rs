//! The embedded engine of one run: opened in fault-injection mode with inline commits and a
//! manual clock, crashed (every handle dropped) and reopened on the same directory.
//!
//! Invariants:
//! - the data directory lives under `/dev/shm` when it exists (tmpfs: fsync is cheap, so a run
//!   costs CPU, not disk) and is removed with the run;
//! - the manual clock moves only through [`Engine::advance`], in step with tokio's paused clock;
//!   a reopened engine gets a fresh clock and a fresh fault stream derived from the run's seed;
//! - fault counts survive reopens ([`Engine::fault_counts`] adds up every incarnation).

use std::path::Path;
use std::time::Duration;

use sekai_layer::embedded::{
    EmbeddedDatabase, EngineOptions, FaultConfig, FaultCounts, ManualClock, OpenError,
};

use crate::config::SimConfig;
use crate::faults::{FaultKind, FaultTally};
use crate::sim_db::SimDatabase;

/// The run's database handle type.
pub type Db = SimDatabase<EmbeddedDatabase>;

/// Why the engine could not be (re)opened.
#[derive(Debug)]
pub enum EngineError {
    /// The temporary directory.
    TempDir(std::io::Error),
    /// The engine.
    Open(OpenError),
    /// Used while crashed.
    Closed,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::TempDir(e) => write!(f, "cannot create the data directory: {e}"),
            EngineError::Open(e) => write!(f, "cannot open the engine: {e}"),
            EngineError::Closed => write!(f, "the engine is closed"),
        }
    }
}

impl std::error::Error for EngineError {}

/// The engine of one run.
pub struct Engine {
    dir: tempfile::TempDir,
    db: Option<Db>,
    clock: ManualClock,
    seed: u64,
    incarnation: u64,
    config: SimConfig,
    /// Fault counts of earlier incarnations.
    past: FaultTally,
}

impl Engine {
    /// Opens a fresh engine for the run of `seed`.
    pub fn open(seed: u64, config: &SimConfig) -> Result<Self, EngineError> {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("sekai-sim-")
                .tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("sekai-sim-").tempdir()
        }
        .map_err(EngineError::TempDir)?;
        let mut engine = Self {
            dir,
            db: None,
            clock: ManualClock::default(),
            seed,
            incarnation: 0,
            config: config.clone(),
            past: FaultTally::default(),
        };
        engine.reopen()?;
        Ok(engine)
    }

    fn options(&self) -> EngineOptions {
        let c = &self.config;
        let rate = c.engine_fault_rate;
        EngineOptions {
            faults: Some(FaultConfig {
                seed: self.seed ^ self.incarnation.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                not_committed: rate,
                too_old: rate / 2.0,
                unknown_not_applied: rate,
                unknown_applied: rate,
                spurious_watch: c.watch_fault_rate,
                delayed_watch: c.watch_fault_rate,
                max_watch_delay: c.max_watch_delay,
            }),
            manual_clock: Some(self.clock.clone()),
            inline_commits: true,
            ..EngineOptions::default()
        }
    }

    /// The handle (fails while crashed).
    pub fn db(&self) -> Result<&Db, EngineError> {
        self.db.as_ref().ok_or(EngineError::Closed)
    }

    /// Moves the engine's clock by `us` microseconds (= versions).
    pub fn advance(&self, us: u64) {
        self.clock.advance(us);
    }

    /// Crashes: drops this handle. The caller must have dropped every other one (tasks,
    /// transactions) first, or the directory stays locked.
    pub fn crash(&mut self) {
        if let Some(db) = self.db.take() {
            self.past.add_engine(&db.inner().fault_counts());
            self.past.add(FaultKind::EngineCrash, 1);
        }
    }

    /// Opens the engine again on the same directory, recovering what was committed.
    pub fn reopen(&mut self) -> Result<(), EngineError> {
        self.incarnation += 1;
        self.clock = ManualClock::default();
        let db = EmbeddedDatabase::open_with(self.dir.path(), self.options())
            .map_err(EngineError::Open)?;
        self.db = Some(SimDatabase::new(db));
        Ok(())
    }

    /// The current incarnation's raw counters.
    pub fn current_counts(&self) -> FaultCounts {
        self.db
            .as_ref()
            .map(|db| db.inner().fault_counts())
            .unwrap_or_default()
    }

    /// Faults injected by every incarnation so far (engine faults and engine crashes).
    pub fn fault_counts(&self) -> FaultTally {
        let mut total = self.past.clone();
        total.add_engine(&self.current_counts());
        total
    }

    /// The longest injected watch delay.
    pub fn max_watch_delay(&self) -> Duration {
        self.config.max_watch_delay
    }
}
