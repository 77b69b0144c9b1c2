//! Watches: one registry per database, fired by the committer after each durable group.
//!
//! Invariants:
//! - a watch is registered only after its transaction committed, with the value that
//!   transaction saw (including its own writes);
//! - registration compares against the latest published value under the registry lock, and the
//!   committer publishes a group before it fires under the same lock, so no change is missed
//!   between the two (a change and a change back inside one group may be missed, as in FDB);
//! - at most `limit` watches are outstanding: a slot is held by each live watch future.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::kv::{codes, FdbError, FdbResult};

/// FDB's default limit of outstanding watches per database.
pub const DEFAULT_WATCH_LIMIT: usize = 10_000;

/// What a watch future waits on: `Ok(delay)` fires after `delay`, `Err` fails the watch.
pub type WatchSignal = oneshot::Sender<FdbResult<Duration>>;

/// A watch waiting for its key to change.
#[derive(Debug)]
struct Waiting {
    seen: Option<Vec<u8>>,
    signal: WatchSignal,
}

/// Registered watches, by key.
#[derive(Debug, Default)]
pub struct WatchRegistry {
    by_key: BTreeMap<Vec<u8>, Vec<Waiting>>,
}

impl WatchRegistry {
    /// Registers a watch on `key`; fires it at once when `current` already differs from `seen`.
    pub fn register(
        &mut self,
        key: Vec<u8>,
        seen: Option<Vec<u8>>,
        current: Option<&[u8]>,
        signal: WatchSignal,
        delay: Duration,
    ) {
        if seen.as_deref() != current {
            let _ = signal.send(Ok(delay));
            return;
        }
        let waiting = self.by_key.entry(key).or_default();
        waiting.retain(|w| !w.signal.is_closed());
        waiting.push(Waiting { seen, signal });
    }

    /// Fires the watches on `key` whose seen value differs from `value`.
    pub fn changed(&mut self, key: &[u8], value: Option<&[u8]>, delay: impl Fn() -> Duration) {
        let Some(waiting) = self.by_key.get_mut(key) else {
            return;
        };
        let (fire, keep): (Vec<_>, Vec<_>) = std::mem::take(waiting)
            .into_iter()
            .partition(|w| w.seen.as_deref() != value);
        *waiting = keep;
        if waiting.is_empty() {
            self.by_key.remove(key);
        }
        for w in fire {
            let _ = w.signal.send(Ok(delay()));
        }
    }

    /// True when any watch waits on `key`.
    pub fn is_watched(&self, key: &[u8]) -> bool {
        self.by_key.contains_key(key)
    }
}

/// Counts live watch futures against the limit.
#[derive(Debug)]
pub struct WatchSlots {
    live: AtomicUsize,
    limit: usize,
}

impl WatchSlots {
    /// Slots for at most `limit` outstanding watches.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            live: AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes a slot, or fails with `too_many_watches`.
    pub fn acquire(self: &Arc<Self>) -> FdbResult<WatchSlot> {
        let taken = self
            .live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limit).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(WatchSlot(self.clone())),
            Err(_) => Err(FdbError::from_code(codes::TOO_MANY_WATCHES)),
        }
    }
}

/// One held watch slot, released on drop.
#[derive(Debug)]
pub struct WatchSlot(Arc<WatchSlots>);

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}
