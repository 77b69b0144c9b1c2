//! The model's actions: one per TLA+ action of `WorldProtocol.tla`.

/// How a commit attempt ended, seen from the caller.
///
/// `commit_unknown_result` (FDB error 1021) is modelled as the two worlds the caller cannot
/// tell apart: the commit applied, or it did not. Either way the caller retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The commit succeeded and the caller knows it.
    Committed,
    /// `commit_unknown_result`, and the commit did apply.
    UnknownApplied,
    /// `commit_unknown_result`, and the commit did not apply.
    UnknownNotApplied,
}

impl Outcome {
    /// All outcomes, in the order actions are generated.
    pub const ALL: [Outcome; 3] = [
        Outcome::Committed,
        Outcome::UnknownApplied,
        Outcome::UnknownNotApplied,
    ];

    /// Whether the caller saw `commit_unknown_result`.
    pub fn is_unknown(self) -> bool {
        !matches!(self, Outcome::Committed)
    }

    /// Whether the commit's writes took effect.
    pub fn applied(self) -> bool {
        !matches!(self, Outcome::UnknownNotApplied)
    }
}

/// One step of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// T1 behind the edge's input gate (TLA+ `SubmitInput`): the client sends its next input
    /// or resends an unacknowledged one; the gate stores it (T1), acknowledges it again without
    /// storing, or refuses it (not a step: nothing changes).
    SubmitInput {
        /// The sending player.
        player: u8,
        /// Which of the player's inputs (its seq follows from the client's state).
        input: u8,
        /// How the T1 commit ended (only `Committed` when nothing is stored).
        outcome: Outcome,
    },
    /// TLA+ `Reconnect`: the player logs in again; a new edge session starts at the login's
    /// `lastSeq` and the client resends what it saw no acknowledgement for.
    Reconnect {
        /// The player.
        player: u8,
    },
    /// T2 (TLA+ `RunFrame`): a processor that believes it holds the region's lease runs a frame.
    RunFrame {
        /// The processor.
        processor: u8,
        /// The region.
        region: u8,
        /// How the commit ended.
        outcome: Outcome,
    },
    /// TLA+ `Reload`: after an unknown T2 result, re-read the region (and the lease) into the cache.
    Reload {
        /// The processor.
        processor: u8,
        /// The region.
        region: u8,
    },
    /// TLA+ `Acquire`: take a free lease, or one's own lease again after a restart.
    Acquire {
        /// The processor.
        processor: u8,
        /// The region.
        region: u8,
    },
    /// TLA+ `Takeover`: take a lease held by another processor that expired (dead or partitioned).
    Takeover {
        /// The processor.
        processor: u8,
        /// The region.
        region: u8,
    },
    /// TLA+ `Crash`: a processor loses all memory (it restarts empty; its leases stay until taken).
    Crash {
        /// The processor.
        processor: u8,
    },
    /// TLA+ `Deliver`: an edge reads its client's region log after the cursor and pushes one
    /// delta (or a snapshot when the entries after the cursor were trimmed).
    Deliver {
        /// The edge client.
        client: u8,
    },
    /// TLA+ `Disconnect`: the client's connection drops; it keeps its mirror and cursor.
    Disconnect {
        /// The edge client.
        client: u8,
    },
    /// TLA+ `Resume`: the client reconnects with its cursor.
    Resume {
        /// The edge client.
        client: u8,
    },
    /// TLA+ `Trim`: drop the oldest change-log entry of a region.
    Trim {
        /// The region.
        region: u8,
    },
}
