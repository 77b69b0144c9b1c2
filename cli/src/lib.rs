//! The `sekai` command's library: everything the command runs that is not the server itself.
//!
//! - [`commands`]: `sekai serve`, `sekai bots`, `sekai inspect`;
//! - [`world_setup`]: a generated world with processors and spawn points;
//! - [`bots`]: simulated VR clients that measure input-to-delta latency;
//! - [`demo`]: `sekai demo`, server and bots in one process;
//! - [`bench_edge`]: `sekai bench edge|reconnect|soak` and the raw QUIC baseline;
//! - [`kv_bench`], [`world_bench`]: `sekai bench kv` and `sekai bench world`, on the layer alone;
//! - [`chaos`]: `sekai chaos`, SIGKILLs of a serving child process under load, then a check
//!   that every acknowledged input was applied exactly once, in order;
//! - [`stall`]: clients that stop reading, and `sekai bench stall`;
//! - [`fuzz_edge`]: `sekai bench fuzz-edge`, malformed RPC and QUIC abuse against a live edge
//!   while bots play;
//! - [`flags`]: value parsers shared by the flags (time flags refuse negative, infinite and
//!   huge values instead of panicking);
//! - [`plot`]: latency CDFs and timelines as SVG; [`proc_stats`]: CPU and memory from `/proc`;
//! - [`thread_policy`]: `serve`'s threads as `SCHED_BATCH` (the store's background `SCHED_IDLE`);
//! - [`allocator`]: mimalloc keeps freed memory long enough for the next memtable to reuse it.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod allocator;
pub mod bench_edge;
pub mod bots;
pub mod chaos;
pub mod commands;
pub mod demo;
pub mod flags;
pub mod fuzz_edge;
pub mod kv_bench;
pub mod plot;
pub mod proc_stats;
pub mod stall;
pub mod thread_policy;
pub mod world_bench;
pub mod world_setup;
