//! T2, `run_frame`: the lease holder turns pending inputs into one frame.
//!
//! In one transaction the processor reads the lease, the inbox and the `applied` records, and
//! the inventories of the players it touches; it takes the region's entities from its
//! in-memory cache (valid only while its lease epoch is current). It applies each pending
//! `(player, seq)` in versionstamp order if `seq = applied + 1`, drops entries with
//! `seq <= applied` (duplicates of a resent input), and leaves entries with a gap before them
//! for a later frame (the edge's gate never lets a gap open: invariant `NoGap`). It then
//! writes the entities, the `applied` records, one change-log delta, one frame record and the
//! head, clears what it consumed, and bumps the frame number.
//! A processor whose lease epoch is no longer current writes nothing and gives the region up.

use crate::action::Outcome;
use crate::bounds::{kind_of, InputKind};
use crate::mutation::Mutation;
use crate::state::{Delta, InboxEntry, Lease, RegionDb, State, View};
use crate::WorldModel;

/// What a frame does with the inbox it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePlan {
    /// Entries to apply, in order.
    pub apply: Vec<InboxEntry>,
    /// Entries left pending for a later frame.
    pub keep: Vec<InboxEntry>,
    /// The `applied/(region, player)` records after the frame.
    pub applied: Vec<u8>,
}

/// Decides, for each pending entry, whether this frame applies, drops or keeps it.
pub fn plan_frame(mutation: Mutation, region: &RegionDb) -> Option<FramePlan> {
    let mut plan = FramePlan {
        apply: Vec::new(),
        keep: Vec::new(),
        applied: region.applied.clone(),
    };
    for entry in &region.inbox {
        let last = plan.applied.get_mut(usize::from(entry.player))?;
        let apply = match mutation {
            Mutation::NoSeqCheck => true,
            Mutation::HighWaterMark => entry.seq > *last,
            _ => entry.seq == last.checked_add(1)?,
        };
        let gap = entry.seq > last.checked_add(1)?;
        if apply {
            *last = (*last).max(entry.seq);
            plan.apply.push(*entry);
        } else if gap && !matches!(mutation, Mutation::HighWaterMark | Mutation::ClearGapped) {
            plan.keep.push(*entry);
        }
    }
    Some(plan)
}

/// TLA+ `RunFrame(q, r, outcome)`.
pub fn run_frame(
    model: &WorldModel,
    state: &State,
    processor: u8,
    region: u8,
    outcome: Outcome,
) -> Option<State> {
    let held = super::held(state, processor, region)??;
    let cache = held.cache?;
    let db = state.regions.get(usize::from(region))?;
    let plan = plan_frame(model.mutation, db)?;
    if plan.keep.len() == db.inbox.len() {
        return None; // nothing to consume: the processor waits for the inbox watch
    }
    let mine = Lease {
        holder: Some(processor),
        epoch: held.epoch,
    };
    let mut next = state.clone();
    if db.lease != mine && model.mutation != Mutation::NoLeaseCheck {
        // The transaction read another epoch: it writes nothing and the processor steps down.
        if outcome.is_unknown() {
            return None;
        }
        *super::held_mut(&mut next, processor, region)? = None;
        return Some(next);
    }
    if outcome.is_unknown() {
        next.budget.t2_unknown = next.budget.t2_unknown.checked_sub(1)?;
    }
    let after = if outcome.applied() {
        commit_frame(model, &mut next, region, cache, &plan)?
    } else {
        cache
    };
    let known = match outcome {
        Outcome::Committed => Some(after),
        _ if model.mutation == Mutation::UnknownKeepsCache => Some(cache),
        _ => None,
    };
    let slot = super::held_mut(&mut next, processor, region)?;
    *slot = Some(crate::state::Held {
        epoch: held.epoch,
        cache: known,
    });
    Some(next)
}

/// Writes the frame's effects to the database; returns the region's view after the frame.
fn commit_frame(
    model: &WorldModel,
    next: &mut State,
    region: u8,
    cache: View,
    plan: &FramePlan,
) -> Option<View> {
    let mut view = cache;
    let vs = next.regions.get(usize::from(region))?.next_vs;
    let mut delta = Delta {
        vs,
        harvested: 0,
        built: 0,
    };
    for entry in &plan.apply {
        let player = next.players.get_mut(usize::from(entry.player))?;
        match kind_of(entry.input) {
            InputKind::Harvest => {
                if view.tree_hp > 0 || model.mutation == Mutation::HarvestDeadTree {
                    view.tree_hp = view.tree_hp.checked_sub(1)?;
                    player.inventory = player.inventory.checked_add(1)?;
                    delta.harvested = delta.harvested.checked_add(1)?;
                }
            }
            InputKind::Build => {
                if player.inventory > 0 {
                    player.inventory -= 1;
                    view.ground = view.ground.checked_add(1)?;
                    delta.built = delta.built.checked_add(1)?;
                }
            }
            InputKind::Idle => {}
        }
        player.history.push(entry.numbered());
    }
    view.frame = cache.frame.checked_add(1)?;
    let db = super::region_mut(next, region)?;
    db.inbox.clone_from(&plan.keep);
    db.applied.clone_from(&plan.applied);
    db.harvested = db.harvested.checked_add(delta.harvested)?;
    db.view = view;
    if !(model.mutation == Mutation::FrameSkip && plan.apply.is_empty()) {
        db.frame_log.push(cache.frame);
        db.changelog.push(delta);
        db.head = vs;
        db.next_vs = vs.checked_add(1)?;
    }
    Some(view)
}
