//! The Sekai edge node and the `sekai` command's library.
//!
//! - [`token`]: HMAC-signed login tokens;
//! - [`session`]: the session logic as I/O-free state machines;
//! - [`wire`]: world values to and from the edge protocol's Cap'n Proto;
//! - [`fanout`]: one watch per region head, change-log reads, hand-off to subscribers;
//! - [`server`]: the QUIC + Cap'n Proto RPC edge server, [`tls`] its certificates;
//! - [`client`]: the client SDK;
//! - [`bots`]: simulated VR clients that measure input-to-delta latency;
//! - [`world_setup`]: a generated world with processors and spawn points;
//! - [`commands`]: `sekai serve`, `sekai bots`, `sekai inspect`;
//! - [`observe`]: Prometheus metrics and the live map over HTTP; [`plot`]: latency CDFs as SVG;
//! - [`demo`]: `sekai demo`, everything above in one process;
//! - [`chaos`]: `sekai chaos`, SIGKILLs of a serving child process under load, then a check
//!   that every acknowledged input was applied exactly once, in order;
//! - [`stall`]: clients that stop reading, and `sekai bench stall`;
//! - [`fuzz_edge`]: `sekai bench fuzz-edge`, malformed RPC and QUIC abuse against a live edge
//!   while bots play.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod bench_edge;
pub mod bots;
pub mod chaos;
pub mod client;
pub mod commands;
pub mod demo;
pub mod fanout;
pub mod fuzz_edge;
pub mod observe;
pub mod plot;
pub mod proc_stats;
pub mod server;
pub mod session;
pub mod stall;
pub mod tls;
pub mod token;
pub mod wire;
pub mod world_setup;
