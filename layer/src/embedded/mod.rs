//! The embedded engine: FoundationDB's semantics in one process, durable on local disk.
//!
//! Built on fjall (an LSM-tree store with an fsynced journal). Invariants:
//! - **MVCC**: a transaction reads one fjall snapshot, the one published with its read version;
//!   only the committer writes, and it publishes (version, snapshot) after each durable group;
//! - **conflicts**: FDB's rules (see `transaction` for read ranges, `committer` for resolution);
//! - **durability**: a commit is acknowledged only after its group's journal write is fsynced;
//!   every group also stores its version, so after a crash the clock restarts above it;
//! - **watches**: see `watches`; **faults**: see `faults`, off unless configured;
//! - **recent values**: a point read may take a key's newest value from `recent` instead of the
//!   snapshot, only when that value is provably the snapshot's (see `recent`).

mod clock;
mod committer;
mod conflict_history;
mod faults;
mod key_range;
mod recent;
mod slow_writes;
mod transaction;
mod watches;
mod write_map;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::{Database as Store, KeyspaceCreateOptions};

pub use clock::{ManualClock, MVCC_WINDOW_VERSIONS, VERSIONS_PER_SECOND};
pub use faults::{FaultConfig, FaultCounts};
pub use key_range::KeyRange;
pub use transaction::EmbeddedTransaction;
pub use watches::DEFAULT_WATCH_LIMIT;

use crate::kv::{codes, Database, FdbError, FdbResult};
use clock::VersionClock;
use committer::{CommitRequest, Committer};
use faults::FaultInjector;
use watches::{WatchRegistry, WatchSlots};

/// Key of the newest committed version in the meta keyspace.
const META_VERSION_KEY: &[u8] = b"version";

/// Bytes of the `meta` keyspace's memtable. Every commit group rewrites one small key there, so
/// with fjall's default 64 MiB it was never flushed, and an unflushed memtable keeps every journal
/// file since its first write: journals piled up to fjall's 512 MiB limit (445 of a 656 MB store
/// after 150 s at 300 bots) before a forced flush released them. Flushed every MiB, it releases
/// them as the data keyspace flushes.
const META_MEMTABLE_BYTES: u64 = 1 << 20;

/// How to open the embedded engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Fault injection; `None` for a faithful engine.
    pub faults: Option<FaultConfig>,
    /// A hand-driven clock instead of the real one.
    pub manual_clock: Option<ManualClock>,
    /// Most outstanding watches (FDB's default is 10,000).
    pub watch_limit: usize,
    /// Commit inline in the committing task instead of on the committer thread: every commit
    /// is its own group, so a single-threaded caller (the simulator) replays exactly.
    pub inline_commits: bool,
    /// The least time between the starts of two commit groups (FDB's commit proxies batch the
    /// same way, `COMMIT_TRANSACTION_BATCH_INTERVAL_*`): a commit arriving sooner waits for the
    /// next group, so under load groups grow and their fsyncs do not multiply. Zero commits each
    /// group as soon as the previous one is durable. An idle engine never waits.
    pub commit_interval: std::time::Duration,
    /// Bytes the data keyspace's memtable holds before it is sealed and flushed (fjall's default
    /// is 64 MiB). Smaller lowers RSS but flushes more often: at 300 bots on one core, 16 MiB
    /// doubled the p99 and saved no CPU.
    pub memtable_bytes: u64,
    /// Bytes of fjall's block cache (its default is 32 MiB).
    pub cache_bytes: u64,
    /// The nice value of fjall's background threads (memtable flushes, compaction) on Linux:
    /// higher runs them on CPU the commit path leaves idle instead of preempting it. 0 leaves
    /// them at the caller's priority. The 100+ ms stalls once blamed on a flush at normal
    /// priority were lsm-tree freeing the flushed memtable under its version lock (see
    /// `vendor/README.md`); at 300 bots, nice 0 and 10 stalled alike before that patch.
    pub background_nice: i32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            faults: None,
            manual_clock: None,
            watch_limit: DEFAULT_WATCH_LIMIT,
            inline_commits: false,
            commit_interval: std::time::Duration::ZERO,
            memtable_bytes: 64 << 20,
            cache_bytes: 32 << 20,
            background_nice: 10,
        }
    }
}

/// Why the engine could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed to open or recover.
    #[error("cannot open the store at {path}: {source}")]
    Store {
        /// The data directory.
        path: PathBuf,
        /// fjall's error.
        source: fjall::Error,
    },
    /// The stored version is not 8 bytes: the directory is not ours or is corrupt.
    #[error("the store at {0} has a corrupt version record")]
    CorruptVersion(PathBuf),
    /// A temporary directory could not be made.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(std::io::Error),
}

impl OpenError {
    /// Whether another process (or a dying one) holds the store's lock.
    pub fn is_locked(&self) -> bool {
        matches!(
            self,
            OpenError::Store {
                source: fjall::Error::Locked,
                ..
            }
        )
    }
}

/// Commit statistics: how well group commit works.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Transactions committed with writes.
    pub commits: u64,
    /// Durable group writes (one fsync each).
    pub fsyncs: u64,
}

impl EngineStats {
    /// Average commits that shared one fsync.
    pub fn commits_per_fsync(&self) -> f64 {
        self.commits as f64 / self.fsyncs.max(1) as f64
    }
}

#[derive(Debug, Default)]
struct StatCounters {
    commits: AtomicU64,
    fsyncs: AtomicU64,
}

impl StatCounters {
    fn record_group(&self, commits: u64) {
        self.commits.fetch_add(commits, Ordering::Relaxed);
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }
}

/// A read version and the store snapshot that shows exactly the commits up to it.
///
/// The snapshot is shared: every transaction that reads at a published group's view holds the
/// one snapshot the committer took for it. Cloning an `fjall::Snapshot` registers another reader
/// with fjall's snapshot tracker (a concurrent map update, and another at its drop), which cost
/// 1.4 % of the server's samples at 400 bots when each read cloned it.
#[derive(Clone)]
pub(crate) struct ReadView {
    version: u64,
    snapshot: Arc<fjall::Snapshot>,
}

/// The newest published view, the commit in flight and the highest read version handed out.
///
/// Invariant: every read version handed out is below the version of any commit not yet in the
/// published snapshot, so a reader never misses a commit at or below its read version. Read
/// versions follow the clock between commits, as FDB's do.
struct Published {
    view: ReadView,
    in_flight: Option<u64>,
    handed_out: u64,
}

/// State shared by transactions and the committer.
pub(crate) struct Shared {
    current: Mutex<Published>,
    watches: Mutex<WatchRegistry>,
    slots: Arc<WatchSlots>,
    clock: VersionClock,
    faults: Option<FaultInjector>,
    data: fjall::Keyspace,
    poisoned: AtomicBool,
    stats: StatCounters,
    jitter: Mutex<rand_chacha::ChaCha8Rng>,
    /// The newest values of keys often point-read and written (`recent`'s invariants).
    recent: recent::RecentValues,
}

impl Shared {
    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest published snapshot, at the newest commit version.
    fn current(&self) -> ReadView {
        self.published().view.clone()
    }

    /// A read version for a new transaction (FDB's GRV): the clock's version, held below any
    /// commit in flight, with the newest published snapshot.
    fn read_view(&self) -> ReadView {
        let mut published = self.published();
        let now = self.clock.now();
        let cap = published.in_flight.map_or(now, |v| now.min(v - 1));
        let version = published.view.version.max(cap);
        published.handed_out = published.handed_out.max(version);
        ReadView {
            version,
            snapshot: published.view.snapshot.clone(),
        }
    }

    /// Picks the version of the next group: above the last commit, the clock and every read
    /// version handed out.
    fn begin_group(&self) -> u64 {
        let mut published = self.published();
        let version = (published.view.version + 1)
            .max(self.clock.now())
            .max(published.handed_out + 1);
        published.in_flight = Some(version);
        version
    }

    /// Publishes a durable group (or, with `None`, ends a group that wrote nothing).
    fn publish(&self, view: Option<ReadView>) {
        let mut published = self.published();
        if let Some(view) = view {
            published.view = view;
        }
        published.in_flight = None;
    }

    /// A backoff jitter factor in `[0, 1)`, from the engine's seeded stream.
    fn jitter(&self) -> f64 {
        use rand::Rng;
        self.jitter
            .lock()
            .map(|mut rng| rng.gen::<f64>())
            .unwrap_or(0.5)
    }

    fn watch_delay(&self) -> Duration {
        self.faults
            .as_ref()
            .map_or(Duration::ZERO, FaultInjector::watch_delay)
    }
}

/// Maps a store error to FDB's generic failure, logging it.
fn storage_error(error: fjall::Error) -> FdbError {
    tracing::error!(%error, "embedded store read failed");
    FdbError::from_code(codes::OPERATION_FAILED)
}

/// Where commit requests go.
enum CommitPath {
    /// To the committer thread, which groups them (group commit).
    Thread {
        requests: mpsc::Sender<CommitRequest>,
        handle: JoinHandle<()>,
    },
    /// Straight into the committer, one request per group, in the caller's thread.
    Inline(Committer),
}

/// The engine behind every handle; stops the committer when the last handle goes.
struct Engine {
    shared: Arc<Shared>,
    path_to_committer: Mutex<Option<CommitPath>>,
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Engine {
    fn submit(&self, request: CommitRequest) -> FdbResult<()> {
        let failed = || FdbError::from_code(codes::OPERATION_FAILED);
        let mut guard = self.path_to_committer.lock().map_err(|_| failed())?;
        match guard.as_mut() {
            Some(CommitPath::Thread { requests, .. }) => {
                requests.send(request).map_err(|_| failed())
            }
            Some(CommitPath::Inline(committer)) => {
                committer.commit_group(vec![request]);
                Ok(())
            }
            None => Err(failed()),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let path = self
            .path_to_committer
            .lock()
            .ok()
            .and_then(|mut p| p.take());
        if let Some(CommitPath::Thread { requests, handle }) = path {
            drop(requests);
            let _ = handle.join();
        }
    }
}

/// A handle to the embedded engine; clones share one engine.
#[derive(Clone)]
pub struct EmbeddedDatabase {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for EmbeddedDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedDatabase")
            .field("path", &self.engine.path)
            .finish()
    }
}

impl EmbeddedDatabase {
    /// Opens (or creates) the engine at `path`, recovering what was committed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, EngineOptions::default())
    }

    /// Opens a fresh engine in a temporary directory, removed when the last handle drops.
    pub fn temporary(options: EngineOptions) -> Result<Self, OpenError> {
        let dir = tempfile::tempdir().map_err(OpenError::TempDir)?;
        let path = dir.path().to_path_buf();
        Self::open_inner(&path, options, Some(dir))
    }

    /// Opens the engine at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: EngineOptions) -> Result<Self, OpenError> {
        Self::open_inner(path.as_ref(), options, None)
    }

    fn open_inner(
        path: &Path,
        options: EngineOptions,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Self, OpenError> {
        let store_error = |source| OpenError::Store {
            path: path.to_path_buf(),
            source,
        };
        let store = open_store(path, &options).map_err(store_error)?;
        let memtable_bytes = options.memtable_bytes;
        let data = store
            .keyspace("data", || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes)
            })
            .map_err(store_error)?;
        let meta = store
            .keyspace("meta", || {
                KeyspaceCreateOptions::default().max_memtable_size(META_MEMTABLE_BYTES)
            })
            .map_err(store_error)?;
        let last_version = match meta.get(META_VERSION_KEY).map_err(store_error)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| OpenError::CorruptVersion(path.to_path_buf()))?,
            ),
            None => 0,
        };
        let clock = VersionClock::new(last_version, options.manual_clock);
        let shared = Arc::new(Shared {
            current: Mutex::new(Published {
                view: ReadView {
                    version: last_version,
                    snapshot: Arc::new(store.snapshot()),
                },
                in_flight: None,
                handed_out: last_version,
            }),
            watches: Mutex::new(WatchRegistry::default()),
            slots: WatchSlots::new(options.watch_limit),
            clock,
            faults: options.faults.clone().map(FaultInjector::new),
            data: data.clone(),
            poisoned: AtomicBool::new(false),
            recent: recent::RecentValues::default(),
            stats: StatCounters::default(),
            jitter: Mutex::new(rand::SeedableRng::seed_from_u64(
                options.faults.as_ref().map_or(0, |f| f.seed),
            )),
        });
        let committer = Committer::new(store, data, meta, shared.clone(), options.commit_interval);
        let path_to_committer = if options.inline_commits {
            CommitPath::Inline(committer)
        } else {
            let (requests, receiver) = mpsc::channel();
            let handle = std::thread::Builder::new()
                .name("sekai-committer".into())
                .spawn(move || committer.run(receiver))
                .map_err(OpenError::TempDir)?;
            CommitPath::Thread { requests, handle }
        };
        tracing::info!(path = %path.display(), last_version, "embedded engine open");
        Ok(Self {
            engine: Arc::new(Engine {
                shared,
                path_to_committer: Mutex::new(Some(path_to_committer)),
                path: path.to_path_buf(),
                _temp: temp,
            }),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.engine.path
    }

    /// The newest committed version.
    pub fn committed_version(&self) -> u64 {
        self.engine.shared.current().version
    }

    /// Faults injected so far (all zero without fault injection).
    pub fn fault_counts(&self) -> FaultCounts {
        self.engine
            .shared
            .faults
            .as_ref()
            .map(FaultInjector::counts)
            .unwrap_or_default()
    }

    /// Commit and fsync counts.
    pub fn stats(&self) -> EngineStats {
        let s = &self.engine.shared.stats;
        EngineStats {
            commits: s.commits.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
        }
    }
}

/// Opens fjall from a short-lived thread whose CPU priority is `options.background_nice`: the
/// background threads fjall starts while opening inherit it, and no other thread does (on Linux
/// a nice value belongs to one thread, and a thread may raise its own without privileges).
fn open_store(path: &Path, options: &EngineOptions) -> Result<Store, fjall::Error> {
    let open = || Store::builder(path).cache_size(options.cache_bytes).open();
    if options.background_nice == 0 {
        return open();
    }
    let open_lowered = || {
        lower_this_threads_priority(options.background_nice);
        open()
    };
    std::thread::scope(|scope| match scope.spawn(open_lowered).join() {
        Ok(opened) => opened,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Raises the calling thread's nice value to `nice` (best effort: a failure only logs).
fn lower_this_threads_priority(nice: i32) {
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `setpriority` reads its plain integer arguments only; `who` = 0 is the calling
        // thread on Linux.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if result != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot lower the store's background priority");
        }
    }
}

impl Database for EmbeddedDatabase {
    type Trx = EmbeddedTransaction;

    fn create_trx(&self) -> FdbResult<EmbeddedTransaction> {
        Ok(EmbeddedTransaction::new(self.engine.clone()))
    }
}
