//! The kinds of fault a run injects, and their counts.
//!
//! Engine faults (commit errors, watch faults) are drawn by the embedded engine from its own
//! seeded stream and read back from `EmbeddedDatabase::fault_counts`; the others are decided by
//! the simulator's scheduler. Every kind is counted so a report shows each one was reached.

use std::collections::BTreeMap;
use std::fmt;

use sekai_layer::embedded::FaultCounts;

/// One kind of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// `not_committed` (1020) injected before a commit.
    NotCommitted,
    /// `transaction_too_old` (1007) injected before a commit.
    TooOld,
    /// `commit_unknown_result` (1021) without the commit applied.
    UnknownNotApplied,
    /// `commit_unknown_result` (1021) after the commit applied.
    UnknownApplied,
    /// A watch fired without a change.
    SpuriousWatch,
    /// A watch fire was delayed.
    DelayedWatch,
    /// One region's processor crashed inside a live node (hot state and frame dropped).
    ProcessorCrash,
    /// A processor node stalled past its leases and came back as a zombie.
    ProcessorStall,
    /// A processor took over a lease another holder had.
    LeaseTakeover,
    /// An edge crashed; its clients reconnect elsewhere with their cursors.
    EdgeCrash,
    /// A client disconnected and later reconnected.
    ClientDisconnect,
    /// A client restarted, losing its mirror.
    ClientRestart,
    /// A client resent an unacknowledged input.
    ClientResend,
    /// A client sent an input twice.
    DuplicateInput,
    /// The engine crashed and was reopened.
    EngineCrash,
    /// A slow client's outbox coalesced its queued deltas.
    OutboxCoalesced,
    /// A slow client's outbox gave up: reset, the client resubscribes from a snapshot.
    OutboxReset,
    /// A client sent a seq thousands past its next one; the edge refused it.
    GapProbe,
    /// A snapshot found its region cached at an older head and read it again (never served).
    StaleCacheRefused,
    /// A session's fan-out pass cut short (a region's log longer than a pass reads).
    FanoutCut,
    /// A processor node crashed (no release: its leases expire).
    NodeCrash,
    /// A processor node joined (a new incarnation, holding nothing).
    NodeJoin,
    /// A processor node left gracefully (released its leases, left the node list).
    NodeLeave,
    /// An input stored by the frame of a processor beside its edge (`world::direct`), not T1.
    StoredDirectly,
    /// An input handed to a processor beside its edge that dropped it: stored with T1 instead.
    DirectDropped,
    /// A region's new change-log entries taken from the local log of the processors beside the
    /// edge (`world::local_log`), not read from the database.
    LocalLogRead,
    /// A commit of a subscriber's regions the fan-out's router judged it would not see
    /// (`fanout::route`), so it was not handed over.
    RoutedPast,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [FaultKind; 27] = [
        FaultKind::NotCommitted,
        FaultKind::TooOld,
        FaultKind::UnknownNotApplied,
        FaultKind::UnknownApplied,
        FaultKind::SpuriousWatch,
        FaultKind::DelayedWatch,
        FaultKind::ProcessorCrash,
        FaultKind::ProcessorStall,
        FaultKind::LeaseTakeover,
        FaultKind::EdgeCrash,
        FaultKind::ClientDisconnect,
        FaultKind::ClientRestart,
        FaultKind::ClientResend,
        FaultKind::DuplicateInput,
        FaultKind::EngineCrash,
        FaultKind::OutboxCoalesced,
        FaultKind::OutboxReset,
        FaultKind::GapProbe,
        FaultKind::StaleCacheRefused,
        FaultKind::FanoutCut,
        FaultKind::NodeCrash,
        FaultKind::NodeJoin,
        FaultKind::NodeLeave,
        FaultKind::StoredDirectly,
        FaultKind::DirectDropped,
        FaultKind::LocalLogRead,
        FaultKind::RoutedPast,
    ];

    /// The name used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::NotCommitted => "not_committed (1020)",
            FaultKind::TooOld => "transaction_too_old (1007)",
            FaultKind::UnknownNotApplied => "commit_unknown_result, not applied",
            FaultKind::UnknownApplied => "commit_unknown_result, applied",
            FaultKind::SpuriousWatch => "spurious watch fire",
            FaultKind::DelayedWatch => "delayed watch fire",
            FaultKind::ProcessorCrash => "region processor crash",
            FaultKind::ProcessorStall => "processor stall (zombie)",
            FaultKind::LeaseTakeover => "lease takeover",
            FaultKind::EdgeCrash => "edge crash",
            FaultKind::ClientDisconnect => "client disconnect",
            FaultKind::ClientRestart => "client restart",
            FaultKind::ClientResend => "client resend",
            FaultKind::DuplicateInput => "duplicate input",
            FaultKind::EngineCrash => "engine crash + reopen",
            FaultKind::OutboxCoalesced => "outbox coalesced (slow client)",
            FaultKind::OutboxReset => "outbox reset (slow client)",
            FaultKind::GapProbe => "seq gap attempt (refused)",
            FaultKind::StaleCacheRefused => "stale cached region (refused)",
            FaultKind::FanoutCut => "fan-out pass cut short",
            FaultKind::NodeCrash => "processor node crash",
            FaultKind::NodeJoin => "processor node join",
            FaultKind::NodeLeave => "processor node leave (graceful)",
            FaultKind::StoredDirectly => "input stored directly (T1 in the frame)",
            FaultKind::DirectDropped => "direct input dropped, stored by T1",
            FaultKind::LocalLogRead => "fan-out took local log entries",
            FaultKind::RoutedPast => "commit routed past a subscriber",
        }
    }
}

/// How many faults of each kind were injected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultTally {
    counts: BTreeMap<FaultKind, u64>,
}

impl FaultTally {
    /// Counts `n` faults of `kind`.
    pub fn add(&mut self, kind: FaultKind, n: u64) {
        if n > 0 {
            *self.counts.entry(kind).or_insert(0) += n;
        }
    }

    /// The count of `kind`.
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &FaultTally) {
        for (kind, n) in &other.counts {
            self.add(*kind, *n);
        }
    }

    /// Adds the engine's counters.
    pub fn add_engine(&mut self, counts: &FaultCounts) {
        self.add(FaultKind::NotCommitted, counts.not_committed);
        self.add(FaultKind::TooOld, counts.too_old);
        self.add(FaultKind::UnknownNotApplied, counts.unknown_not_applied);
        self.add(FaultKind::UnknownApplied, counts.unknown_applied);
        self.add(FaultKind::SpuriousWatch, counts.spurious_watch);
        self.add(FaultKind::DelayedWatch, counts.delayed_watch);
    }

    /// The kinds never injected.
    pub fn missing(&self) -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|k| self.get(*k) == 0)
            .collect()
    }
}

impl fmt::Display for FaultTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for kind in FaultKind::ALL {
            writeln!(f, "  {:<36} {:>10}", kind.name(), self.get(kind))?;
        }
        Ok(())
    }
}

/// The engine's counters accumulated since `before` (counters only grow within one engine).
pub fn engine_delta(before: &FaultCounts, after: &FaultCounts) -> FaultCounts {
    FaultCounts {
        not_committed: after.not_committed.saturating_sub(before.not_committed),
        too_old: after.too_old.saturating_sub(before.too_old),
        unknown_not_applied: after
            .unknown_not_applied
            .saturating_sub(before.unknown_not_applied),
        unknown_applied: after.unknown_applied.saturating_sub(before.unknown_applied),
        spurious_watch: after.spurious_watch.saturating_sub(before.spurious_watch),
        delayed_watch: after.delayed_watch.saturating_sub(before.delayed_watch),
    }
}
