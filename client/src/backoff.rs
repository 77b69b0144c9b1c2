//! When to try reconnecting again: exponential backoff with jitter, as a state machine without
//! I/O or clocks (the driver passes the elapsed time and a random number).
//!
//! Invariants: waits never exceed `max_delay × 1.25`; a refusal (not a lost connection) and a
//! retry past `give_up_after` both end the retries.

use std::time::Duration;

/// The mean wait before sending again after an input was refused by an overloaded edge
/// (`overloaded`, docs/PROTOCOL.md §5 "Load shedding").
pub const OVERLOAD_BACKOFF: Duration = Duration::from_millis(500);

/// The wait after an `overloaded` refusal, for a random `unit` in `[0, 1)`: from half to one and a
/// half times [`OVERLOAD_BACKOFF`], so the refused clients do not come back together.
pub fn overload_wait(unit: f64) -> Duration {
    OVERLOAD_BACKOFF.mul_f64(0.5 + unit.clamp(0.0, 1.0))
}

/// How a client retries: exponential backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub struct ReconnectPolicy {
    /// The first wait after a failed attempt.
    pub first_delay: Duration,
    /// The longest wait between attempts (before jitter).
    pub max_delay: Duration,
    /// How long one attempt (connect, login, resubscribe, resend) may take.
    pub attempt_timeout: Duration,
    /// Give up after trying for this long.
    pub give_up_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(3),
            give_up_after: Duration::from_secs(120),
        }
    }
}

/// The retry state of one reconnection.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: ReconnectPolicy,
    delay: Duration,
    failures: u32,
}

impl Backoff {
    /// A reconnection that has not failed yet.
    pub fn new(policy: ReconnectPolicy) -> Self {
        Self {
            delay: policy.first_delay,
            policy,
            failures: 0,
        }
    }

    /// Failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.failures
    }

    /// An attempt failed, `elapsed` after the reconnection began: the wait before the next one,
    /// or `None` to give up (the failure was a refusal, or it has been too long). `random` in
    /// `[0, 1)` picks the jitter (±25 %).
    pub fn after_failure(
        &mut self,
        connection_lost: bool,
        elapsed: Duration,
        random: f64,
    ) -> Option<Duration> {
        self.failures += 1;
        if !connection_lost || elapsed >= self.policy.give_up_after {
            return None;
        }
        let wait = self.delay.mul_f64(random.clamp(0.0, 1.0) * 0.5 + 0.75);
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        debug_assert!(wait <= self.policy.max_delay.mul_f64(1.25) + self.policy.first_delay);
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_refusals_stop() {
        let policy = ReconnectPolicy::default();
        let mut backoff = Backoff::new(policy);
        let waits: Vec<Duration> = (0..8)
            .filter_map(|_| backoff.after_failure(true, Duration::ZERO, 0.5))
            .collect();
        assert_eq!(waits[0], Duration::from_millis(50));
        assert_eq!(waits[1], Duration::from_millis(100));
        assert_eq!(*waits.last().expect("waits"), policy.max_delay);
        assert_eq!(backoff.after_failure(false, Duration::ZERO, 0.5), None);
        assert_eq!(backoff.after_failure(true, policy.give_up_after, 0.5), None);
        assert_eq!(backoff.attempts(), 10);
    }
}
