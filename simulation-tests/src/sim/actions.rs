//! The scheduler's moves: which actions are ready, and doing one of them.
//!
//! Invariants: the ready list is built in a fixed order (tasks, nodes, edges and sessions by id,
//! clients by index) and one entry is drawn with the run's rng, so the interleaving is a function
//! of the seed; a stalled node's tasks are never polled.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rand::Rng;
use sekai_edge::session::{Admission, Outbound};
use sekai_layer::world::model::Input;
use sekai_schema::RegionId;

use super::Simulation;
use crate::client::Link;
use crate::config::PlantedBug;
use crate::edge::{Delivery, Phase, Session};
use crate::edge_ops::MAX_PER_PASS;
use crate::faults::FaultKind;
use crate::processor_node::{assign_every_us, idle_renew_us, Life, Step};
use crate::tasks::{Owner, Task};
use crate::trace::Event;
use sekai_edge::fanout::core::PlantedFanoutBug;
use sekai_layer::world::audit::Violation;

/// How long a bot thinks between inputs, in µs.
const THINK_US: std::ops::Range<u64> = 20_000..120_000;

/// Most messages one delivery action hands a client that keeps up.
const DELIVERY_BATCH: usize = 4;

/// How often the `SkipDelta` bug drops a delivered delta with changes.
const SKIP_EVERY: u64 = 7;

/// One thing the scheduler may do next.
#[derive(Clone, Copy, Debug)]
pub(super) enum Action {
    /// Poll task `i` once.
    Poll(usize),
    /// Node `i`'s manager starts its next task (survey, acquisition, release or leave).
    Node(usize),
    /// Node `i` starts a frame of a region it holds.
    Region(usize, RegionId),
    /// Client `i` sends a new input.
    Send(usize),
    /// Deliver what a session's subscriber yields (`poll_transmit`) to its client.
    Deliver(usize, u64),
    /// Deliver a session's acknowledgements to its client.
    Ack(usize, u64),
    /// Start a session's next T1.
    Store(usize, u64),
    /// Start a session's next read (snapshot or catch-up).
    Read(usize, u64),
}

/// Polls `future` once with a waker that does nothing (the scheduler re-polls by itself).
pub(super) fn poll_once<F: Future + ?Sized>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

impl Simulation {
    /// Restarts crashed nodes and reconnects clients whose time has come.
    pub(super) fn housekeeping(&mut self) {
        for i in 0..self.nodes.len() {
            if let Life::Down { until } = self.nodes[i].life {
                if self.now >= until {
                    let now = self.now;
                    self.nodes[i].restart(&mut self.rng, now);
                    let holder = self.nodes[i].holder;
                    self.tally.add(FaultKind::NodeJoin, 1);
                    self.record(Event::Fault(format!("node {i} joined as {holder:032x}")));
                }
            }
        }
        for c in 0..self.clients.len() {
            if let Link::Down { at } = self.clients[c].link {
                if self.now >= at && !self.edges.is_empty() {
                    self.connect(c);
                }
            }
        }
    }

    /// Connects client `c` to a random edge, resuming from its cursors if it has a mirror.
    fn connect(&mut self, c: usize) {
        let edge = self.rng.gen_range(0..self.edges.len());
        let session_id = self.next_session;
        self.next_session += 1;
        let delivery = if self.rng.gen_bool(self.config.slow_session) {
            Delivery {
                batch: 1,
                every_us: self.rng.gen_range(self.config.slow_delivery_us.clone()),
                budget: self.rng.gen_range(self.config.slow_budget.clone()),
            }
        } else {
            Delivery {
                batch: DELIVERY_BATCH,
                every_us: 0,
                budget: self.config.outbox_budget,
            }
        };
        let client = &mut self.clients[c];
        let resume = client.resume_point();
        let resumed = resume.is_some();
        let mut session = Session::new(
            c,
            client.player,
            client.bot.avatar,
            client.area,
            resume,
            delivery,
        );
        session.fanout_bug = match self.config.bug {
            PlantedBug::FanoutCursorPastCut => Some(PlantedFanoutBug::CursorPastCut),
            PlantedBug::FanoutRouteByNewCellOnly => Some(PlantedFanoutBug::RouteByNewCellOnly),
            _ => None,
        };
        if resumed && self.config.bug == PlantedBug::ResumeAtTail {
            session.phase = Phase::SeekingTail;
        }
        client.link = Link::Up {
            edge,
            session: session_id,
        };
        client.logged_in = false;
        self.edges[edge].sessions.insert(session_id, session);
        self.record(Event::Connected {
            client: c,
            edge,
            resume: resumed,
        });
    }

    /// Polls every armed watch; a fired (or failed) watch wakes its owner.
    pub(super) fn poll_watches(&mut self) {
        for proc_ in self.nodes.iter_mut().flat_map(|n| n.regions.values_mut()) {
            if let Some(watch) = proc_.watch.as_mut() {
                if poll_once(watch.as_mut()).is_ready() {
                    proc_.watch = None;
                    proc_.wake = true;
                }
            }
        }
        for edge in &mut self.edges {
            for session in edge.sessions.values_mut() {
                let fired = session
                    .watches
                    .iter_mut()
                    .any(|w| poll_once(w.as_mut()).is_ready());
                if fired {
                    session.watches.clear();
                    session.dirty = true;
                }
            }
        }
    }

    /// Every ready action, in a fixed order.
    pub(super) fn ready(&self, sending: bool) -> Vec<Action> {
        let mut ready = Vec::new();
        for (i, task) in self.tasks.iter().enumerate() {
            let node = match task.owner {
                Owner::Node(n) | Owner::Proc { node: n, .. } => Some(n),
                Owner::Session { .. } => None,
            };
            if !node.is_some_and(|n| self.nodes[n].stalled(self.now)) {
                ready.push(Action::Poll(i));
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.manager_due(self.now) {
                ready.push(Action::Node(i));
            }
            if !node.is_up() || node.stalled(self.now) {
                continue;
            }
            for (region, p) in &node.regions {
                if p.due(self.now) {
                    ready.push(Action::Region(i, *region));
                }
            }
        }
        for (e, edge) in self.edges.iter().enumerate() {
            for (id, s) in &edge.sessions {
                if s.phase == Phase::Closed {
                    continue;
                }
                if !s.acks.is_empty() {
                    ready.push(Action::Ack(e, *id));
                }
                if s.subscriber.has_pending() && self.now >= s.next_delivery_at {
                    ready.push(Action::Deliver(e, *id));
                }
                // A session logs in first (as a real client does), then stores its inputs.
                if !s.storing && (!s.inputs.is_empty() || s.gate.is_none()) {
                    ready.push(Action::Store(e, *id));
                }
                let wants_read = s.phase != Phase::Streaming || s.dirty;
                if !s.reading && wants_read {
                    ready.push(Action::Read(e, *id));
                }
            }
        }
        if sending {
            for (c, client) in self.clients.iter().enumerate() {
                if matches!(client.link, Link::Up { .. })
                    && client.logged_in
                    && client.unacked() < self.config.window
                    && self.now >= client.next_send_at
                {
                    ready.push(Action::Send(c));
                }
            }
        }
        ready
    }

    /// Does one random ready action; false when none was ready.
    pub(super) async fn act(&mut self, sending: bool) -> bool {
        let ready = self.ready(sending);
        if ready.is_empty() {
            return false;
        }
        let action = ready[self.rng.gen_range(0..ready.len())];
        match action {
            Action::Poll(i) => self.poll_task(i),
            Action::Node(i) => self.start_node(i),
            Action::Region(i, region) => self.start_frame(i, region),
            Action::Send(c) => self.send(c),
            Action::Deliver(e, s) => self.deliver(e, s),
            Action::Ack(e, s) => self.deliver_acks(e, s),
            Action::Store(e, s) => self.start_store(e, s),
            Action::Read(e, s) => self.start_read(e, s),
        }
        true
    }

    fn poll_task(&mut self, i: usize) {
        if let Poll::Ready(output) = poll_once(self.tasks[i].future.as_mut()) {
            let task = self.tasks.remove(i);
            self.finish(task.owner, output);
        }
    }

    /// Node `i`'s manager starts its next step, or a survey when its plan is done.
    fn start_node(&mut self, i: usize) {
        let Ok(db) = self.engine.db().cloned() else {
            return;
        };
        let keys = self.keys.clone();
        let node = &mut self.nodes[i];
        let holder = node.holder;
        let task = match node.pending.pop_front() {
            Some(Step::Release(region)) => match node.regions.remove(&region) {
                Some(p) => Task::release(db, keys, i, region, p.lease),
                None => return,
            },
            Some(Step::Acquire(region)) => Task::acquire(db, keys, i, region, holder),
            Some(Step::Leave) => Task::leave(db, keys, i, holder),
            None => {
                node.next_survey = self.now + assign_every_us();
                Task::survey(db, keys, i, self.world.regions.clone(), holder)
            }
        };
        node.busy = true;
        self.tasks.push(task);
    }

    /// Node `i` runs a frame of `region` (work, or an idle renewal).
    fn start_frame(&mut self, i: usize, region: RegionId) {
        let Ok(db) = self.engine.db().cloned() else {
            return;
        };
        let now = self.now;
        let Some(p) = self.nodes[i].regions.get_mut(&region) else {
            return;
        };
        let (Some(mut hot), Some(ids), Some(direct)) =
            (p.hot.take(), p.ids.take(), p.direct.take())
        else {
            return;
        };
        // Like `hold_region`: woken by direct inputs alone (the watch has not fired, the renewal
        // is not due), the frame skips its inbox scan and the watch is kept.
        if !p.wake && now < p.renew_at && p.watch.is_some() {
            hot.inbox_unchanged();
        } else {
            p.watch = None;
        }
        p.busy = true;
        p.wake = false;
        p.renew_at = now + idle_renew_us();
        let task = Task::frame(
            db,
            self.keys.clone(),
            (i, region),
            p.lease,
            (hot, ids, direct),
        );
        self.tasks.push(task);
    }

    fn send(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let Link::Up { edge, session } = client.link else {
            return;
        };
        let input = client.next_input(&mut self.rng, &self.world.resources);
        client.next_send_at = self.now + self.rng.gen_range(THINK_US);
        let player = client.player;
        self.ledger.sent.insert(player, input.seq);
        let duplicate = self.rng.gen_bool(self.config.duplicate_input);
        let Some(s) = self.edges[edge].sessions.get_mut(&session) else {
            return;
        };
        s.inputs.push_back(input.clone());
        if duplicate {
            s.inputs.push_back(input.clone());
            self.tally.add(FaultKind::DuplicateInput, 1);
        }
        if self.rng.gen_bool(self.config.gap_probe) {
            let probe = Input {
                seq: input.seq + 100_000 + self.rng.gen_range(0..5_000),
                ..input.clone()
            };
            s.probes.insert(probe.seq);
            s.inputs.push_back(probe);
        }
        for resend in [false, true].into_iter().take(1 + usize::from(duplicate)) {
            self.record(Event::InputSent {
                client: c,
                player,
                seq: input.seq,
                resend,
            });
        }
    }

    /// Hands the client what its session's subscriber yields, `delivery.batch` messages at
    /// most; a reset closes the session and the client resubscribes from a snapshot.
    fn deliver(&mut self, e: usize, s: u64) {
        let skip = self.config.bug == PlantedBug::SkipDelta;
        let now = self.now;
        let Some(session) = self.edges[e].sessions.get_mut(&s) else {
            return;
        };
        session.next_delivery_at = now + session.delivery.every_us;
        let mut messages = Vec::new();
        while messages.len() < session.delivery.batch {
            let Some(message) = session.subscriber.poll_transmit() else {
                break;
            };
            if let Outbound::Delta { delta, .. } = &message {
                if !delta.changes.is_empty() {
                    session.deltas_delivered += 1;
                    if skip && session.deltas_delivered.is_multiple_of(SKIP_EVERY) {
                        continue;
                    }
                }
            }
            messages.push(message);
        }
        let c = session.client;
        for message in messages {
            let event = match &message {
                Outbound::Snapshot { entities, .. } => Event::SnapshotDelivered {
                    client: c,
                    entities: entities.len(),
                },
                Outbound::Delta { stamp, delta } => Event::DeltaDelivered {
                    client: c,
                    region: delta.region,
                    stamp: *stamp,
                    changes: delta.changes.len(),
                },
                Outbound::Reset { reason } => Event::Fault(format!("client {c} reset: {reason}")),
            };
            self.record(event);
            if !self.clients[c].receive(message) {
                self.tally.add(FaultKind::OutboxReset, 1);
                self.close_session(e, s);
                let client = &mut self.clients[c];
                client.forget_view();
                client.link = Link::Down {
                    at: self.now + self.rng.gen_range(1_000..20_000),
                };
                return;
            }
        }
    }

    /// Hands the client its session's acknowledgements.
    fn deliver_acks(&mut self, e: usize, s: u64) {
        let Some(session) = self.edges[e].sessions.get_mut(&s) else {
            return;
        };
        let acks: Vec<u64> = session.acks.drain(..).collect();
        let c = session.client;
        let player = self.clients[c].player;
        for seq in acks {
            self.record(Event::InputAcked { player, seq });
            if let Err(violation) = self.online.on_ack(player, seq, &self.ledger) {
                self.fail(violation);
            }
            self.clients[c].receive_ack(seq);
            self.ledger.acked.insert((player, seq));
        }
    }

    /// Ends session `s` of edge `e` (its client went away): nothing more is delivered, and it
    /// is dropped once no task of it runs.
    pub(super) fn close_session(&mut self, e: usize, s: u64) {
        if let Some(session) = self.edges[e].sessions.get_mut(&s) {
            session.phase = Phase::Closed;
            session.acks.clear();
            session.inputs.clear();
            session.watches.clear();
            if !session.storing && !session.reading {
                self.edges[e].sessions.remove(&s);
            }
        }
    }

    fn start_store(&mut self, e: usize, s: u64) {
        let Ok(db) = self.engine.db().cloned() else {
            return;
        };
        let skip_t1 = self.config.bug == PlantedBug::AckWithoutCommit && self.rng.gen_bool(0.05);
        let Some(session) = self.edges[e].sessions.get_mut(&s) else {
            return;
        };
        if session.gate.is_none() {
            // The first store of a session waits for its login (the shipped `ensure_avatar`),
            // which reads the player's durable record: `Session.info.lastSeq`.
            session.storing = true;
            let owner = Owner::Session {
                edge: e,
                session: s,
            };
            let task = Task::login(db, self.keys.clone(), owner, session.player, session.avatar);
            self.tasks.push(task);
            return;
        }
        let Some(input) = session.inputs.pop_front() else {
            return;
        };
        let admitted = session.admit(&input, Duration::from_micros(self.now));
        if session.probes.remove(&input.seq) {
            match admitted {
                Err(_) => self.tally.add(FaultKind::GapProbe, 1),
                Ok(_) => {
                    let detail = format!("player {} seq {}", input.player, input.seq);
                    self.fail(Violation::new("no client can open a seq gap", detail));
                }
            }
            return;
        }
        match admitted {
            Ok(Admission::Store) => {}
            Ok(Admission::AlreadyDurable) => {
                session.acks.push_back(input.seq);
                return;
            }
            Err(error) => {
                let detail = format!("player {} seq {}: {error}", input.player, input.seq);
                self.fail(Violation::new(
                    "the edge admits every input it is sent",
                    detail,
                ));
                return;
            }
        }
        if skip_t1 {
            if let Some(gate) = session.gate.as_mut() {
                gate.stored(input.seq);
            }
            session.acks.push_back(input.seq);
            return;
        }
        session.storing = true;
        let owner = Owner::Session {
            edge: e,
            session: s,
        };
        let location = session.location.clone();
        // The edge shares a process with one processor node: inputs of that node's regions go
        // to its processors directly (`world::direct`), the rest through T1.
        let direct = self.nodes[e % self.nodes.len()].direct.clone();
        let task = Task::store(db, self.keys.clone(), owner, (location, direct), input);
        self.tasks.push(task);
    }

    fn start_read(&mut self, e: usize, s: u64) {
        let Ok(db) = self.engine.db().cloned() else {
            return;
        };
        let cache = self.edges[e].cache.clone();
        let Some(session) = self.edges[e].sessions.get_mut(&s) else {
            return;
        };
        let owner = Owner::Session {
            edge: e,
            session: s,
        };
        let (area, regions) = (session.area(), session.regions());
        // The entries the processors of the edge's node recorded (`world::local_log`).
        let local = self.nodes[e % self.nodes.len()].direct.log().clone();
        let task = match session.phase {
            Phase::Snapshotting | Phase::SeekingTail => {
                Task::snapshot(db, self.keys.clone(), owner, area, cache)
            }
            Phase::Resuming(from) => {
                session.dirty = false;
                session.watches.clear();
                let core = session.fanout_after(from);
                let keys = self.keys.clone();
                Task::catch_up(
                    db,
                    keys,
                    owner,
                    core,
                    (regions, local),
                    usize::MAX,
                    Some(area),
                )
            }
            Phase::Streaming => {
                session.dirty = false;
                session.watches.clear();
                let core = session.fanout.clone();
                let keys = self.keys.clone();
                Task::catch_up(db, keys, owner, core, (regions, local), MAX_PER_PASS, None)
            }
            Phase::Closed => return,
        };
        session.reading = true;
        self.tasks.push(task);
    }
}
