//! [`FdbTransaction`]: a cloneable handle to one `foundationdb::Transaction`.
//!
//! `foundationdb` 0.11 consumes the transaction in `commit(self)` and `on_error(self, err)`;
//! the contract's `commit(&self)` and `on_error(&self, err)` work on shared handles. So the handle
//! keeps the FDB transaction in a slot that moves through these states:
//!
//! - `Active`: usable; every read, mutation and conflict range goes to FDB;
//! - `InFlight`: moved into a running `commit` or `on_error` future;
//! - `Committed`: commit succeeded; the versionstamp fetched with the commit is kept;
//! - `CommitFailed`: commit failed; FDB's `TransactionCommitError` is kept, so `on_error` with
//!   that error runs FDB's `on_error` on the very transaction (keeping FDB's backoff);
//! - `Lost`: the in-flight future was dropped (FDB destroyed the transaction) or a fresh
//!   transaction could not be created; operations fail with `transaction_cancelled` (1025) until
//!   `reset` or `on_error` creates a new one.
//!
//! Invariants:
//! - the state lock is never held across an `.await`: FDB futures are created under it and own
//!   everything they need (`use<>` futures that borrow nothing), then awaited after it is dropped;
//! - a `generation` counter, bumped by `reset` and `on_error`, keeps a stale in-flight future
//!   from overwriting the slot of a newer attempt;
//! - every commit fetches FDB's versionstamp future before committing; `get_versionstamp`
//!   before or during the commit waits for that commit's outcome (its stamp, or its error, as in
//!   the embedded engine), after it answers from the kept outcome, and fails with
//!   `transaction_cancelled` (1025) when `reset`, `on_error` or dropping the handles comes first;
//! - mutations never fail on the spot; lengths the C API cannot take (over `i32::MAX`) are
//!   remembered and returned by `commit`, with the error FDB gives oversized keys and values.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foundationdb::options::{
    ConflictRangeType as FdbConflictRangeType, MutationType as FdbMutationType, StreamingMode,
};
use foundationdb::{
    KeySelector, RangeOption as FdbRangeOption, TransactionCommitError, TransactionCommitted,
};
use tokio::sync::oneshot;

use super::to_kv;
use crate::kv::{
    codes, ConflictRangeType, FdbError, FdbResult, KeyValue, MutationType, RangeOption,
    RangeResult, Transaction,
};

/// The length of a versionstamp.
const STAMP_LEN: usize = 10;

type Stamp = [u8; STAMP_LEN];
type StampWaiter = oneshot::Sender<FdbResult<Stamp>>;
type BoxedRetry =
    Pin<Box<dyn Future<Output = foundationdb::FdbResult<foundationdb::Transaction>> + Send>>;

fn err(code: i32) -> FdbError {
    FdbError::from_code(code)
}

fn to_fdb(error: FdbError) -> foundationdb::FdbError {
    foundationdb::FdbError::from_code(error.code())
}

/// Our mutation types onto FDB's, variant by variant.
fn mutation_type(op: MutationType) -> FdbMutationType {
    match op {
        MutationType::Add => FdbMutationType::Add,
        MutationType::BitAnd => FdbMutationType::BitAnd,
        MutationType::BitOr => FdbMutationType::BitOr,
        MutationType::BitXor => FdbMutationType::BitXor,
        MutationType::Max => FdbMutationType::Max,
        MutationType::Min => FdbMutationType::Min,
        MutationType::ByteMax => FdbMutationType::ByteMax,
        MutationType::ByteMin => FdbMutationType::ByteMin,
        MutationType::CompareAndClear => FdbMutationType::CompareAndClear,
        MutationType::AppendIfFits => FdbMutationType::AppendIfFits,
        MutationType::SetVersionstampedKey => FdbMutationType::SetVersionstampedKey,
        MutationType::SetVersionstampedValue => FdbMutationType::SetVersionstampedValue,
    }
}

/// Our conflict-range types onto FDB's.
fn conflict_range_type(kind: ConflictRangeType) -> FdbConflictRangeType {
    match kind {
        ConflictRangeType::Read => FdbConflictRangeType::Read,
        ConflictRangeType::Write => FdbConflictRangeType::Write,
    }
}

/// Whether the C API can take this length (the crate panics above `i32::MAX`).
fn fits_c_api(bytes: &[u8]) -> bool {
    i32::try_from(bytes.len()).is_ok()
}

/// A key length check for reads: the error FDB gives oversized keys, instead of a panic.
fn check_key(key: &[u8]) -> FdbResult<()> {
    if fits_c_api(key) {
        Ok(())
    } else {
        Err(err(codes::KEY_TOO_LARGE))
    }
}

fn to_stamp(bytes: &[u8]) -> FdbResult<Stamp> {
    bytes
        .try_into()
        .map_err(|_| err(codes::CLIENT_INVALID_OPERATION))
}

/// Where the FDB transaction is; see the module docs.
#[derive(Default)]
enum Slot {
    Active(foundationdb::Transaction),
    InFlight {
        committing: bool,
    },
    Committed {
        /// Kept so `reset` can reuse the FDB transaction object.
        trx: TransactionCommitted,
        stamp: FdbResult<Stamp>,
    },
    CommitFailed(TransactionCommitError),
    #[default]
    Lost,
}

impl Slot {
    /// The error of an operation that needs an active transaction.
    fn unusable(&self) -> FdbError {
        match self {
            Slot::Lost => err(codes::TRANSACTION_CANCELLED),
            _ => err(codes::USED_DURING_COMMIT),
        }
    }
}

struct TrxState {
    slot: Slot,
    generation: u64,
    deferred: Option<FdbError>,
    stamp_waiters: Vec<StampWaiter>,
}

impl TrxState {
    /// Starts a new generation: stale in-flight futures no longer write the slot, and pending
    /// versionstamp waiters learn the transaction was cancelled.
    fn next_generation(&mut self) -> u64 {
        self.generation = self.generation.wrapping_add(1);
        self.deferred = None;
        for waiter in self.stamp_waiters.drain(..) {
            let _ = waiter.send(Err(err(codes::TRANSACTION_CANCELLED)));
        }
        self.generation
    }
}

/// A FoundationDB transaction; clones are handles to the same transaction.
#[derive(Clone)]
pub struct FdbTransaction {
    db: Arc<foundationdb::Database>,
    state: Arc<Mutex<TrxState>>,
}

/// Marks the slot `Lost` if an in-flight future is dropped before it finishes.
struct InFlightGuard<'a> {
    state: &'a Mutex<TrxState>,
    generation: u64,
    finished: bool,
}

impl InFlightGuard<'_> {
    /// Stores the outcome in the slot, unless a newer generation has started.
    fn finish(mut self, slot: Slot, stamp: FdbResult<Stamp>) {
        self.finished = true;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.generation != self.generation {
            return;
        }
        state.slot = slot;
        for waiter in state.stamp_waiters.drain(..) {
            let _ = waiter.send(stamp);
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.generation == self.generation {
            state.slot = Slot::Lost;
            for waiter in state.stamp_waiters.drain(..) {
                let _ = waiter.send(Err(err(codes::TRANSACTION_CANCELLED)));
            }
        }
    }
}

/// What `get_versionstamp` waits on, chosen under the lock.
enum StampSource {
    Waiter(oneshot::Receiver<FdbResult<Stamp>>),
    Ready(FdbResult<Stamp>),
}

impl FdbTransaction {
    pub(super) fn new(db: Arc<foundationdb::Database>) -> FdbResult<Self> {
        let trx = db.create_trx().map_err(to_kv)?;
        Ok(Self {
            db,
            state: Arc::new(Mutex::new(TrxState {
                slot: Slot::Active(trx),
                generation: 0,
                deferred: None,
                stamp_waiters: Vec::new(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TrxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh FDB transaction for the slot, or `Lost` when FDB cannot create one.
    fn fresh_slot(&self) -> Slot {
        match self.db.create_trx() {
            Ok(trx) => Slot::Active(trx),
            Err(_) => Slot::Lost,
        }
    }

    /// Runs `f` on the active FDB transaction under the lock (to create a future or apply a
    /// mutation), or fails when the transaction is committing, committed or lost.
    fn with_active<R>(&self, f: impl FnOnce(&foundationdb::Transaction) -> R) -> FdbResult<R> {
        let state = self.lock();
        match &state.slot {
            Slot::Active(trx) => Ok(f(trx)),
            other => Err(other.unusable()),
        }
    }

    /// Applies a mutation; a length the C API cannot take is remembered for `commit`, and a
    /// transaction that is not active ignores it (FDB fails the next operation anyway).
    fn mutate(&self, lengths_ok: bool, too_large: i32, f: impl FnOnce(&foundationdb::Transaction)) {
        let mut state = self.lock();
        if !lengths_ok {
            state.deferred.get_or_insert(err(too_large));
            return;
        }
        if let Slot::Active(trx) = &state.slot {
            f(trx);
        }
    }

    /// The FDB transaction's committed version after a successful commit (-1 for a read-only
    /// one), like `foundationdb::TransactionCommitted::committed_version`.
    pub fn committed_version(&self) -> FdbResult<i64> {
        let state = self.lock();
        match &state.slot {
            Slot::Committed { trx, .. } => trx.committed_version().map_err(to_kv),
            Slot::Lost => Err(err(codes::TRANSACTION_CANCELLED)),
            _ => Err(err(codes::CLIENT_INVALID_OPERATION)),
        }
    }
}

impl Transaction for FdbTransaction {
    async fn get(&self, key: &[u8], snapshot: bool) -> FdbResult<Option<Vec<u8>>> {
        check_key(key)?;
        let read = self.with_active(|trx| trx.get(key, snapshot))?;
        Ok(read.await.map_err(to_kv)?.map(|value| value.to_vec()))
    }

    async fn get_range(&self, range: &RangeOption, snapshot: bool) -> FdbResult<RangeResult> {
        if range.begin > range.end {
            return Err(err(codes::INVERTED_RANGE));
        }
        if range.begin == range.end || range.limit == Some(0) {
            return Ok(RangeResult::default());
        }
        check_key(&range.begin)?;
        check_key(&range.end)?;
        let mut opt = FdbRangeOption {
            begin: KeySelector::first_greater_or_equal(range.begin.clone()),
            end: KeySelector::first_greater_or_equal(range.end.clone()),
            limit: range.limit,
            mode: StreamingMode::WantAll,
            reverse: range.reverse,
            ..FdbRangeOption::default()
        };
        let mut kvs = Vec::new();
        let mut iteration = 1;
        loop {
            let read = self.with_active(|trx| trx.get_range(&opt, iteration, snapshot))?;
            let values = read.await.map_err(to_kv)?;
            let more = values.more();
            // `next_range` continues after the batch and lowers the limit; `None` when FDB has
            // nothing more or the limit is used up (or, degenerately, the batch is empty).
            let next = opt.next_range(&values);
            kvs.extend(values.iter().map(|kv| KeyValue {
                key: kv.key().to_vec(),
                value: kv.value().to_vec(),
            }));
            match next {
                Some(next) => {
                    opt = next;
                    iteration += 1;
                }
                None => return Ok(RangeResult { kvs, more }),
            }
        }
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        let too_large = if fits_c_api(key) {
            codes::VALUE_TOO_LARGE
        } else {
            codes::KEY_TOO_LARGE
        };
        self.mutate(fits_c_api(key) && fits_c_api(value), too_large, |trx| {
            trx.set(key, value)
        });
    }

    fn clear(&self, key: &[u8]) {
        self.mutate(fits_c_api(key), codes::KEY_TOO_LARGE, |trx| trx.clear(key));
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.mutate(
            fits_c_api(begin) && fits_c_api(end),
            codes::KEY_TOO_LARGE,
            |trx| trx.clear_range(begin, end),
        );
    }

    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        let too_large = if fits_c_api(key) {
            codes::VALUE_TOO_LARGE
        } else {
            codes::KEY_TOO_LARGE
        };
        self.mutate(fits_c_api(key) && fits_c_api(param), too_large, |trx| {
            trx.atomic_op(key, param, mutation_type(op))
        });
    }

    fn add_conflict_range(
        &self,
        begin: &[u8],
        end: &[u8],
        kind: ConflictRangeType,
    ) -> FdbResult<()> {
        check_key(begin)?;
        check_key(end)?;
        self.with_active(|trx| trx.add_conflict_range(begin, end, conflict_range_type(kind)))?
            .map_err(to_kv)
    }

    async fn get_read_version(&self) -> FdbResult<i64> {
        let read = self.with_active(|trx| trx.get_read_version())?;
        read.await.map_err(to_kv)
    }

    fn get_versionstamp(
        &self,
    ) -> impl Future<Output = FdbResult<[u8; 10]>> + Send + 'static + use<> {
        let source = {
            let mut state = self.lock();
            match &state.slot {
                Slot::Active(_) | Slot::InFlight { committing: true } => {
                    let (waiter, stamp) = oneshot::channel();
                    state.stamp_waiters.push(waiter);
                    StampSource::Waiter(stamp)
                }
                Slot::InFlight { committing: false } | Slot::Lost => {
                    StampSource::Ready(Err(err(codes::TRANSACTION_CANCELLED)))
                }
                Slot::Committed { stamp, .. } => StampSource::Ready(*stamp),
                Slot::CommitFailed(failed) => StampSource::Ready(Err(to_kv(**failed))),
            }
        };
        async move {
            match source {
                StampSource::Waiter(stamp) => stamp
                    .await
                    .unwrap_or(Err(err(codes::TRANSACTION_CANCELLED))),
                StampSource::Ready(stamp) => stamp,
            }
        }
    }

    fn watch(&self, key: &[u8]) -> impl Future<Output = FdbResult<()>> + Send + 'static + use<> {
        let armed = check_key(key).and_then(|()| self.with_active(|trx| trx.watch(key)));
        async move { armed?.await.map_err(to_kv) }
    }

    async fn commit(&self) -> FdbResult<()> {
        let (commit, stamp, generation) = {
            let mut state = self.lock();
            if let Some(error) = state.deferred {
                for waiter in state.stamp_waiters.drain(..) {
                    let _ = waiter.send(Err(error));
                }
                return Err(error);
            }
            match mem::replace(&mut state.slot, Slot::InFlight { committing: true }) {
                Slot::Active(trx) => {
                    // Fetched before the commit (FDB requires it) and resolved by it, so
                    // `get_versionstamp` can answer after the commit too.
                    let stamp = trx.get_versionstamp();
                    (trx.commit(), stamp, state.generation)
                }
                other => {
                    let error = other.unusable();
                    state.slot = other;
                    return Err(error);
                }
            }
        };
        let guard = InFlightGuard {
            state: &self.state,
            generation,
            finished: false,
        };
        match commit.await {
            Ok(committed) => {
                // FDB sets the versionstamp before the commit resolves (an error for a
                // read-only transaction), so this does not wait for anything new.
                let stamp = match stamp.await {
                    Ok(bytes) => to_stamp(&bytes),
                    Err(error) => Err(to_kv(error)),
                };
                guard.finish(
                    Slot::Committed {
                        trx: committed,
                        stamp,
                    },
                    stamp,
                );
                Ok(())
            }
            Err(failed) => {
                let error = to_kv(*failed);
                guard.finish(Slot::CommitFailed(failed), Err(error));
                Err(error)
            }
        }
    }

    async fn on_error(&self, error: FdbError) -> FdbResult<()> {
        if error.is_retryable() {
            crate::telemetry::retried(error);
        }
        let fdb_error = to_fdb(error);
        let (retry, generation): (BoxedRetry, u64) = {
            let mut state = self.lock();
            let generation = state.next_generation();
            let slot = mem::replace(&mut state.slot, Slot::InFlight { committing: false });
            let retry: BoxedRetry = match slot {
                Slot::Active(trx) => Box::pin(trx.on_error(fdb_error)),
                // FDB's own path: the failed commit's transaction, with its backoff.
                Slot::CommitFailed(failed) if failed.code() == error.code() => {
                    Box::pin(failed.on_error())
                }
                Slot::CommitFailed(failed) => Box::pin(failed.reset().on_error(fdb_error)),
                Slot::Committed { trx, .. } => Box::pin(trx.reset().on_error(fdb_error)),
                Slot::InFlight { .. } | Slot::Lost => match self.db.create_trx() {
                    Ok(trx) => Box::pin(trx.on_error(fdb_error)),
                    Err(create_error) => {
                        state.slot = Slot::Lost;
                        return Err(to_kv(create_error));
                    }
                },
            };
            (retry, generation)
        };
        let guard = InFlightGuard {
            state: &self.state,
            generation,
            finished: false,
        };
        let cancelled = Err(err(codes::TRANSACTION_CANCELLED));
        match retry.await {
            Ok(trx) => {
                guard.finish(Slot::Active(trx), cancelled);
                Ok(())
            }
            Err(error) => {
                // FDB hands the transaction back only on success; start afresh so the handle
                // stays usable, as a reset would.
                guard.finish(self.fresh_slot(), cancelled);
                Err(to_kv(error))
            }
        }
    }

    fn reset(&self) {
        let mut state = self.lock();
        state.next_generation();
        state.slot = match mem::take(&mut state.slot) {
            Slot::Active(mut trx) => {
                trx.reset();
                Slot::Active(trx)
            }
            Slot::Committed { trx, .. } => Slot::Active(trx.reset()),
            Slot::CommitFailed(failed) => Slot::Active(failed.reset()),
            Slot::InFlight { .. } | Slot::Lost => self.fresh_slot(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_types_map_by_code() {
        let pairs = [
            (MutationType::Add, 2),
            (MutationType::BitAnd, 6),
            (MutationType::BitOr, 7),
            (MutationType::BitXor, 8),
            (MutationType::AppendIfFits, 9),
            (MutationType::Max, 12),
            (MutationType::Min, 13),
            (MutationType::SetVersionstampedKey, 14),
            (MutationType::SetVersionstampedValue, 15),
            (MutationType::ByteMin, 16),
            (MutationType::ByteMax, 17),
            (MutationType::CompareAndClear, 20),
        ];
        for (ours, code) in pairs {
            assert_eq!(mutation_type(ours).code(), code, "{ours:?}");
        }
        assert_eq!(conflict_range_type(ConflictRangeType::Read).code(), 0);
        assert_eq!(conflict_range_type(ConflictRangeType::Write).code(), 1);
    }

    #[test]
    fn stamps_must_be_ten_bytes() {
        assert_eq!(to_stamp(&[7; 10]), Ok([7; 10]));
        assert_eq!(
            to_stamp(&[7; 9]).map_err(FdbError::code),
            Err(codes::CLIENT_INVALID_OPERATION)
        );
    }
}
