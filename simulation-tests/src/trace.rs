//! The trace of one run: every input, acknowledgement, frame, delivery, fault and crash, in the
//! order the scheduler produced them.
//!
//! Invariants:
//! - the trace hash is FNV-1a over each event's `Debug` text with the virtual time, so it is the
//!   same on every machine for the same seed (no pointers, no hash maps, no wall-clock time);
//! - only the last [`TAIL`] events are kept in memory, for violation reports; the hash covers all.

use std::collections::VecDeque;
use std::fmt;

use sekai_schema::{PlayerId, RegionId};

/// How many of the latest events a trace keeps for reports.
pub const TAIL: usize = 20;

/// One thing that happened in a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A client sent an input to its edge (`resend` when it was sent before).
    InputSent {
        /// The client.
        client: usize,
        /// The player.
        player: PlayerId,
        /// The input's seq.
        seq: u64,
        /// True for a resend or a duplicate.
        resend: bool,
    },
    /// An edge stored an input durably: its T1 committed it into a region's inbox, or the frame
    /// of the region's processor beside it took it directly.
    InputStored {
        /// The player.
        player: PlayerId,
        /// The seq.
        seq: u64,
        /// The region it was stored for.
        region: RegionId,
    },
    /// A client received the acknowledgement of an input.
    InputAcked {
        /// The player.
        player: PlayerId,
        /// The seq.
        seq: u64,
    },
    /// A processor took a region's lease.
    LeaseTaken {
        /// The region.
        region: RegionId,
        /// The processor node.
        node: usize,
        /// The lease epoch.
        epoch: u64,
    },
    /// A processor committed a frame.
    FrameCommitted {
        /// The region.
        region: RegionId,
        /// The frame number.
        frame: u64,
        /// The (player, seq) pairs it applied.
        inputs: Vec<(PlayerId, u64)>,
        /// Its change-log versionstamp.
        stamp: [u8; 10],
    },
    /// A processor found out it no longer holds its lease.
    LeaseLost {
        /// The region.
        region: RegionId,
        /// The processor node.
        node: usize,
    },
    /// An edge delivered a change-log delta to a client.
    DeltaDelivered {
        /// The client.
        client: usize,
        /// The delta's region.
        region: RegionId,
        /// Its versionstamp.
        stamp: [u8; 10],
        /// How many changes it carried for the client.
        changes: usize,
    },
    /// A client received a fresh snapshot of its area.
    SnapshotDelivered {
        /// The client.
        client: usize,
        /// Entities in it.
        entities: usize,
    },
    /// A client (re)connected to an edge.
    Connected {
        /// The client.
        client: usize,
        /// The edge.
        edge: usize,
        /// True when resuming from its cursor, false for a fresh snapshot.
        resume: bool,
    },
    /// The engine injected faults during the last step.
    EngineFaults(String),
    /// A simulated fault.
    Fault(String),
    /// A processor node's assignment step (survey and plan, release, leave).
    Assign(String),
    /// A layer call failed in a way the run treats as suspicious.
    LayerError(String),
    /// The run went quiet and checks began.
    Quiet,
}

/// The running trace of one seed.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Print every event to stderr as it is recorded (`--trace`).
    pub echo: bool,
    hash: u64,
    len: u64,
    tail: VecDeque<(u64, Event)>,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            echo: false,
            hash: FNV_OFFSET,
            len: 0,
            tail: VecDeque::with_capacity(TAIL),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Trace {
    /// Records `event` at virtual time `now_us`.
    pub fn record(&mut self, now_us: u64, event: Event) {
        let text = format!("{now_us} {event:?};");
        for byte in text.bytes() {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
        self.len += 1;
        if self.echo {
            eprintln!("t={now_us:>10}us {event:?}");
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back((now_us, event));
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events were recorded.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The last events, oldest first.
    pub fn tail(&self) -> impl Iterator<Item = &(u64, Event)> {
        self.tail.iter()
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "last {} of {} events:", self.tail.len(), self.len)?;
        for (at, event) in &self.tail {
            writeln!(f, "  t={:>10}us {event:?}", at)?;
        }
        Ok(())
    }
}
