//! What happens when a task finishes: its owner takes back its state and reacts.
//!
//! Invariants: an acknowledgement is queued only for a T1 that returned success; a frame is put
//! in the ledger only when `run_frame` reported it committed; any layer error other than a lost
//! lease is a violation (the layer retries every retryable error itself).

use std::collections::BTreeSet;

use rand::Rng;
use sekai_layer::world::assign::plan;
use sekai_layer::world::direct::Stored;
use sekai_layer::world::error::WorldError;
use sekai_schema::RegionId;

use super::Simulation;
use crate::edge::Phase;
use crate::faults::FaultKind;
use crate::processor_node::Step;
use crate::tasks::{Owner, TaskOutput};
use crate::trace::Event;
use sekai_layer::world::audit::Violation;

/// How long a node that left stays away, in µs.
const LEAVE_DOWN_US: std::ops::Range<u64> = 100_000..2_000_000;

impl Simulation {
    /// Hands a finished task's output to its owner.
    pub(super) fn finish(&mut self, owner: Owner, output: TaskOutput) {
        match owner {
            Owner::Node(i) => self.finish_node(i, output),
            Owner::Proc { node, region } => self.finish_proc(node, region, output),
            Owner::Session { edge, session } => self.finish_session(edge, session, output),
        }
    }

    fn layer_error(&mut self, what: &str, error: &WorldError) {
        let detail = format!("{what}: {error}");
        self.record(Event::LayerError(detail.clone()));
        self.fail(Violation::new("layer call succeeds", detail));
    }

    fn finish_node(&mut self, i: usize, output: TaskOutput) {
        let now = self.now;
        self.nodes[i].busy = false;
        match output {
            TaskOutput::Surveyed(Ok(view)) => {
                let node = &mut self.nodes[i];
                if node.leaving {
                    return;
                }
                let running: BTreeSet<RegionId> = node
                    .regions
                    .iter()
                    .filter(|(_, p)| !p.stopping)
                    .map(|(r, _)| *r)
                    .collect();
                let plan = plan(&view, node.holder, &running);
                for region in &plan.release {
                    if let Some(p) = node.regions.get_mut(region) {
                        p.stopping = true;
                    }
                    node.pending.push_back(Step::Release(*region));
                }
                node.pending
                    .extend(plan.acquire.iter().map(|r| Step::Acquire(*r)));
                if !plan.is_empty() {
                    let detail = format!(
                        "node {i} sees {} nodes: release {:?} acquire {:?}",
                        view.nodes.len(),
                        plan.release,
                        plan.acquire
                    );
                    self.record(Event::Assign(detail));
                }
            }
            TaskOutput::Surveyed(Err(error)) => self.layer_error("assign::survey", &error),
            TaskOutput::Acquired(region, Ok(Some(lease))) => {
                let node = &mut self.nodes[i];
                node.take(region, lease, now);
                if node.leaving {
                    // Taken while the leave began: hand it over before leaving too.
                    if let Some(p) = node.regions.get_mut(&region) {
                        p.stopping = true;
                    }
                    node.pending.push_front(Step::Release(region));
                }
                let last = self.epochs.insert(region, lease.epoch).unwrap_or(0);
                if lease.epoch > last && last > 0 {
                    self.tally.add(FaultKind::LeaseTakeover, 1);
                }
                self.record(Event::LeaseTaken {
                    region,
                    node: i,
                    epoch: lease.epoch,
                });
            }
            TaskOutput::Acquired(_, Ok(None)) => {}
            TaskOutput::Acquired(_, Err(error)) => self.layer_error("lease::acquire", &error),
            TaskOutput::Released(region, Ok(released)) => {
                self.record(Event::Assign(format!(
                    "node {i} released {region} ({released})"
                )));
            }
            TaskOutput::Released(_, Err(error)) => self.layer_error("lease::release", &error),
            TaskOutput::Left(Ok(())) => {
                let until = now + self.rng.gen_range(LEAVE_DOWN_US);
                self.nodes[i].down(until);
                self.record(Event::Assign(format!("node {i} left")));
            }
            TaskOutput::Left(Err(error)) => self.layer_error("nodes::leave", &error),
            TaskOutput::Frame { .. }
            | TaskOutput::Stored { .. }
            | TaskOutput::LoggedIn(_)
            | TaskOutput::Snapshot(_)
            | TaskOutput::CaughtUp(_) => {}
        }
    }

    fn finish_proc(&mut self, i: usize, region: RegionId, output: TaskOutput) {
        let TaskOutput::Frame {
            hot,
            ids,
            direct,
            result,
        } = output
        else {
            return;
        };
        let Some(p) = self.nodes[i].regions.get_mut(&region) else {
            return;
        };
        p.busy = false;
        p.ids = Some(*ids);
        p.hot = Some(*hot);
        p.direct = Some(*direct);
        match result {
            Ok(Ok(frame)) => {
                // Like `hold_region`: the next frame waits on the watch the frame armed (ready
                // at once when it left inputs behind), or on the one kept if it armed none.
                if let Some(next) = frame.next {
                    p.watch = Some(next);
                }
                let record = frame.record;
                if let Err(violation) =
                    self.online
                        .on_frame(record.region, record.frame, &record.inputs)
                {
                    self.fail(violation);
                }
                self.ledger
                    .frames
                    .insert((record.region, record.frame), record.inputs.clone());
                self.record(Event::FrameCommitted {
                    region: record.region,
                    frame: record.frame,
                    inputs: record.inputs,
                    stamp: frame.versionstamp,
                });
            }
            Ok(Err(Some(watch))) => p.watch = Some(watch),
            Ok(Err(None)) => {}
            Err(WorldError::LeaseLost(region)) => {
                // `hold_region` returns: the region is no longer processed by this node.
                if !p.stopping {
                    self.nodes[i].regions.remove(&region);
                }
                self.record(Event::LeaseLost { region, node: i });
            }
            Err(error) => self.layer_error("processor::run_frame", &error),
        }
    }

    fn finish_session(&mut self, e: usize, s: u64, output: TaskOutput) {
        if let TaskOutput::Stored {
            input,
            result: Ok((region, stored)),
        } = &output
        {
            match stored {
                Stored::Directly => self.tally.add(FaultKind::StoredDirectly, 1),
                Stored::Dropped => self.tally.add(FaultKind::DirectDropped, 1),
                Stored::Inbox => {}
            }
            self.record(Event::InputStored {
                player: input.player,
                seq: input.seq,
                region: *region,
            });
        }
        if matches!(output, TaskOutput::Snapshot(_)) {
            let refused = self.edges[e].cache.take_stale_refused();
            self.tally.add(FaultKind::StaleCacheRefused, refused);
        }
        let Some(session) = self.edges[e].sessions.get_mut(&s) else {
            return;
        };
        let closed = session.phase == Phase::Closed;
        let mut login: Option<(usize, u64)> = None;
        let error = match output {
            TaskOutput::Stored { input, result } => {
                session.storing = false;
                match result {
                    Ok(_) => {
                        if let Some(gate) = session.gate.as_mut() {
                            gate.stored(input.seq);
                        }
                        if !closed {
                            session.acks.push_back(input.seq);
                        }
                        None
                    }
                    Err(error) => {
                        if let Some(gate) = session.gate.as_mut() {
                            gate.failed();
                        }
                        Some(("inbox T1", error))
                    }
                }
            }
            TaskOutput::LoggedIn(result) => {
                session.storing = false;
                match result {
                    Ok(state) => {
                        let now = std::time::Duration::from_micros(self.now);
                        session.logged_in(&state.avatar, state.durable, now);
                        if !closed {
                            login = Some((session.client, state.durable.seq));
                        }
                        None
                    }
                    Err(error) => Some(("login", error)),
                }
            }
            TaskOutput::Snapshot(result) => {
                session.reading = false;
                match result {
                    Ok((entities, at)) if !closed => {
                        if session.phase == Phase::SeekingTail {
                            // The planted bug: resume at the tail, not at the client's cursor.
                            let visible: Vec<_> = entities.iter().map(|e| e.id).collect();
                            session.start_replay(at, Default::default(), None, visible);
                            session.dirty = true;
                        } else {
                            session.start_snapshot(entities, at);
                        }
                        None
                    }
                    Ok(_) => None,
                    Err(error) => Some(("area snapshot", error)),
                }
            }
            TaskOutput::CaughtUp(result) => {
                session.reading = false;
                match result {
                    Ok(caught) if !closed => {
                        session.watches = caught.watches;
                        self.tally.add(FaultKind::LocalLogRead, caught.from_local);
                        match session.phase {
                            Phase::Resuming(from) => {
                                let (commits, cursors) = (caught.commits, caught.cursors);
                                session.start_replay(from, commits, Some(cursors), caught.visible);
                            }
                            _ => {
                                session.fanout.commit(caught.cursors);
                                let routed_past = session.hand_over(&caught.commits);
                                self.tally.add(FaultKind::RoutedPast, routed_past);
                            }
                        }
                        // A region cut short has committed entries left: read again now.
                        if session.fanout.behind() {
                            session.dirty = true;
                            self.tally.add(FaultKind::FanoutCut, 1);
                        }
                        let coalesced = session.new_coalescings();
                        self.tally.add(FaultKind::OutboxCoalesced, coalesced);
                        None
                    }
                    Ok(_) => None,
                    Err(error) => Some(("change-log catch-up", error)),
                }
            }
            TaskOutput::Acquired(..)
            | TaskOutput::Surveyed(_)
            | TaskOutput::Released(..)
            | TaskOutput::Left(_)
            | TaskOutput::Frame { .. } => None,
        };
        if closed && !session.storing && !session.reading {
            self.edges[e].sessions.remove(&s);
        }
        if let Some((c, last_seq)) = login {
            self.resend_after_login(e, s, c, last_seq);
        }
        if let Some((what, error)) = error {
            self.layer_error(what, &error);
        }
    }

    /// The session's login answered `last_seq`: the client core decides what to resend (the
    /// unacknowledged inputs above it, renumbered after it), queued before anything new.
    fn resend_after_login(&mut self, e: usize, s: u64, c: usize, last_seq: u64) {
        let resent = self.clients[c].logged_in(last_seq);
        let player = self.clients[c].player;
        for input in &resent {
            self.tally.add(FaultKind::ClientResend, 1);
            self.ledger.sent.insert(player, input.seq);
            self.trace.record(
                self.now,
                Event::InputSent {
                    client: c,
                    player,
                    seq: input.seq,
                    resend: true,
                },
            );
        }
        if let Some(session) = self.edges[e].sessions.get_mut(&s) {
            debug_assert!(
                session.inputs.is_empty(),
                "a client sends only once logged in"
            );
            session.inputs.extend(resent);
        }
    }
}
