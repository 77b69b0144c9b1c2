//! A token bucket on a virtual clock: the per-session input rate limit.
//!
//! Invariants: the bucket never holds more than `burst` tokens nor fewer than zero; time is
//! whatever the caller passes in (a `Duration` since any fixed origin), so tests and the simulator
//! drive it without sleeping; a clock that goes backwards adds nothing.

use std::time::Duration;

/// A token bucket refilling at `rate` tokens per second up to `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(rate_per_sec: f64, burst: u32, now: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_sec.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token at time `now`; false (and nothing taken) when the bucket is empty.
    pub fn try_take(&mut self, now: Duration) -> bool {
        if now > self.last {
            let elapsed = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_rate() {
        let mut bucket = TokenBucket::new(10.0, 3, ms(0));
        assert!((0..3).all(|_| bucket.try_take(ms(0))));
        assert!(!bucket.try_take(ms(0)));
        assert!(!bucket.try_take(ms(50)));
        assert!(bucket.try_take(ms(100)));
        assert!(!bucket.try_take(ms(100)));
        // A long pause refills only up to the burst.
        assert!((0..3).all(|_| bucket.try_take(ms(10_000))));
        assert!(!bucket.try_take(ms(10_000)));
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let mut bucket = TokenBucket::new(10.0, 1, ms(1_000));
        assert!(bucket.try_take(ms(1_000)));
        assert!(!bucket.try_take(ms(0)));
        assert!(!bucket.try_take(ms(1_050)));
        assert!(bucket.try_take(ms(1_100)));
    }
}
