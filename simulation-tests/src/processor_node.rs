//! A simulated region processor node: the life cycle around the layer's `lease::acquire` and
//! `processor::run_frame`, stepped by the scheduler instead of a free-running task.
//!
//! Mirrors `sekai_layer::world::processor::run_processor`: a standby node tries the lease every
//! `IDLE_RENEW`; a holder runs frames while inputs remain, sleeps on the inbox watch otherwise,
//! and renews its lease with an idle frame every `IDLE_RENEW`. Invariants:
//! - a crash drops the hot state, the watch and any frame in flight; the node comes back as a
//!   new incarnation (a new holder id), so it must wait for the old lease to expire;
//! - a stalled node keeps its lease and hot state but is not stepped; when it resumes, its next
//!   frame must fail (`LeaseLost` or a conflict) if another node took over meanwhile.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::world::frame::HotRegion;
use sekai_layer::world::lease::Lease;
use sekai_layer::world::processor::IDLE_RENEW;
use sekai_schema::RegionId;

use crate::edge_ops::Watch;

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Crashed; restarts at `until` (µs).
    Down {
        /// Restart time.
        until: u64,
    },
    /// Waiting to take the lease; next try at `next_try` (µs).
    Standby {
        /// Next acquisition attempt.
        next_try: u64,
    },
    /// Holds `lease`.
    Active {
        /// The lease held.
        lease: Lease,
        /// When to run an idle frame to renew the lease (µs).
        renew_at: u64,
        /// True when a frame should run now (more inputs, or the watch fired).
        wake: bool,
    },
}

/// One processor node of one region.
pub struct ProcessorNode {
    /// Its region.
    pub region: RegionId,
    /// Bumped on every restart.
    pub incarnation: u64,
    /// The lease holder id of this incarnation.
    pub holder: u128,
    /// Its role.
    pub role: Role,
    /// The hot tier (`None` while a frame task owns it, or after a crash).
    pub hot: Option<HotRegion>,
    /// The id generator for built entities (`None` while a frame task owns it).
    pub ids: Option<ChaCha8Rng>,
    /// The inbox watch of the last idle frame.
    pub watch: Option<Watch>,
    /// True while a task of this node runs.
    pub busy: bool,
    /// Not stepped before this time (µs), when stalled.
    pub stalled_until: u64,
}

/// The idle renewal period in µs.
pub fn idle_renew_us() -> u64 {
    IDLE_RENEW.as_micros() as u64
}

impl ProcessorNode {
    /// A fresh standby node of `region` whose ids come from `rng`.
    pub fn new(region: RegionId, rng: &mut impl Rng, now: u64) -> Self {
        let mut node = Self {
            region,
            incarnation: 0,
            holder: 0,
            role: Role::Standby { next_try: now },
            hot: None,
            ids: None,
            watch: None,
            busy: false,
            stalled_until: 0,
        };
        node.restart(rng, now);
        node
    }

    /// Comes back as a new incarnation, in standby.
    pub fn restart(&mut self, rng: &mut impl Rng, now: u64) {
        self.incarnation += 1;
        self.holder = rng.gen::<u128>() | 1;
        self.role = Role::Standby { next_try: now };
        self.hot = Some(HotRegion::new(self.region));
        self.ids = Some(ChaCha8Rng::seed_from_u64(rng.gen()));
        self.watch = None;
        self.busy = false;
        self.stalled_until = 0;
    }

    /// Crashes: everything in memory is gone until `until`.
    pub fn crash(&mut self, until: u64) {
        self.role = Role::Down { until };
        self.hot = None;
        self.ids = None;
        self.watch = None;
        self.busy = false;
    }

    /// True when the node is stalled at `now`.
    pub fn stalled(&self, now: u64) -> bool {
        now < self.stalled_until
    }

    /// Loses the lease (it was taken over); back to standby.
    pub fn lose_lease(&mut self, now: u64) {
        self.role = Role::Standby {
            next_try: now + idle_renew_us(),
        };
        self.hot = Some(HotRegion::new(self.region));
        self.watch = None;
    }
}
