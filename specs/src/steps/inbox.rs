//! T1, `submit_input`: a client's input becomes durable in its region's inbox.
//!
//! The edge appends `(player, seq)` under a versionstamped key without reading anything, so
//! appenders never conflict. On `commit_unknown_result` the client retries the same
//! `(player, seq)`, which may leave two inbox entries for one input; T2 deduplicates them.
//! Clients pipeline: a new seq may be sent while an older one awaits its retry.

use crate::action::Outcome;
use crate::mutation::Mutation;
use crate::state::{InboxEntry, State};
use crate::WorldModel;

/// TLA+ `SubmitInput(p, s, outcome)`.
pub fn submit_input(
    model: &WorldModel,
    state: &State,
    player: u8,
    seq: u8,
    outcome: Outcome,
) -> Option<State> {
    let current = state.players.get(usize::from(player))?;
    let is_new = seq == current.next_seq && seq <= model.bounds.inputs_per_player;
    if !is_new && !current.retry.contains(seq) {
        return None;
    }
    if outcome.is_unknown() && state.budget.t1_unknown == 0 {
        return None;
    }
    let mut next = state.clone();
    if outcome.is_unknown() {
        next.budget.t1_unknown -= 1;
    }
    if outcome.applied() {
        let region = super::region_mut(&mut next, model.bounds.home(player))?;
        region.inbox.push(InboxEntry { player, seq });
    }
    let client = next.players.get_mut(usize::from(player))?;
    if is_new {
        client.next_seq = seq.checked_add(1)?;
    }
    let acked = !outcome.is_unknown() || model.mutation == Mutation::AckBeforeDurable;
    if acked {
        client.retry.remove(seq);
        client.acked.insert(seq)?;
    } else {
        client.retry.insert(seq)?;
    }
    Some(next)
}
