//! Direct inputs: T1 and T2 in one transaction when an edge shares a process with the region's
//! processor.
//!
//! An edge whose process holds a region's lease hands that region's inputs straight to its
//! processor ([`store`]) instead of appending them to the inbox. The processor's next frame takes
//! them ([`DirectReceiver::take`]) and, in its own transaction, applies those it can (durable
//! through `applied/(player)`) and stores the rest as T1 would (inbox entry, durable record), so
//! one commit (not two, one after the other) makes them durable and applied, and no inbox entry
//! is written and cleared for the ones applied.
//!
//! Invariants:
//! - a batch is answered only after the frame transaction that took it committed (an ack still
//!   means durable); one frame takes a batch whole, so its inputs become durable together, like
//!   the inputs of one T1;
//! - a batch whose answer is dropped (its processor stopped, lost the lease or failed first, or
//!   its frame ended without knowing whether it committed) may or may not be stored, and
//!   [`store`] stores it again with T1: harmless either way, since T2 applies each (player, seq)
//!   at most once and the durable record only ever rises (atomic MAX); so does a batch not
//!   answered within [`DIRECT_WAIT`] (the processor may still store it later), which bounds how
//!   long a stuck processor holds the sessions waiting on it;
//! - a process has at most one receiver per region: registering replaces the previous one (the
//!   newer lease holder wins), and a receiver unregisters only itself when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sekai_schema::{RegionId, WorldKeys};
use tokio::sync::{mpsc, oneshot};

use super::inbox;
use super::local_log::LocalLog;
use super::model::Input;
use crate::kv::{Database, FdbError};

/// A frame stops taking batches from its direct receiver once it holds this many inputs (it
/// always takes at least one whole batch, and appends what it cannot apply to the inbox).
pub const MAX_DIRECT_PER_FRAME: usize = super::frame::MAX_APPLIED_PER_FRAME;

/// The most inputs [`store`] hands a processor in one batch (larger ones go through T1): with
/// [`MAX_DIRECT_PER_FRAME`], the inputs one frame appends to the inbox stay far below the 65,536
/// user versions of a versionstamp.
pub const MAX_DIRECT_BATCH: usize = 2048;

/// How long [`store`] waits for the processor's answer before storing the batch with T1 anyway
/// (the processor may still store it: a duplicate, which T2 drops). A frame answers within
/// milliseconds; this bounds what a stuck processor (retrying, paused after a failure) costs the
/// sessions waiting on it.
pub const DIRECT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Inputs handed to a processor in one piece, and how to tell the sender they are durable.
#[derive(Debug)]
pub struct DirectBatch {
    inputs: Vec<Input>,
    stored: oneshot::Sender<()>,
}

/// The registered senders by region, each with its registration's number, and the next number.
#[derive(Debug, Default)]
struct Senders {
    regions: HashMap<RegionId, (u64, mpsc::UnboundedSender<DirectBatch>)>,
    next_id: u64,
}

/// The processors of this process that take direct inputs, by region, and the change-log
/// entries they committed (cheap to clone; every clone is the same registry). An empty registry
/// sends everything through T1.
#[derive(Clone, Debug, Default)]
pub struct DirectInputs {
    regions: Arc<Mutex<Senders>>,
    log: LocalLog,
}

impl DirectInputs {
    /// Registers the processor of `region` (replacing any other of this process).
    pub fn register(&self, region: RegionId) -> DirectReceiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut senders = self.lock();
        let id = senders.next_id;
        senders.next_id += 1;
        senders.regions.insert(region, (id, tx));
        DirectReceiver {
            registry: self.clone(),
            region,
            id,
            rx,
            inputs: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// The change-log entries this process's processors committed, for this process's fan-out.
    pub fn log(&self) -> &LocalLog {
        &self.log
    }

    /// Whether a processor of this process takes `region`'s inputs now.
    pub fn serves(&self, region: RegionId) -> bool {
        self.lock().regions.contains_key(&region)
    }

    /// Hands `inputs` to `region`'s processor, giving the answer to wait for; `None` when this
    /// process has none (or it just stopped), with nothing sent.
    fn send(&self, region: RegionId, inputs: Vec<Input>) -> Option<oneshot::Receiver<()>> {
        let (stored, answer) = oneshot::channel();
        let senders = self.lock();
        let (_, tx) = senders.regions.get(&region)?;
        tx.send(DirectBatch { inputs, stored }).ok()?;
        Some(answer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Senders> {
        self.regions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How [`store`] stored inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// By the frame of the region's processor in this process, which also applied them (or put
    /// them in the inbox to wait).
    Directly,
    /// By a T1, in the region's inbox: this process has no processor of the region.
    Inbox,
    /// By a T1, in the region's inbox, after the processor they were handed to dropped them
    /// (or did not answer within [`DIRECT_WAIT`]).
    Dropped,
}

/// Stores `inputs` (all for `region`) durably: through `region`'s processor when this process
/// holds it (and the batch holds at most [`MAX_DIRECT_BATCH`] inputs), else, or when the
/// processor drops them or does not answer within [`DIRECT_WAIT`], with one T1. Returns once
/// they are durable.
pub async fn store<D: Database>(
    db: &D,
    keys: &WorldKeys,
    direct: &DirectInputs,
    region: RegionId,
    inputs: Vec<Input>,
) -> Result<Stored, FdbError> {
    let sent = match inputs.len() {
        0..=MAX_DIRECT_BATCH => direct.send(region, inputs.clone()),
        _ => None,
    };
    let how = match sent {
        Some(answer) => match tokio::time::timeout(DIRECT_WAIT, answer).await {
            Ok(Ok(())) => return Ok(Stored::Directly),
            Ok(Err(_)) | Err(_) => Stored::Dropped,
        },
        None => Stored::Inbox,
    };
    let batch: Vec<(RegionId, Input)> = inputs.into_iter().map(|i| (region, i)).collect();
    inbox::submit_batch(db, keys, &batch).await?;
    Ok(how)
}

/// A processor's end of its region's direct inputs: the batches it took for the next frame.
#[derive(Debug)]
pub struct DirectReceiver {
    registry: DirectInputs,
    region: RegionId,
    id: u64,
    rx: mpsc::UnboundedReceiver<DirectBatch>,
    /// The inputs of the batches taken, in the order they arrived.
    inputs: Vec<Input>,
    /// The answers owed to the batches taken (one per batch).
    answers: Vec<oneshot::Sender<()>>,
}

impl DirectReceiver {
    /// Takes the batches waiting, whole, while the frame holds fewer than
    /// [`MAX_DIRECT_PER_FRAME`] inputs.
    pub fn take(&mut self) {
        while self.inputs.len() < MAX_DIRECT_PER_FRAME {
            match self.rx.try_recv() {
                Ok(batch) => self.keep(batch),
                Err(_) => break,
            }
        }
    }

    /// Waits for a batch (taking it) when none is taken; pending forever when the registry
    /// replaced this receiver and nothing is queued.
    pub async fn arrived(&mut self) {
        if !self.answers.is_empty() {
            return;
        }
        match self.rx.recv().await {
            Some(batch) => self.keep(batch),
            None => std::future::pending().await,
        }
    }

    /// Whether batches wait (taken or not): the processor should run a frame.
    pub fn has_waiting(&self) -> bool {
        !self.answers.is_empty() || !self.rx.is_empty()
    }

    /// The inputs taken, in the order they arrived.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// The frame that took the inputs committed: tells every sender they are durable.
    pub fn stored(&mut self) {
        self.inputs.clear();
        for answer in self.answers.drain(..) {
            let _ = answer.send(());
        }
    }

    /// The change-log entries this process's processors committed (the frame records its own
    /// there once it committed).
    pub fn log(&self) -> &LocalLog {
        self.registry.log()
    }

    /// Gives up the inputs taken: their senders store them with T1.
    pub fn drop_taken(&mut self) {
        self.inputs.clear();
        self.answers.clear();
    }

    fn keep(&mut self, batch: DirectBatch) {
        self.inputs.extend(batch.inputs);
        self.answers.push(batch.stored);
    }
}

impl Drop for DirectReceiver {
    fn drop(&mut self) {
        let mut senders = self.registry.lock();
        if senders
            .regions
            .get(&self.region)
            .is_some_and(|(id, _)| *id == self.id)
        {
            senders.regions.remove(&self.region);
        }
    }
}
