//! The transitions, one module per actor: clients (T1), processors (T2 and leases), edges.
//!
//! Every step function returns `None` when its action is not enabled in the given state, so
//! `next_state` of [`crate::WorldModel`] can hand guards and effects to one place.

pub mod edge;
pub mod inbox;
pub mod lease;
pub mod processor;

use crate::state::{Held, RegionDb, State};

/// The region `region` of `state`, mutably.
fn region_mut(state: &mut State, region: u8) -> Option<&mut RegionDb> {
    state.regions.get_mut(usize::from(region))
}

/// Processor `processor`'s belief about region `region`, mutably.
fn held_mut(state: &mut State, processor: u8, region: u8) -> Option<&mut Option<Held>> {
    state
        .processors
        .get_mut(usize::from(processor))?
        .get_mut(usize::from(region))
}

/// Processor `processor`'s belief about region `region`.
fn held(state: &State, processor: u8, region: u8) -> Option<Option<Held>> {
    state
        .processors
        .get(usize::from(processor))?
        .get(usize::from(region))
        .copied()
}
