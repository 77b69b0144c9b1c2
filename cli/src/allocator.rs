//! The allocator's settings: mimalloc (the `sekai` binary's global allocator) keeps freed memory
//! for [`PURGE_DELAY_MS`] before it returns it to the OS.
//!
//! By default mimalloc (v3) returns freed memory after one second. The store frees a whole
//! memtable (64 MiB of skiplist nodes) at each flush and fills the next one over the following
//! seconds, so with the default the next memtable faults most pages back in, and with
//! transparent huge pages the kernel zeroes 2 MiB at each such fault: in a profile of
//! `sekai serve` at 400 bots the committer spent 2.4 % of the server's samples in those faults
//! (`clear_page_erms` under `do_huge_pmd_anonymous_page`). With a delay longer than a
//! memtable's life the freed pages are reused instead. Measured 2026-11-30 with one binary and
//! `MIMALLOC_PURGE_DELAY` set or not (`sekai serve --workers 0` on core 0, bots on core 1, 20 s,
//! interleaved pairs): at 400 bots the server's page faults fell from 5,250-5,900 to about 550
//! per run and its CPU by 4.5, 6.3 and 6.9 %; at 800 bots (the core saturated, inputs shed) it
//! applied more inputs in 4 of 6 pairs (one even) with a lower p99 in 5 of 6, at 10-30 % more
//! resident memory (327-348 MB against 252-330). Memory freed and not reused within the delay
//! still goes back to the OS. `MIMALLOC_PURGE_DELAY` in the environment still wins.
//!
//! Invariants: [`keep_freed_memory`] only changes a setting mimalloc reads whenever it purges,
//! so it may run at any time; the option's number is checked against mimalloc's default by a
//! test, so a mimalloc upgrade that renumbers its options fails the tests instead of changing
//! another setting.

use std::ffi::{c_int, c_long};

// The C library that `mimalloc` (the global allocator in `main.rs`) links.
extern crate mimalloc as _;

/// How long freed memory stays with the process before mimalloc returns it to the OS: longer
/// than a memtable's life at load (about 15 s at 400 bots), so a new memtable reuses the pages
/// of the one flushed before it.
pub const PURGE_DELAY_MS: c_long = 30_000;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49 builds v3).
const MI_OPTION_PURGE_DELAY: c_int = 15;

extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] (see the module docs), unless the
/// environment chose one (`MIMALLOC_PURGE_DELAY`, in milliseconds, which mimalloc reads itself).
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` (and the tests' `mi_option_get`) only write or read one entry of
    // mimalloc's option table, which exists for the whole process; the index is mimalloc's own
    // (checked by the test below).
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc's current purge delay, in milliseconds.
    fn purge_delay_ms() -> c_long {
        // SAFETY: see `keep_freed_memory`.
        unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[test]
    fn the_option_is_the_purge_delay_and_the_setting_takes() {
        // Under `MIMALLOC_PURGE_DELAY` the environment's value stands (and nothing is checked).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // mimalloc v3 defaults the purge delay to 1000 ms (`src/options.c`); the options next
            // to it default to 1 (`eager_commit_delay`) and 0 (`use_numa_nodes`).
            let default = purge_delay_ms();
            assert_eq!(
                default, 1000,
                "index {MI_OPTION_PURGE_DELAY} is not purge_delay"
            );
            keep_freed_memory();
            assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        }
    }
}
