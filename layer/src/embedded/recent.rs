//! The newest values of keys that are point-read often (a region's head, lease and version, a
//! player's applied seq), so such a read skips the LSM tree: its memtable's skip list and its
//! tables' filters, most of a point read's cost.
//!
//! Invariants:
//! - an entry holds a key's value as of commit version `version` and, when the key was written
//!   since, its value as of the later version `newer_version`; no group committed after the
//!   newest of the two wrote the key: the committer records every durable group here
//!   ([`RecentValues::record`]) before publishing it, and a group that writes a key held here
//!   shifts its entry (the current value becomes the older one);
//! - so a read at read version `rv` uses the newest of the two values whose version is `<= rv`:
//!   the key's value at `rv` is then that one, because no group between the two versions wrote the
//!   key. A reader older than both versions (a snapshot taken before the key's last two writes)
//!   reads its snapshot, as does a miss. Keeping the older value serves readers one write behind
//!   (the fan-out reads heads at snapshots a group or two old);
//! - a key missed by a point read becomes `wanted` with the newest recorded group's version
//!   (`since`); a group that writes a wanted key makes it enter, and a reader whose read version
//!   is at least `since` that read the key's value from its snapshot makes it enter with that
//!   value ([`RecentValues::fill`]): no group after `since` wrote the key (it would have entered),
//!   and every group up to the read version is in the reader's snapshot, so the value is the
//!   key's as of that read version and still is. Keys only range-read (inbox entries, change-log
//!   entries, frame records) never take room;
//! - at most [`MAX_KEYS`] entries and [`MAX_WANTED`] wanted keys; past either it forgets them
//!   all. Forgetting costs a store read, never a wrong answer. The keys that enter are small
//!   records (counters, leases, seqs, entities read by id), so the bound is a few tens of MB at
//!   most.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashMap;

/// The most keys held.
pub const MAX_KEYS: usize = 1 << 16;

/// The most keys waiting for a write to enter.
pub const MAX_WANTED: usize = 1 << 16;

/// A key's value (`None`: absent).
type Value = Option<Vec<u8>>;

/// A key's value as of `version`, and its value as of `newer.0` when written since.
#[derive(Debug)]
struct Entry {
    version: u64,
    value: Value,
    newer: Option<(u64, Value)>,
}

impl Entry {
    /// The value at `read_version`, if this entry knows it.
    fn at(&self, read_version: u64) -> Option<&Value> {
        match &self.newer {
            Some((version, value)) if *version <= read_version => Some(value),
            _ if self.version <= read_version => Some(&self.value),
            _ => None,
        }
    }

    /// The key written at `version`: the newest value becomes the older one.
    fn written(&mut self, version: u64, value: Value) {
        if let Some((newer_version, newer_value)) = self.newer.take() {
            debug_assert!(
                newer_version < version,
                "groups are recorded in version order"
            );
            self.version = newer_version;
            self.value = newer_value;
        }
        debug_assert!(
            self.version < version,
            "groups are recorded in version order"
        );
        self.newer = Some((version, value));
    }
}

/// The newest values of keys lately point-read (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RecentValues {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Hashed with FxHash: every point read of a hot key looks here (SipHash was most of the
    /// lookup's cost); the keys are the layer's own, not chosen by clients.
    entries: FxHashMap<Vec<u8>, Entry>,
    /// Keys missed, each with the newest recorded group's version when first missed.
    wanted: FxHashMap<Vec<u8>, u64>,
    /// The newest group recorded.
    newest: u64,
}

impl Inner {
    fn enter(&mut self, key: Vec<u8>, version: u64, value: Value) {
        if self.entries.len() >= MAX_KEYS {
            self.entries.clear();
        }
        let entry = Entry {
            version,
            value,
            newer: None,
        };
        self.entries.insert(key, entry);
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The key's value at the reader's version (`None`: absent).
    Hit(Value),
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
        if let Some(entry) = inner.entries.get(key) {
            return entry
                .at(read_version)
                .cloned()
                .map_or(Lookup::Miss, Lookup::Hit);
        }
        if !inner.wanted.contains_key(key) {
            if inner.wanted.len() >= MAX_WANTED {
                inner.wanted.clear();
            }
            let since = inner.newest;
            inner.wanted.insert(key.to_vec(), since);
        }
        Lookup::Miss
    }

    /// A reader at `read_version` missed `key` and read `value` from its snapshot: the key
    /// enters if it is still wanted since no later than `read_version` (see the module docs).
    pub fn fill(&self, key: &[u8], read_version: u64, value: &Value) {
        let mut inner = self.inner();
        if inner
            .wanted
            .get(key)
            .is_some_and(|since| *since <= read_version)
        {
            inner.wanted.remove(key);
            inner.enter(key.to_vec(), read_version, value.clone());
        }
    }

    /// Records the group committed at `version` with `changes` (every key it wrote, `None` for
    /// a clear); call after it is durable and before it is published.
    pub fn record(&self, version: u64, changes: &BTreeMap<Vec<u8>, Value>) {
        let mut inner = self.inner();
        debug_assert!(
            inner.newest < version,
            "groups are recorded in version order"
        );
        inner.newest = version;
        for (key, value) in changes {
            if let Some(entry) = inner.entries.get_mut(key) {
                entry.written(version, value.clone());
            } else if inner.wanted.remove(key).is_some() {
                inner.enter(key.clone(), version, value.clone());
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
        assert_eq!(
            recent.get(b"k", 9),
            Lookup::Hit(Some(b"v7".to_vec())),
            "one write behind: the older value"
        );
        assert_eq!(
            recent.get(b"k", 10),
            Lookup::Hit(None),
            "a clear is a known absence"
        );
        recent.record(12, &group(&[(b"k", Some(b"v12"))]));
        assert_eq!(recent.get(b"k", 9), Lookup::Miss, "older than both values");
        assert_eq!(recent.get(b"k", 11), Lookup::Hit(None));
        assert_eq!(recent.get(b"k", 12), Lookup::Hit(Some(b"v12".to_vec())));
    }

    #[test]
    fn a_key_never_written_enters_from_a_reader_no_older_than_its_miss() {
        let recent = RecentValues::default();
        recent.record(5, &group(&[(b"other", Some(b"1"))]));
        assert_eq!(recent.get(b"k", 3), Lookup::Miss, "wanted since 5");
        recent.fill(b"k", 3, &Some(b"old".to_vec()));
        assert_eq!(
            recent.get(b"k", 6),
            Lookup::Miss,
            "a reader older than the miss cannot tell what groups 4 and 5 wrote"
        );
        recent.fill(b"k", 6, &Some(b"v".to_vec()));
        assert_eq!(recent.get(b"k", 6), Lookup::Hit(Some(b"v".to_vec())));
        assert_eq!(recent.get(b"k", 5), Lookup::Miss, "older than the entry");
    }

    #[test]
    fn a_write_between_the_miss_and_the_fill_wins() {
        let recent = RecentValues::default();
        assert_eq!(recent.get(b"k", 4), Lookup::Miss);
        recent.record(6, &group(&[(b"k", Some(b"new"))]));
        recent.fill(b"k", 4, &Some(b"old".to_vec()));
        assert_eq!(recent.get(b"k", 5), Lookup::Miss);
        assert_eq!(recent.get(b"k", 6), Lookup::Hit(Some(b"new".to_vec())));
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
