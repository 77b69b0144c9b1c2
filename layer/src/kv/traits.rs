//! The KV contract: `Database` and `Transaction`, shaped like the `foundationdb` 0.11 crate.
//!
//! Invariants every backend keeps (the conformance suite checks each one):
//! - a transaction reads at one read version, taken at its first read, and sees its own writes;
//! - serializable reads add FDB's read-conflict ranges; snapshot reads add none;
//! - `commit` fails with `not_committed` when a read-conflict range was written after the read
//!   version, and write-only transactions never conflict;
//! - mutations (`set`, `clear`, `atomic_op`, ...) never fail on the spot: an invalid one is
//!   remembered and `commit` returns its error, as FDB's C client does;
//! - handles are cheap clones of one transaction, so a retry closure can own one.

use std::future::Future;

use super::error::FdbResult;
use super::options::{ConflictRangeType, MutationType, RangeOption, RangeResult};

/// A database: a factory of transactions.
pub trait Database: Clone + Send + Sync + 'static {
    /// The backend's transaction type.
    type Trx: Transaction;

    /// Starts a new transaction.
    fn create_trx(&self) -> FdbResult<Self::Trx>;
}

/// One FDB-style transaction.
pub trait Transaction: Clone + Send + Sync + 'static {
    /// Reads `key`; `snapshot` reads add no read conflict.
    fn get(
        &self,
        key: &[u8],
        snapshot: bool,
    ) -> impl Future<Output = FdbResult<Option<Vec<u8>>>> + Send;

    /// Reads a range of pairs; see `RangeOption::next_range` for paging.
    fn get_range(
        &self,
        range: &RangeOption,
        snapshot: bool,
    ) -> impl Future<Output = FdbResult<RangeResult>> + Send;

    /// Sets `key` to `value`.
    fn set(&self, key: &[u8], value: &[u8]);

    /// Clears `key`.
    fn clear(&self, key: &[u8]);

    /// Clears every key in `[begin, end)`.
    fn clear_range(&self, begin: &[u8], end: &[u8]);

    /// Applies an atomic operation at commit, on the then-current value.
    fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType);

    /// Adds a read- or write-conflict range `[begin, end)`.
    fn add_conflict_range(
        &self,
        begin: &[u8],
        end: &[u8],
        kind: ConflictRangeType,
    ) -> FdbResult<()>;

    /// The transaction's read version, taking one if it has none yet.
    fn get_read_version(&self) -> impl Future<Output = FdbResult<i64>> + Send;

    /// Resolves after a successful commit to the transaction's 10-byte versionstamp.
    fn get_versionstamp(
        &self,
    ) -> impl Future<Output = FdbResult<[u8; 10]>> + Send + 'static + use<Self>;

    /// Resolves once the value of `key` differs from what this transaction saw; active only after
    /// the transaction commits.
    fn watch(&self, key: &[u8])
        -> impl Future<Output = FdbResult<()>> + Send + 'static + use<Self>;

    /// Commits; on success every write is durable.
    fn commit(&self) -> impl Future<Output = FdbResult<()>> + Send;

    /// Handles a failed attempt like FDB: for a retryable error backs off (10 ms doubling, 1 s
    /// cap) and resets the transaction for another attempt; otherwise returns the error.
    fn on_error(&self, error: super::FdbError) -> impl Future<Output = FdbResult<()>> + Send;

    /// Discards all reads and writes and starts afresh (backoff is kept).
    fn reset(&self);
}
