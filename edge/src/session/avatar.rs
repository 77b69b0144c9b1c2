//! Where a session's avatar is, shared between the fan-out (which sees its changes) and the
//! session's `Avatar.send` (which sends T1 to that region's inbox).
//!
//! Invariants: the region is the region of the newest upsert of the avatar seen in any of the
//! session's subscriptions (or the one read at login); `stale` is set when the rules rejected one
//! of the player's inputs with "no avatar in region", and cleared when the server re-reads the
//! avatar or sees a fresh upsert.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sekai_layer::world::model::Entity;
use sekai_layer::world::rules::Rejection;
use sekai_schema::{EntityId, RegionId};

/// The last known region of one avatar.
#[derive(Debug)]
pub struct AvatarLocation {
    id: EntityId,
    region: AtomicU64,
    stale: AtomicBool,
}

impl AvatarLocation {
    /// The avatar `id`, last known in `region`.
    pub fn new(id: EntityId, region: RegionId) -> Self {
        Self {
            id,
            region: AtomicU64::new(pack(region)),
            stale: AtomicBool::new(false),
        }
    }

    /// The avatar's entity id.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// The avatar's last known region.
    pub fn region(&self) -> RegionId {
        unpack(self.region.load(Ordering::Acquire))
    }

    /// True when the last known region was proven wrong.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Records the avatar's current region (from the database or a delta).
    pub fn set_region(&self, region: RegionId) {
        self.region.store(pack(region), Ordering::Release);
        self.stale.store(false, Ordering::Release);
    }

    /// Notes an upsert seen in a delta.
    pub fn observe_upsert(&self, entity: &Entity) {
        if entity.id == self.id {
            self.set_region(entity.region());
        }
    }

    /// Notes the rules' reason for rejecting one of the player's inputs.
    pub fn observe_rejection(&self, reason: &str) {
        if reason == Rejection::NoAvatar.to_string() {
            self.stale.store(true, Ordering::Release);
        }
    }
}

fn pack(region: RegionId) -> u64 {
    (u64::from(region.x as u32) << 32) | u64::from(region.z as u32)
}

fn unpack(v: u64) -> RegionId {
    RegionId::new((v >> 32) as u32 as i32, v as u32 as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_round_trip_through_the_atomic() {
        for region in [
            RegionId::new(0, 0),
            RegionId::new(-1, 5),
            RegionId::new(i32::MIN, i32::MAX),
        ] {
            assert_eq!(unpack(pack(region)), region);
        }
        let loc = AvatarLocation::new(EntityId(1), RegionId::new(0, 0));
        loc.observe_rejection("no avatar in region");
        assert!(loc.is_stale());
        loc.set_region(RegionId::new(-3, 2));
        assert!(!loc.is_stale());
        assert_eq!(loc.region(), RegionId::new(-3, 2));
    }
}
