//! The simulator: one seeded run of bots, edges and processor nodes (sharing the regions through
//! the shipped assignment) over the embedded engine.
//!
//! Everything runs on one current-thread tokio runtime with paused time. The scheduler owns all
//! state; each step it (maybe) injects a fault, polls the armed watches, picks one ready action
//! with its ChaCha8 rng (poll one in-flight task, send an input, deliver messages, start a T1, a
//! read or a frame) and advances virtual time, moving tokio's clock and the engine's manual clock
//! together. After `steps` steps faults stop and the run is driven until quiet; then the checks
//! run.
//!
//! Invariants:
//! - same seed and config ⇒ same trace hash: every choice comes from the rng or from the
//!   engine's seeded fault stream, and no wall-clock time or hash-map order is consulted;
//! - a violation stops the run and is reported with the seed and the trace's tail.

mod actions;
mod assignment;
mod chaos;
mod outputs;
mod quiet;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::embedded::FaultCounts;
use sekai_schema::{RegionId, WorldKeys};

use crate::client::Client;
use crate::config::SimConfig;
use crate::edge::Edge;
use crate::engine::Engine;
use crate::faults::{engine_delta, FaultTally};
use crate::processor_node::ProcessorNode;
use crate::tasks::Task;
use crate::trace::{Event, Trace};
use crate::world_setup::WorldSpec;
use sekai_layer::world::audit::{Ledger, OnlineAudit, Violation, WorldSummary};

/// Longest virtual time a step that did something takes (one KV call), in µs.
const MAX_BUSY_STEP_US: u64 = 400;

/// Latest start of the processor node that joins during the run, in µs.
const LATE_JOIN_US: u64 = 3_000_000;

/// Virtual time skipped by a step that found nothing ready, in µs.
const IDLE_STEP_US: std::ops::Range<u64> = 1_000..10_000;

/// What one run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// The trace hash (equal for equal seeds).
    pub trace_hash: u64,
    /// Events recorded.
    pub events: u64,
    /// Faults injected, by kind.
    pub faults: FaultTally,
    /// Figures of the final world.
    pub summary: WorldSummary,
    /// Virtual time the run took, in µs.
    pub virtual_us: u64,
    /// The first violation, with the trace's tail.
    pub violation: Option<(Violation, String)>,
}

/// Runs `seed` with `config` on a fresh current-thread runtime with paused time.
pub fn run_seed(seed: u64, config: &SimConfig) -> RunResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(Simulation::run(seed, config.clone())),
        Err(error) => RunResult::failed(seed, Violation::new("setup", error.to_string())),
    }
}

impl RunResult {
    fn failed(seed: u64, violation: Violation) -> Self {
        Self {
            seed,
            trace_hash: 0,
            events: 0,
            faults: FaultTally::default(),
            summary: WorldSummary::default(),
            virtual_us: 0,
            violation: Some((violation, String::new())),
        }
    }
}

/// The state of one run.
pub(crate) struct Simulation {
    seed: u64,
    config: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    engine: Engine,
    keys: WorldKeys,
    world: WorldSpec,
    nodes: Vec<ProcessorNode>,
    edges: Vec<Edge>,
    clients: Vec<Client>,
    tasks: Vec<Task>,
    ledger: Ledger,
    /// The layer's online checker: every committed frame and every ack, as it happens.
    online: OnlineAudit,
    trace: Trace,
    tally: FaultTally,
    engine_counts: FaultCounts,
    next_session: u64,
    epochs: BTreeMap<RegionId, u64>,
    violation: Option<Violation>,
}

impl Simulation {
    async fn run(seed: u64, config: SimConfig) -> RunResult {
        let mut sim = match Self::setup(seed, config).await {
            Ok(sim) => sim,
            Err(violation) => return RunResult::failed(seed, violation),
        };
        for _ in 0..sim.config.steps {
            if sim.violation.is_some() {
                break;
            }
            sim.step(true).await;
        }
        let summary = match sim.violation {
            Some(_) => WorldSummary::default(),
            None => sim.quiesce_and_check().await,
        };
        sim.result(summary)
    }

    async fn setup(seed: u64, config: SimConfig) -> Result<Self, Violation> {
        let setup = |e: &dyn std::fmt::Display| Violation::new("setup", e.to_string());
        let engine = Engine::open(seed, &config).map_err(|e| setup(&e))?;
        let keys = WorldSpec::keys();
        let world = WorldSpec::build(seed, config.players, config.density);
        let db = engine.db().map_err(|e| setup(&e))?;
        world.load(db.inner(), &keys).await.map_err(|e| setup(&e))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let late = config.nodes >= 2;
        let nodes = (0..config.nodes)
            .map(|i| {
                let join_at =
                    (late && i + 1 == config.nodes).then(|| rng.gen_range(0..LATE_JOIN_US));
                ProcessorNode::new(&mut rng, 0, join_at)
            })
            .collect();
        let clients = world
            .players
            .iter()
            .map(|p| {
                let mut client = Client::new(p);
                client.reorder = config.bug == crate::config::PlantedBug::ReorderDelta;
                client
            })
            .collect();
        let engine_counts = engine.current_counts();
        let mut trace = Trace::default();
        trace.echo = config.echo_trace;
        Ok(Self {
            seed,
            edges: (0..config.edges)
                .map(|_| Edge::new(config.bug == crate::config::PlantedBug::StaleCache))
                .collect(),
            config,
            rng,
            now: 0,
            engine,
            keys,
            world,
            nodes,
            clients,
            tasks: Vec::new(),
            ledger: Ledger::default(),
            online: OnlineAudit::new(),
            trace,
            tally: FaultTally::default(),
            engine_counts,
            next_session: 0,
            epochs: BTreeMap::new(),
            violation: None,
        })
    }

    /// One scheduler step: maybe a fault, watches, one action, time.
    async fn step(&mut self, faults: bool) -> bool {
        if faults {
            self.maybe_fault().await;
        }
        self.housekeeping();
        self.poll_watches();
        let acted = self.act(faults).await;
        let dt = if acted {
            self.rng.gen_range(0..=MAX_BUSY_STEP_US)
        } else {
            self.rng.gen_range(IDLE_STEP_US)
        };
        self.advance(dt).await;
        self.note_engine_faults();
        acted
    }

    /// Moves virtual time by `us`: tokio's paused clock and the engine's clock together.
    async fn advance(&mut self, us: u64) {
        if us == 0 {
            return;
        }
        tokio::time::advance(Duration::from_micros(us)).await;
        self.engine.advance(us);
        self.now += us;
    }

    fn record(&mut self, event: Event) {
        self.trace.record(self.now, event);
    }

    fn fail(&mut self, violation: Violation) {
        if self.violation.is_none() {
            self.violation = Some(violation);
        }
    }

    fn note_engine_faults(&mut self) {
        let counts = self.engine.current_counts();
        if counts != self.engine_counts {
            let delta = engine_delta(&self.engine_counts, &counts);
            self.engine_counts = counts;
            self.record(Event::EngineFaults(format!("{delta:?}")));
        }
    }

    fn result(self, summary: WorldSummary) -> RunResult {
        let mut faults = self.tally.clone();
        faults.merge(&self.engine.fault_counts());
        let violation = self
            .violation
            .map(|v| (v, format!("seed {}\n{}", self.seed, self.trace)));
        RunResult {
            seed: self.seed,
            trace_hash: self.trace.hash(),
            events: self.trace.len(),
            faults,
            summary,
            virtual_us: self.now,
            violation,
        }
    }
}
