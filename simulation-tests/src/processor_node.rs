//! A simulated processor node: the life cycle around the layer's `assign` (survey, plan),
//! `lease::acquire`/`release`, `nodes::leave` and `processor::run_frame`, stepped by the
//! scheduler instead of free-running tasks.
//!
//! Mirrors `sekai_layer::world::assign::run_node`: every `ASSIGN_EVERY` the node surveys and
//! computes the shipped `assign::plan`, then works through it one layer call at a time (releases
//! first, each after its region's processor stopped, then acquisitions). Each held region runs
//! like `processor::hold_region`: after each frame it waits on the watch that frame armed (ready
//! at once when it left inputs behind), and runs an idle frame every `IDLE_RENEW`. Invariants:
//! - a crash drops every region's hot state, watch and frame in flight and the plan in progress;
//!   the node comes back as a new incarnation (a new holder id), so it must wait for its old
//!   leases to expire like any other node;
//! - a graceful leave stops taking work, releases every region after its frame in flight ends,
//!   then clears its announcement, and only then goes down;
//! - a stalled node keeps its leases and hot state but is not stepped; when it resumes, its next
//!   frame must fail (`LeaseLost` or a conflict) if another node took over meanwhile.

use std::collections::{BTreeMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::world::assign::ASSIGN_EVERY;
use sekai_layer::world::direct::{DirectInputs, DirectReceiver};
use sekai_layer::world::frame::HotRegion;
use sekai_layer::world::lease::Lease;
use sekai_layer::world::processor::IDLE_RENEW;
use sekai_schema::RegionId;

use crate::edge_ops::Watch;

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Crashed or left; comes back (a new incarnation) at `until` (µs).
    Down {
        /// Rejoin time.
        until: u64,
    },
    /// Running.
    Up,
}

/// One step of a node's plan in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Stop the region's processor (after its frame in flight) and release its lease.
    Release(RegionId),
    /// Try to take the region's lease.
    Acquire(RegionId),
    /// Clear the node's announcement and go down (the end of a graceful leave).
    Leave,
}

/// One region a node processes.
pub struct RegionProc {
    /// The lease held.
    pub lease: Lease,
    /// When to run an idle frame to renew the lease (µs).
    pub renew_at: u64,
    /// True when a frame should run now (more inputs, or the watch fired).
    pub wake: bool,
    /// The hot tier (`None` while a frame task owns it).
    pub hot: Option<HotRegion>,
    /// The id generator for built entities (`None` while a frame task owns it).
    pub ids: Option<ChaCha8Rng>,
    /// The inbox watch of the last idle frame.
    pub watch: Option<Watch>,
    /// True while a frame task of this region runs.
    pub busy: bool,
    /// True once the plan stops it: no new frame starts.
    pub stopping: bool,
    /// Its end of the direct inputs of the edge beside the node (`None` while a frame task owns
    /// it); dropped with the region (a crash, a release), which sends their senders to T1.
    pub direct: Option<DirectReceiver>,
}

/// One processor node.
pub struct ProcessorNode {
    /// Bumped on every restart.
    pub incarnation: u64,
    /// The lease holder id of this incarnation.
    pub holder: u128,
    /// Up or down.
    pub life: Life,
    /// The regions it processes.
    pub regions: BTreeMap<RegionId, RegionProc>,
    /// The plan in progress.
    pub pending: VecDeque<Step>,
    /// When the next survey is due (µs).
    pub next_survey: u64,
    /// True while a survey, acquisition, release or leave task of the node runs.
    pub busy: bool,
    /// True once a graceful leave began.
    pub leaving: bool,
    /// Not stepped before this time (µs), when stalled.
    pub stalled_until: u64,
    /// Seeds of the id generators of the regions it takes.
    seeds: ChaCha8Rng,
    /// Where the edge beside this node (in the same process) hands inputs to its processors.
    pub direct: DirectInputs,
}

/// The idle renewal period in µs.
pub fn idle_renew_us() -> u64 {
    IDLE_RENEW.as_micros() as u64
}

/// The survey period in µs.
pub fn assign_every_us() -> u64 {
    ASSIGN_EVERY.as_micros() as u64
}

impl RegionProc {
    /// A region just taken under `lease`, with ids from `seed`, taking direct inputs from
    /// `direct`.
    fn new(region: RegionId, lease: Lease, seed: u64, now: u64, direct: DirectReceiver) -> Self {
        Self {
            lease,
            renew_at: now + idle_renew_us(),
            wake: true,
            hot: Some(HotRegion::new(region)),
            ids: Some(ChaCha8Rng::seed_from_u64(seed)),
            watch: None,
            busy: false,
            stopping: false,
            direct: Some(direct),
        }
    }

    /// True when a frame should start: woken, direct inputs wait, or the renewal is due.
    pub fn due(&self, now: u64) -> bool {
        let direct = self
            .direct
            .as_ref()
            .is_some_and(DirectReceiver::has_waiting);
        !self.busy && !self.stopping && (self.wake || direct || now >= self.renew_at)
    }
}

impl ProcessorNode {
    /// A fresh node, up at `now` or (with `join_at`) down until then; ids from `rng`.
    pub fn new(rng: &mut impl Rng, now: u64, join_at: Option<u64>) -> Self {
        let mut node = Self {
            incarnation: 0,
            holder: 0,
            life: Life::Up,
            regions: BTreeMap::new(),
            pending: VecDeque::new(),
            next_survey: now,
            busy: false,
            leaving: false,
            stalled_until: 0,
            seeds: ChaCha8Rng::seed_from_u64(0),
            direct: DirectInputs::default(),
        };
        node.restart(rng, now);
        if let Some(until) = join_at {
            node.life = Life::Down { until };
        }
        node
    }

    /// Comes back as a new incarnation with nothing held.
    pub fn restart(&mut self, rng: &mut impl Rng, now: u64) {
        self.incarnation += 1;
        self.holder = rng.gen::<u128>() | 1;
        self.life = Life::Up;
        self.regions.clear();
        self.pending.clear();
        self.next_survey = now;
        self.busy = false;
        self.leaving = false;
        self.stalled_until = 0;
        self.seeds = ChaCha8Rng::seed_from_u64(rng.gen());
    }

    /// Crashes (or finishes leaving): everything in memory is gone until `until`.
    pub fn down(&mut self, until: u64) {
        self.life = Life::Down { until };
        self.regions.clear();
        self.pending.clear();
        self.busy = false;
        self.leaving = false;
    }

    /// True when up.
    pub fn is_up(&self) -> bool {
        self.life == Life::Up
    }

    /// True when the node is stalled at `now`.
    pub fn stalled(&self, now: u64) -> bool {
        now < self.stalled_until
    }

    /// Starts processing `region` under `lease`.
    pub fn take(&mut self, region: RegionId, lease: Lease, now: u64) {
        let seed = self.seeds.gen();
        let direct = self.direct.register(region);
        self.regions
            .insert(region, RegionProc::new(region, lease, seed, now, direct));
    }

    /// Begins a graceful leave: stop every region, release them all, then leave.
    pub fn begin_leave(&mut self) {
        self.leaving = true;
        self.pending.clear();
        for (region, proc_) in &mut self.regions {
            proc_.stopping = true;
            self.pending.push_back(Step::Release(*region));
        }
        self.pending.push_back(Step::Leave);
    }

    /// True when the node's manager has something to start at `now`.
    pub fn manager_due(&self, now: u64) -> bool {
        if !self.is_up() || self.busy || self.stalled(now) {
            return false;
        }
        match self.pending.front() {
            Some(Step::Release(region)) => self.regions.get(region).is_none_or(|p| !p.busy),
            Some(_) => true,
            None => !self.leaving && now >= self.next_survey,
        }
    }
}
