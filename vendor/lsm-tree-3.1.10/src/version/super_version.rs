// Copyright (c) 2024-present, fjall-rs
// This source code is licensed under both the Apache 2.0 and MIT License
// (found in the LICENSE-* files in the repository)

use crate::{
    memtable::Memtable,
    tree::sealed::SealedMemtables,
    version::{persist_version, Version},
    SeqNo, SequenceNumberCounter,
};
use std::{
    collections::VecDeque,
    path::Path,
    sync::{Arc, RwLock, RwLockWriteGuard},
};

/// A super version is a point-in-time snapshot of memtables and a [`Version`] (list of disk files)
#[derive(Clone)]
pub struct SuperVersion {
    /// Active memtable that is being written to
    #[doc(hidden)]
    pub active_memtable: Arc<Memtable>,

    /// Frozen memtables that are being flushed
    pub(crate) sealed_memtables: Arc<SealedMemtables>,

    /// Current tree version
    pub(crate) version: Version,

    pub(crate) seqno: SeqNo,
}

pub struct SuperVersions(VecDeque<SuperVersion>);

impl SuperVersions {
    pub fn new(version: Version) -> Self {
        Self(
            vec![SuperVersion {
                active_memtable: Arc::new(Memtable::new(0)),
                sealed_memtables: Arc::default(),
                version,
                seqno: 0,
            }]
            .into(),
        )
    }

    pub fn memtable_size_sum(&self) -> u64 {
        let mut set = crate::HashMap::default();

        for super_version in &self.0 {
            set.entry(super_version.active_memtable.id)
                .and_modify(|bytes| *bytes += super_version.active_memtable.size())
                .or_insert_with(|| super_version.active_memtable.size());

            for sealed in super_version.sealed_memtables.iter() {
                set.entry(sealed.id)
                    .and_modify(|bytes| *bytes += sealed.size())
                    .or_insert_with(|| sealed.size());
            }
        }

        set.into_values().sum()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn free_list_len(&self) -> usize {
        self.len().saturating_sub(1)
    }

    pub fn maintenance(&mut self, folder: &Path, gc_watermark: SeqNo) -> crate::Result<()> {
        if gc_watermark == 0 {
            return Ok(());
        }

        if self.free_list_len() < 1 {
            return Ok(());
        }

        log::trace!("Running manifest GC with watermark={gc_watermark}");

        // SEKAI PATCH: the removed versions are dropped on another thread. This runs under the
        // tree's version-history write lock, which every read and write of the tree takes, and
        // the last version holding a flushed memtable frees all of it (a 64 MiB memtable took
        // ~120 ms of CPU): every read and commit stalled that long. See vendor/README.md.
        let mut removed = Vec::new();
        if let Some(hi_idx) = self.0.iter().rposition(|x| x.seqno < gc_watermark) {
            for _ in 0..hi_idx {
                let Some(head) = self.0.front() else {
                    break;
                };

                log::trace!(
                    "Removing version #{} (seqno={})",
                    head.version.id(),
                    head.seqno,
                );

                let path = folder.join(format!("v{}", head.version.id()));
                if path.try_exists()? {
                    crate::file::retry_transient_io(|| std::fs::remove_file(&path))?;
                }

                removed.extend(self.0.pop_front());
            }
        }
        drop_elsewhere(removed);

        log::trace!("Manifest GC done, version length now {}", self.0.len());

        Ok(())
    }

    /// Modifies the level manifest atomically.
    ///
    /// The function accepts a transition function that receives the current version
    /// and returns a new version.
    ///
    /// The function takes care of persisting the version changes on disk.
    pub(crate) fn upgrade_version<F: FnOnce(&SuperVersion) -> crate::Result<SuperVersion>>(
        &mut self,
        tree_path: &Path,
        f: F,
        seqno: &SequenceNumberCounter,
        visible_seqno: &SequenceNumberCounter,
    ) -> crate::Result<()> {
        self.upgrade_version_with_seqno(tree_path, f, seqno.next(), visible_seqno)
    }

    /// Like `upgrade_version`, but takes an already-allocated sequence number.
    ///
    /// This is useful when the seqno must be coordinated with other operations
    /// (e.g., bulk ingestion where tables are recovered with the same seqno).
    pub(crate) fn upgrade_version_with_seqno<
        F: FnOnce(&SuperVersion) -> crate::Result<SuperVersion>,
    >(
        &mut self,
        tree_path: &Path,
        f: F,
        seqno: SeqNo,
        visible_seqno: &SequenceNumberCounter,
    ) -> crate::Result<()> {
        let next_version = f(&self.latest_version())?;
        log::trace!("Next version seqno={seqno}");

        persist_version(tree_path, &next_version.version)?;
        // SEKAI PATCH: the install step is shared with `VersionsLock::upgrade_version`.
        self.install_version(next_version, seqno, visible_seqno);

        Ok(())
    }

    /// Makes `next`, already persisted, the latest version at `seqno` (SEKAI PATCH: split out of
    /// `upgrade_version_with_seqno` for `VersionsLock`).
    fn install_version(
        &mut self,
        mut next: SuperVersion,
        seqno: SeqNo,
        visible_seqno: &SequenceNumberCounter,
    ) {
        next.seqno = seqno;
        self.append_version(next);
        visible_seqno.fetch_max(seqno + 1);
    }

    pub fn append_version(&mut self, version: SuperVersion) {
        self.0.push_back(version);
    }

    pub fn replace_latest_version(&mut self, version: SuperVersion) {
        if self.0.pop_back().is_some() {
            self.0.push_back(version);
        }
    }

    pub fn latest_version(&self) -> SuperVersion {
        #[expect(clippy::expect_used, reason = "SuperVersion is expected to exist")]
        self.0
            .iter()
            .last()
            .cloned()
            .expect("should always have a SuperVersion")
    }

    pub fn get_version_for_snapshot(&self, seqno: SeqNo) -> SuperVersion {
        if seqno == 0 {
            #[expect(clippy::expect_used, reason = "SuperVersion is expected to exist")]
            return self
                .0
                .front()
                .cloned()
                .expect("should always find a SuperVersion");
        }

        let version = self
            .0
            .iter()
            .rev()
            .find(|version| version.seqno < seqno)
            .cloned();

        if version.is_none() {
            log::error!("Failed to find a SuperVersion for snapshot with seqno={seqno}");
            log::error!("SuperVersions:");

            for version in self.0.iter().rev() {
                log::error!("-> {}, seqno={}", version.version.id(), version.seqno);
            }
        }

        #[expect(clippy::expect_used, reason = "SuperVersion is expected to exist")]
        version.expect("should always find a SuperVersion")
    }
}

/// The version-history write lock of a tree, released while a new version is persisted
/// (SEKAI PATCH).
///
/// Persisting a version writes and fsyncs a file, fsyncs the folder and atomically rewrites
/// `current` (five syncs, 7–25 ms on a disk busy with the journal), and every read and every
/// write of the tree takes the version-history lock: held across the persist, that lock stalled
/// every commit and read of the embedded engine for as long. Here the next version is computed
/// and persisted with the lock released, then installed under it.
///
/// Invariants:
/// - callers hold the tree's compaction-state lock, as every change of the tree's `Version`
///   (its tables and blob files) does, so while the lock is released the `Version` stays the
///   one the next version was computed from; only memtable rotations (which change the
///   memtables, never the `Version`) can come in between, and the next version is rebuilt from
///   the current memtables before it is installed;
/// - a version is visible (installed) only after it is durable, as before: no table it drops
///   can be deleted while the persisted `current` still names it;
/// - between two calls the lock is held, so checks made through `Deref` still hold at the next
///   `upgrade_version`.
pub(crate) struct VersionsLock<'a> {
    lock: &'a RwLock<SuperVersions>,
    guard: Option<RwLockWriteGuard<'a, SuperVersions>>,
}

impl<'a> VersionsLock<'a> {
    /// Takes the write lock.
    pub fn write(lock: &'a RwLock<SuperVersions>) -> Self {
        Self {
            guard: Some(Self::lock(lock)),
            lock,
        }
    }

    fn lock(lock: &'a RwLock<SuperVersions>) -> RwLockWriteGuard<'a, SuperVersions> {
        #[expect(clippy::expect_used, reason = "lock is expected to not be poisoned")]
        lock.write().expect("lock is poisoned")
    }

    /// Like [`SuperVersions::upgrade_version`], with the lock released while the next version is
    /// persisted. `f` may run twice: again on the current memtables if they rotated meanwhile.
    pub fn upgrade_version<F: FnMut(&SuperVersion) -> crate::Result<SuperVersion>>(
        &mut self,
        tree_path: &Path,
        mut f: F,
        seqno: &SequenceNumberCounter,
        visible_seqno: &SequenceNumberCounter,
    ) -> crate::Result<()> {
        let base = self.latest_version();
        let prepared = f(&base)?;
        self.guard = None;
        let persisted = persist_version(tree_path, &prepared.version);
        let versions = self.guard.insert(Self::lock(self.lock));
        persisted?;

        let latest = versions.latest_version();
        if latest.version.id() != base.version.id() {
            // Unreachable while callers hold the compaction-state lock; do what upstream does.
            debug_assert!(false, "the version changed while its successor was persisted");
            return versions.upgrade_version(tree_path, f, seqno, visible_seqno);
        }
        let next = if Arc::ptr_eq(&latest.active_memtable, &base.active_memtable)
            && Arc::ptr_eq(&latest.sealed_memtables, &base.sealed_memtables)
        {
            prepared
        } else {
            let mut next = f(&latest)?;
            next.version = prepared.version;
            next
        };
        versions.install_version(next, seqno.next(), visible_seqno);
        Ok(())
    }
}

impl std::ops::Deref for VersionsLock<'_> {
    type Target = SuperVersions;

    fn deref(&self) -> &SuperVersions {
        #[expect(clippy::expect_used, reason = "the guard is only taken inside upgrade_version")]
        self.guard.as_ref().expect("held outside upgrade_version")
    }
}

impl std::ops::DerefMut for VersionsLock<'_> {
    fn deref_mut(&mut self) -> &mut SuperVersions {
        #[expect(clippy::expect_used, reason = "the guard is only taken inside upgrade_version")]
        self.guard.as_mut().expect("held outside upgrade_version")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_log::test;

    #[test]
    fn super_version_gc_above_watermark() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 1,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 0)?;

        assert_eq!(history.free_list_len(), 2);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_simple() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 1,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3)?;

        assert_eq!(history.len(), 1);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_simple_2() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 1,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 8,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3)?;

        assert_eq!(history.len(), 2);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_keep() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 8,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3)?;

        assert_eq!(history.len(), 2);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_shadowed() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3)?;

        assert_eq!(history.len(), 1);

        Ok(())
    }
}

/// Drops `removed` on a short-lived thread (SEKAI PATCH). If the thread cannot start, `spawn`
/// drops the closure, and with it `removed`, here.
fn drop_elsewhere<T: Send + 'static>(removed: Vec<T>) {
    if removed.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("lsm-tree:drop".into())
        .spawn(move || drop(removed));
}
