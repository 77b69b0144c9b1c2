//! Leases, crashes and cache reloads of region processors.
//!
//! `lease/(region)` holds `(holder, epoch)`. Acquiring bumps the epoch and loads the region
//! into the processor's cache in the same transaction. A takeover models the lease expiring
//! under a holder that is dead or merely partitioned: the old holder may still believe it
//! holds the lease, but its next T2 reads the new epoch and writes nothing.

use crate::state::{Held, Lease, State};
use crate::WorldModel;

/// Gives `region`'s lease to `processor` under a new epoch, loading its cache.
fn grant(next: &mut State, processor: u8, region: u8) -> Option<()> {
    let db = super::region_mut(next, region)?;
    db.lease = Lease {
        holder: Some(processor),
        epoch: db.lease.epoch.checked_add(1)?,
    };
    let held = Held {
        epoch: db.lease.epoch,
        cache: Some(db.view),
    };
    *super::held_mut(next, processor, region)? = Some(held);
    Some(())
}

/// TLA+ `Acquire(q, r)`: take a free lease, or one's own lease again after a restart.
pub fn acquire(_model: &WorldModel, state: &State, processor: u8, region: u8) -> Option<State> {
    if super::held(state, processor, region)?.is_some() {
        return None;
    }
    let holder = state.regions.get(usize::from(region))?.lease.holder;
    if holder.is_some_and(|h| h != processor) {
        return None;
    }
    let mut next = state.clone();
    grant(&mut next, processor, region)?;
    Some(next)
}

/// TLA+ `Takeover(q, r)`: the lease of another holder expired and `processor` takes it.
pub fn takeover(_model: &WorldModel, state: &State, processor: u8, region: u8) -> Option<State> {
    if state.budget.takeovers == 0 || super::held(state, processor, region)?.is_some() {
        return None;
    }
    let holder = state.regions.get(usize::from(region))?.lease.holder;
    if holder.is_none_or(|h| h == processor) {
        return None;
    }
    let mut next = state.clone();
    next.budget.takeovers -= 1;
    grant(&mut next, processor, region)?;
    Some(next)
}

/// TLA+ `Crash(q)`: the processor loses its memory; its leases stay in the database.
pub fn crash(_model: &WorldModel, state: &State, processor: u8) -> Option<State> {
    let beliefs = state.processors.get(usize::from(processor))?;
    if state.budget.crashes == 0 || beliefs.iter().all(Option::is_none) {
        return None;
    }
    let mut next = state.clone();
    next.budget.crashes -= 1;
    for slot in next.processors.get_mut(usize::from(processor))? {
        *slot = None;
    }
    Some(next)
}

/// TLA+ `Reload(q, r)`: re-read the region after an unknown T2 result, checking the lease.
pub fn reload(_model: &WorldModel, state: &State, processor: u8, region: u8) -> Option<State> {
    let held = super::held(state, processor, region)??;
    if held.cache.is_some() {
        return None;
    }
    let db = state.regions.get(usize::from(region))?;
    let still_mine = db.lease
        == Lease {
            holder: Some(processor),
            epoch: held.epoch,
        };
    let belief = still_mine.then_some(Held {
        epoch: held.epoch,
        cache: Some(db.view),
    });
    let mut next = state.clone();
    *super::held_mut(&mut next, processor, region)? = belief;
    Some(next)
}
