//! Deterministic simulation of the Sekai world with fault injection (DESIGN.md, "Truth and
//! checks").
//!
//! One run ([`sim::run_seed`]) builds a small world of four regions meeting at a corner, loads it
//! into the embedded engine (fault injection on, inline commits, manual clock, data under
//! `/dev/shm`), and lets bots, edges and region processors work through the real layer (T1, T2,
//! leases, the change log) and the edge's real I/O-free session core (`sekai_edge::session`:
//! subscriber, outbox, input gate) while a seeded scheduler interleaves their transactions and
//! injects faults. Frames and acknowledgements are checked online as they happen, and once quiet
//! the world is checked whole, both by the layer's one checker (`sekai_layer::world::audit`). The
//! same seed always yields the same trace hash.
//!
//! - [`sim_db`]: the KV wrapper that turns every database call into a scheduling point;
//! - [`world_setup`], [`bot`], [`client`], [`edge`], [`edge_ops`], [`processor_node`],
//!   [`tasks`]: the simulated actors;
//! - [`sim`]: the scheduler, the faults and the quiet phase;
//! - [`runner`]: many seeds on all cores, and the report;
//! - `fdb_workload` (feature `fdb-sim`): the same workload inside FoundationDB's simulator.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
pub mod bot;
pub mod client;
pub mod config;
pub mod edge;
pub mod edge_ops;
pub mod engine;
pub mod faults;
#[cfg(feature = "fdb-sim")]
pub mod fdb_workload;
pub mod processor_node;
pub mod runner;
pub mod sim;
pub mod sim_db;
pub mod tasks;
pub mod trace;
pub mod world_setup;
