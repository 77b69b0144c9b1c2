//! The input side of a session: sequence numbers and the rate limit, without I/O.
//!
//! The server calls [`InputGate::admit_unless_shed`] for every `Avatar.send` and input-stream
//! message (load shedding may refuse an input that would be stored), stores it (T1, or directly
//! by the frame of a processor in the same process) when told to [`Admission::Store`], then
//! reports [`InputGate::stored`] or [`InputGate::failed`]. Several admitted inputs of one
//! session may be in flight at once (an edge stores many inputs per commit); they are stored in
//! admission order, all or none per batch.
//!
//! The seq rule (docs/PROTOCOL.md, `specs/`: every acknowledged input is applied):
//! - `durable` starts at the player's `durable/(player)` record read at login (the highest seq
//!   in any inbox or applied; `Session.info.lastSeq`) and advances with every seq stored;
//! - the only seq stored is `admitted + 1` (the next after the last admitted), so a player's seqs
//!   are durable without gaps and every seq at or below `durable` is durable;
//! - a seq at or below `durable` is acknowledged again and never stored twice, unless the gate
//!   knows that seq's digest and the resend's differs: a different input reusing a durable seq
//!   is refused ([`InputError::Conflict`]), never acknowledged and dropped;
//! - a seq admitted but not yet durable is refused while in flight ([`InputError::InFlight`]);
//! - every send, stored or not, takes a token from the bucket: a flood gets `RateLimited`;
//! - an input that would be stored may be shed ([`InputError::Overloaded`]): it is not admitted,
//!   so its seq stays the next one expected;
//! - after a failed T1, or an input stream that broke with inputs maybe unanswered, the gate
//!   refuses everything (the client must reconnect and resend).

use std::collections::VecDeque;
use std::time::Duration;

use sekai_layer::world::inbox::DurableSeq;

use super::rate::TokenBucket;

/// How many recent (seq, digest) pairs a gate remembers to tell resends from conflicts.
pub const DIGEST_WINDOW: usize = 1024;

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
    /// The seq is not the player's next one.
    #[error("input seq {got} is out of order: expected {expected}")]
    OutOfOrder {
        /// The seq that was sent.
        got: u64,
        /// The seq the session expects next.
        expected: u64,
    },
    /// A durable seq resent with a different action.
    #[error("input seq {seq} is already durable with a different action; send {next} next")]
    Conflict {
        /// The seq that was sent.
        seq: u64,
        /// The seq the session expects next.
        next: u64,
    },
    /// The seq is being stored; its acknowledgement is on its way.
    #[error("input seq {seq} is being stored; wait for its acknowledgement")]
    InFlight {
        /// The seq that was sent.
        seq: u64,
    },
    /// Too many inputs per second.
    #[error("rate limited: at most {rate_per_sec} inputs per second")]
    RateLimited {
        /// The sustained rate allowed.
        rate_per_sec: u32,
    },
    /// An earlier input failed to store, or an input stream of the session broke; reconnect and
    /// resend.
    #[error("session broken by an earlier storage failure or a broken input stream; reconnect")]
    Broken,
    /// The edge is shedding load (see `session::shedding`): not stored, the seq is free again.
    #[error(
        "{}: the edge is refusing some inputs to keep latency low; send this seq again later",
        sekai_model::input_stream::OVERLOADED
    )]
    Overloaded,
}

impl InputError {
    /// A short fixed name of the refusal (a metric label).
    pub fn label(&self) -> &'static str {
        match self {
            InputError::ZeroSeq => "zero_seq",
            InputError::OutOfOrder { .. } => "out_of_order",
            InputError::Conflict { .. } => "conflict",
            InputError::InFlight { .. } => "in_flight",
            InputError::RateLimited { .. } => "rate_limited",
            InputError::Broken => "broken",
            InputError::Overloaded => "overloaded",
        }
    }
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
    admitted: u64,
    /// Digests of the newest admitted seqs (and the login record), oldest first.
    digests: VecDeque<(u64, u64)>,
    broken: bool,
}

impl InputGate {
    /// A gate for a player whose durable record was `durable` at login, at virtual time `now`.
    pub fn new(durable: DurableSeq, limits: InputLimits, now: Duration) -> Self {
        let mut digests = VecDeque::new();
        if durable.seq > 0 && durable.digest != 0 {
            digests.push_back((durable.seq, durable.digest));
        }
        Self {
            bucket: TokenBucket::new(f64::from(limits.rate_per_sec), limits.burst, now),
            limits,
            durable: durable.seq,
            admitted: durable.seq,
            digests,
            broken: false,
        }
    }

    /// Decides what to do with input `seq`, whose action has digest `digest`, arriving at
    /// `now`.
    pub fn admit(&mut self, seq: u64, digest: u64, now: Duration) -> Result<Admission, InputError> {
        self.admit_unless_shed(seq, digest, now, || false)
    }

    /// As [`InputGate::admit`], but an input that would be stored is first offered to `shed`:
    /// when it says so, the input is refused ([`InputError::Overloaded`]) and its seq stays free.
    /// Nothing else consults it, so a resend of a durable seq is acknowledged however loaded the
    /// edge is.
    pub fn admit_unless_shed(
        &mut self,
        seq: u64,
        digest: u64,
        now: Duration,
        shed: impl FnOnce() -> bool,
    ) -> Result<Admission, InputError> {
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
        let next = self.admitted + 1;
        if seq <= self.durable {
            return match self.digests.iter().find(|(s, _)| *s == seq) {
                Some((_, known)) if *known != digest => Err(InputError::Conflict { seq, next }),
                _ => Ok(Admission::AlreadyDurable),
            };
        }
        if seq <= self.admitted {
            return Err(InputError::InFlight { seq });
        }
        if seq != next {
            return Err(InputError::OutOfOrder {
                got: seq,
                expected: next,
            });
        }
        if shed() {
            return Err(InputError::Overloaded);
        }
        self.admitted = seq;
        debug_assert!(
            self.durable < self.admitted,
            "admitted runs ahead of durable"
        );
        if self.digests.len() == DIGEST_WINDOW {
            self.digests.pop_front();
        }
        self.digests.push_back((seq, digest));
        Ok(Admission::Store)
    }

    /// Every admitted seq up to `seq` is durable (its T1, or the frame that stored it, committed).
    pub fn stored(&mut self, seq: u64) {
        debug_assert!(seq <= self.admitted, "stored a seq that was never admitted");
        self.durable = self.durable.max(seq);
        debug_assert!(
            self.durable <= self.admitted,
            "only admitted seqs become durable"
        );
    }

    /// Storing failed: the session refuses further inputs.
    pub fn failed(&mut self) {
        self.broken = true;
    }

    /// Whether the gate refuses everything (after [`InputGate::failed`]).
    pub fn is_broken(&self) -> bool {
        self.broken
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
    const D: u64 = 7;

    fn gate(durable: u64) -> InputGate {
        InputGate::new(
            DurableSeq {
                seq: durable,
                digest: D,
            },
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
        assert_eq!(g.admit(0, D, T0), Err(InputError::ZeroSeq));
        assert_eq!(g.admit(1, D, T0), Ok(Admission::Store));
        assert_eq!(g.admit(1, D, T0), Err(InputError::InFlight { seq: 1 }));
        g.stored(1);
        assert_eq!(g.admit(1, D, T0), Ok(Admission::AlreadyDurable));
        assert_eq!(
            g.admit(3, D, T0),
            Err(InputError::OutOfOrder {
                got: 3,
                expected: 2
            })
        );
        assert_eq!(g.admit(2, D, T0), Ok(Admission::Store));
        assert_eq!(g.admit(3, D, T0), Ok(Admission::Store));
        g.stored(3);
        assert_eq!(g.durable(), 3);
    }

    #[test]
    fn no_session_may_open_a_gap() {
        // Seqs up to 5 are durable (some maybe not applied yet): the next is 6, never more.
        let mut g = gate(5);
        assert_eq!(g.admit(4, D, T0), Ok(Admission::AlreadyDurable));
        assert_eq!(
            g.admit(9, D, T0),
            Err(InputError::OutOfOrder {
                got: 9,
                expected: 6
            })
        );
        assert_eq!(g.admit(6, D, T0), Ok(Admission::Store));
    }

    #[test]
    fn a_durable_seq_reused_for_another_action_is_refused() {
        let mut g = gate(5);
        assert_eq!(
            g.admit(5, D + 1, T0),
            Err(InputError::Conflict { seq: 5, next: 6 })
        );
        assert_eq!(g.admit(5, D, T0), Ok(Admission::AlreadyDurable));
        assert_eq!(g.admit(6, 42, T0), Ok(Admission::Store));
        g.stored(6);
        assert_eq!(
            g.admit(6, 43, T0),
            Err(InputError::Conflict { seq: 6, next: 7 })
        );
    }

    #[test]
    fn floods_are_rate_limited() {
        let limits = InputLimits {
            rate_per_sec: 10,
            burst: 5,
        };
        let mut g = InputGate::new(DurableSeq::default(), limits, T0);
        for seq in 1..=5 {
            assert_eq!(g.admit(seq, D, T0), Ok(Admission::Store));
            g.stored(seq);
        }
        assert_eq!(
            g.admit(6, D, T0),
            Err(InputError::RateLimited { rate_per_sec: 10 })
        );
        assert_eq!(
            g.admit(6, D, Duration::from_millis(100)),
            Ok(Admission::Store)
        );
    }

    #[test]
    fn a_shed_input_is_not_admitted_and_its_seq_stays_free() {
        let mut g = gate(5);
        let asked = std::cell::Cell::new(0);
        let shed = || {
            asked.set(asked.get() + 1);
            true
        };
        assert_eq!(
            g.admit_unless_shed(6, D, T0, shed),
            Err(InputError::Overloaded)
        );
        assert!(InputError::Overloaded.to_string().starts_with("overloaded"));
        // Only an input to store is offered to the shedder: a durable resend is acknowledged.
        assert_eq!(
            g.admit_unless_shed(5, D, T0, shed),
            Ok(Admission::AlreadyDurable)
        );
        assert_eq!(asked.get(), 1);
        assert_eq!(
            g.admit_unless_shed(6, D, T0, || false),
            Ok(Admission::Store)
        );
    }

    #[test]
    fn a_failed_store_breaks_the_session() {
        let mut g = gate(0);
        assert_eq!(g.admit(1, D, T0), Ok(Admission::Store));
        g.failed();
        assert_eq!(g.admit(1, D, T0), Err(InputError::Broken));
    }
}
