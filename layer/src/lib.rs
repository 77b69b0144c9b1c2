//! Sekai's FoundationDB layer.
//!
//! - [`kv`]: the transactional KV contract, FoundationDB's semantics as traits;
//! - [`embedded`]: the default backend, an embedded engine that reproduces those semantics;
//! - `fdb` (feature `fdb`): the FoundationDB backend.

pub mod embedded;
pub mod kv;
