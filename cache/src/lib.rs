//! Version-validated caches of hot world state (moka), never trusted without proof.
//!
//! The warm tier of DESIGN.md: edges serve area-of-interest snapshots from here. Invariants:
//! - every cached cell snapshot carries the region head (the counter bumped by every
//!   change-log append of that region) it was read at;
//! - a cached snapshot is used only when the head read *inside the caller's transaction*
//!   equals the cached one, so what the caller gets is exactly what the database holds at its
//!   read version; anything else is a miss and is re-read in that transaction;
//! - the cache is bounded (moka evicts by count), so memory never grows without bound.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
pub mod area;
pub mod entity;
pub mod region;

pub use area::{AreaCache, CacheStats};
pub use entity::{EntityCache, EntityCacheStats};
pub use region::{RegionCache, RegionCacheStats, RegionSnapshot};
