//! The FoundationDB backend of the KV contract (cargo feature `fdb`), on `foundationdb` 0.11.
//!
//! [`FdbDatabase`] and [`FdbTransaction`] implement [`Database`] and
//! [`Transaction`](crate::kv::Transaction) by forwarding to FoundationDB's C client, so every rule
//! of the contract (read versions, conflict ranges, retry and backoff, watches, versionstamps,
//! size limits) is FoundationDB's own, not a reimplementation.
//!
//! What maps to what:
//! - errors: `foundationdb::FdbError` ↔ [`FdbError`] by code (`FdbError::from_code(e.code())`);
//! - [`MutationType`](crate::kv::MutationType) and
//!   [`ConflictRangeType`](crate::kv::ConflictRangeType) map variant by variant onto
//!   `foundationdb::options`;
//! - a key-based [`RangeOption`](crate::kv::RangeOption) `[begin, end)` becomes key selectors
//!   `first_greater_or_equal(begin)` .. `first_greater_or_equal(end)` in `WantAll` mode; partial
//!   batches are followed up inside one `get_range` call, so `more` is true only when the read
//!   stopped at its limit (FDB's own `more` flag decides whether data may follow);
//! - `on_error` is FDB's `on_error` (its retry rules and its backoff, which FDB keeps inside the
//!   transaction object); `commit` is FDB's commit.
//!
//! Process-wide invariants:
//! - the FDB network is booted at most once per process (FDB allows one API-version selection
//!   and one network per process), lazily by [`FdbDatabase::open`], and can be stopped once with
//!   [`shutdown_network`]; see that function for the exit obligation;
//! - no `std` mutex is held across an `.await`: every FDB future is created under the lock
//!   (FDB futures own their C handle and borrow nothing) and awaited after it is released.
//!
//! Where this backend differs from the embedded engine (both follow FDB where FDB is explicit):
//! - after `commit` has started, reads, `watch` and `add_conflict_range` fail with
//!   `used_during_commit` (2017), as in FDB; `get_versionstamp` after a successful commit
//!   resolves to the commit's versionstamp (it is fetched with every commit);
//! - `reset` is FDB's reset, which also restores FDB's initial backoff;
//! - an invalid mutation (oversized key or value) becomes FDB's deferred error of the
//!   transaction, which FDB may also report from later operations, not only from `commit`;
//! - a range read that returned exactly `limit` pairs may report `more = true` although nothing
//!   follows (FDB's storage servers cannot tell); its read-conflict range is then
//!   `[begin, keyAfter(last))` instead of the whole range;
//! - keys at or above `\xff` are FDB's system keys: reading or writing them fails with
//!   `key_outside_legal_range` (2004) unless FDB options allow it.

mod transaction;

use std::sync::{Arc, Mutex, PoisonError};

use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};

use crate::kv::{codes, Database, FdbError, FdbResult};

pub use transaction::FdbTransaction;

/// The environment variable naming the cluster file, FDB's own convention; the test harness opens
/// the cluster it names and skips FDB tests when it is unset.
pub const CLUSTER_FILE_ENV: &str = "FDB_CLUSTER_FILE";

/// FDB's `network_cannot_be_restarted`: the network was stopped and FDB cannot start it again.
pub const NETWORK_CANNOT_BE_RESTARTED: i32 = 2025;

/// The process's FDB network: booted once, stopped at most once.
enum Network {
    /// Not booted yet.
    NotStarted,
    /// Running; dropping the guard stops the network and joins its thread.
    Running(NetworkAutoStop),
    /// Booting failed; FDB allows one API-version selection per process, so this is final.
    Failed(FdbError),
    /// Stopped by [`shutdown_network`]; FDB cannot restart it.
    Stopped,
}

/// The one network of this process. A `Mutex` (not a `OnceLock`) because [`shutdown_network`]
/// must be able to take the guard out and drop it.
static NETWORK: Mutex<Network> = Mutex::new(Network::NotStarted);

fn to_kv(error: foundationdb::FdbError) -> FdbError {
    FdbError::from_code(error.code())
}

/// Boots the FDB client network for this process if it is not running yet; idempotent.
///
/// [`FdbDatabase::open`] calls this. Fails with the FDB error of API-version selection or network
/// setup (for example 2203 when the installed `libfdb_c` is older than 7.3), and with
/// [`NETWORK_CANNOT_BE_RESTARTED`] after [`shutdown_network`]. Do not call `foundationdb::boot`
/// or `foundationdb::api::FdbApiBuilder::build` anywhere else in the process: the crate panics
/// on a second API-version selection.
pub fn boot_network() -> FdbResult<()> {
    let mut network = NETWORK.lock().unwrap_or_else(PoisonError::into_inner);
    match &*network {
        Network::Running(_) => Ok(()),
        Network::Failed(error) => Err(*error),
        Network::Stopped => Err(FdbError::from_code(NETWORK_CANNOT_BE_RESTARTED)),
        Network::NotStarted => {
            let booted = FdbApiBuilder::default().build().and_then(|builder| {
                // SAFETY: `NetworkBuilder::boot` requires (1) that it runs at most once per
                // process and (2) that the returned guard is dropped before the process exits.
                // (1) holds because this is the only place that boots, and it runs under the
                // `NETWORK` lock in state `NotStarted`, which it leaves for good. (2) cannot be
                // enforced by types for a process-wide network; it is forwarded to the process
                // owner as the documented obligation of `shutdown_network`. Breaking it risks a
                // crash of FDB's C client during process exit (its static teardown racing the
                // network thread), not unsoundness while the process runs.
                unsafe { builder.boot() }
            });
            match booted {
                Ok(guard) => {
                    *network = Network::Running(guard);
                    Ok(())
                }
                Err(error) => {
                    let error = to_kv(error);
                    *network = Network::Failed(error);
                    Err(error)
                }
            }
        }
    }
}

/// Stops the FDB network and joins its thread; FDB cannot start it again in this process.
///
/// A process that opened an [`FdbDatabase`] should call this once, last, before it exits (FDB's C
/// API requires the network to be stopped before exit; skipping it may crash the process during
/// exit). Drop every [`FdbDatabase`] and [`FdbTransaction`] and stop using their futures first:
/// stopping the network with live handles can block the join. Does nothing when the network is
/// not running.
pub fn shutdown_network() {
    let guard = {
        let mut network = NETWORK.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *network, Network::Stopped) {
            Network::Running(guard) => Some(guard),
            other => {
                *network = other;
                None
            }
        }
    };
    // Dropping the guard stops the network and joins its thread, outside the lock.
    drop(guard);
}

/// A FoundationDB database: a cheap, cloneable handle that creates [`FdbTransaction`]s.
#[derive(Clone)]
pub struct FdbDatabase {
    inner: Arc<foundationdb::Database>,
}

impl FdbDatabase {
    /// Boots the network if needed and opens the cluster named by `cluster_file`; with `None`,
    /// FDB's default (`$FDB_CLUSTER_FILE`, else the platform's default cluster file).
    ///
    /// Fails with `client_invalid_operation` (2000) when the path contains a NUL byte, and
    /// otherwise with FDB's error (see [`boot_network`]).
    pub fn open(cluster_file: Option<&str>) -> FdbResult<Self> {
        if cluster_file.is_some_and(|path| path.contains('\0')) {
            return Err(FdbError::from_code(codes::CLIENT_INVALID_OPERATION));
        }
        boot_network()?;
        let inner = foundationdb::Database::new(cluster_file).map_err(to_kv)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Opens the cluster named by `$FDB_CLUSTER_FILE`, or `None` when the variable is unset or
    /// empty: the entry point of test harnesses, which skip FDB tests in that case.
    pub fn open_from_env() -> Option<FdbResult<Self>> {
        let path = std::env::var(CLUSTER_FILE_ENV).ok()?;
        if path.is_empty() {
            return None;
        }
        Some(Self::open(Some(&path)))
    }

    /// Wraps an already-open `foundationdb::Database` (the network must be running; booting it
    /// outside [`boot_network`] rules out using that function in the same process).
    pub fn from_database(inner: Arc<foundationdb::Database>) -> Self {
        Self { inner }
    }

    /// The underlying `foundationdb::Database`, for FDB features outside the KV contract.
    pub fn inner(&self) -> &Arc<foundationdb::Database> {
        &self.inner
    }
}

impl Database for FdbDatabase {
    type Trx = FdbTransaction;

    fn create_trx(&self) -> FdbResult<FdbTransaction> {
        FdbTransaction::new(Arc::clone(&self.inner))
    }
}
