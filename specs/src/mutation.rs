//! Deliberate bugs that the checker must catch.
//!
//! Each [`Mutation`] removes one safeguard of the protocol. The test suite checks the mutated
//! model and asserts that the property named by [`Mutation::breaks`] gets a counterexample,
//! which shows that the property is not vacuous at the checked bounds.
//!
//! Two mutations of T2's gap handling ([`Mutation::EQUIVALENT`]) can no longer be caught: the
//! edge's gate stores only `gate + 1`, so no input ever waits behind a gap (invariant `NoGap`)
//! and T2's "keep it for later" branch is never taken. The tests check that those mutants
//! indeed pass every invariant; T2 keeps the branch as a defence for writers other than the
//! edge (such as T2's own forwarding between regions, which the model leaves out).

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
    /// the next seq (`seq = applied + 1`), so an input behind a gap would overtake the missing
    /// one. Equivalent to the protocol now that the gate opens no gaps.
    HighWaterMark,
    /// T2 clears every pending input it read, including those it could not apply yet
    /// because an earlier seq of the same player is still missing. Equivalent to the protocol
    /// now that the gate opens no gaps.
    ClearGapped,
    /// The edge acknowledges a T1 before its commit is known to have applied, and does not retry.
    AckBeforeDurable,
    /// Login reports the player's highest *applied* seq as `lastSeq` (and the new session's
    /// gate starts there) instead of the durable record: the old rule. A client whose
    /// acknowledged inputs are not applied yet reuses their seqs for new inputs, which the gate
    /// stores and acknowledges, and T2 then drops as duplicates.
    LastSeqIsApplied,
    /// The gate stores any seq above the highest it knows durable, not only the next one (the
    /// old gate let a session's first input skip ahead): an input sent while an earlier one
    /// awaits its resend opens a gap, and the earlier one's resend is then acknowledged as
    /// "already durable" without ever being stored.
    SkipAhead,
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
    /// Every mutation that must be caught (each has a [`Mutation::breaks`] target).
    pub const ALL: [Mutation; 10] = [
        Mutation::HarvestDeadTree,
        Mutation::NoSeqCheck,
        Mutation::AckBeforeDurable,
        Mutation::LastSeqIsApplied,
        Mutation::SkipAhead,
        Mutation::FrameSkip,
        Mutation::NoLeaseCheck,
        Mutation::UnknownKeepsCache,
        Mutation::ResumeWithoutCursor,
        Mutation::ReplayIgnoresTrim,
    ];

    /// Mutations that change nothing observable while the gate opens no gaps: checked to
    /// pass every invariant.
    pub const EQUIVALENT: [Mutation; 2] = [Mutation::HighWaterMark, Mutation::ClearGapped];

    /// The name of the property this mutation is expected to violate (`None` for
    /// [`Mutation::None`] and the [`Mutation::EQUIVALENT`] ones).
    pub fn breaks(self) -> Option<&'static str> {
        match self {
            Mutation::None | Mutation::HighWaterMark | Mutation::ClearGapped => None,
            Mutation::HarvestDeadTree => Some(names::TYPE_OK),
            Mutation::NoSeqCheck => Some(names::AT_MOST_ONCE),
            Mutation::AckBeforeDurable => Some(names::NO_ACKED_LOST),
            Mutation::LastSeqIsApplied => Some(names::ACKED_APPLIED_OR_PENDING),
            Mutation::SkipAhead => Some(names::NO_GAP),
            Mutation::FrameSkip => Some(names::CONTIGUOUS_FRAMES),
            Mutation::NoLeaseCheck => Some(names::CONSERVATION),
            Mutation::UnknownKeepsCache => Some(names::HOLDER_CACHE_COHERENT),
            Mutation::ResumeWithoutCursor => Some(names::VIEW_MATCHES_DB_WHEN_QUIET),
            Mutation::ReplayIgnoresTrim => Some(names::VIEW_MATCHES_DB_WHEN_QUIET),
        }
    }
}
