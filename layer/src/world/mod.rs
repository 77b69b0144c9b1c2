//! The world: the seed's ExtendedWorldState made durable, per region.
//!
//! - [`model`], [`codec`]: entities, inputs, deltas, frame records and their Cap'n Proto
//!   encoding (the `sekai-model` crate, re-exported);
//! - [`rules`]: the game rules as pure functions (state and inputs in, changes and outcomes out);
//! - [`inbox`]: T1, appending an input under a versionstamp without reads;
//! - [`direct`]: T1 fused into T2 when an edge shares a process with the region's processor;
//! - [`local_log`]: the change-log entries a process's processors committed, which its fan-out
//!   takes instead of reading them back;
//! - [`frame`]/[`processor`]: T2, one region frame in one transaction, and the task that runs it;
//! - [`lease`]: one live processor per region;
//! - [`nodes`]/[`assign`]: node heartbeats, and regions spread over the live processor nodes;
//! - [`players`]: the player → avatar record;
//! - [`store`]/[`write`]: entity writes that keep the indexes, change log and hot tiers consistent;
//! - [`query`]: typed reads (entities, areas, frames, change log after a cursor);
//! - [`generate`]: deterministic world generation and batched loading;
//! - [`trim`]: change-log trimming (and the floor a resuming cursor checks);
//! - [`audit`]: whole-world invariant checks.

pub use sekai_model::{codec, model};

pub mod assign;
pub mod audit;
pub mod direct;
pub mod error;
pub mod frame;
pub mod generate;
pub mod inbox;
pub mod lease;
pub mod local_log;
pub mod nodes;
pub mod players;
pub mod processor;
pub mod query;
pub mod rules;
pub mod store;
pub mod trim;
pub mod write;
