//! Edges: pushing the change log to clients, disconnects, resumes, and log trimming.
//!
//! Each client has a cursor, the versionstamp of the last change-log entry it has seen. An
//! edge replays the region's log after the cursor, up to the head, in one range read. If entries after the
//! cursor were trimmed, replay is impossible and the edge sends a snapshot instead: the
//! region's entities and head, read in one transaction.

use crate::mutation::Mutation;
use crate::state::{Edge, RegionDb, State};
use crate::WorldModel;

/// The client `client`'s edge and the database of its home region.
fn edge_and_region<'a>(
    model: &WorldModel,
    state: &'a State,
    client: u8,
) -> Option<(Edge, &'a RegionDb)> {
    let edge = *state.edges.get(usize::from(client))?;
    let db = state
        .regions
        .get(usize::from(model.bounds.watched(client)))?;
    Some((edge, db))
}

/// Whether entries after `cursor` were trimmed, so a replay would miss deltas.
fn must_snapshot(model: &WorldModel, edge: &Edge, db: &RegionDb) -> bool {
    edge.cursor < db.trimmed && model.mutation != Mutation::ReplayIgnoresTrim
}

/// Replaces the client's mirror with the region's current state and head.
fn snapshot(edge: &mut Edge, db: &RegionDb) {
    edge.mirror = db.view;
    edge.cursor = db.head;
}

/// TLA+ `Deliver(c)`: push every delta after the cursor (one range read of the log up to
/// the head), or a snapshot if entries after the cursor were trimmed.
pub fn deliver(model: &WorldModel, state: &State, client: u8) -> Option<State> {
    let (mut edge, db) = edge_and_region(model, state, client)?;
    if !edge.connected || edge.cursor >= db.head {
        return None;
    }
    if must_snapshot(model, &edge, db) {
        snapshot(&mut edge, db);
    } else {
        let cursor = edge.cursor;
        for delta in db.changelog.iter().filter(|d| d.vs > cursor) {
            edge.mirror.apply(delta)?;
            edge.cursor = delta.vs;
        }
        if edge.cursor == cursor {
            return None;
        }
    }
    let mut next = state.clone();
    *next.edges.get_mut(usize::from(client))? = edge;
    Some(next)
}

/// TLA+ `Disconnect(c)`: the connection drops; the client keeps mirror and cursor.
pub fn disconnect(_model: &WorldModel, state: &State, client: u8) -> Option<State> {
    let edge = state.edges.get(usize::from(client))?;
    if !edge.connected || state.budget.disconnects == 0 {
        return None;
    }
    let mut next = state.clone();
    next.budget.disconnects -= 1;
    next.edges.get_mut(usize::from(client))?.connected = false;
    Some(next)
}

/// TLA+ `Resume(c)`: reconnect with the cursor; replay continues, or a snapshot if trimmed.
pub fn resume(model: &WorldModel, state: &State, client: u8) -> Option<State> {
    let (mut edge, db) = edge_and_region(model, state, client)?;
    if edge.connected {
        return None;
    }
    edge.connected = true;
    if model.mutation == Mutation::ResumeWithoutCursor {
        edge.cursor = db.head;
    } else if must_snapshot(model, &edge, db) {
        snapshot(&mut edge, db);
    }
    let mut next = state.clone();
    *next.edges.get_mut(usize::from(client))? = edge;
    Some(next)
}

/// TLA+ `Trim(r)`: drop the region's oldest change-log entry.
pub fn trim(_model: &WorldModel, state: &State, region: u8) -> Option<State> {
    let empty = state.regions.get(usize::from(region))?.changelog.is_empty();
    if state.budget.trims == 0 || empty {
        return None;
    }
    let mut next = state.clone();
    next.budget.trims -= 1;
    let db = super::region_mut(&mut next, region)?;
    let oldest = db.changelog.remove(0);
    db.trimmed = oldest.vs;
    Some(next)
}
