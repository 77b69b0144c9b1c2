//! T1 behind the edge's input gate, and re-login.
//!
//! The client sends its inputs with seqs; the edge session's gate (`InputGate`) stores only
//! the seq after the highest it knows durable (`gate + 1`), acknowledges a seq at or below
//! `gate` again without storing it (a resend), and refuses anything higher (which changes no
//! state, so it is not a step of the model). T1 (`inbox::submit_input`) appends
//! `(player, seq, input)` under a versionstamped key and raises `durable/(player)` with atomic
//! MAX, reading nothing, so appenders never conflict. On `commit_unknown_result` the input
//! stays unacknowledged and is resent, which may leave two inbox entries for it; T2
//! deduplicates them.
//!
//! On re-login the session's gate and the client's `lastSeq` start at the durable record; the
//! client resends what it saw no acknowledgement for.

use crate::action::Outcome;
use crate::mutation::Mutation;
use crate::state::{InboxEntry, Numbered, State};
use crate::WorldModel;

/// TLA+ `SubmitInput(p, i, outcome)`: player `player` sends its input `input`, new or resent.
pub fn submit_input(
    model: &WorldModel,
    state: &State,
    player: u8,
    input: u8,
    outcome: Outcome,
) -> Option<State> {
    let current = state.players.get(usize::from(player))?;
    let is_new = input == current.next_input && input <= model.bounds.inputs_per_player;
    let sent = if is_new {
        Numbered {
            seq: current.next_seq,
            input,
        }
    } else {
        current.retry.iter().find(|n| n.input == input)?
    };
    let gate = current.gate;
    if sent.seq > gate.checked_add(1)? && model.mutation != Mutation::SkipAhead {
        return None; // refused: nothing changes
    }
    let resend = sent.seq <= gate;
    if resend && outcome.is_unknown() {
        return None; // nothing is stored, so there is no commit to be unknown
    }
    if !resend && outcome.is_unknown() && state.budget.t1_unknown == 0 {
        return None;
    }
    let mut next = state.clone();
    if !resend {
        if outcome.is_unknown() {
            next.budget.t1_unknown -= 1;
        }
        if outcome.applied() {
            let region = super::region_mut(&mut next, model.bounds.home(player))?;
            region.inbox.push(InboxEntry {
                player,
                seq: sent.seq,
                input,
            });
        }
    }
    let client = next.players.get_mut(usize::from(player))?;
    if !resend && outcome.applied() {
        client.durable = client.durable.max(sent.seq);
    }
    if is_new {
        client.next_seq = sent.seq.checked_add(1)?;
        client.next_input = input.checked_add(1)?;
    }
    let acked = resend || !outcome.is_unknown() || model.mutation == Mutation::AckBeforeDurable;
    if acked {
        client.retry.remove(sent);
        client.acked.insert(sent)?;
        client.gate = client.gate.max(sent.seq);
    } else {
        client.retry.insert(sent)?;
    }
    Some(next)
}

/// What login reports as `Session.info.lastSeq`, where the new session's gate starts: the
/// durable record (TLA+ `LoginSeq(p)`), or the applied record under
/// [`Mutation::LastSeqIsApplied`].
fn login_seq(model: &WorldModel, state: &State, player: u8) -> Option<u8> {
    if model.mutation == Mutation::LastSeqIsApplied {
        let home = state.regions.get(usize::from(model.bounds.home(player)))?;
        home.applied.get(usize::from(player)).copied()
    } else {
        Some(state.players.get(usize::from(player))?.durable)
    }
}

/// TLA+ `Reconnect(p)`: a new edge session for `player`. Unacknowledged inputs at or below
/// `lastSeq` keep their seq (the gate acknowledges them again); the others are numbered
/// `lastSeq + 1, lastSeq + 2, …` in input order, and new inputs continue after them.
pub fn reconnect(model: &WorldModel, state: &State, player: u8) -> Option<State> {
    if state.budget.reconnects == 0 {
        return None;
    }
    let last = login_seq(model, state, player)?;
    let mut next = state.clone();
    next.budget.reconnects -= 1;
    let client = next.players.get_mut(usize::from(player))?;
    let rest: Vec<Numbered> = client.retry.iter().filter(|n| n.seq > last).collect();
    for n in &rest {
        client.retry.remove(*n);
    }
    let mut seq = last;
    let mut by_input = rest;
    by_input.sort_by_key(|n| n.input);
    for n in by_input {
        seq = seq.checked_add(1)?;
        client.retry.insert(Numbered {
            seq,
            input: n.input,
        })?;
    }
    client.next_seq = seq.checked_add(1)?;
    client.gate = last;
    Some(next)
}
