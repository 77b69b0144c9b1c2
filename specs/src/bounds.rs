//! The finite bounds of one model-checking run, and the input script.
//!
//! Mirrors the constants of `WorldProtocol.tla`: `NumRegions`, `NumPlayers`, `NumProcs`,
//! `MaxSeq`, `TreeHp` and the fault budgets. Player `p` lives in region `p % regions`
//! (TLA+: `Home(p)`), and its `s`-th input (1-based) has the kind `Script[s]`, cycling
//! through [`SCRIPT`].

use std::fmt;

/// What a player's input does to the wood economy.
///
/// The seed model's `move` and `interact` inputs change no wood, so they are abstracted
/// into [`InputKind::Idle`]: the protocol treats every kind alike, only the rules differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// Take one wood from the region's tree into the player's inventory (if the tree has hp).
    Harvest,
    /// Place one wood from the player's inventory on the ground (if the player has wood).
    Build,
    /// Change nothing that the invariants look at (`move`, `interact`, `idle`).
    Idle,
}

/// The kinds of a player's inputs in order: the `i`-th input is `SCRIPT[(i - 1) % len]`.
pub const SCRIPT: [InputKind; 3] = [InputKind::Harvest, InputKind::Build, InputKind::Harvest];

/// The kind of the player's `input`-th input (1-based), as in TLA+ `Kind(i)`. It depends on
/// the input, not on the seq it is sent under (see [`crate::state::Numbered`]).
pub fn kind_of(input: u8) -> InputKind {
    let index = usize::from(input.saturating_sub(1)) % SCRIPT.len();
    SCRIPT.get(index).copied().unwrap_or(InputKind::Idle)
}

/// Sizes and fault budgets that keep the state space finite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Number of regions (shards), each with its own lease, inbox, change log and tree.
    pub regions: u8,
    /// Number of players; player `p` sends inputs to region `p % regions`.
    pub players: u8,
    /// Number of edge clients (subscriptions with a cursor); client `c` watches region
    /// `c % regions`.
    pub watchers: u8,
    /// Number of region processors competing for leases.
    pub processors: u8,
    /// Inputs each player makes, numbered `1..=inputs_per_player`; also the highest seq.
    pub inputs_per_player: u8,
    /// Initial hp of each region's tree: the most wood a region can ever yield.
    pub tree_hp: u8,
    /// How many T1 commits may end in `commit_unknown_result` (1021).
    pub t1_unknown: u8,
    /// How many T2 commits may end in `commit_unknown_result` (1021).
    pub t2_unknown: u8,
    /// How many processor crashes may happen.
    pub crashes: u8,
    /// How many lease takeovers (expiry of a live or dead holder's lease) may happen.
    pub takeovers: u8,
    /// How many edge disconnects (followed by a resume) may happen.
    pub disconnects: u8,
    /// How many change-log entries may be trimmed.
    pub trims: u8,
    /// How many times a player may log in again (a new edge session, `Reconnect`).
    pub reconnects: u8,
}

impl Bounds {
    /// Two regions, two players (one per region), two processors, two inputs each, one
    /// crash, one takeover, one unknown result per transaction kind; one edge client without
    /// edge faults. Checked exhaustively by `cargo test -p sekai-specs`.
    pub fn small() -> Self {
        Bounds {
            regions: 2,
            players: 2,
            watchers: 1,
            processors: 2,
            inputs_per_player: 2,
            tree_hp: 2,
            t1_unknown: 1,
            t2_unknown: 1,
            crashes: 1,
            takeovers: 1,
            disconnects: 0,
            trims: 0,
            reconnects: 1,
        }
    }

    /// One region, one player with three inputs, two processors and every fault once,
    /// including an edge disconnect and a change-log trim. Checked exhaustively.
    pub fn edge_faults() -> Self {
        Bounds {
            regions: 1,
            players: 1,
            watchers: 1,
            processors: 2,
            inputs_per_player: 3,
            tree_hp: 2,
            t1_unknown: 1,
            t2_unknown: 1,
            crashes: 1,
            takeovers: 1,
            disconnects: 1,
            trims: 1,
            reconnects: 1,
        }
    }

    /// One region whose tree has a single wood, two players racing for it, one processor,
    /// and every fault but a takeover once. Checked exhaustively.
    pub fn shared_tree() -> Self {
        Bounds {
            regions: 1,
            players: 2,
            watchers: 1,
            processors: 1,
            inputs_per_player: 2,
            tree_hp: 1,
            t1_unknown: 1,
            t2_unknown: 1,
            crashes: 1,
            takeovers: 0,
            disconnects: 1,
            trims: 1,
            reconnects: 1,
        }
    }

    /// [`Bounds::small`] with edge faults too: about 1.4 million states, half a minute to a
    /// minute in a debug build on two cores; part of every `cargo test -p sekai-specs`.
    pub fn large() -> Self {
        Bounds {
            disconnects: 1,
            trims: 1,
            ..Bounds::small()
        }
    }

    /// The region whose inbox receives player `player`'s inputs (TLA+ `Home(p)`).
    pub fn home(&self, player: u8) -> u8 {
        player % self.regions.max(1)
    }

    /// The region edge client `client` watches (TLA+ `Watched(c)`).
    pub fn watched(&self, client: u8) -> u8 {
        client % self.regions.max(1)
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "regions={} players={} watchers={} processors={} inputs/player={} tree_hp={} \
             t1_unknown={} t2_unknown={} crashes={} takeovers={} disconnects={} trims={} \
             reconnects={}",
            self.regions,
            self.players,
            self.watchers,
            self.processors,
            self.inputs_per_player,
            self.tree_hp,
            self.t1_unknown,
            self.t2_unknown,
            self.crashes,
            self.takeovers,
            self.disconnects,
            self.trims,
            self.reconnects
        )
    }
}
