//! What one simulated run does: its size, its fault rates, and an optional planted bug.
//!
//! Invariant: a run is a pure function of `(seed, SimConfig)`; nothing else (wall-clock time,
//! thread scheduling, temporary paths) influences its trace.

use std::time::Duration;

/// A deliberate bug the checks must catch (test-only switch; `None` in real runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlantedBug {
    /// No bug.
    #[default]
    None,
    /// The edge drops one in every few deltas instead of pushing it.
    SkipDelta,
    /// The edge acknowledges some inputs without running T1.
    AckWithoutCommit,
    /// After an edge crash, the client resumes from the log's tail instead of its own cursor.
    ResumeAtTail,
    /// The client applies a delta's changes in reverse order.
    ReorderDelta,
    /// The edge serves a cached region at the head it was cached at, not the head read in the
    /// snapshot's own transaction (a stale cache).
    StaleCache,
    /// The shipped fan-out core moves a region's cursor past the cut of a pass cut short
    /// (`PlantedFanoutBug::CursorPastCut`): the commits after the cut are never handed over.
    FanoutCursorPastCut,
    /// The shipped fan-out router forgets where entities were
    /// (`PlantedFanoutBug::RouteByNewCellOnly`): a commit reaches only the subscriptions of the
    /// cells its changes land in, so a subscriber whose entity walked out of its area never hears
    /// of it.
    FanoutRouteByNewCellOnly,
}

/// Sizes and fault rates of one run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Players, each with one bot client.
    pub players: usize,
    /// Edge nodes.
    pub edges: usize,
    /// Processor nodes; they share the regions through `assign` (fair shares, takeover). The
    /// last one (when there are two or more) joins during the run instead of at the start.
    pub nodes: usize,
    /// Scheduler steps before the run goes quiet.
    pub steps: usize,
    /// Most unacknowledged inputs a client keeps in flight.
    pub window: usize,
    /// Density of generated resources (per 100 m²).
    pub density: f32,
    /// Probability of each engine commit fault, per commit with writes.
    pub engine_fault_rate: f64,
    /// Probability of each watch fault, per watch.
    pub watch_fault_rate: f64,
    /// Longest injected watch delay.
    pub max_watch_delay: Duration,
    /// Probability, per step, of one region processor's crash inside a live node (its hot state
    /// and frame in flight lost; the node takes its own lease back).
    pub processor_crash: f64,
    /// Probability, per step, of a processor node stalling longer than its leases.
    pub processor_stall: f64,
    /// Probability, per step, of a processor node crash (no release; back later as a new node).
    pub node_crash: f64,
    /// Probability, per step, of a processor node leaving gracefully (back later as a new node).
    pub node_leave: f64,
    /// Probability, per step, of an edge crash.
    pub edge_crash: f64,
    /// Probability, per step, of a client disconnect.
    pub client_disconnect: f64,
    /// Probability, per step, of a client restart (it loses its mirror and resubscribes).
    pub client_restart: f64,
    /// Probability that a client sends an input twice.
    pub duplicate_input: f64,
    /// Probability that a client also sends an input far past its next seq (trying to open a
    /// gap of thousands); the edge must refuse it.
    pub gap_probe: f64,
    /// Probability, per step, of an engine crash and reopen.
    pub engine_crash: f64,
    /// Bytes of deltas a session's outbox holds before coalescing (a client that keeps up).
    pub outbox_budget: usize,
    /// Probability that a session's client is slow: it takes one message per
    /// `slow_delivery_us` and its outbox has a budget drawn from `slow_budget`, so it gets
    /// coalesced deltas, or a reset and a fresh snapshot.
    pub slow_session: f64,
    /// Delivery interval of a slow client, in µs.
    pub slow_delivery_us: std::ops::Range<u64>,
    /// Outbox budget of a slow client's session, in bytes.
    pub slow_budget: std::ops::Range<usize>,
    /// The bug to plant.
    pub bug: PlantedBug,
    /// Print every trace event to stderr.
    pub echo_trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            players: 6,
            edges: 2,
            nodes: 2,
            steps: 3_000,
            window: 3,
            density: 0.02,
            engine_fault_rate: 0.03,
            watch_fault_rate: 0.05,
            max_watch_delay: Duration::from_millis(30),
            processor_crash: 0.0007,
            processor_stall: 0.0003,
            node_crash: 0.0004,
            node_leave: 0.0004,
            edge_crash: 0.0005,
            client_disconnect: 0.001,
            client_restart: 0.0004,
            duplicate_input: 0.03,
            gap_probe: 0.01,
            engine_crash: 0.0002,
            outbox_budget: 64 * 1024,
            slow_session: 0.25,
            slow_delivery_us: 20_000..150_000,
            slow_budget: 600..4_000,
            bug: PlantedBug::None,
            echo_trace: false,
        }
    }
}
