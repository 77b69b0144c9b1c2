//! The input side of a session: sequence numbers and the rate limit, without I/O.
//!
//! The server calls [`InputGate::admit`] for every `Avatar.send`, runs T1 when told to
//! [`Admission::Store`], then reports [`InputGate::stored`] or [`InputGate::failed`]. Calls for
//! one session are serialized by the server (T1s of one player commit in seq order), so
//! the gate sees one input at a time.
//!
//! Invariants:
//! - `durable` is the highest seq known durable for the player: the applied seq read at login,
//!   then every seq this session stored;
//! - a seq at or below `durable` is acknowledged again and never stored twice by this session;
//! - within a session seqs are stored without gaps (`durable + 1`); only the first stored input of a
//!   session may skip ahead (inputs acknowledged by an earlier session may not be applied yet);
//! - every send, stored or not, takes a token from the bucket: a flood gets `RateLimited`;
//! - after a failed T1 the gate refuses everything (the client must reconnect and resend).

use std::time::Duration;

use super::rate::TokenBucket;

/// What the server should do with an admitted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Run T1, then call [`InputGate::stored`].
    Store,
    /// Already durable: acknowledge without storing.
    AlreadyDurable,
}

/// Why an input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Sequence numbers start at 1.
    #[error("seq 0 is not a valid input sequence number")]
    ZeroSeq,
    /// The seq skips ahead of the player's next one.
    #[error("input seq {got} is out of order: expected {expected}")]
    OutOfOrder {
        /// The seq that was sent.
        got: u64,
        /// The seq the session expects next.
        expected: u64,
    },
    /// Too many inputs per second.
    #[error("rate limited: at most {rate_per_sec} inputs per second")]
    RateLimited {
        /// The sustained rate allowed.
        rate_per_sec: u32,
    },
    /// An earlier input failed to store; reconnect and resend.
    #[error("session broken by an earlier storage failure; reconnect")]
    Broken,
}

/// Rate limit settings of one session.
#[derive(Clone, Copy, Debug)]
pub struct InputLimits {
    /// Sustained inputs per second.
    pub rate_per_sec: u32,
    /// Inputs allowed in a burst.
    pub burst: u32,
}

impl Default for InputLimits {
    fn default() -> Self {
        // Bots send 11 per second; VR clients send at most one per 90 Hz frame.
        Self {
            rate_per_sec: 100,
            burst: 200,
        }
    }
}

/// The input state machine of one session.
#[derive(Clone, Debug)]
pub struct InputGate {
    bucket: TokenBucket,
    limits: InputLimits,
    durable: u64,
    stored_any: bool,
    broken: bool,
}

impl InputGate {
    /// A gate for a player whose applied seq was `applied` at login, at virtual time `now`.
    pub fn new(applied: u64, limits: InputLimits, now: Duration) -> Self {
        Self {
            bucket: TokenBucket::new(f64::from(limits.rate_per_sec), limits.burst, now),
            limits,
            durable: applied,
            stored_any: false,
            broken: false,
        }
    }

    /// Decides what to do with input `seq` arriving at `now`.
    pub fn admit(&mut self, seq: u64, now: Duration) -> Result<Admission, InputError> {
        if self.broken {
            return Err(InputError::Broken);
        }
        if !self.bucket.try_take(now) {
            return Err(InputError::RateLimited {
                rate_per_sec: self.limits.rate_per_sec,
            });
        }
        if seq == 0 {
            return Err(InputError::ZeroSeq);
        }
        if seq <= self.durable {
            return Ok(Admission::AlreadyDurable);
        }
        let expected = self.durable + 1;
        if self.stored_any && seq != expected {
            return Err(InputError::OutOfOrder { got: seq, expected });
        }
        Ok(Admission::Store)
    }

    /// T1 for `seq` committed.
    pub fn stored(&mut self, seq: u64) {
        self.durable = self.durable.max(seq);
        self.stored_any = true;
    }

    /// T1 failed: the session refuses further inputs.
    pub fn failed(&mut self) {
        self.broken = true;
    }

    /// The highest seq known durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;

    fn gate(applied: u64) -> InputGate {
        InputGate::new(
            applied,
            InputLimits {
                rate_per_sec: 1_000,
                burst: 1_000,
            },
            T0,
        )
    }

    #[test]
    fn seqs_are_stored_in_order_and_resends_are_re_acknowledged() {
        let mut g = gate(0);
        assert_eq!(g.admit(0, T0), Err(InputError::ZeroSeq));
        assert_eq!(g.admit(1, T0), Ok(Admission::Store));
        g.stored(1);
        assert_eq!(g.admit(1, T0), Ok(Admission::AlreadyDurable));
        assert_eq!(
            g.admit(3, T0),
            Err(InputError::OutOfOrder {
                got: 3,
                expected: 2
            })
        );
        assert_eq!(g.admit(2, T0), Ok(Admission::Store));
        g.stored(2);
        assert_eq!(g.durable(), 2);
    }

    #[test]
    fn the_first_input_of_a_session_may_skip_ahead() {
        // Seqs 6..=8 were acknowledged by an earlier session but only 5 is applied yet.
        let mut g = gate(5);
        assert_eq!(g.admit(4, T0), Ok(Admission::AlreadyDurable));
        assert_eq!(g.admit(9, T0), Ok(Admission::Store));
        g.stored(9);
        assert_eq!(
            g.admit(11, T0),
            Err(InputError::OutOfOrder {
                got: 11,
                expected: 10
            })
        );
    }

    #[test]
    fn floods_are_rate_limited() {
        let limits = InputLimits {
            rate_per_sec: 10,
            burst: 5,
        };
        let mut g = InputGate::new(0, limits, T0);
        for seq in 1..=5 {
            assert_eq!(g.admit(seq, T0), Ok(Admission::Store));
            g.stored(seq);
        }
        assert_eq!(
            g.admit(6, T0),
            Err(InputError::RateLimited { rate_per_sec: 10 })
        );
        assert_eq!(g.admit(6, Duration::from_millis(100)), Ok(Admission::Store));
    }

    #[test]
    fn a_failed_store_breaks_the_session() {
        let mut g = gate(0);
        assert_eq!(g.admit(1, T0), Ok(Admission::Store));
        g.failed();
        assert_eq!(g.admit(1, T0), Err(InputError::Broken));
    }
}
