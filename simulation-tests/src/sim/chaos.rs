//! The simulator's own faults: processor node crashes, graceful leaves (and, through
//! `housekeeping`, joins), node stalls, region processor crashes, edge crashes, client
//! disconnects and restarts, and engine crashes with reopen (engine-level commit and watch faults come from
//! the engine's fault stream).
//!
//! Invariants:
//! - a crash drops exactly what the crashed process held: its tasks (transactions in flight),
//!   its watches and its memory; what the database acknowledged stays;
//! - an engine crash is a whole-process crash: every processor and edge dies with it, clients
//!   reconnect and resend what was not acknowledged, and right after the reopen every
//!   acknowledged input and every committed frame must still be there.

use rand::Rng;
use sekai_schema::RegionId;

use super::Simulation;
use crate::client::Link;
use crate::faults::FaultKind;
use crate::tasks::Owner;
use crate::trace::Event;
use sekai_layer::world::audit::{check_durable, Violation};

/// µs in a millisecond.
const MS: u64 = 1_000;

impl Simulation {
    /// Rolls each simulated fault once.
    pub(super) async fn maybe_fault(&mut self) {
        let c = self.config.clone();
        if self.rng.gen_bool(c.processor_crash) {
            self.crash_processor();
        }
        if self.rng.gen_bool(c.processor_stall) {
            self.stall_processor();
        }
        if self.rng.gen_bool(c.node_crash) {
            self.crash_node();
        }
        if self.rng.gen_bool(c.node_leave) {
            self.leave_node();
        }
        if self.rng.gen_bool(c.edge_crash) {
            let edge = self.rng.gen_range(0..self.edges.len().max(1));
            self.crash_edge(edge);
        }
        if self.rng.gen_bool(c.client_disconnect) {
            self.disconnect_client(false);
        }
        if self.rng.gen_bool(c.client_restart) {
            self.disconnect_client(true);
        }
        if self.rng.gen_bool(c.engine_crash) {
            self.crash_engine().await;
        }
    }

    fn fault(&mut self, kind: FaultKind, what: String) {
        self.tally.add(kind, 1);
        self.record(Event::Fault(what));
    }

    /// Indices of the nodes that are up (and, with `holding`, process some region).
    fn up_nodes(&self, holding: bool) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                let node = &self.nodes[*i];
                node.is_up() && !node.stalled(self.now) && (!holding || !node.regions.is_empty())
            })
            .collect()
    }

    /// One region's processor dies inside a live node: its frame in flight, watch and hot state
    /// are lost; the node's next survey takes its own lease back.
    fn crash_processor(&mut self) {
        let up = self.up_nodes(true);
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.gen_range(0..up.len())];
        let regions: Vec<RegionId> = self.nodes[i].regions.keys().copied().collect();
        let region = regions[self.rng.gen_range(0..regions.len())];
        self.tasks
            .retain(|t| t.owner != Owner::Proc { node: i, region });
        self.nodes[i].regions.remove(&region);
        let what = format!("processor of {region} on node {i} crashed");
        self.fault(FaultKind::ProcessorCrash, what);
    }

    fn stall_processor(&mut self) {
        let up = self.up_nodes(true);
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.gen_range(0..up.len())];
        self.nodes[i].stalled_until = self.now + self.rng.gen_range(2_500 * MS..6_000 * MS);
        self.fault(FaultKind::ProcessorStall, format!("node {i} stalled"));
    }

    /// Drops every task of node `i`.
    fn drop_node_tasks(&mut self, i: usize) {
        self.tasks.retain(|t| match t.owner {
            Owner::Node(n) | Owner::Proc { node: n, .. } => n != i,
            Owner::Session { .. } => true,
        });
    }

    /// A processor node dies: no release, no goodbye; it rejoins later as a new node.
    fn crash_node(&mut self) {
        let up = self.up_nodes(false);
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.gen_range(0..up.len())];
        self.drop_node_tasks(i);
        let until = self.now + self.rng.gen_range(50 * MS..1_500 * MS);
        self.nodes[i].down(until);
        self.fault(FaultKind::NodeCrash, format!("node {i} crashed"));
    }

    /// A processor node shuts down gracefully: it stops its regions, releases them and leaves.
    fn leave_node(&mut self) {
        let up: Vec<usize> = self
            .up_nodes(false)
            .into_iter()
            .filter(|i| !self.nodes[*i].leaving)
            .collect();
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.gen_range(0..up.len())];
        self.nodes[i].begin_leave();
        self.fault(FaultKind::NodeLeave, format!("node {i} leaving"));
    }

    /// Drops every session of `edge` with its tasks; their clients reconnect soon.
    fn crash_edge(&mut self, edge: usize) {
        let Some(dead) = self.edges.get_mut(edge).map(|e| {
            e.cache = crate::edge_ops::EdgeCache::new(e.cache.serve_stale);
            std::mem::take(&mut e.sessions)
        }) else {
            return;
        };
        self.tasks
            .retain(|t| !matches!(t.owner, Owner::Session { edge: e, .. } if e == edge));
        for client in &mut self.clients {
            if matches!(client.link, Link::Up { edge: e, session } if e == edge && dead.contains_key(&session))
            {
                client.link = Link::Down {
                    at: self.now + self.rng.gen_range(MS..100 * MS),
                };
            }
        }
        self.fault(FaultKind::EdgeCrash, format!("edge {edge} crashed"));
    }

    /// A connected client goes away; `restart` also loses its mirror.
    fn disconnect_client(&mut self, restart: bool) {
        let up: Vec<usize> = (0..self.clients.len())
            .filter(|c| matches!(self.clients[*c].link, Link::Up { .. }))
            .collect();
        if up.is_empty() {
            return;
        }
        let c = up[self.rng.gen_range(0..up.len())];
        if let Link::Up { edge, session } = self.clients[c].link {
            self.close_session(edge, session);
        }
        let client = &mut self.clients[c];
        client.link = Link::Down {
            at: self.now + self.rng.gen_range(MS..200 * MS),
        };
        if restart {
            client.forget_view();
            self.fault(FaultKind::ClientRestart, format!("client {c} restarted"));
        } else {
            self.fault(
                FaultKind::ClientDisconnect,
                format!("client {c} disconnected"),
            );
        }
    }

    /// The process dies: engine, processors, edges. The engine reopens on its directory.
    pub(super) async fn crash_engine(&mut self) {
        self.tasks.clear();
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_up() {
                let until = self.now + self.rng.gen_range(10 * MS..300 * MS);
                self.nodes[i].down(until);
            }
        }
        for edge in &mut self.edges {
            edge.sessions.clear();
        }
        for client in &mut self.clients {
            if matches!(client.link, Link::Up { .. }) {
                client.link = Link::Down {
                    at: self.now + self.rng.gen_range(MS..100 * MS),
                };
            }
        }
        self.engine.crash();
        self.record(Event::Fault("engine crashed".into()));
        if let Err(error) = self.engine.reopen() {
            self.fail(Violation::new("engine reopens", error.to_string()));
            return;
        }
        self.engine_counts = self.engine.current_counts();
        let Ok(db) = self.engine.db() else {
            return;
        };
        let durable = check_durable(db.inner(), &self.keys, &self.world.regions, &self.ledger);
        if let Err(violation) = durable.await {
            self.fail(violation);
        }
    }
}
