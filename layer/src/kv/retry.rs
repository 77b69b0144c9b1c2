//! The retry loop: `run` re-executes a transaction closure until it commits.
//!
//! Invariants:
//! - only retryable FDB errors are retried, through `Transaction::on_error`, so backoff and
//!   reset follow FDB;
//! - after a `commit_unknown_result` every later attempt is told `MaybeCommitted(true)`, so the
//!   closure can detect its own earlier commit and stay idempotent.

use std::future::Future;
use std::time::Duration;

use super::error::{FdbError, RetryableError};
use super::options::MaybeCommitted;
use super::traits::{Database, Transaction};

/// First delay of FDB's backoff.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(10);
/// Cap of FDB's backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// FDB's backoff schedule: 10 ms, doubling, capped at 1 s; like FDB's client, each delay is
/// scaled by a random factor in `[0, 1)` so that conflicting retries spread out.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: INITIAL_BACKOFF,
        }
    }
}

impl Backoff {
    /// The delay for this attempt before jitter; doubles the next one, up to the cap.
    pub fn advance(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        now
    }

    /// The delay for this attempt scaled by `jitter` (in `[0, 1)`), as FDB's `getBackoff` does.
    pub fn advance_jittered(&mut self, jitter: f64) -> Duration {
        self.advance().mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Runs `body` in a transaction until it commits, like `foundationdb::Database::run`.
///
/// `body` gets a handle to the transaction and whether an earlier attempt may have committed.
pub async fn run<D, T, E, F, Fut>(db: &D, mut body: F) -> Result<T, E>
where
    D: Database,
    E: RetryableError,
    F: FnMut(D::Trx, MaybeCommitted) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let trx = db.create_trx()?;
    let mut maybe_committed = false;
    loop {
        let error: FdbError = match body(trx.clone(), MaybeCommitted(maybe_committed)).await {
            Ok(value) => match trx.commit().await {
                Ok(()) => return Ok(value),
                Err(error) => error,
            },
            Err(error) => match error.as_fdb() {
                Some(fdb) if fdb.is_retryable() => fdb,
                _ => return Err(error),
            },
        };
        maybe_committed |= error.is_maybe_committed();
        trx.on_error(error).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut backoff = Backoff::default();
        let delays: Vec<u128> = (0..9).map(|_| backoff.advance().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }
}
