//! Load shedding: when inputs queue, the edge refuses a share of the new ones (`overloaded`: not
//! stored, the seq free again, the client backs off), so the inputs it takes still arrive within
//! a frame or two instead of every input waiting behind all the others.
//!
//! Past its capacity a server cannot apply every input quickly: with each client keeping one
//! input in flight, the queue holds one input per client and every input waits for the whole
//! queue (Little's law: 1,600 bots at 7,000 inputs/s wait 230 ms). Refusing early keeps the
//! queue short for the inputs that are taken, and the clients that back off send fewer.
//!
//! Two signals say a queue stands, each taken at its minimum over an interval, because a
//! standing queue delays everything while a burst (a flush, a stall) leaves some inputs fast
//! (CoDel's rule), so a server within its capacity never sheds for a spike:
//! - the time from an input's admission (the gate said store) to the fan-out handing its outcome
//!   to a subscription of its player on this edge (see [`InputTiming`]), less the shortest such
//!   time ever seen (the work itself: two commits and a fan-out pass, slower on a real cluster
//!   than on the embedded engine): the database's queues;
//! - how long the deciding connection thread had run without a pause (see [`WorkerBusy`]): a
//!   thread that keeps up pauses between bursts, one that never pauses has datagrams waiting in
//!   its socket, a queue the first signal cannot see (it starts after admission). Under
//!   overload on one core this is where the queue forms.
//!
//! Invariants:
//! - every [`SHED_INTERVAL`], the share of inputs refused grows by [`SHARE_STEP_UP`] when the
//!   slower signal exceeded the target, holds when it exceeded half of it, and falls by
//!   [`SHARE_STEP_DOWN`] otherwise, or when the interval had fewer than [`MIN_SIGNALS`] samples
//!   and decisions (a few inputs are no overload, and one slow sample is no standing queue). Up
//!   fast, down slowly: the refused clients come back over their backoff, so a share dropped at
//!   once refills the queue at once;
//! - the share never exceeds [`MAX_SHED_PERCENT`], so some inputs always pass and samples keep
//!   coming;
//! - a share of `s` % refuses exactly `s` of every 100 inputs that would be stored (an
//!   accumulator, no randomness);
//! - only inputs that would be stored are ever refused (the gate asks only then): a resend of a
//!   durable seq is still acknowledged, so shedding never hides an acknowledged input.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most of the inputs to store that are ever refused, in percent: some always pass, so
/// samples keep coming.
pub const MAX_SHED_PERCENT: u32 = 95;

/// Admitted inputs of one session whose outcome the edge still waits to see (older ones are
/// forgotten: they give no sample).
pub const MAX_PENDING: usize = 256;

/// How often the share moves.
pub const SHED_INTERVAL: Duration = Duration::from_millis(100);

/// The fewest samples and decisions an interval needs to count as a standing queue.
pub const MIN_SIGNALS: u32 = 8;

/// How much the share grows after an interval with a standing queue, in percentage points.
pub const SHARE_STEP_UP: u32 = 5;

/// How much it falls after an interval without one, in percentage points.
pub const SHARE_STEP_DOWN: u32 = 1;

/// When to shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShedConfig {
    /// The queueing the edge tolerates before it sheds (`None`: never shed).
    pub target: Option<Duration>,
}

/// The default target: half a VR frame. The signal is a minimum over [`SHED_INTERVAL`], so when
/// it exceeds half a frame every input of the interval queued that long, and the slow ones
/// queued many frames. At 800 bots on one core (past capacity), four runs at 5 ms had p99s of
/// 38–89 ms (median 64) against 113 and 122 ms at 11 ms, with as many inputs applied; at
/// 400 bots (within capacity) 5 ms shed nothing in three runs of four and 0.08 % in one.
pub const DEFAULT_SHED_TARGET: Duration = Duration::from_millis(5);

impl Default for ShedConfig {
    fn default() -> Self {
        Self {
            target: Some(DEFAULT_SHED_TARGET),
        }
    }
}

/// The shedding decision, without I/O: samples and decisions carry a virtual time.
#[derive(Debug)]
pub struct ShedState {
    config: ShedConfig,
    /// Where the current interval began.
    interval_start: Duration,
    /// The shortest admission-to-outcome time ever seen (the work without queues).
    baseline: Option<Duration>,
    /// The fastest sample of the current interval.
    fastest: Option<Duration>,
    /// Samples and decisions in the current interval.
    signals: u32,
    /// The shortest busy streak of the deciding thread seen by a decision in the current
    /// interval (see [`WorkerBusy`]).
    shortest_busy: Option<Duration>,
    /// The share of inputs to store refused, in percent (`0..=MAX_SHED_PERCENT`).
    share: u32,
    /// Refusals owed, in hundredths of an input (one is refused when it reaches 100).
    credit: u32,
}

impl ShedState {
    /// Nothing shed yet, at virtual time `now`.
    pub fn new(config: ShedConfig, now: Duration) -> Self {
        Self {
            config,
            interval_start: now,
            baseline: None,
            fastest: None,
            signals: 0,
            shortest_busy: None,
            share: 0,
            credit: 0,
        }
    }

    /// The share of inputs to store refused now, in percent.
    pub fn share(&mut self, now: Duration) -> u32 {
        self.roll(now);
        self.share
    }

    /// Records one input's admission-to-outcome time, seen at `now`.
    pub fn observe(&mut self, latency: Duration, now: Duration) {
        self.roll(now);
        keep_min(&mut self.baseline, latency);
        keep_min(&mut self.fastest, latency);
        self.signals = self.signals.saturating_add(1);
    }

    /// Whether to refuse one input that would be stored, at `now`, decided on a thread that has
    /// been running without a pause for `busy` (its queue of work, see [`WorkerBusy`]).
    pub fn shed(&mut self, now: Duration, busy: Duration) -> bool {
        self.roll(now);
        keep_min(&mut self.shortest_busy, busy);
        self.signals = self.signals.saturating_add(1);
        if self.share == 0 {
            self.credit = 0;
            return false;
        }
        self.credit += self.share;
        if self.credit >= 100 {
            self.credit -= 100;
            true
        } else {
            false
        }
    }

    /// Closes every interval that ended by `now`, moving the share one step for each (see the
    /// module docs).
    fn roll(&mut self, now: Duration) {
        let Some(target) = self.config.target else {
            return;
        };
        while now >= self.interval_start + SHED_INTERVAL {
            let queued = self
                .fastest
                .zip(self.baseline)
                .map_or(Duration::ZERO, |(fastest, baseline)| fastest - baseline);
            let queue = (self.signals >= MIN_SIGNALS)
                .then(|| queued.max(self.shortest_busy.unwrap_or_default()));
            match queue {
                Some(queue) if queue > target => {
                    self.share = (self.share + SHARE_STEP_UP).min(MAX_SHED_PERCENT);
                }
                Some(queue) if queue > target / 2 => {}
                _ => self.share = self.share.saturating_sub(SHARE_STEP_DOWN),
            }
            self.fastest = None;
            self.shortest_busy = None;
            self.signals = 0;
            self.interval_start += SHED_INTERVAL;
            if self.share == 0 && now >= self.interval_start + SHED_INTERVAL {
                // Calm or idle for more than an interval: nothing left to decay.
                self.interval_start = now;
            }
        }
        debug_assert!(self.share <= MAX_SHED_PERCENT, "some inputs always pass");
    }
}

/// Lowers `slot` to `value` (sets it when empty).
fn keep_min(slot: &mut Option<Duration>, value: Duration) {
    *slot = Some(slot.map_or(value, |kept| kept.min(value)));
}

/// An edge's shedding decision, shared by its sessions (the gate asks) and its fan-out (which
/// sees outcomes), with a clock.
#[derive(Debug)]
pub struct Shedder {
    /// The decision (`None` without a target: nothing is measured or refused).
    state: Option<Mutex<ShedState>>,
    epoch: Instant,
}

impl Shedder {
    /// A shedder that refuses nothing yet.
    pub fn new(config: ShedConfig) -> Self {
        Self {
            state: config
                .target
                .map(|_| Mutex::new(ShedState::new(config, Duration::ZERO))),
            epoch: Instant::now(),
        }
    }

    /// The time since this shedder started (its virtual clock).
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Whether to refuse one input that would be stored (decided on a connection thread).
    pub fn shed(&self) -> bool {
        let now = self.now();
        self.lock()
            .is_some_and(|mut state| state.shed(now, WorkerBusy::streak()))
    }

    /// Records one input's admission-to-outcome time.
    pub fn observe(&self, latency: Duration) {
        let now = self.now();
        if let Some(mut state) = self.lock() {
            state.observe(latency, now);
        }
    }

    /// Whether it sheds at all (has a target).
    pub fn is_enabled(&self) -> bool {
        self.state.is_some()
    }

    fn lock(&self) -> Option<MutexGuard<'_, ShedState>> {
        self.state.as_ref().map(|state| {
            state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }
}

thread_local! {
    /// When this thread last woke from a pause (`None`: pausing, or not a tracked thread).
    static BUSY_SINCE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// How long a connection thread has run without a pause: its runtime's park hooks call
/// [`WorkerBusy::parked`] and [`WorkerBusy::unparked`]. A thread that keeps up pauses between
/// bursts; one that never pauses has a queue of datagrams waiting in its socket, which the
/// admission-to-outcome samples cannot see (they start after it), so its streak stands for
/// that queue.
pub struct WorkerBusy;

impl WorkerBusy {
    /// The calling thread pauses (nothing to do).
    pub fn parked() {
        BUSY_SINCE.with(|b| b.set(None));
    }

    /// The calling thread wakes up.
    pub fn unparked() {
        BUSY_SINCE.with(|b| b.set(Some(Instant::now())));
    }

    /// Has `builder`'s runtime report its thread's pauses here (for a runtime that serves
    /// connections).
    pub fn track(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
        builder
            .on_thread_park(Self::parked)
            .on_thread_unpark(Self::unparked)
    }

    /// How long the calling thread has run since it woke (zero on an untracked thread).
    pub fn streak() -> Duration {
        BUSY_SINCE.with(|b| b.get().map_or(Duration::ZERO, |since| since.elapsed()))
    }
}

/// When one session's admitted inputs were admitted, until their outcomes are seen: the
/// session records admissions, its subscriptions report outcomes, and each outcome seen first
/// gives the shedder a sample.
#[derive(Debug)]
pub struct InputTiming {
    shedder: std::sync::Arc<Shedder>,
    pending: Mutex<VecDeque<(u64, Duration)>>,
}

impl InputTiming {
    /// The timing of one session, reporting to `shedder`.
    pub fn new(shedder: std::sync::Arc<Shedder>) -> Self {
        Self {
            shedder,
            pending: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether to refuse one input that would be stored (see [`Shedder::shed`]).
    pub fn shed(&self) -> bool {
        self.shedder.shed()
    }

    /// Input `seq` was admitted to be stored.
    pub fn admitted(&self, seq: u64) {
        if !self.shedder.is_enabled() {
            return;
        }
        let now = self.shedder.now();
        let mut pending = self.lock();
        if pending.len() == MAX_PENDING {
            pending.pop_front();
        }
        pending.push_back((seq, now));
    }

    /// The outcome of input `seq` was handed to a subscription of the player: every pending
    /// input up to it is done, and `seq` itself gives a sample.
    pub fn applied(&self, seq: u64) {
        if !self.shedder.is_enabled() {
            return;
        }
        let now = self.shedder.now();
        let mut sample = None;
        {
            let mut pending = self.lock();
            while let Some(&(front, at)) = pending.front() {
                if front > seq {
                    break;
                }
                pending.pop_front();
                if front == seq {
                    sample = Some(now.saturating_sub(at));
                }
            }
        }
        if let Some(latency) = sample {
            self.shedder.observe(latency);
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(u64, Duration)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const CALM: Duration = Duration::ZERO;

    /// A state whose interval 0 saw one 1 ms outcome: the work itself takes 1 ms.
    fn state() -> ShedState {
        let mut s = ShedState::new(ShedConfig::default(), Duration::ZERO);
        s.observe(MS, Duration::ZERO);
        s
    }

    /// The start of interval `i`.
    fn at(i: u32) -> Duration {
        SHED_INTERVAL * i
    }

    /// How many of `n` decisions at `now` refuse.
    fn refused(s: &mut ShedState, n: usize, now: Duration) -> usize {
        (0..n).filter(|_| s.shed(now, CALM)).count()
    }

    /// Interval `i`, whose ten outcomes all take `latency`.
    fn interval(s: &mut ShedState, i: u32, latency: Duration) {
        for k in 0..10u32 {
            s.observe(latency, at(i) + MS * (k * 10));
        }
    }

    #[test]
    fn a_calm_edge_sheds_nothing() {
        let mut s = state();
        for i in 0..500u32 {
            let now = MS * i;
            s.observe(MS * 5, now);
            assert!(!s.shed(now, MS / 10));
        }
        assert_eq!(s.share(MS * 500), 0);
    }

    #[test]
    fn a_standing_queue_raises_the_share_step_by_step_up_to_its_cap() {
        let mut s = state();
        for i in 1..=4 {
            interval(&mut s, i, MS * 30);
        }
        assert_eq!(s.share(at(5)), 4 * SHARE_STEP_UP);
        assert_eq!(refused(&mut s, 100, at(5)), 20);
        for i in 5..100 {
            interval(&mut s, i, MS * 500);
        }
        assert_eq!(s.share(at(100)), MAX_SHED_PERCENT);
        assert_eq!(refused(&mut s, 100, at(100)), 95, "some inputs always pass");
    }

    #[test]
    fn only_the_time_above_the_fastest_ever_counts() {
        // A slow store: every outcome takes 40 ms, but none waits behind another.
        let mut s = ShedState::new(ShedConfig::default(), Duration::ZERO);
        for i in 0..20 {
            interval(&mut s, i, MS * 40);
        }
        assert_eq!(s.share(at(20)), 0);
    }

    #[test]
    fn a_connection_thread_that_never_pauses_is_a_queue() {
        let mut s = state();
        for i in 1..=3 {
            // Outcomes are fast, but every decision came deep into a busy streak.
            interval(&mut s, i, MS * 2);
            s.shed(at(i) + MS * 50, MS * 80);
        }
        assert_eq!(s.share(at(4)), 3 * SHARE_STEP_UP);
    }

    #[test]
    fn a_spike_that_leaves_some_inputs_fast_is_not_shed() {
        let mut s = state();
        for i in 1..20 {
            interval(&mut s, i, MS * 200);
            s.observe(MS * 3, at(i) + MS * 95);
            s.shed(at(i) + MS * 40, MS * 300);
            s.shed(at(i) + MS * 60, MS / 10);
        }
        assert_eq!(s.share(at(20)), 0);
    }

    #[test]
    fn a_few_slow_inputs_are_no_overload() {
        let mut s = state();
        for i in 1..20 {
            s.observe(MS * 200, at(i));
            s.shed(at(i) + MS, MS * 300);
        }
        assert_eq!(s.share(at(20)), 0);
    }

    #[test]
    fn the_share_holds_near_the_target_and_falls_slowly_after() {
        let mut s = state();
        for i in 1..=10 {
            interval(&mut s, i, MS * 100);
        }
        let high = s.share(at(11));
        // Between half the target and the target above the fastest (1 ms): held.
        let target = DEFAULT_SHED_TARGET;
        for i in 11..=20 {
            interval(&mut s, i, MS + target * 3 / 4);
        }
        assert_eq!(s.share(at(21)), high);
        // Calm: one small step down per interval, then none at all.
        interval(&mut s, 21, MS + target / 4);
        assert_eq!(s.share(at(22)), high - SHARE_STEP_DOWN);
        assert_eq!(s.share(at(200)), 0, "an idle edge sheds nothing");
        assert!(!s.shed(at(200), CALM));
    }

    #[test]
    fn without_a_target_nothing_is_shed() {
        let mut s = ShedState::new(ShedConfig { target: None }, Duration::ZERO);
        s.observe(MS, Duration::ZERO);
        for i in 1..30 {
            interval(&mut s, i, MS * 500);
        }
        assert_eq!(refused(&mut s, 100, at(30)), 0);
    }

    #[test]
    fn an_outcome_gives_one_sample_and_clears_older_pending_inputs() {
        let shedder = std::sync::Arc::new(Shedder::new(ShedConfig::default()));
        let timing = InputTiming::new(shedder);
        timing.admitted(1);
        timing.admitted(2);
        timing.admitted(3);
        timing.applied(2);
        assert_eq!(timing.lock().iter().map(|p| p.0).collect::<Vec<_>>(), [3]);
        // Seen again through a second subscription: nothing left to sample.
        timing.applied(2);
        assert_eq!(timing.lock().len(), 1);
        for seq in 4..(4 + MAX_PENDING as u64) {
            timing.admitted(seq);
        }
        assert_eq!(timing.lock().len(), MAX_PENDING, "bounded");
    }

    #[test]
    fn a_tracked_thread_measures_its_busy_streak() {
        assert_eq!(WorkerBusy::streak(), Duration::ZERO, "untracked");
        WorkerBusy::unparked();
        std::thread::sleep(MS * 2);
        assert!(WorkerBusy::streak() >= MS * 2);
        WorkerBusy::parked();
        assert_eq!(WorkerBusy::streak(), Duration::ZERO);
    }
}
