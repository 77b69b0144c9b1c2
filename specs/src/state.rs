//! The model's state: the database, the clients, the edges and the processors.
//!
//! Field names follow the variables of `WorldProtocol.tla`; each struct says which TLA+
//! variables it holds.
//!
//! Versionstamps are abstracted to what the protocol compares. Inbox keys are only ever
//! read in order, so the inbox is a sequence in versionstamp order. Change-log keys are
//! compared with cursors, the trim point and the head, all within one region, so they are
//! numbered by a per-region counter starting at 1 (0 means "none"). Both abstractions keep
//! every comparison the protocol makes while keeping states small.

use crate::bounds::Bounds;
use crate::inputset::InputSet;

/// One pending input in `inbox/(region, versionstamp)`.
///
/// The inbox is kept in versionstamp order, which is all T2 uses of an inbox key's
/// versionstamp, so the entry does not carry the number itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InboxEntry {
    /// The sending player.
    pub player: u8,
    /// The player's sequence number for this input.
    pub seq: u8,
    /// Which of the player's inputs this is (its content; see [`Numbered`]).
    pub input: u8,
}

impl InboxEntry {
    /// The input without its player.
    pub fn numbered(self) -> Numbered {
        Numbered {
            seq: self.seq,
            input: self.input,
        }
    }
}

/// One input of a player together with the seq it was sent under (TLA+ `Numbered`).
///
/// `input` numbers the player's inputs `1, 2, …` in the order the player makes them and stands
/// for the input's content: input `i` does [`crate::bounds::kind_of`]`(i)`. In the correct
/// protocol an input is always sent under its own number as seq; a client that reuses a seq
/// for a new input (mutation [`crate::Mutation::LastSeqIsApplied`]) breaks that, and the pair
/// lets the invariants tell the two inputs apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Numbered {
    /// The seq the input was sent under.
    pub seq: u8,
    /// Which of the player's inputs it is.
    pub input: u8,
}

/// What one frame changed, as stored in `changelog/(region, versionstamp)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delta {
    /// The versionstamp of the T2 that wrote it.
    pub vs: u8,
    /// Wood taken from the tree in this frame.
    pub harvested: u8,
    /// Wood placed on the ground in this frame.
    pub built: u8,
}

/// The part of a region's state that clients mirror and processors cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct View {
    /// The region's frame number: how many frames have been processed (`frame/(region, _)`).
    pub frame: u8,
    /// The tree's hp (`entity/(tree)`); signed so a mutated rule can push it below zero.
    pub tree_hp: i8,
    /// Wood lying on the ground in the region (built structures).
    pub ground: u8,
}

impl View {
    /// Applies a change-log delta, as an edge does when replaying the log.
    pub fn apply(&mut self, delta: &Delta) -> Option<()> {
        self.frame = self.frame.checked_add(1)?;
        self.tree_hp = self
            .tree_hp
            .checked_sub(i8::try_from(delta.harvested).ok()?)?;
        self.ground = self.ground.checked_add(delta.built)?;
        Some(())
    }
}

/// The lease key `lease/(region)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The processor holding the lease, if any.
    pub holder: Option<u8>,
    /// Bumped by every acquisition; a holder's writes are valid only under its own epoch.
    pub epoch: u8,
}

/// The database's keys for one region (TLA+: `inbox`, `applied`, `dbView`, `frameLog`,
/// `changelog`, `trimmed`, `head`, `nextVs`, `lease`), plus the ghost `harvested`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegionDb {
    /// Pending inputs in versionstamp order.
    pub inbox: Vec<InboxEntry>,
    /// `applied/(region, player)`: the last seq applied, per player (0 = none).
    pub applied: Vec<u8>,
    /// The region's entities and frame number.
    pub view: View,
    /// The frame numbers of the frame records written, in commit order.
    pub frame_log: Vec<u8>,
    /// The retained change-log entries, in versionstamp order.
    pub changelog: Vec<Delta>,
    /// The versionstamp of the last trimmed change-log entry (0 = nothing trimmed).
    pub trimmed: u8,
    /// `head/(region)`: the versionstamp of the newest change-log entry (0 = none).
    pub head: u8,
    /// The versionstamp the region's next change-log entry gets.
    pub next_vs: u8,
    /// `lease/(region)`.
    pub lease: Lease,
    /// Ghost: wood ever taken from this region's tree.
    pub harvested: u8,
}

/// One player: its keys in the database, its client, its edge session, and ghost history.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Player {
    /// `player/(id)`: wood in the inventory.
    pub inventory: u8,
    /// `durable/(player)`: the highest seq of the player any T1 stored (atomic MAX; 0 = none).
    pub durable: u8,
    /// Client: the seq the next new input is sent under.
    pub next_seq: u8,
    /// Client: which input the player makes next (1 = its first).
    pub next_input: u8,
    /// Client: the inputs it saw acknowledged.
    pub acked: InputSet,
    /// Client: the inputs it sent but saw no acknowledgement for (a T1 ended in
    /// `commit_unknown_result`), to be resent.
    pub retry: InputSet,
    /// Edge session: the highest seq its input gate knows durable (`InputGate::durable`).
    pub gate: u8,
    /// Ghost: the inputs applied by T2, in the order applied.
    pub history: Vec<Numbered>,
}

/// One edge subscription: a client watching one region through an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Edge {
    /// Whether the client is connected.
    pub connected: bool,
    /// The versionstamp of the last change-log entry the client has seen (0 = none).
    pub cursor: u8,
    /// The client's copy of its region.
    pub mirror: View,
}

/// A processor's belief that it holds a region's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Held {
    /// The lease epoch it acquired.
    pub epoch: u8,
    /// Its in-memory copy of the region (`None` after an unknown T2 result, until reloaded).
    pub cache: Option<View>,
}

/// Remaining fault budgets (see [`Bounds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budget {
    /// T1 unknown results left.
    pub t1_unknown: u8,
    /// T2 unknown results left.
    pub t2_unknown: u8,
    /// Processor crashes left.
    pub crashes: u8,
    /// Lease takeovers left.
    pub takeovers: u8,
    /// Edge disconnects left.
    pub disconnects: u8,
    /// Change-log trims left.
    pub trims: u8,
    /// Player re-logins left.
    pub reconnects: u8,
}

/// The whole system state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Per region, the database keys of that region.
    pub regions: Vec<RegionDb>,
    /// Per player, the inventory, the client's submit state and the ghost history.
    pub players: Vec<Player>,
    /// Per edge client, its subscription to the region it watches.
    pub edges: Vec<Edge>,
    /// Per processor and region, its lease belief (`None` = it does not think it holds it).
    pub processors: Vec<Vec<Option<Held>>>,
    /// Fault budgets left.
    pub budget: Budget,
}

impl State {
    /// The initial state (TLA+ `Init`): empty inboxes and logs, full trees, and region `r`
    /// leased at epoch 1 to processor `r % processors`, whose cache holds the region.
    pub fn initial(bounds: &Bounds) -> Self {
        let view = View {
            frame: 0,
            tree_hp: i8::try_from(bounds.tree_hp).unwrap_or(i8::MAX),
            ground: 0,
        };
        let owner = |region: u8| region.checked_rem(bounds.processors);
        let regions = (0..bounds.regions)
            .map(|r| RegionDb {
                inbox: Vec::new(),
                applied: vec![0; usize::from(bounds.players)],
                view,
                frame_log: Vec::new(),
                changelog: Vec::new(),
                trimmed: 0,
                head: 0,
                next_vs: 1,
                lease: Lease {
                    holder: owner(r),
                    epoch: u8::from(owner(r).is_some()),
                },
                harvested: 0,
            })
            .collect();
        let processors = (0..bounds.processors)
            .map(|q| {
                (0..bounds.regions)
                    .map(|r| {
                        (owner(r) == Some(q)).then_some(Held {
                            epoch: 1,
                            cache: Some(view),
                        })
                    })
                    .collect()
            })
            .collect();
        let player = Player {
            inventory: 0,
            durable: 0,
            next_seq: 1,
            next_input: 1,
            acked: InputSet::default(),
            retry: InputSet::default(),
            gate: 0,
            history: Vec::new(),
        };
        let edge = Edge {
            connected: true,
            cursor: 0,
            mirror: view,
        };
        State {
            regions,
            players: vec![player; usize::from(bounds.players)],
            edges: vec![edge; usize::from(bounds.watchers)],
            processors,
            budget: Budget {
                t1_unknown: bounds.t1_unknown,
                t2_unknown: bounds.t2_unknown,
                crashes: bounds.crashes,
                takeovers: bounds.takeovers,
                disconnects: bounds.disconnects,
                trims: bounds.trims,
                reconnects: bounds.reconnects,
            },
        }
    }

    /// Whether `player`'s input `input` (under its seq, with its content) is pending in the
    /// inbox of `region` (TLA+ `InInbox`).
    pub fn in_inbox(&self, region: u8, player: u8, input: Numbered) -> bool {
        self.regions.get(usize::from(region)).is_some_and(|r| {
            r.inbox
                .iter()
                .any(|e| e.player == player && e.numbered() == input)
        })
    }
}
