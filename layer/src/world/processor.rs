//! The region processor: a tokio task that holds a region's lease and runs T2 whenever the
//! inbox has inputs.
//!
//! Invariants:
//! - it processes frames only while it holds the lease (each frame re-checks it);
//! - it sleeps on a watch created in the same transaction that last read the inbox (the frame
//!   that applied inputs, or an idle one that saw it empty), so an input appended after that
//!   read always wakes it; a frame that left inputs behind does not sleep;
//! - it also wakes when this process's edge hands it direct inputs (`direct`): it answers them
//!   only after the frame that took them committed, gives them back (their senders use T1)
//!   after a frame fails, and unregisters before it pauses after a failure or stops;
//! - a failed frame attempt discards the hot tier before retrying; nothing in the loop depends on
//!   this task staying alive: another processor takes over after the lease expires;
//! - every `TRIM_EVERY_FRAMES` frames it trims the change-log entries and frame records of
//!   frames older than the newest `FRAMES_KEEP` (`trim::FrameTrimmer`): at most `TRIM_STEPS`
//!   transactions of at most `TRIM_PAGE` entries each, so a trim's cost, and the stall it adds to
//!   the region's frames, does not grow with the region's history (counting the newest entries,
//!   as `trim::trim_keeping` does, read all of them every time: a stall that grew for as long as
//!   the log did).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_schema::{EntityId, RegionId, WorldKeys};

use super::direct::{DirectInputs, DirectReceiver};
use super::error::WorldError;
use super::frame::{process_frame, FrameStep, HotRegion, InboxWatch};
use super::lease::{self, Lease};
use super::model::{Delta, FrameRecord, Input};
use super::trim::FrameTrimmer;
use crate::kv::{Database, Transaction};

/// How long an idle processor waits before renewing its lease.
pub const IDLE_RENEW: Duration = Duration::from_millis(500);

/// Frames whose change-log entries and frame records a region keeps; older ones are trimmed
/// (resuming past them needs a snapshot; `query::frames` no longer finds them).
pub const FRAMES_KEEP: u64 = 100_000;

/// The most change-log entries (and the most frame records) one trim transaction clears.
pub const TRIM_PAGE: usize = 1_024;

/// The most trim transactions after one frame: with [`TRIM_PAGE`], enough to clear several times
/// what [`TRIM_EVERY_FRAMES`] frames append, so a backlog drains.
pub const TRIM_STEPS: usize = 4;

/// Frames between two trims of the change log.
pub const TRIM_EVERY_FRAMES: u64 = 1_024;

/// Counters a processor keeps (read by the demo and benchmarks); each update is also recorded as
/// a `sekai_frame*` metric (see [`crate::telemetry`]).
#[derive(Debug, Default)]
pub struct ProcessorStats {
    /// Frames committed.
    pub frames: AtomicU64,
    /// Inputs processed.
    pub inputs: AtomicU64,
    /// Frame attempts that failed and were retried.
    pub retries: AtomicU64,
}

/// A committed frame, as the processor reports it.
pub struct CommittedFrame {
    /// The frame record.
    pub record: FrameRecord,
    /// The delta.
    pub delta: Delta,
    /// The change-log versionstamp of the delta.
    pub versionstamp: [u8; 10],
    /// When the attempt that committed began (its T2 transaction's start).
    pub attempt_started: Instant,
    /// What to wait on before the next frame (see [`FrameStep::Processed`]; `None`: keep
    /// waiting on the watch held before it).
    pub next: Option<InboxWatch>,
}

impl std::fmt::Debug for CommittedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommittedFrame")
            .field("record", &self.record)
            .field("delta", &self.delta)
            .field("versionstamp", &self.versionstamp)
            .field("attempt_started", &self.attempt_started)
            .finish_non_exhaustive()
    }
}

/// What running a frame to commit gives: the committed frame, or (nothing applied) the watch
/// that fires when the inbox may have inputs (`None`: the one held before still does).
pub type FrameOutcome = Result<Result<CommittedFrame, Option<InboxWatch>>, WorldError>;

/// Runs one frame to commit (retrying retryable errors), storing and applying `direct` inputs
/// with the inbox's (see `frame::process_frame`); `Err(watch)` means the frame applied nothing
/// and the watch fires when the inbox may have inputs.
pub async fn run_frame<D: Database>(
    db: &D,
    keys: &WorldKeys,
    lease: &Lease,
    hot: &mut HotRegion,
    new_id: &mut impl FnMut() -> EntityId,
    stats: &ProcessorStats,
    direct: &[Input],
) -> FrameOutcome {
    let trx = db.create_trx()?;
    loop {
        let attempt_started = Instant::now();
        let point = hot.scan_point();
        let stamp = trx.get_versionstamp();
        let error = match process_frame(&trx, keys, lease, hot, new_id, direct).await {
            Ok(step) => match trx.commit().await {
                Ok(()) => {
                    return Ok(match step {
                        FrameStep::Idle(watch) => Err(watch),
                        FrameStep::Processed {
                            record,
                            delta,
                            next,
                        } => {
                            hot.committed(record.frame);
                            stats.frames.fetch_add(1, Ordering::Relaxed);
                            stats
                                .inputs
                                .fetch_add(record.inputs.len() as u64, Ordering::Relaxed);
                            hot.metrics.committed(
                                record.inputs.len() as u64,
                                u64::from(record.rejected),
                                attempt_started.elapsed(),
                            );
                            Ok(CommittedFrame {
                                record,
                                delta,
                                versionstamp: stamp.await?,
                                attempt_started,
                                next,
                            })
                        }
                    });
                }
                Err(error) => WorldError::Fdb(error),
            },
            Err(error) => error,
        };
        hot.rewind(point);
        stats.retries.fetch_add(1, Ordering::Relaxed);
        hot.metrics.retried();
        match error {
            WorldError::Fdb(fdb) if fdb.is_retryable() => trx.on_error(fdb).await?,
            other => return Err(other),
        }
    }
}

/// [`run_frame`] with the direct inputs waiting in `direct`: takes them, and once the frame
/// committed tells their senders they are durable and records its delta in this process's
/// [`LocalLog`](super::local_log::LocalLog); after a failure it gives them up (their senders
/// store them with T1).
pub async fn run_direct_frame<D: Database>(
    db: &D,
    keys: &WorldKeys,
    lease: &Lease,
    hot: &mut HotRegion,
    new_id: &mut impl FnMut() -> EntityId,
    stats: &ProcessorStats,
    direct: &mut DirectReceiver,
) -> FrameOutcome {
    direct.take();
    let frame = run_frame(db, keys, lease, hot, new_id, stats, direct.inputs()).await;
    match &frame {
        Ok(Ok(committed)) => {
            let region = committed.record.region;
            direct
                .log()
                .record(region, committed.versionstamp, &committed.delta);
            direct.stored();
        }
        Ok(Err(_)) => direct.stored(),
        Err(_) => direct.drop_taken(),
    }
    frame
}

/// Runs the processor of `region` as `holder` until `stop` is set, taking direct inputs of this
/// process's edges through `direct` while it holds the lease.
#[allow(clippy::too_many_arguments)]
pub async fn run_processor<D: Database>(
    db: D,
    keys: WorldKeys,
    region: RegionId,
    holder: u128,
    stop: Arc<AtomicBool>,
    stats: Arc<ProcessorStats>,
    direct: DirectInputs,
    on_frame: impl Fn(&CommittedFrame) + Send,
) {
    let mut rng = ChaCha8Rng::seed_from_u64((holder as u64) ^ holder.rotate_right(64) as u64);
    let mut new_id = move || EntityId::from_u128(rng.gen());
    while !stop.load(Ordering::Relaxed) {
        let lease = match lease::acquire(&db, &keys, region, holder).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                tokio::time::sleep(IDLE_RENEW).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%region, %error, "lease acquisition failed");
                tokio::time::sleep(IDLE_RENEW).await;
                continue;
            }
        };
        hold_region(
            &db,
            &keys,
            region,
            lease,
            &stop,
            &stats,
            &direct,
            &mut new_id,
            &on_frame,
        )
        .await;
    }
}

/// Processes `region` under `lease` until `stop` is set or the lease is lost (or a frame fails
/// for a reason retrying cannot fix); the caller decides whether to take the lease again. Each
/// frame also takes the inputs this process's edges handed over through `direct` (registered
/// while the lease is held; inputs taken by a frame that did not commit go back to their
/// senders, who store them with T1).
#[allow(clippy::too_many_arguments)]
pub async fn hold_region<D: Database>(
    db: &D,
    keys: &WorldKeys,
    region: RegionId,
    lease: Lease,
    stop: &AtomicBool,
    stats: &ProcessorStats,
    direct: &DirectInputs,
    new_id: &mut impl FnMut() -> EntityId,
    on_frame: &impl Fn(&CommittedFrame),
) {
    tracing::info!(%region, epoch = lease.epoch, "processor holds the lease");
    let mut hot = HotRegion::new(region);
    let mut trimmer = FrameTrimmer::new(FRAMES_KEEP, TRIM_PAGE, TRIM_STEPS);
    let mut direct = direct.register(region);
    // The inbox watch the last frame that read the inbox armed, kept while only direct inputs
    // wake the processor (`HotRegion::inbox_unchanged`).
    let mut watch: Option<InboxWatch> = None;
    while !stop.load(Ordering::Relaxed) {
        let frame = run_direct_frame(db, keys, &lease, &mut hot, new_id, stats, &mut direct).await;
        let next = match frame {
            Ok(Ok(frame)) => {
                on_frame(&frame);
                if frame.record.frame.is_multiple_of(TRIM_EVERY_FRAMES) {
                    let newest = frame.record.frame;
                    if let Err(error) = trimmer.trim(db, keys, region, newest).await {
                        tracing::warn!(%region, %error, "trim failed");
                    }
                }
                // No idle transaction after a frame just to arm the watch: the frame armed it.
                frame.next
            }
            Ok(Err(next)) => next,
            Err(WorldError::LeaseLost(_)) => {
                tracing::warn!(%region, "lease lost");
                return;
            }
            Err(error) => {
                tracing::error!(%region, %error, "frame failed");
                // Unregistered first: the batches queued meanwhile go through T1 now.
                drop(direct);
                tokio::time::sleep(IDLE_RENEW).await;
                return;
            }
        };
        let Some(mut armed) = next.or(watch.take()) else {
            debug_assert!(false, "a frame that skipped its scan had a watch to keep");
            continue;
        };
        tokio::select! {
            // Biased: a watch that fired wins over direct inputs, so the next frame scans.
            biased;
            _ = tokio::time::timeout(IDLE_RENEW, &mut armed) => {}
            () = direct.arrived() => {
                // Woken by direct inputs alone: the watch had not fired, so the inbox holds
                // nothing the last scan missed, or the watch fires for it before the next wait
                // and the frame after this one scans.
                hot.inbox_unchanged();
                watch = Some(armed);
            }
        }
    }
}
