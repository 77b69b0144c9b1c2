//! One conformance suite for every backend of the KV contract.
//!
//! Each case is a public async function over a [`Harness`]; [`conformance_tests!`] expands to
//! one `#[tokio::test]` per case, so a backend's test file is a single macro call. Cases use
//! keys under the harness's prefix, so they can share a real cluster. Every rule of the
//! contract has a case here, including the ones that must fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a failed step is a failed check

use std::future::Future;

use super::{
    codes, key_after, run, ConflictRangeType, Database, FdbError, FdbResult, MaybeCommitted,
    MutationType, RangeOption, Transaction,
};

/// What the suite needs from a backend.
pub trait Harness: Send + Sync {
    /// The backend.
    type Db: Database;
    /// The database under test.
    fn db(&self) -> &Self::Db;
    /// A prefix no other case uses; every key of a case starts with it.
    fn prefix(&self) -> &[u8];
    /// Makes more than 5 s of versions pass (a real wait on a real cluster).
    fn age_past_mvcc_window(&self) -> impl Future<Output = ()> + Send;
}

fn key<H: Harness>(h: &H, suffix: &str) -> Vec<u8> {
    [h.prefix(), suffix.as_bytes()].concat()
}

async fn write<H: Harness>(h: &H, pairs: &[(&str, &[u8])]) {
    let trx = h.db().create_trx().expect("create trx");
    for (k, v) in pairs {
        trx.set(&key(h, k), v);
    }
    trx.commit().await.expect("setup commit");
}

async fn read<H: Harness>(h: &H, k: &str) -> Option<Vec<u8>> {
    let trx = h.db().create_trx().expect("create trx");
    trx.get(&key(h, k), false).await.expect("read")
}

fn code(result: FdbResult<()>) -> i32 {
    result.err().map_or(0, FdbError::code)
}

/// A transaction sees its own writes, clears and cleared ranges, in point and range reads.
pub async fn reads_see_own_writes<H: Harness>(h: &H) {
    write(h, &[("a", b"1"), ("b", b"2"), ("c", b"3")]).await;
    let trx = h.db().create_trx().unwrap();
    trx.set(&key(h, "b"), b"two");
    trx.clear(&key(h, "c"));
    trx.set(&key(h, "d"), b"4");
    assert_eq!(
        trx.get(&key(h, "b"), false).await.unwrap(),
        Some(b"two".to_vec())
    );
    assert_eq!(trx.get(&key(h, "c"), false).await.unwrap(), None);
    let all = trx
        .get_range(&RangeOption::new(key(h, "a"), key(h, "z")), false)
        .await
        .unwrap();
    let values: Vec<&[u8]> = all.kvs.iter().map(|kv| kv.value.as_slice()).collect();
    assert_eq!(values, [b"1".as_slice(), b"two", b"4"]);
    trx.clear_range(&key(h, "a"), &key(h, "c"));
    trx.set(&key(h, "a2"), b"new");
    let rev = trx
        .get_range(&RangeOption::new(key(h, "a"), key(h, "z")).rev(), false)
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = rev.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [key(h, "d"), key(h, "a2")]);
}

/// Reads see one version: a commit after the read version stays invisible.
pub async fn reads_are_at_one_version<H: Harness>(h: &H) {
    write(h, &[("k", b"old")]).await;
    let reader = h.db().create_trx().unwrap();
    assert_eq!(
        reader.get(&key(h, "k"), true).await.unwrap(),
        Some(b"old".to_vec())
    );
    write(h, &[("k", b"new"), ("other", b"x")]).await;
    assert_eq!(
        reader.get(&key(h, "k"), true).await.unwrap(),
        Some(b"old".to_vec())
    );
    assert_eq!(reader.get(&key(h, "other"), true).await.unwrap(), None);
    assert_eq!(read(h, "k").await, Some(b"new".to_vec()));
}

/// A key read and written over and over (like a region's head): every reader keeps seeing the
/// value at its own read version, across later writes and a clear, and a new reader the newest.
pub async fn often_written_keys_read_at_their_version<H: Harness>(h: &H) {
    let k = key(h, "hot");
    let mut readers = Vec::new();
    for round in 0..4u8 {
        let reader = h.db().create_trx().unwrap();
        let seen = reader.get(&k, true).await.unwrap();
        readers.push((reader, seen));
        let trx = h.db().create_trx().unwrap();
        if round == 2 {
            trx.clear(&k);
        } else {
            trx.set(&k, &[round]);
        }
        trx.commit().await.unwrap();
    }
    let seen: Vec<Option<Vec<u8>>> = readers.iter().map(|(_, seen)| seen.clone()).collect();
    assert_eq!(seen, vec![None, Some(vec![0]), Some(vec![1]), None]);
    for (reader, seen) in &readers {
        assert_eq!(&reader.get(&k, true).await.unwrap(), seen);
    }
    assert_eq!(read(h, "hot").await, Some(vec![3]));
}

/// A serializable point read conflicts with a later write of the key: 1020.
pub async fn point_read_conflicts<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    trx.get(&key(h, "k"), false).await.unwrap();
    trx.set(&key(h, "out"), b"1");
    write(h, &[("k", b"changed")]).await;
    assert_eq!(code(trx.commit().await), codes::NOT_COMMITTED);
    assert_eq!(read(h, "out").await, None);
}

/// A point read conflicts on `[k, k\x00)` only: a write of a neighbour does not conflict.
pub async fn point_read_covers_only_its_key<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    trx.get(&key(h, "k"), false).await.unwrap();
    trx.set(&key(h, "out"), b"1");
    write(h, &[("k\u{1}", b"x"), ("j", b"x")]).await;
    assert_eq!(code(trx.commit().await), 0);
}

/// Snapshot reads add no read conflict.
pub async fn snapshot_reads_do_not_conflict<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    trx.get(&key(h, "k"), true).await.unwrap();
    trx.get_range(&RangeOption::new(key(h, "a"), key(h, "z")), true)
        .await
        .unwrap();
    trx.set(&key(h, "out"), b"1");
    write(h, &[("k", b"changed"), ("m", b"x")]).await;
    assert_eq!(code(trx.commit().await), 0);
}

/// A forward range read that stopped at its limit conflicts only up to its last key.
pub async fn limited_range_read_covers_what_it_returned<H: Harness>(h: &H) {
    write(h, &[("r1", b""), ("r2", b""), ("r3", b""), ("r4", b"")]).await;
    let range = RangeOption::new(key(h, "r"), key(h, "s")).limit(2);
    let beyond = h.db().create_trx().unwrap();
    let got = beyond.get_range(&range, false).await.unwrap();
    assert_eq!(got.kvs.len(), 2);
    assert!(got.more);
    beyond.set(&key(h, "out"), b"1");
    write(h, &[("r3", b"changed"), ("r2\u{1}", b"new")]).await;
    assert_eq!(
        code(beyond.commit().await),
        0,
        "writes past the last returned key"
    );

    let within = h.db().create_trx().unwrap();
    within.get_range(&range, false).await.unwrap();
    within.set(&key(h, "out"), b"2");
    write(h, &[("r2", b"changed")]).await;
    assert_eq!(code(within.commit().await), codes::NOT_COMMITTED);
}

/// A reverse range read that stopped at its limit conflicts on `[first returned, end)`.
pub async fn limited_reverse_read_covers_what_it_returned<H: Harness>(h: &H) {
    write(h, &[("r1", b""), ("r2", b""), ("r3", b""), ("r4", b"")]).await;
    let range = RangeOption::new(key(h, "r"), key(h, "s")).limit(2).rev();
    let outside = h.db().create_trx().unwrap();
    let got = outside.get_range(&range, false).await.unwrap();
    assert_eq!(got.kvs[0].key, key(h, "r4"));
    outside.set(&key(h, "out"), b"1");
    write(h, &[("r2", b"changed")]).await;
    assert_eq!(code(outside.commit().await), 0);

    let inside = h.db().create_trx().unwrap();
    inside.get_range(&range, false).await.unwrap();
    inside.set(&key(h, "out"), b"2");
    write(h, &[("r3", b"changed")]).await;
    assert_eq!(code(inside.commit().await), codes::NOT_COMMITTED);
}

/// An exhausted range read conflicts with an insert anywhere in the range (no phantoms).
pub async fn exhausted_range_read_covers_the_range<H: Harness>(h: &H) {
    write(h, &[("r1", b"")]).await;
    let trx = h.db().create_trx().unwrap();
    let got = trx
        .get_range(&RangeOption::new(key(h, "r"), key(h, "s")).limit(10), false)
        .await
        .unwrap();
    assert!(!got.more);
    trx.set(&key(h, "out"), b"1");
    write(h, &[("r9", b"phantom")]).await;
    assert_eq!(code(trx.commit().await), codes::NOT_COMMITTED);
}

/// Reads answered from own writes add no conflict; reads over own atomic ops do.
pub async fn own_writes_exempt_reads_but_atomic_ops_do_not<H: Harness>(h: &H) {
    let known = h.db().create_trx().unwrap();
    known.set(&key(h, "k"), b"mine");
    assert_eq!(
        known.get(&key(h, "k"), false).await.unwrap(),
        Some(b"mine".to_vec())
    );
    known.clear_range(&key(h, "c"), &key(h, "d"));
    known.get(&key(h, "c5"), false).await.unwrap();
    write(h, &[("k", b"theirs"), ("c5", b"theirs")]).await;
    assert_eq!(code(known.commit().await), 0);
    assert_eq!(read(h, "k").await, Some(b"mine".to_vec()));

    let pending = h.db().create_trx().unwrap();
    pending.atomic_op(&key(h, "n"), &[1], MutationType::Add);
    pending.get(&key(h, "n"), false).await.unwrap();
    write(h, &[("n", &[5])]).await;
    assert_eq!(code(pending.commit().await), codes::NOT_COMMITTED);
}

/// Write-only transactions never conflict, even on keys others change.
pub async fn write_only_transactions_never_conflict<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    trx.get_read_version().await.unwrap();
    trx.set(&key(h, "k"), b"blind");
    trx.atomic_op(&key(h, "n"), &[1], MutationType::Add);
    write(h, &[("k", b"other"), ("n", &[7])]).await;
    assert_eq!(code(trx.commit().await), 0);
    assert_eq!(read(h, "n").await, Some(vec![8]));
}

/// Explicit conflict ranges: a read range conflicts with writes; a write range with reads; a
/// read range over keys the transaction wrote adds nothing.
pub async fn explicit_conflict_ranges<H: Harness>(h: &H) {
    let reader = h.db().create_trx().unwrap();
    reader
        .add_conflict_range(&key(h, "a"), &key(h, "b"), ConflictRangeType::Read)
        .unwrap();
    reader.set(&key(h, "out"), b"1");
    write(h, &[("a5", b"x")]).await;
    assert_eq!(code(reader.commit().await), codes::NOT_COMMITTED);

    let victim = h.db().create_trx().unwrap();
    victim.get(&key(h, "w"), false).await.unwrap();
    victim.set(&key(h, "out"), b"2");
    let writer = h.db().create_trx().unwrap();
    writer
        .add_conflict_range(
            &key(h, "w"),
            &key_after(&key(h, "w")),
            ConflictRangeType::Write,
        )
        .unwrap();
    writer.set(&key(h, "unrelated"), b"x");
    writer.commit().await.unwrap();
    assert_eq!(code(victim.commit().await), codes::NOT_COMMITTED);

    let own = h.db().create_trx().unwrap();
    own.set(&key(h, "o"), b"mine");
    own.add_conflict_range(
        &key(h, "o"),
        &key_after(&key(h, "o")),
        ConflictRangeType::Read,
    )
    .unwrap();
    write(h, &[("o", b"theirs")]).await;
    assert_eq!(code(own.commit().await), 0);
}

/// A transaction older than 5 s fails reads and commits with `transaction_too_old` (1007).
pub async fn old_transactions_are_too_old<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    trx.get(&key(h, "k"), false).await.unwrap();
    trx.set(&key(h, "k"), b"late");
    h.age_past_mvcc_window().await;
    let read = trx.get(&key(h, "other"), false).await.map(|_| ());
    assert_eq!(code(read), codes::TRANSACTION_TOO_OLD);
    assert_eq!(code(trx.commit().await), codes::TRANSACTION_TOO_OLD);
    assert_eq!(self::read(h, "k").await, None);
}

/// FDB's size limits: key 10,000 B (2102), value 100,000 B (2103), transaction 10 MB (2101).
pub async fn size_limits<H: Harness>(h: &H) {
    let big_key = h.db().create_trx().unwrap();
    big_key.set(&[h.prefix(), &vec![b'k'; 10_001]].concat(), b"v");
    assert_eq!(code(big_key.commit().await), codes::KEY_TOO_LARGE);

    let big_value = h.db().create_trx().unwrap();
    big_value.set(&key(h, "v"), &vec![0; 100_001]);
    assert_eq!(code(big_value.commit().await), codes::VALUE_TOO_LARGE);

    let ok_value = h.db().create_trx().unwrap();
    ok_value.set(&key(h, "v"), &vec![0; 100_000]);
    assert_eq!(code(ok_value.commit().await), 0);

    let big_trx = h.db().create_trx().unwrap();
    for i in 0..110 {
        big_trx.set(&key(h, &format!("t{i:03}")), &vec![1; 99_000]);
    }
    assert_eq!(code(big_trx.commit().await), codes::TRANSACTION_TOO_LARGE);
    assert_eq!(read(h, "t000").await, None);
}

/// Atomic ops through the database, with FDB's byte semantics.
pub async fn atomic_ops_apply_at_commit<H: Harness>(h: &H) {
    write(
        h,
        &[
            ("add", &[0xFF, 0]),
            ("max", &[5]),
            ("cac", b"same"),
            ("app", b"ab"),
        ],
    )
    .await;
    let trx = h.db().create_trx().unwrap();
    trx.atomic_op(&key(h, "add"), &[1, 0], MutationType::Add);
    trx.atomic_op(&key(h, "max"), &[3], MutationType::Max);
    trx.atomic_op(&key(h, "min"), &[3], MutationType::Min);
    trx.atomic_op(&key(h, "cac"), b"same", MutationType::CompareAndClear);
    trx.atomic_op(&key(h, "app"), b"c", MutationType::AppendIfFits);
    trx.atomic_op(&key(h, "bmax"), b"b", MutationType::ByteMax);
    trx.atomic_op(&key(h, "xor"), &[3], MutationType::BitXor);
    trx.commit().await.unwrap();
    assert_eq!(read(h, "add").await, Some(vec![0, 1]));
    assert_eq!(read(h, "max").await, Some(vec![5]));
    assert_eq!(read(h, "min").await, Some(vec![3]));
    assert_eq!(read(h, "cac").await, None);
    assert_eq!(read(h, "app").await, Some(b"abc".to_vec()));
    assert_eq!(read(h, "bmax").await, Some(b"b".to_vec()));
    assert_eq!(read(h, "xor").await, Some(vec![3]));
}

/// `prefix` followed by 10 placeholder bytes and the 4-byte offset FDB's versionstamp ops need.
pub fn stamped_param(prefix: &[u8]) -> Vec<u8> {
    let mut param = prefix.to_vec();
    let offset = param.len() as u32;
    param.extend_from_slice(&[0; 10]);
    param.extend_from_slice(&offset.to_le_bytes());
    param
}

/// Versionstamped keys and values get the commit's 10-byte stamp, equal to `get_versionstamp`,
/// increasing from commit to commit.
pub async fn versionstamps_are_placed_and_increase<H: Harness>(h: &H) {
    let mut stamps = Vec::new();
    for i in 0..3u8 {
        let trx = h.db().create_trx().unwrap();
        trx.atomic_op(
            &stamped_param(&key(h, "log/")),
            &[i],
            MutationType::SetVersionstampedKey,
        );
        trx.atomic_op(
            &key(h, &format!("val{i}")),
            &stamped_param(b"v:"),
            MutationType::SetVersionstampedValue,
        );
        let stamp = trx.get_versionstamp();
        trx.commit().await.unwrap();
        stamps.push(stamp.await.unwrap());
    }
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    let log = h.db().create_trx().unwrap();
    let entries = log
        .get_range(&RangeOption::new(key(h, "log/"), key(h, "log0")), false)
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = entries.kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<Vec<u8>> = stamps
        .iter()
        .map(|s| [key(h, "log/").as_slice(), s].concat())
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(
        read(h, "val1").await,
        Some([b"v:".as_slice(), &stamps[1]].concat())
    );
}

/// Reading the range a versionstamped key may land in fails with `accessed_unreadable` (1036).
pub async fn versionstamped_ranges_are_unreadable<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    trx.get_read_version().await.unwrap();
    trx.atomic_op(
        &stamped_param(&key(h, "log/")),
        b"x",
        MutationType::SetVersionstampedKey,
    );
    let range = RangeOption::new(key(h, "log/"), key(h, "log0"));
    let read = trx.get_range(&range, false).await.map(|_| ());
    assert_eq!(code(read), codes::ACCESSED_UNREADABLE);
    trx.atomic_op(
        &key(h, "v"),
        &stamped_param(b""),
        MutationType::SetVersionstampedValue,
    );
    assert_eq!(
        code(trx.get(&key(h, "v"), false).await.map(|_| ())),
        codes::ACCESSED_UNREADABLE
    );
    assert_eq!(trx.get(&key(h, "elsewhere"), false).await.unwrap(), None);
}

/// A serializable reader of a log's tail conflicts with a versionstamped append; a snapshot
/// reader does not.
pub async fn versionstamped_appends_conflict_with_tail_readers<H: Harness>(h: &H) {
    let range = RangeOption::new(key(h, "log/"), key(h, "log0"));
    let serial = h.db().create_trx().unwrap();
    serial.get_range(&range, false).await.unwrap();
    serial.set(&key(h, "out"), b"1");
    let snap = h.db().create_trx().unwrap();
    snap.get_range(&range, true).await.unwrap();
    snap.set(&key(h, "out2"), b"1");
    let appender = h.db().create_trx().unwrap();
    appender.atomic_op(
        &stamped_param(&key(h, "log/")),
        b"x",
        MutationType::SetVersionstampedKey,
    );
    appender.commit().await.unwrap();
    assert_eq!(code(serial.commit().await), codes::NOT_COMMITTED);
    assert_eq!(code(snap.commit().await), 0);
}

/// `get_versionstamp` of a transaction that wrote nothing fails; of a dropped one, 1025.
pub async fn versionstamp_of_read_only_or_dropped_transactions<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    trx.get(&key(h, "k"), false).await.unwrap();
    let stamp = trx.get_versionstamp();
    trx.commit().await.unwrap();
    assert!(stamp.await.is_err());
    let dropped = h.db().create_trx().unwrap();
    dropped.set(&key(h, "k"), b"x");
    let stamp = dropped.get_versionstamp();
    drop(dropped);
    assert_eq!(code(stamp.await.map(|_| ())), codes::TRANSACTION_CANCELLED);
}

/// A watch fires after a committed change of the value it saw, and not before.
pub async fn watches_fire_after_committed_changes<H: Harness>(h: &H) {
    write(h, &[("w", b"1")]).await;
    let trx = h.db().create_trx().unwrap();
    let watch = trx.watch(&key(h, "w"));
    trx.commit().await.unwrap();
    let mut watch = Box::pin(watch);
    let early = tokio::time::timeout(std::time::Duration::from_millis(50), &mut watch).await;
    assert!(early.is_err(), "fired without a change");
    write(h, &[("w", b"2")]).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), watch)
        .await
        .expect("watch fired")
        .unwrap();
}

/// A watch on a key its own transaction changes fires once that transaction commits.
pub async fn watches_fire_on_own_change<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    let watch = trx.watch(&key(h, "w"));
    trx.set(&key(h, "w"), b"mine");
    trx.commit().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), watch)
        .await
        .expect("watch fired")
        .unwrap();
}

/// A watch of a transaction dropped uncommitted fails with 1025; of a failed commit, with its error.
pub async fn watches_fail_with_their_transaction<H: Harness>(h: &H) {
    let dropped = h.db().create_trx().unwrap();
    let watch = dropped.watch(&key(h, "w"));
    drop(dropped);
    assert_eq!(code(watch.await), codes::TRANSACTION_CANCELLED);

    let failing = h.db().create_trx().unwrap();
    failing.get(&key(h, "k"), false).await.unwrap();
    let watch = failing.watch(&key(h, "w"));
    failing.set(&key(h, "out"), b"1");
    write(h, &[("k", b"x")]).await;
    assert_eq!(code(failing.commit().await), codes::NOT_COMMITTED);
    assert_eq!(code(watch.await), codes::NOT_COMMITTED);
}

/// More than 10,000 outstanding watches fail with `too_many_watches` (1032).
pub async fn watch_limit<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    let watches: Vec<_> = (0..10_000)
        .map(|i| trx.watch(&key(h, &format!("w{i}"))))
        .collect();
    let over = trx.watch(&key(h, "one-too-many"));
    assert_eq!(code(over.await), codes::TOO_MANY_WATCHES);
    drop(watches);
    drop(trx);
    let again = h.db().create_trx().unwrap();
    let watch = again.watch(&key(h, "w"));
    again.set(&key(h, "w"), b"x");
    again.commit().await.unwrap();
    assert_eq!(code(watch.await), 0);
}

/// Long scans page with continuations and see every key exactly once, both directions.
pub async fn range_paging_with_continuations<H: Harness>(h: &H) {
    let trx = h.db().create_trx().unwrap();
    for i in 0..25 {
        trx.set(&key(h, &format!("p{i:02}")), b"");
    }
    trx.commit().await.unwrap();
    for reverse in [false, true] {
        let mut range = RangeOption::new(key(h, "p"), key(h, "q")).limit(7);
        if reverse {
            range = range.rev();
        }
        let mut seen = Vec::new();
        let mut next = Some(range);
        while let Some(range) = next {
            let page = h
                .db()
                .create_trx()
                .unwrap()
                .get_range(&range, false)
                .await
                .unwrap();
            next = range.next_range(&page);
            seen.extend(page.kvs.into_iter().map(|kv| kv.key));
        }
        let mut expected: Vec<Vec<u8>> = (0..25).map(|i| key(h, &format!("p{i:02}"))).collect();
        if reverse {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
}

/// Concurrent read-modify-write transactions through `run` serialize: no lost update.
pub async fn concurrent_increments_serialize<H: Harness>(h: &H)
where
    H::Db: Database,
{
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let db = h.db().clone();
            let counter = key(h, "counter");
            tokio::spawn(async move {
                for _ in 0..10 {
                    let counter = counter.clone();
                    run(&db, move |trx, _| {
                        let counter = counter.clone();
                        async move {
                            let now = trx.get(&counter, false).await?;
                            let n = now.map_or(0, |v| v[0]);
                            trx.set(&counter, &[n + 1]);
                            Ok::<_, FdbError>(())
                        }
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(read(h, "counter").await, Some(vec![80]));
}

/// `run` retries retryable errors, stops on others, and passes `MaybeCommitted`.
pub async fn run_retries_only_retryable_errors<H: Harness>(h: &H) {
    let mut attempts = 0;
    let result: Result<(), FdbError> = run(h.db(), |_trx, maybe: MaybeCommitted| {
        attempts += 1;
        let n = attempts;
        async move {
            assert!(!maybe.0);
            if n < 3 {
                Err(FdbError::from_code(codes::NOT_COMMITTED))
            } else {
                Err(FdbError::from_code(codes::KEY_TOO_LARGE))
            }
        }
    })
    .await;
    assert_eq!(result.unwrap_err().code(), codes::KEY_TOO_LARGE);
    assert_eq!(attempts, 3);
}

/// Expands to one `#[tokio::test]` per conformance case, given an async harness constructor.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__conformance_cases!(__conformance_test_fns, $make);
    };
}

/// Expands to a future that runs every case in turn, each with the harness
/// `$make(case_name).await` on a task of its own, and yields the failures as text. For backends
/// that allow one test per process (FoundationDB's network must be stopped before exit).
#[macro_export]
macro_rules! conformance_run_all {
    ($make:expr) => {
        $crate::__conformance_cases!(__conformance_run_each, $make)
    };
}

/// The one list of conformance cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($then:ident, $arg:expr) => {
        $crate::$then! {$arg;
        reads_see_own_writes, reads_are_at_one_version, often_written_keys_read_at_their_version,
        point_read_conflicts, point_read_covers_only_its_key, snapshot_reads_do_not_conflict,
        limited_range_read_covers_what_it_returned,
        limited_reverse_read_covers_what_it_returned, exhausted_range_read_covers_the_range,
        own_writes_exempt_reads_but_atomic_ops_do_not, write_only_transactions_never_conflict,
        explicit_conflict_ranges, old_transactions_are_too_old, size_limits,
        atomic_ops_apply_at_commit, versionstamps_are_placed_and_increase,
        versionstamped_ranges_are_unreadable, versionstamped_appends_conflict_with_tail_readers,
        versionstamp_of_read_only_or_dropped_transactions, watches_fire_after_committed_changes,
        watches_fire_on_own_change, watches_fail_with_their_transaction, watch_limit,
        range_paging_with_continuations, concurrent_increments_serialize,
        run_retries_only_retryable_errors}
    };
}

/// One `#[tokio::test]` per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $make.await;
                $crate::kv::conformance::$case(&harness).await;
            }
        )*
    };
}

/// Every case in turn, collecting failures.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_run_each {
    ($make:expr; $($case:ident),* $(,)?) => {
        async {
            let mut failures: Vec<String> = Vec::new();
            $(
                let harness = ($make)(stringify!($case)).await;
                let outcome = tokio::spawn(async move {
                    $crate::kv::conformance::$case(&harness).await
                })
                .await;
                if let Err(error) = outcome {
                    failures.push(format!("{}: {error}", stringify!($case)));
                }
            )*
            failures
        }
    };
}
