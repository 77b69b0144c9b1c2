//! The Sekai edge node as a library: QUIC + Cap'n Proto RPC sessions over the layer.
//!
//! - [`token`]: HMAC-signed login tokens;
//! - [`session`]: the session logic as I/O-free state machines (input gate, subscriber, outbox);
//! - [`fanout`]: one watch per region head, change-log reads, hand-off to subscribers;
//! - [`server`]: the QUIC + Cap'n Proto RPC edge server, [`tls`] its certificates;
//! - [`observe`]: Prometheus metrics and the live map over HTTP.
//!
//! The `sekai` command (demo, serve, bots, benchmarks) is the `sekai-cli` crate.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod fanout;
pub mod observe;
pub mod server;
pub mod session;
pub mod tls;
pub mod token;
