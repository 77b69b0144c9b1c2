//! What happens when a task finishes: its owner takes back its state and reacts.
//!
//! Invariants: an acknowledgement is queued only for a T1 that returned success; a frame is put
//! in the ledger only when `run_frame` reported it committed; any layer error other than a lost
//! lease is a violation (the layer retries every retryable error itself).

use sekai_layer::world::error::WorldError;

use super::Simulation;
use crate::checks::Violation;
use crate::edge::Phase;
use crate::faults::FaultKind;
use crate::processor_node::{idle_renew_us, Role};
use crate::tasks::{Owner, TaskOutput};
use crate::trace::Event;

impl Simulation {
    /// Hands a finished task's output to its owner.
    pub(super) fn finish(&mut self, owner: Owner, output: TaskOutput) {
        match owner {
            Owner::Node(i) => self.finish_node(i, output),
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
            TaskOutput::Acquired(Ok(Some(lease))) => {
                let node = &mut self.nodes[i];
                node.role = Role::Active {
                    lease,
                    renew_at: now + idle_renew_us(),
                    wake: true,
                };
                let region = node.region;
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
            TaskOutput::Acquired(Ok(None)) => {
                self.nodes[i].role = Role::Standby {
                    next_try: now + idle_renew_us(),
                };
            }
            TaskOutput::Acquired(Err(error)) => self.layer_error("lease::acquire", &error),
            TaskOutput::Frame { hot, ids, result } => {
                let node = &mut self.nodes[i];
                node.ids = Some(*ids);
                node.hot = Some(*hot);
                match result {
                    Ok(Ok(frame)) => {
                        if let Role::Active { wake, .. } = &mut node.role {
                            *wake = true;
                        }
                        let record = frame.record;
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
                    Ok(Err(watch)) => node.watch = Some(watch),
                    Err(WorldError::LeaseLost(region)) => {
                        node.lose_lease(now);
                        self.record(Event::LeaseLost { region, node: i });
                    }
                    Err(error) => self.layer_error("processor::run_frame", &error),
                }
            }
            TaskOutput::Stored { .. }
            | TaskOutput::LoggedIn(_)
            | TaskOutput::Snapshot(_)
            | TaskOutput::CaughtUp(_) => {}
        }
    }

    fn finish_session(&mut self, e: usize, s: u64, output: TaskOutput) {
        if let TaskOutput::Stored {
            input,
            result: Ok(region),
        } = &output
        {
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
                    Ok(durable) => {
                        session.logged_in(durable, std::time::Duration::from_micros(self.now));
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
                            session.start_replay(at, Vec::new(), visible);
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
                        match session.phase {
                            Phase::Resuming(from) => {
                                session.start_replay(from, caught.entries, caught.visible);
                            }
                            _ => session.hand_over(caught.entries),
                        }
                        let coalesced = session.new_coalescings();
                        self.tally.add(FaultKind::OutboxCoalesced, coalesced);
                        None
                    }
                    Ok(_) => None,
                    Err(error) => Some(("change-log catch-up", error)),
                }
            }
            TaskOutput::Acquired(_) | TaskOutput::Frame { .. } => None,
        };
        if closed && !session.storing && !session.reading {
            self.edges[e].sessions.remove(&s);
        }
        if let Some((what, error)) = error {
            self.layer_error(what, &error);
        }
    }
}
