//! In-flight work: each database operation of a processor or an edge is a future the scheduler
//! polls one step at a time (every KV call is a suspension point, see `sim_db`).
//!
//! Invariants: a task owns everything it touches (database handle, hot state, id generator) and
//! hands it back in its [`TaskOutput`], so dropping a task (a crash) loses exactly what a crashed
//! process would lose; a task never outlives its owner's incarnation (crashes drop the tasks).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sekai_edge::fanout::core::FanoutCore;
use sekai_edge::server::{ensure_avatar, LoginState};
use sekai_edge::session::AvatarLocation;
use sekai_layer::world::assign::{survey, View};
use sekai_layer::world::direct::{DirectInputs, DirectReceiver, Stored};
use sekai_layer::world::error::WorldError;
use sekai_layer::world::frame::HotRegion;
use sekai_layer::world::lease::{acquire, release, Lease};
use sekai_layer::world::local_log::LocalLog;
use sekai_layer::world::model::{Entity, Input};
use sekai_layer::world::nodes::{leave, Roles};
use sekai_layer::world::processor::{run_direct_frame, FrameOutcome, ProcessorStats};
use sekai_schema::{Area, EntityId, PlayerId, RegionId, Vec3, WorldKeys};

use crate::edge_ops::{catch_up, route_and_submit, snapshot_cached, CatchUp, EdgeCache};
use crate::engine::Db;

/// Who a task works for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Processor node `n`'s manager (survey, acquire, release, leave).
    Node(usize),
    /// The processor of `region` on node `node`.
    Proc {
        /// The node.
        node: usize,
        /// The region.
        region: RegionId,
    },
    /// Session `session` of edge `edge`.
    Session {
        /// The edge.
        edge: usize,
        /// The session.
        session: u64,
    },
}

/// What a finished task returns to its owner.
pub enum TaskOutput {
    /// A lease acquisition of a region.
    Acquired(RegionId, Result<Option<Lease>, WorldError>),
    /// A survey (`assign::survey`).
    Surveyed(Result<View, WorldError>),
    /// A lease release of a region.
    Released(RegionId, Result<bool, WorldError>),
    /// The node left the node list.
    Left(Result<(), WorldError>),
    /// A frame (committed, or idle with a watch), with the node's hot state, ids and direct
    /// inputs' receiver back.
    Frame {
        /// The hot tier.
        hot: Box<HotRegion>,
        /// The id generator.
        ids: Box<ChaCha8Rng>,
        /// The region's direct inputs.
        direct: Box<DirectReceiver>,
        /// What `run_frame` returned.
        result: FrameOutcome,
    },
    /// A T1.
    Stored {
        /// The input.
        input: Input,
        /// The region it was stored for, and how, once durable.
        result: Result<(RegionId, Stored), WorldError>,
    },
    /// A login: the player's durable record.
    LoggedIn(Result<LoginState, WorldError>),
    /// A snapshot of the session's area.
    Snapshot(Result<(Vec<Entity>, [u8; 10]), WorldError>),
    /// A catch-up read.
    CaughtUp(Result<CatchUp, WorldError>),
}

/// A task in flight.
pub struct Task {
    /// Its owner.
    pub owner: Owner,
    /// The work.
    pub future: Pin<Box<dyn Future<Output = TaskOutput>>>,
}

impl Task {
    fn new(owner: Owner, future: impl Future<Output = TaskOutput> + 'static) -> Self {
        Self {
            owner,
            future: Box::pin(future),
        }
    }

    /// Node `node` tries to take `region`'s lease as `holder`.
    pub fn acquire(db: Db, keys: WorldKeys, node: usize, region: RegionId, holder: u128) -> Self {
        Self::new(Owner::Node(node), async move {
            TaskOutput::Acquired(region, acquire(&db, &keys, region, holder).await)
        })
    }

    /// Node `node` surveys the nodes and leases as `holder` (a processor node).
    pub fn survey(
        db: Db,
        keys: WorldKeys,
        node: usize,
        regions: Vec<RegionId>,
        holder: u128,
    ) -> Self {
        Self::new(Owner::Node(node), async move {
            let roles = Roles {
                edge: false,
                processor: true,
            };
            TaskOutput::Surveyed(survey(&db, &keys, &regions, holder, roles).await)
        })
    }

    /// Node `node` hands `region` over.
    pub fn release(db: Db, keys: WorldKeys, node: usize, region: RegionId, lease: Lease) -> Self {
        Self::new(Owner::Node(node), async move {
            let released = release(&db, &keys, region, lease.holder, lease.epoch).await;
            TaskOutput::Released(region, released)
        })
    }

    /// Node `node` (as `holder`) leaves the node list.
    pub fn leave(db: Db, keys: WorldKeys, node: usize, holder: u128) -> Self {
        Self::new(Owner::Node(node), async move {
            TaskOutput::Left(leave(&db, &keys, holder).await)
        })
    }

    /// Node `node` runs one frame of `region` under `lease`, with the direct inputs waiting.
    pub fn frame(
        db: Db,
        keys: WorldKeys,
        (node, region): (usize, RegionId),
        lease: Lease,
        (mut hot, mut ids, mut direct): (HotRegion, ChaCha8Rng, DirectReceiver),
    ) -> Self {
        Self::new(Owner::Proc { node, region }, async move {
            let stats = ProcessorStats::default();
            let result = {
                let mut new_id = || EntityId::from_u128(ids.gen());
                run_direct_frame(
                    &db,
                    &keys,
                    &lease,
                    &mut hot,
                    &mut new_id,
                    &stats,
                    &mut direct,
                )
                .await
            };
            TaskOutput::Frame {
                hot: Box::new(hot),
                ids: Box::new(ids),
                direct: Box::new(direct),
                result,
            }
        })
    }

    /// Stores `input`, routed by the session's avatar location: directly when `direct` serves
    /// its region, else with T1.
    pub fn store(
        db: Db,
        keys: WorldKeys,
        owner: Owner,
        (location, direct): (Arc<AvatarLocation>, DirectInputs),
        input: Input,
    ) -> Self {
        Self::new(owner, async move {
            let result = route_and_submit(&db, &keys, &location, &direct, &input).await;
            TaskOutput::Stored { input, result }
        })
    }

    /// The shipped login of `player` (whose avatar exists): its avatar and durable record.
    pub fn login(
        db: Db,
        keys: WorldKeys,
        owner: Owner,
        player: PlayerId,
        avatar: EntityId,
    ) -> Self {
        Self::new(owner, async move {
            let result = ensure_avatar(&db, &keys, player, Vec3::new(0.0, 0.0, 0.0), avatar).await;
            TaskOutput::LoggedIn(result)
        })
    }

    /// A snapshot of `area`, through the edge's region cache.
    pub fn snapshot(db: Db, keys: WorldKeys, owner: Owner, area: Area, cache: EdgeCache) -> Self {
        Self::new(owner, async move {
            TaskOutput::Snapshot(snapshot_cached(&db, &keys, &area, &cache).await)
        })
    }

    /// A catch-up: one pass of the fan-out `core` over `regions`, taking the entries the edge's
    /// node recorded in `local` (with the ids in `visible_in`, if given).
    pub fn catch_up(
        db: Db,
        keys: WorldKeys,
        owner: Owner,
        core: FanoutCore,
        (regions, local): (Vec<RegionId>, LocalLog),
        max_per_pass: usize,
        visible_in: Option<Area>,
    ) -> Self {
        Self::new(owner, async move {
            let read = (regions.as_slice(), Some(&local));
            TaskOutput::CaughtUp(catch_up(&db, &keys, &core, read, max_per_pass, visible_in).await)
        })
    }
}
