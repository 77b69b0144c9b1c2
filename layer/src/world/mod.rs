//! The world: the seed's ExtendedWorldState made durable, per region.
//!
//! - [`model`]: entities, inputs, deltas, frame records;
//! - `codec`: their Cap'n Proto encoding in the database;
//! - `rules`: the game rules as pure functions (state and inputs in, changes and outcomes out);
//! - `inbox`: T1, appending an input under a versionstamp without reads;
//! - `frame`/`processor`: T2, one region frame in one transaction, and the task that runs it;
//! - `lease`: one live processor per region.

pub mod codec;
pub mod error;
pub mod frame;
pub mod generate;
pub mod inbox;
pub mod lease;
pub mod model;
pub mod processor;
pub mod query;
pub mod rules;
pub mod store;
