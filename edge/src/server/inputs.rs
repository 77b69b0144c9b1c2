//! T1 for a whole edge: the inputs of all sessions gathered into one transaction per commit.
//!
//! Sessions hand admitted inputs to an [`InputBatcher`]; its task takes everything queued,
//! commits it in one T1 (`inbox::submit_batch`), and answers each input. While one batch commits,
//! the next gathers, so under load batches grow and their count does not (group commit).
//!
//! Invariants:
//! - an input is answered `Ok` only after the transaction holding it committed (an ack means
//!   durable);
//! - batches commit one at a time, in the order their inputs were queued, so a session's seqs
//!   become durable in order;
//! - when a batch fails, every session with an input in it is marked broken, and that session's
//!   inputs still queued are answered with the error instead of being stored: a later seq of a
//!   player is never durable while an earlier one is not (no gap can open behind an ack);
//! - a batch holds at most [`MAX_BATCH`] inputs (far below FDB's 10 MB transaction limit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics::{counter, histogram};
use sekai_layer::kv::{Database, FdbError};
use sekai_layer::world::inbox;
use sekai_layer::world::model::Input;
use sekai_schema::{RegionId, WorldKeys};
use tokio::sync::{mpsc, oneshot};

use crate::observe::metrics as names;

/// The most inputs one T1 transaction carries.
pub const MAX_BATCH: usize = 2048;

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
    /// Inputs stored.
    pub inputs: std::sync::atomic::AtomicU64,
}

impl InputBatcher {
    /// Starts the T1 task on the current tokio runtime.
    pub fn start<D: Database>(db: D, keys: WorldKeys, stats: Arc<BatchStats>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(db, keys, rx, stats));
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

/// The T1 task: one batch at a time, everything queued at once.
async fn run<D: Database>(
    db: D,
    keys: WorldKeys,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    stats: Arc<BatchStats>,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (live, dead): (Vec<Queued>, Vec<Queued>) =
            batch.drain(..).partition(|q| !q.session.is_broken());
        for queued in dead {
            let _ = queued.reply.send(Err(StoreError::SessionBroken));
        }
        if live.is_empty() {
            continue;
        }
        let inputs: Vec<(RegionId, Input)> =
            live.iter().map(|q| (q.region, q.input.clone())).collect();
        let started = std::time::Instant::now();
        let result = inbox::submit_batch(&db, &keys, &inputs).await;
        match result {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.inputs.fetch_add(live.len() as u64, Ordering::Relaxed);
                counter!(names::T1_COMMITS).increment(1);
                counter!(names::T1_INPUTS).increment(live.len() as u64);
                histogram!(names::T1_SECONDS).record(started.elapsed().as_secs_f64());
                histogram!(names::T1_BATCH_INPUTS).record(live.len() as f64);
                for queued in live {
                    let _ = queued.reply.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, inputs = live.len(), "T1 batch failed");
                counter!(names::T1_FAILURES).increment(1);
                for queued in live {
                    queued.session.broken.store(true, Ordering::Release);
                    let _ = queued.reply.send(Err(StoreError::Database(error)));
                }
            }
        }
    }
}
