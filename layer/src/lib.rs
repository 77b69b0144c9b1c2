//! Sekai's FoundationDB layer.
//!
//! - [`kv`]: the transactional KV contract, FoundationDB's semantics as traits;
//! - [`embedded`]: the default backend, an embedded engine that reproduces those semantics;
//! - `fdb_backend` (feature `fdb`): the FoundationDB backend;
//! - [`world`]: the world model, rules, T1 and T2;
//! - [`telemetry`]: the `sekai_*` metrics the layer records at the source (`metrics` facade);

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
pub mod embedded;
#[cfg(any(feature = "fdb", feature = "fdb-7_4"))]
pub mod fdb_backend;
pub mod kv;

pub mod telemetry;
pub mod world;
