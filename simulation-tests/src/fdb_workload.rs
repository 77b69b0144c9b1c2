//! The same workload inside FoundationDB's simulator (feature `fdb-sim`): a
//! `foundationdb-simulation` `RustWorkload` that fdbserver loads from the
//! `examples/fdb_workload.rs` cdylib (see `simulation-tests/README.md` and `fdb/sekai.toml`).
//!
//! FoundationDB supplies the faults here (clogging, attrition, its client-side BUGGIFY), so the
//! workload drives the layer sequentially on each tester client; the concurrency comes from the
//! clients (`clientCount`) running at once on one simulated cluster:
//! - `setup` (client 0): loads the world of `seed` (the same [`WorldSpec`] as the local
//!   simulator);
//! - `start` (every client): bots of the client's players send inputs through the routed T1
//!   (`edge_ops`); every client is one processor node (edge and processor roles) that takes its
//!   fair share of the regions through the shipped `assign::survey`/`plan`, `lease::acquire` and
//!   `lease::release`, and runs frames of the regions it holds; each of its players keeps a
//!   mirror through the simulated edge (snapshot, then catch-ups); at the end even clients leave
//!   gracefully (release every lease, leave the node list) and odd ones just stop, like a crash
//!   (their leases expire); then the client stores its ledger (acknowledged inputs, highest seqs)
//!   in the database;
//! - `check`: client 0 takes every lease over, drains every inbox and marks the world drained;
//!   then every client catches its mirrors up and checks them, and client 0 merges the ledgers and
//!   runs [`check_world`]. A violation is logged at `SevError`, which fails the simulation.

use std::collections::BTreeSet;
use std::time::Duration;

use foundationdb_simulation::{
    Metric, Metrics, RustWorkload, Severity, SimDatabase, SingleRustWorkload, WorkloadContext,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::fdb_backend::FdbDatabase;
use sekai_layer::kv::{run, Database, FdbError, Transaction};
use sekai_layer::world::assign::{plan, survey};
use sekai_layer::world::direct::DirectInputs;
use sekai_layer::world::error::WorldError;
use sekai_layer::world::frame::HotRegion;
use sekai_layer::world::lease::{acquire, release, Lease};
use sekai_layer::world::nodes::{self, Roles};
use sekai_layer::world::processor::{run_frame, ProcessorStats};
use sekai_schema::{EntityId, RegionId, WorldKeys};

use crate::client::Client;
use crate::edge::{Delivery, Phase, Session};
use crate::edge_ops::{catch_up, route_and_submit, snapshot};
use crate::world_setup::WorldSpec;
use sekai_layer::world::audit::{check_mirror, check_world, scan, Expect, Ledger, Violation};

/// Prefix of the workload's own bookkeeping keys (outside the world's keys).
const BOOK: &[u8] = b"\x02sekai-sim-book\x00";

/// One region as this client processes it.
struct Processor {
    region: RegionId,
    lease: Option<Lease>,
    hot: HotRegion,
}

/// The Sekai workload of one tester client.
pub struct SekaiWorkload {
    context: WorkloadContext,
    client_id: i32,
    client_count: i32,
    steps: usize,
    world: WorldSpec,
    keys: WorldKeys,
    rng: ChaCha8Rng,
    clients: Vec<Client>,
    sessions: Vec<Session>,
    processors: Vec<Processor>,
    holder: u128,
    ledger: Ledger,
    frames: u64,
    violations: u64,
}

impl SingleRustWorkload for SekaiWorkload {
    fn new(_name: String, context: WorkloadContext) -> Self {
        let seed: u64 = context.get_option("seed").unwrap_or(1);
        let players: usize = context.get_option("players").unwrap_or(6);
        let steps: usize = context.get_option("steps").unwrap_or(300);
        let client_id = context.client_id();
        let client_count = context.client_count().max(1);
        let world = WorldSpec::build(seed, players, 0.02);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (client_id as u64).wrapping_mul(0x9E37));
        let mine = |p: &&crate::world_setup::PlayerSpec| {
            (p.player as i64 - 1).rem_euclid(i64::from(client_count)) == i64::from(client_id)
        };
        let clients: Vec<Client> = world.players.iter().filter(mine).map(Client::new).collect();
        let sessions = clients
            .iter()
            .enumerate()
            .map(|(i, c)| new_session(i, c))
            .collect();
        let processors = world
            .regions
            .iter()
            .map(|r| Processor {
                region: *r,
                lease: None,
                hot: HotRegion::new(*r),
            })
            .collect();
        let holder = rng.gen::<u128>() | 1;
        Self {
            context,
            client_id,
            client_count,
            steps,
            keys: WorldSpec::keys(),
            world,
            rng,
            clients,
            sessions,
            processors,
            holder,
            ledger: Ledger::default(),
            frames: 0,
            violations: 0,
        }
    }
}

impl RustWorkload for SekaiWorkload {
    async fn setup(&mut self, db: SimDatabase) {
        let db = FdbDatabase::from_database(db);
        let keys = self.keys.clone();
        if self.client_id == 0 {
            if let Err(error) = self.world.load(&db, &keys).await {
                self.violation(&Violation::new("setup", format!("load: {error:?}")));
            }
        }
    }

    async fn start(&mut self, db: SimDatabase) {
        let db = FdbDatabase::from_database(db);
        let keys = self.keys.clone();
        for _ in 0..self.steps {
            let roll: f64 = self.rng.gen();
            let result = if roll < 0.5 && !self.clients.is_empty() {
                self.send(&db, &keys).await
            } else if roll < 0.8 {
                let held: Vec<usize> = (0..self.processors.len())
                    .filter(|r| self.processors[*r].lease.is_some())
                    .collect();
                match held.len() {
                    0 => Ok(()),
                    n => {
                        let r = held[self.rng.gen_range(0..n)];
                        self.frame(&db, &keys, r, false).await
                    }
                }
            } else if roll < 0.85 {
                self.assign(&db, &keys).await
            } else if !self.sessions.is_empty() {
                let c = self.rng.gen_range(0..self.sessions.len());
                self.follow(&db, &keys, c).await
            } else {
                Ok(())
            };
            if let Err(error) = result {
                self.violation(&Violation::new("layer call succeeds", error.to_string()));
            }
        }
        if self.client_id % 2 == 0 {
            if let Err(error) = self.leave(&db, &keys).await {
                self.violation(&Violation::new("graceful leave", error.to_string()));
            }
        }
        if let Err(error) = self.store_ledger(&db).await {
            self.violation(&Violation::new("ledger stored", format!("{error:?}")));
        }
    }

    async fn check(&mut self, db: SimDatabase) {
        let db = FdbDatabase::from_database(db);
        if let Err(violation) = self.check_all(&db).await {
            self.violation(&violation);
        }
    }

    fn get_metrics(&self, mut out: Metrics) {
        out.push(Metric::val("acked_inputs", self.ledger.acked.len() as f64));
        out.push(Metric::val("frames", self.frames as f64));
        out.push(Metric::val("violations", self.violations as f64));
    }

    fn get_check_timeout(&self) -> f64 {
        3_000.0
    }
}

impl SekaiWorkload {
    fn violation(&mut self, violation: &Violation) {
        self.violations += 1;
        self.context.trace(
            Severity::Error,
            "SekaiInvariantViolated",
            &[
                ("Check", violation.check.to_string()),
                ("Detail", violation.detail.clone()),
                ("Client", self.client_id.to_string()),
            ],
        );
    }

    /// A bot of this client sends its next input through the routed T1 (the workload's edges
    /// share no process with its processors: no direct inputs).
    async fn send(&mut self, db: &FdbDatabase, keys: &WorldKeys) -> Result<(), WorldError> {
        let c = self.rng.gen_range(0..self.clients.len());
        let client = &mut self.clients[c];
        let input = client.next_input(&mut self.rng, &self.world.resources);
        self.ledger.sent.insert(input.player, input.seq);
        let no_processor_here = DirectInputs::default();
        route_and_submit(
            db,
            keys,
            &self.sessions[c].location,
            &no_processor_here,
            &input,
        )
        .await?;
        client.receive_ack(input.seq);
        self.ledger.acked.insert((input.player, input.seq));
        Ok(())
    }

    /// One assignment round of this node: survey, the shipped plan, releases, acquisitions.
    async fn assign(&mut self, db: &FdbDatabase, keys: &WorldKeys) -> Result<(), WorldError> {
        let running: BTreeSet<RegionId> = self
            .processors
            .iter()
            .filter(|p| p.lease.is_some())
            .map(|p| p.region)
            .collect();
        let view = survey(db, keys, &self.world.regions, self.holder, Roles::BOTH).await?;
        let plan = plan(&view, self.holder, &running);
        for p in &mut self.processors {
            if plan.release.contains(&p.region) {
                if let Some(lease) = p.lease.take() {
                    p.hot.invalidate();
                    release(db, keys, p.region, lease.holder, lease.epoch).await?;
                }
            }
        }
        for p in &mut self.processors {
            if plan.acquire.contains(&p.region) {
                p.lease = acquire(db, keys, p.region, self.holder).await?;
            }
        }
        Ok(())
    }

    /// Leaves gracefully: releases every lease held and leaves the node list.
    async fn leave(&mut self, db: &FdbDatabase, keys: &WorldKeys) -> Result<(), WorldError> {
        for p in &mut self.processors {
            if let Some(lease) = p.lease.take() {
                p.hot.invalidate();
                release(db, keys, p.region, lease.holder, lease.epoch).await?;
            }
        }
        nodes::leave(db, keys, self.holder).await
    }

    /// Runs one frame of processor `r`; without its lease, takes it first only when `take`.
    async fn frame(
        &mut self,
        db: &FdbDatabase,
        keys: &WorldKeys,
        r: usize,
        take: bool,
    ) -> Result<(), WorldError> {
        let p = &mut self.processors[r];
        let lease = match p.lease {
            Some(lease) => lease,
            None if !take => return Ok(()),
            None => match acquire(db, keys, p.region, self.holder).await? {
                Some(lease) => lease,
                None => return Ok(()),
            },
        };
        p.lease = Some(lease);
        let mut new_id = || EntityId::from_u128(self.rng.gen());
        let stats = ProcessorStats::default();
        match run_frame(db, keys, &lease, &mut p.hot, &mut new_id, &stats, &[]).await {
            Ok(Ok(_)) => self.frames += 1,
            Ok(Err(_idle)) => {}
            Err(WorldError::LeaseLost(_)) => {
                p.lease = None;
                p.hot.invalidate();
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// Brings client `c`'s mirror up to date through its simulated edge session.
    async fn follow(
        &mut self,
        db: &FdbDatabase,
        keys: &WorldKeys,
        c: usize,
    ) -> Result<(), WorldError> {
        loop {
            let session = &mut self.sessions[c];
            if session.phase == Phase::Snapshotting {
                let (entities, at) = snapshot(db, keys, &session.area()).await?;
                session.start_snapshot(entities, at);
            }
            let core = session.fanout.clone();
            let regions = session.regions();
            let caught = catch_up(db, keys, &core, (&regions, None), usize::MAX, None).await?;
            session.fanout.commit(caught.cursors);
            session.hand_over(&caught.commits);
            let mut reset = false;
            while let Some(message) = session.subscriber.poll_transmit() {
                reset |= !self.clients[c].receive(message);
            }
            if !reset {
                return Ok(());
            }
            // The outbox gave up: drop the view and start over from a snapshot.
            self.clients[c].forget_view();
            self.sessions[c] = new_session(c, &self.clients[c]);
        }
    }

    fn book_key(&self, what: &str, client: i32) -> Vec<u8> {
        [BOOK, what.as_bytes(), &client.to_be_bytes()].concat()
    }

    /// Stores this client's ledger: acked pairs, then highest seqs (16 bytes each).
    async fn store_ledger(&self, db: &FdbDatabase) -> Result<(), FdbError> {
        let pairs = |it: &mut dyn Iterator<Item = (u64, u64)>| -> Vec<u8> {
            it.flat_map(|(a, b)| [a.to_be_bytes(), b.to_be_bytes()].concat())
                .collect()
        };
        let acked = pairs(&mut self.ledger.acked.iter().copied());
        let sent = pairs(&mut self.ledger.sent.iter().map(|(p, s)| (*p, *s)));
        let (acked_key, sent_key) = (
            self.book_key("acked", self.client_id),
            self.book_key("sent", self.client_id),
        );
        run(db, |trx, _| {
            let (acked, sent, acked_key, sent_key) = (&acked, &sent, &acked_key, &sent_key);
            async move {
                trx.set(acked_key, acked);
                trx.set(sent_key, sent);
                Ok::<_, FdbError>(())
            }
        })
        .await
    }

    /// Every client's ledger, merged.
    async fn load_ledgers(&self, db: &FdbDatabase) -> Result<Ledger, WorldError> {
        let mut ledger = Ledger::default();
        let trx = db.create_trx()?;
        for client in 0..self.client_count {
            let acked_key = self.book_key("acked", client);
            let sent_key = self.book_key("sent", client);
            let acked = trx.get(&acked_key, true).await?.unwrap_or_default();
            let sent = trx.get(&sent_key, true).await?.unwrap_or_default();
            for pair in acked.chunks_exact(16) {
                ledger.acked.insert(split(pair));
            }
            for pair in sent.chunks_exact(16) {
                let (player, seq) = split(pair);
                ledger.sent.insert(player, seq);
            }
        }
        Ok(ledger)
    }

    /// Drains (client 0), then checks mirrors and (client 0) the world.
    async fn check_all(&mut self, db: &FdbDatabase) -> Result<(), Violation> {
        let keys = self.keys.clone();
        let drained = self.book_key("drained", 0);
        if self.client_id == 0 {
            self.drain(db, &keys).await?;
            run(db, |trx, _| {
                let drained = &drained;
                async move {
                    trx.set(drained, b"1");
                    Ok::<_, FdbError>(())
                }
            })
            .await
            .map_err(WorldError::from)?;
        } else {
            while db
                .create_trx()
                .map_err(WorldError::from)?
                .get(&drained, true)
                .await
                .map_err(WorldError::from)?
                .is_none()
            {
                let _ = self.context.delay(Duration::from_millis(500)).await;
            }
        }
        for c in 0..self.sessions.len() {
            self.follow(db, &keys, c).await?;
            let client = &self.clients[c];
            check_mirror(db, &keys, c, &client.area, client.mirror()).await?;
        }
        if self.client_id == 0 {
            let ledger = self.load_ledgers(db).await?;
            check_world(
                db,
                &keys,
                &self.world.regions,
                Expect {
                    ledger: Some(&ledger),
                    totals: Some(self.world.totals),
                    quiet: true,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Takes every region's lease over (waiting out other holders) and runs frames until idle.
    async fn drain(&mut self, db: &FdbDatabase, keys: &WorldKeys) -> Result<(), Violation> {
        for r in 0..self.processors.len() {
            loop {
                let region = self.processors[r].region;
                let trx = db.create_trx().map_err(WorldError::from)?;
                let pending = scan(&trx, keys.inbox_range(region)).await?;
                if pending.is_empty() {
                    break;
                }
                let before = self.frames;
                self.frame(db, keys, r, true).await?;
                if self.frames == before {
                    let _ = self.context.delay(Duration::from_millis(250)).await;
                }
            }
        }
        Ok(())
    }
}

fn split(pair: &[u8]) -> (u64, u64) {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&pair[..8]);
    b.copy_from_slice(&pair[8..16]);
    (u64::from_be_bytes(a), u64::from_be_bytes(b))
}

/// A fresh session (from a snapshot) for client `i`, with an outbox it always keeps up with.
fn new_session(i: usize, client: &Client) -> Session {
    let delivery = Delivery {
        batch: usize::MAX,
        every_us: 0,
        budget: 1 << 20,
    };
    Session::new(
        i,
        client.player,
        client.bot.avatar,
        client.area,
        None,
        delivery,
    )
}
