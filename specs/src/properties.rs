//! The invariants of the world protocol, as predicates over [`State`].
//!
//! | property | statement |
//! |---|---|
//! | `TypeOK` | every variable is in its domain (hp in `0..=tree_hp`, seqs in range, cursors ≤ head …) |
//! | `AtMostOnce` | no `(player, seq)` is applied twice |
//! | `PerPlayerOrder` | each player's inputs are applied in seq order with no gap: `1, 2, …, n` |
//! | `AckedAppliedOrPending` | an acknowledged input is applied with the acknowledged content (and recorded), or pending in the inbox and not yet recorded, so it will be applied exactly once |
//! | `NoAckedLost` | the database alone (what survives any crash) still holds every acknowledged input: recorded as applied, or in the inbox |
//! | `ContiguousFrames` | a region's frame records are `0, 1, …, frame - 1` |
//! | `Conservation` | tree hp + wood harvested = initial hp per region; wood in inventories + on the ground = wood harvested |
//! | `HolderCacheCoherent` | a processor holding the current lease epoch with a loaded cache has the database's view |
//! | `ViewMatchesDbWhenQuiet` | a connected client whose cursor is its region's log head mirrors the database |
//! | `NoGap` | T2 never has to keep an input behind a gap: each pending input is its player's next seq or a duplicate |
//!
//! Liveness: `AllInputsEventuallyApplied` (every path ends with every input applied once),
//! checked with stateright's `eventually`, which assumes the checked paths are acyclic (they
//! are: every action consumes a budget or advances a counter).

use crate::state::{Numbered, State};
use crate::WorldModel;

/// Property names, shared with the TLA+ spec's invariant names.
pub mod names {
    /// See [`super::type_ok`].
    pub const TYPE_OK: &str = "TypeOK";
    /// See [`super::at_most_once`].
    pub const AT_MOST_ONCE: &str = "AtMostOnce";
    /// See [`super::per_player_order`].
    pub const PER_PLAYER_ORDER: &str = "PerPlayerOrder";
    /// See [`super::acked_applied_or_pending`].
    pub const ACKED_APPLIED_OR_PENDING: &str = "AckedAppliedOrPending";
    /// See [`super::no_acked_lost`].
    pub const NO_ACKED_LOST: &str = "NoAckedLost";
    /// See [`super::contiguous_frames`].
    pub const CONTIGUOUS_FRAMES: &str = "ContiguousFrames";
    /// See [`super::conservation`].
    pub const CONSERVATION: &str = "Conservation";
    /// See [`super::holder_cache_coherent`].
    pub const HOLDER_CACHE_COHERENT: &str = "HolderCacheCoherent";
    /// See [`super::view_matches_db_when_quiet`].
    pub const VIEW_MATCHES_DB_WHEN_QUIET: &str = "ViewMatchesDbWhenQuiet";
    /// See [`super::no_gap`].
    pub const NO_GAP: &str = "NoGap";
    /// See [`super::all_inputs_applied`].
    pub const ALL_INPUTS_EVENTUALLY_APPLIED: &str = "AllInputsEventuallyApplied";
    /// Reachability check: a retried T1 left two inbox entries for one input.
    pub const SOMETIMES_DUPLICATE_INBOX_ENTRY: &str = "Sometimes: duplicate inbox entry";
    /// Reachability check: a processor believes in a lease epoch that was superseded.
    pub const SOMETIMES_STALE_HOLDER: &str = "Sometimes: stale lease holder";
    /// Reachability check: a client's cursor points before a trimmed part of the log.
    pub const SOMETIMES_CURSOR_BEHIND_TRIM: &str = "Sometimes: cursor behind trimmed log";
    /// Reachability check: after a re-login, the client holds an unacknowledged input that the
    /// login reported durable, so the gate will acknowledge its resend without storing it.
    pub const SOMETIMES_DURABLE_RESEND: &str = "Sometimes: resend of a durable input";
}

/// `TypeOK`: every variable is within its domain.
pub fn type_ok(model: &WorldModel, s: &State) -> bool {
    let b = &model.bounds;
    let max_seq = b.inputs_per_player;
    let max_wood = u16::from(b.regions) * u16::from(b.tree_hp);
    let shapes = s.regions.len() == usize::from(b.regions)
        && s.players.len() == usize::from(b.players)
        && s.edges.len() == usize::from(b.watchers)
        && s.processors.len() == usize::from(b.processors)
        && s.processors
            .iter()
            .all(|p| p.len() == usize::from(b.regions));
    let regions = s.regions.iter().enumerate().all(|(r, db)| {
        (0..=i16::from(b.tree_hp)).contains(&i16::from(db.view.tree_hp))
            && u16::from(db.view.ground) <= max_wood
            && db.applied.len() == usize::from(b.players)
            && db.applied.iter().all(|&a| a <= max_seq)
            && db.inbox.iter().all(|e| {
                e.player < b.players
                    && (1..=max_seq).contains(&e.seq)
                    && (1..=max_seq).contains(&e.input)
                    && usize::from(b.home(e.player)) == r
            })
            && db.changelog.windows(2).all(|w| w[0].vs < w[1].vs)
            && db
                .changelog
                .iter()
                .all(|d| db.trimmed < d.vs && d.vs <= db.head)
            && db.trimmed <= db.head
            && db.head < db.next_vs
            && db.lease.holder.is_none_or(|h| h < b.processors)
    });
    let numbered = |n: &Numbered| (1..=max_seq).contains(&n.seq) && n.input >= 1;
    let players = s.players.iter().all(|p| {
        p.durable <= max_seq
            && (1..=max_seq + 1).contains(&p.next_seq)
            && (1..=max_seq + 1).contains(&p.next_input)
            && p.acked
                .iter()
                .chain(p.retry.iter())
                .all(|n| numbered(&n) && n.input < p.next_input)
            && p.gate <= max_seq
            && u16::from(p.inventory) <= max_wood
            && p.history.iter().all(|n| numbered(n) && n.input <= max_seq)
    });
    let edges = s.edges.iter().enumerate().all(|(c, e)| {
        u8::try_from(c)
            .ok()
            .and_then(|c| s.regions.get(usize::from(b.watched(c))))
            .is_some_and(|db| e.cursor <= db.head)
    });
    let processors = s.processors.iter().all(|beliefs| {
        beliefs
            .iter()
            .zip(&s.regions)
            .all(|(h, db)| h.is_none_or(|h| h.epoch <= db.lease.epoch))
    });
    shapes && regions && players && edges && processors
}

/// `AtMostOnce`: no player has the same seq applied twice.
pub fn at_most_once(_model: &WorldModel, s: &State) -> bool {
    s.players.iter().all(|p| {
        p.history
            .iter()
            .enumerate()
            .all(|(i, q)| p.history[..i].iter().all(|o| o.seq != q.seq))
    })
}

/// `PerPlayerOrder`: each player's applied seqs are exactly `1, 2, …, n` in that order.
pub fn per_player_order(_model: &WorldModel, s: &State) -> bool {
    s.players.iter().all(|p| {
        p.history
            .iter()
            .enumerate()
            .all(|(i, q)| usize::from(q.seq) == i + 1)
    })
}

/// The `applied/(region, player)` record of `player`, read from its home region.
fn applied_record(model: &WorldModel, s: &State, player: u8) -> u8 {
    s.regions
        .get(usize::from(model.bounds.home(player)))
        .and_then(|db| db.applied.get(usize::from(player)).copied())
        .unwrap_or(0)
}

/// Every acknowledged input, with its player and whether T2 applied it (that seq with that
/// content: TLA+ `IsApplied`).
fn acked_inputs(s: &State) -> impl Iterator<Item = (u8, Numbered, bool)> + '_ {
    s.players.iter().enumerate().flat_map(|(i, p)| {
        let player = u8::try_from(i).unwrap_or(u8::MAX);
        p.acked
            .iter()
            .map(move |n| (player, n, p.history.contains(&n)))
    })
}

/// `AckedAppliedOrPending`: each acknowledged input is applied with the acknowledged content
/// and recorded, or still pending in the inbox and not yet recorded (so T2 will apply it
/// exactly once).
pub fn acked_applied_or_pending(model: &WorldModel, s: &State) -> bool {
    acked_inputs(s).all(|(player, n, applied)| {
        let record = applied_record(model, s, player);
        if applied {
            record >= n.seq
        } else {
            record < n.seq && s.in_inbox(model.bounds.home(player), player, n)
        }
    })
}

/// `NoAckedLost`: the database still holds every acknowledged input, as recorded or pending.
pub fn no_acked_lost(model: &WorldModel, s: &State) -> bool {
    acked_inputs(s).all(|(player, n, _)| {
        applied_record(model, s, player) >= n.seq
            || s.in_inbox(model.bounds.home(player), player, n)
    })
}

/// `NoGap`: in every region, T2 would keep no pending input for a later frame (TLA+
/// `Plan(r).keep = <<>>`): in versionstamp order each is its player's next seq or a duplicate,
/// because the gate stores only `gate + 1` and starts at the durable record.
pub fn no_gap(_model: &WorldModel, s: &State) -> bool {
    s.regions.iter().all(|db| {
        let mut last = db.applied.clone();
        db.inbox
            .iter()
            .all(|e| match last.get_mut(usize::from(e.player)) {
                Some(l) if e.seq == l.saturating_add(1) => {
                    *l = e.seq;
                    true
                }
                Some(l) => e.seq <= *l,
                None => false,
            })
    })
}

/// `ContiguousFrames`: frame records are `0, 1, …` and the frame number is their count.
pub fn contiguous_frames(_model: &WorldModel, s: &State) -> bool {
    s.regions.iter().all(|db| {
        db.frame_log
            .iter()
            .enumerate()
            .all(|(i, &f)| usize::from(f) == i)
            && usize::from(db.view.frame) == db.frame_log.len()
    })
}

/// `Conservation`: no wood is created or destroyed except by the rules.
pub fn conservation(model: &WorldModel, s: &State) -> bool {
    let tree_ok = s.regions.iter().all(|db| {
        i16::from(db.view.tree_hp) + i16::from(db.harvested) == i16::from(model.bounds.tree_hp)
    });
    let held: u16 = s.players.iter().map(|p| u16::from(p.inventory)).sum();
    let ground: u16 = s.regions.iter().map(|db| u16::from(db.view.ground)).sum();
    let harvested: u16 = s.regions.iter().map(|db| u16::from(db.harvested)).sum();
    tree_ok && held + ground == harvested
}

/// `HolderCacheCoherent`: the current lease holder's loaded cache equals the database.
pub fn holder_cache_coherent(_model: &WorldModel, s: &State) -> bool {
    s.processors.iter().enumerate().all(|(q, beliefs)| {
        beliefs.iter().zip(&s.regions).all(|(held, db)| match held {
            Some(h)
                if db.lease.epoch == h.epoch
                    && db.lease.holder.is_some_and(|x| usize::from(x) == q) =>
            {
                h.cache.is_none_or(|c| c == db.view)
            }
            _ => true,
        })
    })
}

/// `ViewMatchesDbWhenQuiet`: a connected client whose cursor is at its region's head mirrors
/// the database's view of that region.
pub fn view_matches_db_when_quiet(model: &WorldModel, s: &State) -> bool {
    s.edges.iter().enumerate().all(|(c, e)| {
        let home = u8::try_from(c)
            .map(|c| model.bounds.watched(c))
            .unwrap_or(0);
        s.regions
            .get(usize::from(home))
            .is_some_and(|db| !e.connected || e.cursor != db.head || e.mirror == db.view)
    })
}

/// `AllInputsEventuallyApplied` (checked with `eventually`): every input of every player
/// applied, in order, under its own seq.
pub fn all_inputs_applied(model: &WorldModel, s: &State) -> bool {
    s.players.iter().all(|p| {
        p.history.len() == usize::from(model.bounds.inputs_per_player)
            && p.history
                .iter()
                .enumerate()
                .all(|(i, n)| usize::from(n.seq) == i + 1 && n.input == n.seq)
    })
}

/// Reachability: some inbox holds two entries for one `(player, seq)`.
pub fn duplicate_inbox_entry(_model: &WorldModel, s: &State) -> bool {
    s.regions.iter().any(|db| {
        db.inbox.iter().enumerate().any(|(i, a)| {
            db.inbox[..i]
                .iter()
                .any(|b| a.player == b.player && a.seq == b.seq)
        })
    })
}

/// Reachability: some processor believes in a superseded lease epoch.
pub fn stale_holder(_model: &WorldModel, s: &State) -> bool {
    s.processors.iter().any(|beliefs| {
        beliefs
            .iter()
            .zip(&s.regions)
            .any(|(h, db)| h.is_some_and(|h| h.epoch < db.lease.epoch))
    })
}

/// Reachability: some client's cursor is before its region's trimmed point.
pub fn cursor_behind_trim(model: &WorldModel, s: &State) -> bool {
    s.edges.iter().enumerate().any(|(c, e)| {
        let home = u8::try_from(c)
            .map(|c| model.bounds.watched(c))
            .unwrap_or(0);
        s.regions
            .get(usize::from(home))
            .is_some_and(|db| e.cursor < db.trimmed)
    })
}

/// Reachability: some client holds an unacknowledged input at or below its session's gate
/// (after a re-login that reported it durable), whose resend the gate acknowledges again
/// without storing it.
pub fn durable_resend(_model: &WorldModel, s: &State) -> bool {
    s.players
        .iter()
        .any(|p| p.retry.iter().any(|n| n.seq <= p.gate))
}
