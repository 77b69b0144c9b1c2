//! The newest value of keys that are point-read and written often (a region's head, lease and
//! version, a player's applied seq), so such a read skips the LSM tree: its memtable's skip list
//! and its tables' filters, most of a point read's cost.
//!
//! Invariants:
//! - an entry `(version, value)` is its key's value as of commit version `version`, and no group
//!   committed after `version` wrote the key: the committer records every durable group here
//!   ([`RecentValues::record`]) before publishing it, and a group that writes a key held here
//!   replaces its entry;
//! - so a read at read version `rv` uses an entry only when `version <= rv`: the key's value at
//!   `rv` is then the entry's. An entry newer than the reader (a group published after the
//!   reader's snapshot was taken) sends the read to the reader's snapshot, as does a miss;
//! - a key enters only when a group writes it after a point read missed it (it is then
//!   `wanted`): keys only range-read (inbox entries, change-log entries, frame records) never
//!   take room;
//! - at most [`MAX_KEYS`] entries and [`MAX_WANTED`] wanted keys; past either it forgets them
//!   all. Forgetting costs a store read, never a wrong answer. The keys that enter are small
//!   records (counters, leases, seqs, entities read by id), so the bound is a few tens of MB at
//!   most.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// The most keys held.
pub const MAX_KEYS: usize = 1 << 16;

/// The most keys waiting for a write to enter.
pub const MAX_WANTED: usize = 1 << 16;

/// A key's value (`None`: absent) as of a commit version.
type Entry = (u64, Option<Vec<u8>>);

/// The newest values of keys lately point-read and written (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RecentValues {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Vec<u8>, Entry>,
    wanted: HashSet<Vec<u8>>,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The key's value at the reader's version (`None`: absent).
    Hit(Option<Vec<u8>>),
    /// Not known here at the reader's version: read the snapshot.
    Miss,
}

impl RecentValues {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `key`'s value as of `read_version`, if known; a miss marks the key wanted.
    pub fn get(&self, key: &[u8], read_version: u64) -> Lookup {
        let mut inner = self.inner();
        match inner.entries.get(key) {
            Some((version, value)) if *version <= read_version => Lookup::Hit(value.clone()),
            Some(_) => Lookup::Miss,
            None => {
                if inner.wanted.len() >= MAX_WANTED {
                    inner.wanted.clear();
                }
                inner.wanted.insert(key.to_vec());
                Lookup::Miss
            }
        }
    }

    /// Records the group committed at `version` with `changes` (every key it wrote, `None` for
    /// a clear); call after it is durable and before it is published.
    pub fn record(&self, version: u64, changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        let mut inner = self.inner();
        let inner = &mut *inner;
        for (key, value) in changes {
            if let Some(entry) = inner.entries.get_mut(key) {
                debug_assert!(entry.0 < version, "groups are recorded in version order");
                *entry = (version, value.clone());
            } else if inner.wanted.remove(key) {
                if inner.entries.len() >= MAX_KEYS {
                    inner.entries.clear();
                }
                inner.entries.insert(key.clone(), (version, value.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(pairs: &[(&[u8], Option<&[u8]>)]) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn a_key_enters_when_written_after_a_missed_read() {
        let recent = RecentValues::default();
        recent.record(5, &group(&[(b"a", Some(b"1"))]));
        assert_eq!(recent.get(b"a", 10), Lookup::Miss, "never read: not held");
        recent.record(11, &group(&[(b"a", Some(b"2"))]));
        assert_eq!(recent.get(b"a", 11), Lookup::Hit(Some(b"2".to_vec())));
    }

    #[test]
    fn an_entry_newer_than_the_reader_sends_it_to_its_snapshot() {
        let recent = RecentValues::default();
        assert_eq!(recent.get(b"k", 1), Lookup::Miss);
        recent.record(7, &group(&[(b"k", Some(b"v7"))]));
        assert_eq!(
            recent.get(b"k", 6),
            Lookup::Miss,
            "the reader's snapshot predates 7"
        );
        assert_eq!(recent.get(b"k", 7), Lookup::Hit(Some(b"v7".to_vec())));
        assert_eq!(recent.get(b"k", 9), Lookup::Hit(Some(b"v7".to_vec())));
        recent.record(10, &group(&[(b"k", None)]));
        assert_eq!(recent.get(b"k", 9), Lookup::Miss);
        assert_eq!(
            recent.get(b"k", 10),
            Lookup::Hit(None),
            "a clear is a known absence"
        );
    }

    #[test]
    fn a_group_that_does_not_write_a_key_leaves_its_entry() {
        let recent = RecentValues::default();
        assert_eq!(recent.get(b"k", 1), Lookup::Miss);
        recent.record(2, &group(&[(b"k", Some(b"x"))]));
        recent.record(3, &group(&[(b"other", Some(b"y"))]));
        assert_eq!(recent.get(b"k", 3), Lookup::Hit(Some(b"x".to_vec())));
    }
}
