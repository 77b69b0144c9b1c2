//! Cap'n Proto schemas and the tuple key layout of the Sekai world.
//!
//! - [`world_capnp`]: world data stored in the database and carried by the
//!   edge protocol (entity states, inputs, frame records, deltas), generated
//!   from `schema/capnp/world.capnp`.
//! - [`edge_capnp`]: the edge protocol's capability interfaces (`Gateway`,
//!   `Session`, `Avatar`, `DeltaSink`, `Subscription`), generated from
//!   `schema/capnp/edge.capnp`.
//! - [`keys`]: the tuple key layout of one world ([`WorldKeys`]), the one
//!   place where it is defined.
//! - [`geometry`]: regions, cells and areas of interest on the ground plane.
//! - [`ids`]: entity and player ids.
//!
//! The generated Rust is checked in under `src/generated/`, so building this
//! crate needs neither the `capnp` tool nor a build script. After changing a
//! `.capnp` file run `schema/regenerate.sh`; the test
//! `tests/generated_up_to_date.rs` fails when the checked-in code is stale
//! (and is skipped where `capnp`/`capnpc-rust` are not installed).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod geometry;
pub mod ids;
pub mod keys;

/// Generated from `capnp/world.capnp`: world data (do not edit; run `regenerate.sh`).
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    missing_docs,
    unused_qualifications,
    unused_parens,
    dead_code
)]
#[rustfmt::skip]
#[path = "generated/world_capnp.rs"]
pub mod world_capnp;

/// Generated from `capnp/edge.capnp`: the edge protocol (do not edit; run `regenerate.sh`).
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    missing_docs,
    unused_qualifications,
    unused_parens,
    dead_code
)]
#[rustfmt::skip]
#[path = "generated/edge_capnp.rs"]
pub mod edge_capnp;

pub use foundationdb_tuple::{Subspace, Versionstamp};
pub use geometry::{Area, CellId, RegionId, Vec3};
pub use ids::{EntityId, PlayerId};
pub use keys::{KeyError, KeyKind, KeyRange, WorldKey, WorldKeys};
