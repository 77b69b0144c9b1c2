//! The Sekai world's values, shared by the server, the client SDK and the simulator.
//!
//! - [`model`]: entities, inputs, actions, deltas, frame records;
//! - [`codec`]: their Cap'n Proto encoding (`schema/capnp/world.capnp`), as stored in the
//!   database and carried inside the edge protocol;
//! - [`protocol`]: the constants both ends of the edge protocol agree on;
//! - [`wire`]: those values to and from the edge protocol's RPC structs (`edge.capnp`);
//! - [`stream`]: the messages of a streamed subscription's QUIC stream;
//! - [`input_stream`]: the messages of an input stream (inputs in, answers out).
//!
//! This crate depends on the schemas and `capnp` only: no storage engine, no async runtime, so a
//! game client can use it without the server stack.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod codec;
pub mod input_stream;
pub mod model;
pub mod protocol;
pub mod stream;
pub mod wire;

pub use model::{
    Action, Change, Delta, Entity, EntityKind, FrameRecord, Input, Inventory, ItemKind, Outcome,
};
