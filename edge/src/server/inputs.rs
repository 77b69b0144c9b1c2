//! T1 for a whole edge: the inputs of all sessions gathered into one transaction per commit.
//!
//! Sessions hand admitted inputs to an [`InputBatcher`]; its task takes everything queued,
//! commits it in one T1 (`inbox::submit_batch`), and answers each input. Inputs of a region
//! whose processor runs in this process go to that processor instead (`world::direct`): its
//! next frame stores and applies them in one commit, so they skip the inbox and the T1
//! commit. While a batch commits,
//! the next one may start with the inputs of other sessions (at most [`MAX_IN_FLIGHT`] batches
//! at once), so an input of a session with nothing in flight that arrives during a commit waits
//! for the next commit group, not for the running commit to finish first (a session's own later
//! inputs do wait for its running commit); under load batches grow and their count does not
//! (group commit).
//!
//! Invariants:
//! - an input is answered `Ok` only after the transaction holding it committed (an ack means
//!   durable);
//! - a session has inputs in at most one batch in flight (`Pipeline`): its later inputs wait
//!   until that batch is answered, and batches take each session's inputs in the order they were
//!   queued, so a session's seqs become durable in order;
//! - when a batch fails, every session with an input in it is marked broken before the session
//!   may join another batch, and that session's inputs still queued are answered with the error
//!   instead of being stored: a later seq of a player is never durable while an earlier one is
//!   not (no gap can open behind an ack);
//! - a batch holds at most [`MAX_BATCH`] inputs (far below FDB's 10 MB transaction limit);
//! - a batch splits into stores that succeed or fail on their own (one per region served
//!   directly, one T1 for the rest), but never within a session: a session's inputs go directly
//!   only when all of its inputs in the batch name the same directly served region, so each
//!   session's inputs in a batch become durable together or not at all.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use metrics::{counter, histogram};
use sekai_layer::kv::{Database, FdbError};
use sekai_layer::world::direct::{self, DirectInputs, Stored};
use sekai_layer::world::inbox;
use sekai_layer::world::model::Input;
use sekai_schema::{RegionId, WorldKeys};
use tokio::sync::{mpsc, oneshot};

use crate::observe::metrics as names;

/// The most inputs one T1 transaction carries.
pub const MAX_BATCH: usize = 2048;

/// The most T1 batches committing at once (their sessions all differ).
pub const MAX_IN_FLIGHT: usize = 2;

/// Why a queued input was not stored.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The transaction failed.
    #[error("input not stored: {0}")]
    Database(FdbError),
    /// An earlier input of the same session failed, so this one was not stored.
    #[error("input not stored: an earlier input of this session failed; reconnect")]
    SessionBroken,
    /// The edge is shutting down.
    #[error("input not stored: the edge is shutting down")]
    Stopped,
}

/// One session's mark, shared with the batcher and the edge's session table: broken when one
/// of its inputs failed, replaced when the same player logged in again on this edge.
#[derive(Debug, Default)]
pub struct SessionMark {
    broken: AtomicBool,
    replaced: AtomicBool,
}

impl SessionMark {
    /// Whether an input of the session failed to store.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Marks the session broken: the batcher stores none of its inputs still queued (their
    /// futures answer [`StoreError::SessionBroken`]).
    pub fn set_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    /// Whether a newer login of the same player replaced this session.
    pub fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }
}

/// The live session of each player on this edge: the newest login wins, so two sessions of one
/// player never admit inputs side by side on one edge (each would number its inputs from the
/// same `lastSeq`).
#[derive(Debug, Default)]
pub struct SessionTable {
    live: std::sync::Mutex<std::collections::HashMap<sekai_schema::PlayerId, Arc<SessionMark>>>,
}

impl SessionTable {
    /// Starts a session of `player`, replacing the one it had on this edge.
    pub fn begin(&self, player: sekai_schema::PlayerId) -> Arc<SessionMark> {
        let mark = Arc::new(SessionMark::default());
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = live.insert(player, mark.clone()) {
            old.replaced.store(true, Ordering::Release);
        }
        mark
    }

    /// Ends `mark`'s session of `player` (a no-op when a newer session replaced it).
    pub fn end(&self, player: sekai_schema::PlayerId, mark: &Arc<SessionMark>) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.get(&player).is_some_and(|m| Arc::ptr_eq(m, mark)) {
            live.remove(&player);
        }
    }
}

struct Queued {
    region: RegionId,
    input: Input,
    session: Arc<SessionMark>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Hands inputs to the edge's T1 task.
#[derive(Clone)]
pub struct InputBatcher {
    queue: mpsc::UnboundedSender<Queued>,
}

/// Counters of the batcher (also recorded as `sekai_edge_t1_*` metrics).
#[derive(Debug, Default)]
pub struct BatchStats {
    /// T1 transactions committed.
    pub commits: std::sync::atomic::AtomicU64,
    /// Inputs stored (by T1 or directly).
    pub inputs: std::sync::atomic::AtomicU64,
    /// Inputs stored directly, by the frame of a processor of this process that applied them.
    pub direct: std::sync::atomic::AtomicU64,
}

impl InputBatcher {
    /// Starts the T1 task on the current tokio runtime; inputs of the regions `direct` serves
    /// go to their processors.
    pub fn start<D: Database>(
        db: D,
        keys: WorldKeys,
        direct: DirectInputs,
        stats: Arc<BatchStats>,
    ) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(db, keys, direct, rx, stats));
        Self { queue }
    }

    /// Queues `input` for `region`'s inbox now (its place in the order is taken before this
    /// returns) and gives the future of its answer: `Ok` once it is durable.
    pub fn store(
        &self,
        region: RegionId,
        input: Input,
        session: Arc<SessionMark>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.queue.send(Queued {
            region,
            input,
            session,
            reply,
        });
        async move {
            if sent.is_err() {
                return Err(StoreError::Stopped);
            }
            answer.await.unwrap_or(Err(StoreError::Stopped))
        }
    }
}

/// The T1 task: starts a batch of everything that may go whenever fewer than [`MAX_IN_FLIGHT`]
/// commit, and answers each batch when its commit ends.
async fn run<D: Database>(
    db: D,
    keys: WorldKeys,
    direct: DirectInputs,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    stats: Arc<BatchStats>,
) {
    let mut pipeline = Pipeline::default();
    let mut in_flight = FuturesUnordered::new();
    let mut received: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    let mut open = true;
    loop {
        while in_flight.len() < MAX_IN_FLIGHT {
            let batch = pipeline.next_batch();
            if batch.is_empty() {
                break;
            }
            in_flight.push(commit(&db, &keys, &direct, batch, &stats));
        }
        if !open && in_flight.is_empty() {
            return; // Nothing in flight, so nothing waits: `next_batch` took it all.
        }
        tokio::select! {
            count = rx.recv_many(&mut received, MAX_BATCH), if open => {
                open = count > 0;
                pipeline.queue(received.drain(..));
            }
            Some(sessions) = in_flight.next() => pipeline.answered(sessions),
        }
    }
}

/// A session's identity while one of its inputs is queued or in flight (the address of its
/// mark, which those inputs keep alive).
fn session_id(session: &Arc<SessionMark>) -> usize {
    Arc::as_ptr(session) as usize
}

/// Which queued inputs the next batch takes: every input whose session has no batch in flight,
/// in queue order (inputs of a session in flight keep their place until it is answered), up to
/// [`MAX_BATCH`]. Inputs of a broken session are answered [`StoreError::SessionBroken`] instead.
#[derive(Default)]
struct Pipeline {
    waiting: VecDeque<Queued>,
    /// Sessions with inputs in a batch in flight.
    busy: HashSet<usize>,
}

impl Pipeline {
    fn queue(&mut self, inputs: impl IntoIterator<Item = Queued>) {
        self.waiting.extend(inputs);
    }

    /// Takes the next batch (empty when nothing may go now) and marks its sessions busy.
    fn next_batch(&mut self) -> Vec<Queued> {
        let mut batch = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        let mut taken = HashSet::new();
        for queued in self.waiting.drain(..) {
            let id = session_id(&queued.session);
            if self.busy.contains(&id) || batch.len() == MAX_BATCH {
                kept.push_back(queued);
            } else if queued.session.is_broken() {
                let _ = queued.reply.send(Err(StoreError::SessionBroken));
            } else {
                taken.insert(id);
                batch.push(queued);
            }
        }
        self.waiting = kept;
        self.busy.extend(taken);
        batch
    }

    /// A batch of `sessions` was answered: they may join the next one.
    fn answered(&mut self, sessions: Vec<usize>) {
        for id in sessions {
            self.busy.remove(&id);
        }
    }
}

/// Stores `batch` (one T1, and one direct store per region served directly) and answers each
/// input; gives back the batch's sessions (a failed store marked its sessions broken first).
async fn commit<D: Database>(
    db: &D,
    keys: &WorldKeys,
    direct: &DirectInputs,
    batch: Vec<Queued>,
    stats: &BatchStats,
) -> Vec<usize> {
    let sessions = batch.iter().map(|q| session_id(&q.session)).collect();
    let stores = route(batch, direct)
        .into_iter()
        .map(|(region, group)| store_group(db, keys, direct, region, group, stats));
    futures::future::join_all(stores).await;
    sessions
}

/// Splits a batch by where it is stored: `Some(region)` for the inputs of sessions that go to
/// `region`'s processor directly (every input of the session in the batch names that region, and
/// `direct` serves it), `None` for the rest (one T1).
fn route(batch: Vec<Queued>, direct: &DirectInputs) -> Vec<(Option<RegionId>, Vec<Queued>)> {
    let mut session_route: std::collections::HashMap<usize, Option<RegionId>> =
        std::collections::HashMap::new();
    for queued in &batch {
        let region = queued.region;
        session_route
            .entry(session_id(&queued.session))
            .and_modify(|route| *route = route.filter(|r| *r == region))
            .or_insert_with(|| direct.serves(region).then_some(region));
    }
    let mut groups: std::collections::BTreeMap<Option<RegionId>, Vec<Queued>> =
        std::collections::BTreeMap::new();
    for queued in batch {
        let route = session_route[&session_id(&queued.session)];
        groups.entry(route).or_default().push(queued);
    }
    groups.into_iter().collect()
}

/// Stores one group of [`route`] and answers its inputs.
async fn store_group<D: Database>(
    db: &D,
    keys: &WorldKeys,
    direct: &DirectInputs,
    region: Option<RegionId>,
    group: Vec<Queued>,
    stats: &BatchStats,
) {
    let started = std::time::Instant::now();
    let stored = match region {
        Some(region) => {
            let inputs = group.iter().map(|q| q.input.clone()).collect();
            direct::store(db, keys, direct, region, inputs).await
        }
        None => {
            let inputs: Vec<(RegionId, Input)> =
                group.iter().map(|q| (q.region, q.input.clone())).collect();
            inbox::submit_batch(db, keys, &inputs)
                .await
                .map(|()| Stored::Inbox)
        }
    };
    match stored {
        Ok(how) => {
            let count = group.len() as u64;
            stats.inputs.fetch_add(count, Ordering::Relaxed);
            match how {
                Stored::Directly => {
                    stats.direct.fetch_add(count, Ordering::Relaxed);
                    counter!(names::DIRECT_INPUTS).increment(count);
                }
                Stored::Inbox | Stored::Dropped => {
                    stats.commits.fetch_add(1, Ordering::Relaxed);
                    counter!(names::T1_COMMITS).increment(1);
                    counter!(names::T1_INPUTS).increment(count);
                    histogram!(names::T1_BATCH_INPUTS).record(count as f64);
                    // A dropped batch's time includes its wait for the processor: not T1's.
                    if how == Stored::Inbox {
                        histogram!(names::T1_SECONDS).record(started.elapsed().as_secs_f64());
                    }
                }
            }
            for queued in group {
                let _ = queued.reply.send(Ok(()));
            }
        }
        Err(error) => {
            tracing::error!(%error, inputs = group.len(), "storing inputs failed");
            counter!(names::T1_FAILURES).increment(1);
            for queued in group {
                queued.session.set_broken();
                let _ = queued.reply.send(Err(StoreError::Database(error)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekai_layer::world::model::Action;

    fn input(
        session: &Arc<SessionMark>,
        player: u64,
        seq: u64,
    ) -> (Queued, oneshot::Receiver<Result<(), StoreError>>) {
        input_in(RegionId::new(0, 0), session, player, seq)
    }

    fn input_in(
        region: RegionId,
        session: &Arc<SessionMark>,
        player: u64,
        seq: u64,
    ) -> (Queued, oneshot::Receiver<Result<(), StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            region,
            input: Input {
                player,
                seq,
                action: Action::Idle,
            },
            session: session.clone(),
            reply,
        };
        (queued, answer)
    }

    fn marks<const N: usize>() -> [Arc<SessionMark>; N] {
        std::array::from_fn(|_| Arc::default())
    }

    fn seqs(batch: &[Queued]) -> Vec<(u64, u64)> {
        batch
            .iter()
            .map(|q| (q.input.player, q.input.seq))
            .collect()
    }

    #[test]
    fn a_session_in_flight_waits_while_other_sessions_go_and_its_seqs_keep_their_order() {
        let [a, b] = marks();
        let mut pipeline = Pipeline::default();
        pipeline.queue([input(&a, 1, 1).0, input(&a, 1, 2).0]);
        let first = pipeline.next_batch();
        assert_eq!(seqs(&first), [(1, 1), (1, 2)]);
        pipeline.queue([input(&a, 1, 3).0, input(&b, 2, 1).0, input(&a, 1, 4).0]);
        let second = pipeline.next_batch();
        assert_eq!(
            seqs(&second),
            [(2, 1)],
            "only the session not in flight goes"
        );
        assert!(
            pipeline.next_batch().is_empty(),
            "both sessions are in flight"
        );
        pipeline.answered(vec![session_id(&a), session_id(&a)]);
        assert_eq!(seqs(&pipeline.next_batch()), [(1, 3), (1, 4)]);
    }

    #[test]
    fn a_broken_session_stores_nothing_more_once_its_batch_is_answered() {
        let [a, b] = marks();
        let mut pipeline = Pipeline::default();
        pipeline.queue([input(&a, 1, 1).0]);
        assert_eq!(pipeline.next_batch().len(), 1);
        let (later, answer) = input(&a, 1, 2);
        pipeline.queue([later, input(&b, 2, 1).0]);
        assert_eq!(seqs(&pipeline.next_batch()), [(2, 1)]);
        // The batch holding seq 1 failed: `commit` marks the session broken, then answers.
        a.set_broken();
        pipeline.answered(vec![session_id(&a)]);
        pipeline.answered(vec![session_id(&b)]);
        assert!(pipeline.next_batch().is_empty());
        assert!(matches!(
            answer.blocking_recv(),
            Ok(Err(StoreError::SessionBroken))
        ));
    }

    #[test]
    fn a_session_goes_directly_only_when_all_its_inputs_name_one_served_region() {
        let (served, other) = (RegionId::new(0, 0), RegionId::new(1, 0));
        let direct = DirectInputs::default();
        let _processor = direct.register(served);
        let [a, b, c] = marks();
        let batch = vec![
            input_in(served, &a, 1, 1).0,
            input_in(served, &b, 2, 1).0,
            input_in(other, &c, 3, 1).0,
            input_in(served, &a, 1, 2).0,
            // b's avatar crossed: its inputs span two regions, so all of them go through T1.
            input_in(other, &b, 2, 2).0,
        ];
        let groups = route(batch, &direct);
        let regions: Vec<Option<RegionId>> = groups.iter().map(|(region, _)| *region).collect();
        assert_eq!(regions, [None, Some(served)]);
        assert_eq!(seqs(&groups[0].1), [(2, 1), (3, 1), (2, 2)]);
        assert_eq!(seqs(&groups[1].1), [(1, 1), (1, 2)]);
    }

    #[test]
    fn a_batch_holds_at_most_max_batch_inputs_and_the_rest_go_next() {
        let sessions: Vec<_> = (0..MAX_BATCH + 3)
            .map(|_| Arc::new(SessionMark::default()))
            .collect();
        let mut pipeline = Pipeline::default();
        pipeline.queue(
            sessions
                .iter()
                .enumerate()
                .map(|(i, s)| input(s, i as u64, 1).0),
        );
        assert_eq!(pipeline.next_batch().len(), MAX_BATCH);
        let rest = pipeline.next_batch();
        assert_eq!(
            seqs(&rest),
            (MAX_BATCH..MAX_BATCH + 3)
                .map(|i| (i as u64, 1))
                .collect::<Vec<_>>()
        );
    }
}
