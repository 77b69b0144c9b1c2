//! A KV wrapper that makes every database operation a scheduling point.
//!
//! The embedded engine answers reads and (inline) commits without ever suspending, so two
//! transactions driven from one thread would never interleave. [`SimDatabase`] wraps any
//! [`Database`] and suspends once before each read, read-version request and commit; the
//! simulator's scheduler then decides, with its seeded rng, which in-flight task runs next. That
//! is how real conflicts (a frame against a routed T1, a zombie processor against its successor)
//! arise deterministically.
//!
//! Invariants:
//! - the wrapper adds no behaviour of its own: every call is forwarded unchanged, so the layer's
//!   rules are exercised exactly as they run in production;
//! - a suspension always wakes its task at once, so awaiting a wrapped future outside the
//!   scheduler (the checks) simply completes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use sekai_layer::kv::{
    ConflictRangeType, Database, FdbError, FdbResult, MutationType, RangeOption, RangeResult,
    Transaction,
};

/// A future that is pending exactly once (and wakes itself), then ready.
#[derive(Debug, Default)]
pub struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A database whose operations are scheduling points (see the module docs).
#[derive(Clone, Debug)]
pub struct SimDatabase<D> {
    inner: D,
}

impl<D: Database> SimDatabase<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Self { inner }
    }

    /// The wrapped database.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Database> Database for SimDatabase<D> {
    type Trx = SimTransaction<D::Trx>;

    fn create_trx(&self) -> FdbResult<Self::Trx> {
        Ok(SimTransaction {
            inner: self.inner.create_trx()?,
        })
    }
}

/// A transaction of a [`SimDatabase`].
#[derive(Clone, Debug)]
pub struct SimTransaction<T> {
    inner: T,
}

impl<T: Transaction> Transaction for SimTransaction<T> {
    async fn get(&self, key: &[u8], snapshot: bool) -> FdbResult<Option<Vec<u8>>> {
        YieldOnce::default().await;
        self.inner.get(key, snapshot).await
    }

    async fn get_range(&self, range: &RangeOption, snapshot: bool) -> FdbResult<RangeResult> {
        YieldOnce::default().await;
        self.inner.get_range(range, snapshot).await
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.inner.set(key, value);
    }

    fn clear(&self, key: &[u8]) {
        self.inner.clear(key);
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.inner.clear_range(begin, end);
    }

    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        self.inner.atomic_op(key, param, op);
    }

    fn add_conflict_range(
        &self,
        begin: &[u8],
        end: &[u8],
        kind: ConflictRangeType,
    ) -> FdbResult<()> {
        self.inner.add_conflict_range(begin, end, kind)
    }

    async fn get_read_version(&self) -> FdbResult<i64> {
        YieldOnce::default().await;
        self.inner.get_read_version().await
    }

    fn get_versionstamp(
        &self,
    ) -> impl Future<Output = FdbResult<[u8; 10]>> + Send + 'static + use<T> {
        self.inner.get_versionstamp()
    }

    fn watch(&self, key: &[u8]) -> impl Future<Output = FdbResult<()>> + Send + 'static + use<T> {
        self.inner.watch(key)
    }

    async fn commit(&self) -> FdbResult<()> {
        YieldOnce::default().await;
        self.inner.commit().await
    }

    async fn on_error(&self, error: FdbError) -> FdbResult<()> {
        self.inner.on_error(error).await
    }

    fn reset(&self) {
        self.inner.reset();
    }
}
