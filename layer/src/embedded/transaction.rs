//! An embedded transaction: reads at one snapshot, remembers its writes, and tracks the conflict
//! ranges FDB's client would send to the resolvers.
//!
//! Invariants (FDB's `ReadYourWrites` rules):
//! - the read version and snapshot are taken at the first read and kept until reset;
//! - a serializable point read adds `[k, k\x00)` unless the value is known from own writes;
//! - a serializable range read adds `[begin, end)` when exhausted, `[begin, keyAfter(last))`
//!   forwards or `[last, end)` backwards when it stopped at its limit, minus the parts own writes
//!   decide; snapshot reads add nothing;
//! - SET_VERSIONSTAMPED_KEY adds the write range from the key stamped (read version + 1, 0) to the
//!   key stamped 0xFF×10, which is unreadable in this transaction (1036), as is a key written
//!   with SET_VERSIONSTAMPED_VALUE;
//! - key, value and transaction size limits are checked like FDB's, the error surfacing at
//!   commit; a transaction older than 5 s fails reads and commits with 1007;
//! - the state lock is never held across an `.await`.

use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};

use fjall::Readable;
use tokio::sync::oneshot;

use super::committer::{CommitRequest, Committed, Mutation};
use super::faults::CommitFault;
use super::key_range::KeyRange;
use super::recent::Lookup;
use super::watches::WatchSignal;
use super::write_map::{KeyWrite, WriteMap};
use super::{storage_error, Engine, ReadView};
use crate::kv::atomic::{self, versionstamp, VALUE_SIZE_LIMIT, VERSIONSTAMP_LEN};
use crate::kv::{
    codes, key_after, Backoff, ConflictRangeType, FdbError, FdbResult, KeyValue, MutationType,
    RangeOption, RangeResult, Transaction,
};

/// FDB's key size limit.
pub const KEY_SIZE_LIMIT: usize = 10_000;
/// FDB's transaction size limit.
pub const TRANSACTION_SIZE_LIMIT: usize = 10_000_000;

fn err(code: i32) -> FdbError {
    FdbError::from_code(code)
}

type StampWaiter = oneshot::Sender<FdbResult<[u8; VERSIONSTAMP_LEN]>>;

#[derive(Debug)]
struct PendingWatch {
    key: Vec<u8>,
    seen: Option<Vec<u8>>,
    signal: WatchSignal,
}

#[derive(Default)]
struct TrxState {
    view: Option<ReadView>,
    writes: WriteMap,
    mutations: Vec<Mutation>,
    read_conflicts: Vec<KeyRange>,
    write_conflicts: Vec<KeyRange>,
    unreadable: Vec<KeyRange>,
    deferred: Option<FdbError>,
    size: usize,
    watches: Vec<PendingWatch>,
    stamp_waiters: Vec<StampWaiter>,
    backoff: Backoff,
    committed: bool,
}

impl TrxState {
    fn defer(&mut self, error: FdbError) {
        self.deferred.get_or_insert(error);
    }

    fn add_read_conflict(&mut self, range: KeyRange) {
        for part in self.writes.unknown_parts(range) {
            self.size += part.size();
            self.read_conflicts.push(part);
        }
    }

    fn add_write(&mut self, mutation: Mutation, conflict: KeyRange) {
        self.size += mutation.size();
        self.mutations.push(mutation);
        self.write_conflicts.push(conflict);
    }

    fn check_readable(&self, range: &KeyRange) -> FdbResult<()> {
        if self.unreadable.iter().any(|u| u.intersects(range)) {
            return Err(err(codes::ACCESSED_UNREADABLE));
        }
        Ok(())
    }

    /// [`Self::check_readable`] of the single key `key`, building its range only when some
    /// range is unreadable (a point read's common case builds nothing).
    fn check_readable_key(&self, key: &[u8]) -> FdbResult<()> {
        if self.unreadable.is_empty() {
            return Ok(());
        }
        self.check_readable(&KeyRange::point(key))
    }

    fn check_key(&mut self, key: &[u8]) -> bool {
        if key.len() > KEY_SIZE_LIMIT {
            self.defer(err(codes::KEY_TOO_LARGE));
            return false;
        }
        true
    }

    fn check_value(&mut self, value: &[u8]) -> bool {
        if value.len() > VALUE_SIZE_LIMIT {
            self.defer(err(codes::VALUE_TOO_LARGE));
            return false;
        }
        true
    }

    /// Marks a key written by a plain set or clear readable again.
    fn make_readable(&mut self, key: &[u8]) {
        let point = KeyRange::point(key);
        self.unreadable.retain(|u| *u != point);
    }

    fn fail_waiters(&mut self, error: FdbError) {
        for watch in self.watches.drain(..) {
            let _ = watch.signal.send(Err(error));
        }
        for waiter in self.stamp_waiters.drain(..) {
            let _ = waiter.send(Err(error));
        }
    }
}

/// A transaction on the embedded engine; clones are handles to the same transaction.
#[derive(Clone)]
pub struct EmbeddedTransaction {
    engine: Arc<Engine>,
    state: Arc<Mutex<TrxState>>,
}

/// What `commit` does after preparing under the lock.
enum Prepared {
    Done(FdbResult<()>),
    Send {
        request: CommitRequest,
        reply: oneshot::Receiver<FdbResult<Committed>>,
        watches: Vec<PendingWatch>,
        stamps: Vec<StampWaiter>,
        unknown_after_apply: bool,
    },
}

impl EmbeddedTransaction {
    pub(super) fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TrxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The read view, taken now if this is the first read; fails when too old.
    fn view(&self, state: &mut TrxState) -> FdbResult<ReadView> {
        let view = state
            .view
            .get_or_insert_with(|| self.engine.shared.read_view())
            .clone();
        if self.engine.shared.clock.is_too_old(view.version) {
            return Err(err(codes::TRANSACTION_TOO_OLD));
        }
        Ok(view)
    }

    /// `key`'s value at `view`: from the engine's recent values when they know it, else from
    /// the snapshot.
    fn stored(&self, view: &ReadView, key: &[u8]) -> FdbResult<Option<Vec<u8>>> {
        if let Lookup::Hit(value) = self.engine.shared.recent.get(key, view.version) {
            debug_assert_eq!(
                self.in_snapshot(view, key).ok(),
                Some(value.clone()),
                "a recent value is the snapshot's"
            );
            return Ok(value);
        }
        let value = self.in_snapshot(view, key)?;
        self.engine.shared.recent.fill(key, view.version, &value);
        Ok(value)
    }

    fn in_snapshot(&self, view: &ReadView, key: &[u8]) -> FdbResult<Option<Vec<u8>>> {
        view.snapshot
            .get(&self.engine.shared.data, key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(storage_error)
    }

    fn read_key(
        &self,
        state: &mut TrxState,
        key: &[u8],
        snapshot: bool,
    ) -> FdbResult<Option<Vec<u8>>> {
        state.check_readable_key(key)?;
        let view = self.view(state)?;
        let write = state.writes.lookup(key);
        if let Some(KeyWrite::Known(value)) = write {
            return Ok(value);
        }
        let stored = self.stored(&view, key)?;
        if !snapshot {
            state.add_read_conflict(KeyRange::point(key));
        }
        Ok(match write {
            Some(pending) => pending.resolve(stored.as_deref()),
            None => stored,
        })
    }

    fn read_range(
        &self,
        state: &mut TrxState,
        opt: &RangeOption,
        snapshot: bool,
    ) -> FdbResult<RangeResult> {
        if opt.begin > opt.end {
            return Err(err(codes::INVERTED_RANGE));
        }
        let range = KeyRange::new(opt.begin.clone(), opt.end.clone());
        if range.is_empty() || opt.limit == Some(0) {
            return Ok(RangeResult::default());
        }
        state.check_readable(&range)?;
        let view = self.view(state)?;
        let mut stored = view.snapshot.range(
            &self.engine.shared.data,
            range.begin.as_slice()..range.end.as_slice(),
        );
        let mut next_stored = || -> FdbResult<Option<(Vec<u8>, Vec<u8>)>> {
            let item = if opt.reverse {
                stored.next_back()
            } else {
                stored.next()
            };
            match item {
                None => Ok(None),
                Some(guard) => {
                    let (k, v) = guard.into_inner().map_err(storage_error)?;
                    Ok(Some((k.to_vec(), v.to_vec())))
                }
            }
        };
        let mut local: Vec<(Vec<u8>, KeyWrite)> = state
            .writes
            .range_keys(&range)
            .map(|(k, w)| (k.clone(), w.clone()))
            .collect();
        if opt.reverse {
            local.reverse();
        }
        let mut local = local.into_iter();
        let before = |a: &[u8], b: &[u8]| if opt.reverse { a > b } else { a < b };
        let limit = opt.limit.unwrap_or(usize::MAX);
        let mut kvs = Vec::new();
        let mut s_head = next_stored()?;
        let mut l_head = local.next();
        while kvs.len() < limit {
            let take_local = match (&s_head, &l_head) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((sk, _)), Some((lk, _))) => sk == lk || before(lk, sk),
            };
            if take_local {
                let Some((key, write)) = l_head.take() else {
                    break;
                };
                l_head = local.next();
                let base = match s_head.take() {
                    Some((sk, sv)) if sk == key => {
                        s_head = next_stored()?;
                        Some(sv)
                    }
                    other => {
                        s_head = other;
                        None
                    }
                };
                if let Some(value) = write.resolve(base.as_deref()) {
                    kvs.push(KeyValue { key, value });
                }
            } else {
                let Some((key, value)) = s_head.take() else {
                    break;
                };
                s_head = next_stored()?;
                if !state.writes.is_cleared(&key) {
                    kvs.push(KeyValue { key, value });
                }
            }
        }
        let more = kvs.len() >= limit && (s_head.is_some() || l_head.is_some());
        if !snapshot {
            let covered = match (more, kvs.last()) {
                (true, Some(last)) if opt.reverse => {
                    KeyRange::new(last.key.clone(), range.end.clone())
                }
                (true, Some(last)) => KeyRange::new(range.begin.clone(), key_after(&last.key)),
                _ => range,
            };
            state.add_read_conflict(covered);
        }
        Ok(RangeResult { kvs, more })
    }

    fn prepare_commit(&self) -> Prepared {
        let mut state = self.lock();
        if state.committed {
            return Prepared::Done(Err(err(codes::USED_DURING_COMMIT)));
        }
        let failed = |state: &mut TrxState, error: FdbError| {
            state.fail_waiters(error);
            Prepared::Done(Err(error))
        };
        if let Some(error) = state.deferred {
            return failed(&mut state, error);
        }
        if state.size > TRANSACTION_SIZE_LIMIT {
            return failed(&mut state, err(codes::TRANSACTION_TOO_LARGE));
        }
        if state.mutations.is_empty() && state.write_conflicts.is_empty() {
            state.committed = true;
            let watches = mem::take(&mut state.watches);
            let stamps = mem::take(&mut state.stamp_waiters);
            drop(state);
            self.register_watches(watches);
            for waiter in stamps {
                let _ = waiter.send(Err(err(codes::NO_COMMIT_VERSION)));
            }
            return Prepared::Done(Ok(()));
        }
        let read_version = state.view.as_ref().map(|v| v.version);
        if read_version.is_some_and(|v| self.engine.shared.clock.is_too_old(v)) {
            return failed(&mut state, err(codes::TRANSACTION_TOO_OLD));
        }
        let fault = self
            .engine
            .shared
            .faults
            .as_ref()
            .map_or(CommitFault::None, |f| f.commit_fault());
        if let CommitFault::FailBefore(error) = fault {
            return failed(&mut state, error);
        }
        let (reply_to, reply) = oneshot::channel();
        let request = CommitRequest {
            read_version,
            read_conflicts: mem::take(&mut state.read_conflicts),
            write_conflicts: mem::take(&mut state.write_conflicts),
            mutations: mem::take(&mut state.mutations),
            reply: reply_to,
        };
        state.committed = true;
        Prepared::Send {
            request,
            reply,
            watches: mem::take(&mut state.watches),
            stamps: mem::take(&mut state.stamp_waiters),
            unknown_after_apply: fault == CommitFault::UnknownAfterApply,
        }
    }

    fn register_watches(&self, watches: Vec<PendingWatch>) {
        let shared = &self.engine.shared;
        let Ok(mut registry) = shared.watches.lock() else {
            return;
        };
        // The view is taken under the registry's lock: the committer publishes a group and then
        // takes this lock to fire its watches, so either this view holds the group (a changed
        // value fires the watch now) or the group's firing waits for this registration. Taken
        // before the lock, a group published in between fired nothing here and was not in the
        // view: the watch slept through the change.
        let view = shared.current();
        for watch in watches {
            let current = match self.stored(&view, &watch.key) {
                Ok(value) => value,
                Err(error) => {
                    let _ = watch.signal.send(Err(error));
                    continue;
                }
            };
            let spurious = shared.faults.as_ref().is_some_and(|f| f.spurious_watch());
            let seen = if spurious {
                Some(b"\xFFspurious".to_vec())
            } else {
                watch.seen
            };
            registry.register(
                watch.key,
                seen,
                current.as_deref(),
                watch.signal,
                shared.watch_delay(),
            );
        }
    }
}

impl Transaction for EmbeddedTransaction {
    async fn get(&self, key: &[u8], snapshot: bool) -> FdbResult<Option<Vec<u8>>> {
        let mut state = self.lock();
        self.read_key(&mut state, key, snapshot)
    }

    async fn get_range(&self, range: &RangeOption, snapshot: bool) -> FdbResult<RangeResult> {
        let mut state = self.lock();
        self.read_range(&mut state, range, snapshot)
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        let mut state = self.lock();
        if state.check_key(key) && state.check_value(value) {
            state.writes.set(key, value);
            state.make_readable(key);
            state.add_write(
                Mutation::Set(key.to_vec(), value.to_vec()),
                KeyRange::point(key),
            );
        }
    }

    fn clear(&self, key: &[u8]) {
        let mut state = self.lock();
        if state.check_key(key) {
            state.writes.clear(key);
            state.make_readable(key);
            state.add_write(Mutation::Clear(key.to_vec()), KeyRange::point(key));
        }
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        let mut state = self.lock();
        if begin > end {
            state.defer(err(codes::INVERTED_RANGE));
            return;
        }
        let range = KeyRange::new(begin, end);
        if range.is_empty() {
            return;
        }
        state.writes.clear_range(&range);
        state.add_write(Mutation::ClearRange(range.clone()), range);
    }

    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        let mut state = self.lock();
        if !(state.check_key(key) && state.check_value(param)) {
            return;
        }
        let mutation = Mutation::Atomic(key.to_vec(), param.to_vec(), op);
        match op {
            MutationType::SetVersionstampedKey => {
                let Ok((body, offset)) = atomic::versionstamp_offset(key) else {
                    state.defer(err(codes::CLIENT_INVALID_OPERATION));
                    return;
                };
                let read_version = state.view.as_ref().map_or(0, |v| v.version);
                let stamped = |stamp: &[u8; VERSIONSTAMP_LEN]| {
                    let mut k = body.to_vec();
                    k[offset..offset + VERSIONSTAMP_LEN].copy_from_slice(stamp);
                    k
                };
                let low = stamped(&versionstamp(read_version + 1, 0));
                let high = key_after(&stamped(&[0xFF; VERSIONSTAMP_LEN]));
                let range = KeyRange::new(low, high);
                state.unreadable.push(range.clone());
                state.add_write(mutation, range);
            }
            MutationType::SetVersionstampedValue => {
                if atomic::versionstamp_offset(param).is_err() {
                    state.defer(err(codes::CLIENT_INVALID_OPERATION));
                    return;
                }
                state.writes.forget(key);
                state.unreadable.push(KeyRange::point(key));
                state.add_write(mutation, KeyRange::point(key));
            }
            _ => {
                state.writes.atomic(key, op, param);
                state.add_write(mutation, KeyRange::point(key));
            }
        }
    }

    fn add_conflict_range(
        &self,
        begin: &[u8],
        end: &[u8],
        kind: ConflictRangeType,
    ) -> FdbResult<()> {
        if begin > end {
            return Err(err(codes::INVERTED_RANGE));
        }
        let range = KeyRange::new(begin, end);
        let mut state = self.lock();
        match kind {
            ConflictRangeType::Read => {
                self.view(&mut state)?;
                state.add_read_conflict(range);
            }
            ConflictRangeType::Write => {
                state.size += range.size();
                state.write_conflicts.push(range);
            }
        }
        Ok(())
    }

    async fn get_read_version(&self) -> FdbResult<i64> {
        let mut state = self.lock();
        Ok(self.view(&mut state)?.version as i64)
    }

    fn get_versionstamp(
        &self,
    ) -> impl std::future::Future<Output = FdbResult<[u8; 10]>> + Send + 'static + use<> {
        let (waiter, stamp) = oneshot::channel();
        self.lock().stamp_waiters.push(waiter);
        async move {
            stamp
                .await
                .unwrap_or(Err(err(codes::TRANSACTION_CANCELLED)))
        }
    }

    fn watch(
        &self,
        key: &[u8],
    ) -> impl std::future::Future<Output = FdbResult<()>> + Send + 'static + use<> {
        let armed = (|| {
            let slot = self.engine.shared.slots.acquire()?;
            let mut state = self.lock();
            let seen = self.read_key(&mut state, key, true)?;
            let (signal, fired) = oneshot::channel();
            state.watches.push(PendingWatch {
                key: key.to_vec(),
                seen,
                signal,
            });
            Ok((slot, fired))
        })();
        async move {
            let (_slot, fired) = armed?;
            match fired.await {
                Ok(Ok(delay)) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok(())
                }
                Ok(Err(error)) => Err(error),
                Err(_) => Err(err(codes::TRANSACTION_CANCELLED)),
            }
        }
    }

    async fn commit(&self) -> FdbResult<()> {
        let (request, reply, watches, stamps, unknown_after_apply) = match self.prepare_commit() {
            Prepared::Done(result) => {
                if let Err(error) = result {
                    crate::telemetry::commit_failed(error);
                }
                return result;
            }
            Prepared::Send {
                request,
                reply,
                watches,
                stamps,
                unknown_after_apply,
            } => (request, reply, watches, stamps, unknown_after_apply),
        };
        let started = std::time::Instant::now();
        let outcome = match self.engine.submit(request) {
            Ok(()) => reply
                .await
                .unwrap_or(Err(err(codes::COMMIT_UNKNOWN_RESULT))),
            Err(error) => Err(error),
        };
        let outcome = match outcome {
            Ok(_) if unknown_after_apply => Err(err(codes::COMMIT_UNKNOWN_RESULT)),
            other => other,
        };
        crate::telemetry::commit_finished(started.elapsed(), outcome.map(drop));
        match outcome {
            Ok(committed) => {
                self.register_watches(watches);
                let stamp = versionstamp(committed.version, committed.batch_order);
                for waiter in stamps {
                    let _ = waiter.send(Ok(stamp));
                }
                Ok(())
            }
            Err(error) => {
                for watch in watches {
                    let _ = watch.signal.send(Err(error));
                }
                for waiter in stamps {
                    let _ = waiter.send(Err(error));
                }
                Err(error)
            }
        }
    }

    async fn on_error(&self, error: FdbError) -> FdbResult<()> {
        if !error.is_retryable() {
            return Err(error);
        }
        crate::telemetry::retried(error);
        let delay = {
            let mut state = self.lock();
            let delay = state.backoff.advance_jittered(self.engine.shared.jitter());
            let backoff = state.backoff;
            *state = TrxState {
                backoff,
                ..TrxState::default()
            };
            delay
        };
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn reset(&self) {
        let mut state = self.lock();
        let backoff = state.backoff;
        *state = TrxState {
            backoff,
            ..TrxState::default()
        };
    }
}
