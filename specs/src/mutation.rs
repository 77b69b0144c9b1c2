//! Deliberate bugs that the checker must catch.
//!
//! Each [`Mutation`] removes one safeguard of the protocol. The test suite checks the mutated
//! model and asserts that the property named by [`Mutation::breaks`] gets a counterexample,
//! which shows that the property is not vacuous at the checked bounds.

use crate::properties::names;

/// One deliberate deviation from the protocol (or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// The protocol as specified.
    None,
    /// Harvest ignores the tree's hp, so hp can drop below zero.
    HarvestDeadTree,
    /// T2 applies every pending input without consulting the `applied/(region, player)` record,
    /// so a duplicate inbox entry left by a retried T1 is applied twice.
    NoSeqCheck,
    /// T2 treats the applied record as a high-water mark (`seq > applied`) instead of requiring
    /// the next seq (`seq = applied + 1`): a pipelined input overtakes a retried one.
    HighWaterMark,
    /// T2 clears every pending input it read, including those it could not apply yet
    /// because an earlier seq of the same player is still missing.
    ClearGapped,
    /// The edge acknowledges a T1 before its commit is known to have applied, and does not retry.
    AckBeforeDurable,
    /// A frame that applied no input advances the frame number without writing its frame record.
    FrameSkip,
    /// T2 does not read the lease, so a stale holder writes from its stale cache.
    NoLeaseCheck,
    /// After a T2 `commit_unknown_result` the processor keeps its cache as if nothing committed.
    UnknownKeepsCache,
    /// A resuming edge jumps its cursor to the log head instead of replaying or re-snapshotting.
    ResumeWithoutCursor,
    /// The edge replays whatever the change log still holds after its cursor, even when entries
    /// after the cursor were trimmed (it should take a snapshot instead).
    ReplayIgnoresTrim,
}

impl Mutation {
    /// Every mutation that must be caught (all but [`Mutation::None`]).
    pub const ALL: [Mutation; 10] = [
        Mutation::HarvestDeadTree,
        Mutation::NoSeqCheck,
        Mutation::HighWaterMark,
        Mutation::ClearGapped,
        Mutation::AckBeforeDurable,
        Mutation::FrameSkip,
        Mutation::NoLeaseCheck,
        Mutation::UnknownKeepsCache,
        Mutation::ResumeWithoutCursor,
        Mutation::ReplayIgnoresTrim,
    ];

    /// The name of the property this mutation is expected to violate.
    pub fn breaks(self) -> Option<&'static str> {
        match self {
            Mutation::None => None,
            Mutation::HarvestDeadTree => Some(names::TYPE_OK),
            Mutation::NoSeqCheck => Some(names::AT_MOST_ONCE),
            Mutation::HighWaterMark => Some(names::PER_PLAYER_ORDER),
            Mutation::ClearGapped => Some(names::ACKED_APPLIED_OR_PENDING),
            Mutation::AckBeforeDurable => Some(names::NO_ACKED_LOST),
            Mutation::FrameSkip => Some(names::CONTIGUOUS_FRAMES),
            Mutation::NoLeaseCheck => Some(names::CONSERVATION),
            Mutation::UnknownKeepsCache => Some(names::HOLDER_CACHE_COHERENT),
            Mutation::ResumeWithoutCursor => Some(names::VIEW_MATCHES_DB_WHEN_QUIET),
            Mutation::ReplayIgnoresTrim => Some(names::VIEW_MATCHES_DB_WHEN_QUIET),
        }
    }
}
