//! Going quiet, then checking: faults stop, bots stop sending, and the run is driven until every
//! input is acknowledged and applied, every client is streaming with an empty outbox, and no
//! watch fires for longer than the longest watch delay, and every node is up with every region
//! processed by exactly one of them, shares balanced (`assignment`). Then every check of
//! `checks` runs, and the assignment check once more.
//!
//! Invariant: the quiet phase adds no shortcuts: inboxes drain only through processors woken by
//! their watches or lease renewals, and mirrors converge only through edge watches firing, so a
//! lost wake-up shows up as a liveness violation or a mirror mismatch.

use super::Simulation;
use crate::client::Link;
use crate::edge::Phase;
use crate::trace::Event;
use sekai_layer::world::audit::{
    check_durable, check_mirror, check_world, scan, Expect, Violation, WorldSummary,
};

/// Virtual time the quiet phase may take before the run is declared stuck, in µs.
const QUIET_BUDGET_US: u64 = 120_000_000;

/// Time skipped when nothing is ready, in µs.
const IDLE_SKIP_US: u64 = 50_000;

impl Simulation {
    /// Drives the run to quiet and runs the checks.
    pub(super) async fn quiesce_and_check(&mut self) -> WorldSummary {
        let deadline = self.now + QUIET_BUDGET_US;
        let settle = self.engine.max_watch_delay().as_micros() as u64 + 1_000;
        loop {
            if self.violation.is_some() {
                return WorldSummary::default();
            }
            if self.now > deadline {
                // Name the broken invariant when one explains the stall (an acknowledged input
                // that never reached an inbox blocks its player's later inputs forever).
                if let Err(violation) = self.check_stalled().await {
                    self.fail(violation);
                    return WorldSummary::default();
                }
                let pending = self.pending_work();
                self.fail(Violation::new(
                    "run goes quiet",
                    format!("still busy after {QUIET_BUDGET_US}us of quiet phase: {pending}"),
                ));
                return WorldSummary::default();
            }
            if self.step(false).await {
                continue;
            }
            self.advance(settle).await;
            self.poll_watches();
            self.housekeeping();
            if !self.ready(false).is_empty() {
                continue;
            }
            match self.is_quiet().await {
                Ok(true) => break,
                Ok(false) => self.advance(IDLE_SKIP_US).await,
                Err(violation) => {
                    self.fail(violation);
                    return WorldSummary::default();
                }
            }
        }
        self.record(Event::Quiet);
        match self.check().await {
            Ok(summary) => summary,
            Err(violation) => {
                self.fail(violation);
                WorldSummary::default()
            }
        }
    }

    /// What is still going on (for a liveness report).
    fn pending_work(&self) -> String {
        let unacked: usize = self.clients.iter().map(|c| c.unacked()).sum();
        let down = self
            .clients
            .iter()
            .filter(|c| !matches!(c.link, Link::Up { .. }))
            .count();
        let active: usize = self.nodes.iter().map(|n| n.regions.len()).sum();
        let nodes_up = self.nodes.iter().filter(|n| n.is_up()).count();
        let unsettled: Vec<String> = self
            .edges
            .iter()
            .flat_map(|e| e.sessions.iter())
            .filter(|(_, s)| {
                s.phase != Phase::Streaming || s.dirty || s.has_output() || !s.inputs.is_empty()
            })
            .map(|(id, s)| {
                format!(
                    "session {id} {:?} dirty={} acks={} pending={}",
                    s.phase,
                    s.dirty,
                    s.acks.len(),
                    s.subscriber.has_pending()
                )
            })
            .collect();
        let blind = self.clients.iter().filter(|c| !c.has_snapshot()).count();
        format!(
            "{} tasks, {unacked} unacked inputs, {down} clients down, {blind} without a snapshot, \
             {nodes_up} nodes up, {active} regions processed, unsettled sessions {unsettled:?}, ready {:?}",
            self.tasks.len(),
            self.ready(false)
        )
    }

    /// True when nothing is left to do and every inbox is empty.
    async fn is_quiet(&self) -> Result<bool, Violation> {
        if !self.tasks.is_empty() {
            return Ok(false);
        }
        let clients_settled = self
            .clients
            .iter()
            .all(|c| c.unacked() == 0 && c.has_snapshot() && matches!(c.link, Link::Up { .. }));
        let sessions_settled = self.edges.iter().all(|e| {
            e.sessions.values().all(|s| {
                s.phase == Phase::Streaming && !s.dirty && !s.has_output() && s.inputs.is_empty()
            })
        });
        let nodes_settled = self
            .nodes
            .iter()
            .all(|n| n.is_up() && !n.leaving && n.pending.is_empty() && !n.stalled(self.now));
        if !clients_settled || !sessions_settled || !nodes_settled {
            return Ok(false);
        }
        if self.check_assignment().await.is_err() {
            return Ok(false);
        }
        let db = self
            .engine
            .db()
            .map_err(|e| Violation::new("engine open", e.to_string()))?;
        let trx = sekai_layer::kv::Database::create_trx(db.inner())
            .map_err(|e| Violation::new("database read", e.to_string()))?;
        for region in &self.world.regions {
            if !scan(&trx, self.keys.inbox_range(*region)).await?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The checks that explain a run that cannot go quiet: nothing acknowledged lost (in an
    /// inbox or a frame), every region processed by one node with balanced shares.
    async fn check_stalled(&self) -> Result<(), Violation> {
        let db = self
            .engine
            .db()
            .map_err(|e| Violation::new("engine open", e.to_string()))?
            .inner();
        check_durable(db, &self.keys, &self.world.regions, &self.ledger).await?;
        self.check_assignment().await
    }

    async fn check(&self) -> Result<WorldSummary, Violation> {
        let db = self
            .engine
            .db()
            .map_err(|e| Violation::new("engine open", e.to_string()))?
            .inner();
        let expect = Expect {
            ledger: Some(&self.ledger),
            totals: Some(self.world.totals),
            quiet: true,
        };
        let summary = check_world(db, &self.keys, &self.world.regions, expect).await?;
        for (i, client) in self.clients.iter().enumerate() {
            check_mirror(db, &self.keys, i, &client.area, client.mirror()).await?;
        }
        self.check_assignment().await?;
        Ok(summary)
    }
}
