//! Smoke tests of the FoundationDB backend against a real cluster.
//!
//! They run only when `FDB_CLUSTER_FILE` names a cluster file (and `libfdb_c` ≥ 7.3 is
//! installed); otherwise they print "skipped: FDB_CLUSTER_FILE not set" and pass. Everything runs
//! in one test function because the FDB network is booted once per process and must be stopped
//! (`shutdown_network`) after the last use, before the process exits. Keys live under a unique
//! prefix that is cleared at the end.
#![cfg(feature = "fdb")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sekai_layer::fdb_backend::{shutdown_network, FdbDatabase};
use sekai_layer::kv::{
    codes, run, strinc, Database, FdbError, MutationType, RangeOption, Transaction,
};

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn fail(what: &str) -> impl Fn(FdbError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn key(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    [prefix, suffix].concat()
}

async fn set_get(db: &FdbDatabase, prefix: &[u8]) -> Check {
    let k = key(prefix, b"hello");
    let trx = db.create_trx().map_err(fail("create_trx"))?;
    trx.set(&k, b"world");
    ensure!(
        trx.get(&k, false).await.map_err(fail("own write"))? == Some(b"world".to_vec()),
        "a transaction must read its own write"
    );
    trx.commit().await.map_err(fail("commit"))?;
    let read = db.create_trx().map_err(fail("create_trx"))?;
    let value = read.get(&k, false).await.map_err(fail("get"))?;
    ensure!(value == Some(b"world".to_vec()), "read back {value:?}");
    Ok(())
}

async fn conflict(db: &FdbDatabase, prefix: &[u8]) -> Check {
    let k = key(prefix, b"contended");
    let t1 = db.create_trx().map_err(fail("create_trx"))?;
    t1.get(&k, false).await.map_err(fail("t1 read"))?;
    let t2 = db.create_trx().map_err(fail("create_trx"))?;
    t2.set(&k, b"t2");
    t2.commit().await.map_err(fail("t2 commit"))?;
    t1.set(&key(prefix, b"other"), b"t1");
    let error = match t1.commit().await {
        Ok(()) => return Err("t1 committed despite a read conflict".into()),
        Err(error) => error,
    };
    ensure!(
        error.code() == codes::NOT_COMMITTED,
        "expected not_committed, got {error}"
    );
    t1.on_error(error).await.map_err(fail("on_error"))?;
    let seen = t1.get(&k, false).await.map_err(fail("retry read"))?;
    ensure!(
        seen == Some(b"t2".to_vec()),
        "the retry must see t2's write"
    );
    t1.set(&key(prefix, b"other"), b"t1");
    t1.commit().await.map_err(fail("retry commit"))?;
    Ok(())
}

async fn versionstamps(db: &FdbDatabase, prefix: &[u8]) -> Check {
    let value_key = key(prefix, b"stamped-value");
    let mut param = vec![0u8; 10];
    param.extend_from_slice(&0u32.to_le_bytes());
    let key_prefix = key(prefix, b"log/");
    let offset = u32::try_from(key_prefix.len()).map_err(|e| e.to_string())?;
    let mut stamped_key = key_prefix.clone();
    stamped_key.extend_from_slice(&[0u8; 10]);
    stamped_key.extend_from_slice(&offset.to_le_bytes());

    let trx = db.create_trx().map_err(fail("create_trx"))?;
    trx.atomic_op(&value_key, &param, MutationType::SetVersionstampedValue);
    trx.atomic_op(&stamped_key, b"entry", MutationType::SetVersionstampedKey);
    let before = trx.get_versionstamp();
    trx.commit().await.map_err(fail("commit"))?;
    let stamp = before.await.map_err(fail("versionstamp"))?;
    let after = trx
        .get_versionstamp()
        .await
        .map_err(fail("versionstamp after commit"))?;
    ensure!(
        stamp == after,
        "the stamp after commit must be the commit's"
    );

    let read = db.create_trx().map_err(fail("create_trx"))?;
    let value = read.get(&value_key, false).await.map_err(fail("get"))?;
    ensure!(
        value.as_deref() == Some(&stamp[..]),
        "stamped value {value:?} != {stamp:?}"
    );
    let end = strinc(&key_prefix).ok_or("prefix has no successor")?;
    let log = read
        .get_range(&RangeOption::new(key_prefix.clone(), end), false)
        .await
        .map_err(fail("get_range"))?;
    ensure!(
        log.kvs.len() == 1,
        "expected one log entry, got {}",
        log.kvs.len()
    );
    ensure!(
        log.kvs[0].key == key(&key_prefix, &stamp),
        "the log key must carry the stamp"
    );

    let read_only = db.create_trx().map_err(fail("create_trx"))?;
    let none = read_only.get_versionstamp();
    read_only.commit().await.map_err(fail("read-only commit"))?;
    let code = none.await.err().map(FdbError::code);
    ensure!(
        code == Some(codes::NO_COMMIT_VERSION),
        "a read-only commit has no versionstamp, got {code:?}"
    );
    Ok(())
}

async fn ranges(db: &FdbDatabase, prefix: &[u8]) -> Check {
    let begin = key(prefix, b"r/");
    let end = strinc(&begin).ok_or("prefix has no successor")?;
    run(db, |trx, _| {
        let begin = begin.clone();
        async move {
            for k in [b"a", b"b", b"c"] {
                trx.set(&key(&begin, k), k);
            }
            Ok::<_, FdbError>(())
        }
    })
    .await
    .map_err(fail("run"))?;
    let trx = db.create_trx().map_err(fail("create_trx"))?;
    for reverse in [false, true] {
        let mut opt = RangeOption::new(begin.clone(), end.clone()).limit(2);
        if reverse {
            opt = opt.rev();
        }
        let first = trx
            .get_range(&opt, false)
            .await
            .map_err(fail("get_range"))?;
        ensure!(first.kvs.len() == 2 && first.more, "first page {first:?}");
        let next = opt.next_range(&first).ok_or("no continuation")?;
        let second = trx
            .get_range(&next, false)
            .await
            .map_err(fail("get_range"))?;
        ensure!(
            second.kvs.len() == 1 && !second.more,
            "second page {second:?}"
        );
        let mut keys: Vec<u8> = first
            .kvs
            .iter()
            .chain(&second.kvs)
            .filter_map(|kv| kv.key.last().copied())
            .collect();
        if reverse {
            keys.reverse();
        }
        ensure!(
            keys == b"abc",
            "pages in order, got {keys:?} (reverse {reverse})"
        );
    }
    Ok(())
}

async fn watches(db: &FdbDatabase, prefix: &[u8]) -> Check {
    let k = key(prefix, b"watched");
    let watcher = db.create_trx().map_err(fail("create_trx"))?;
    let fired = watcher.watch(&k);
    watcher.commit().await.map_err(fail("watch commit"))?;
    let writer = db.create_trx().map_err(fail("create_trx"))?;
    writer.set(&k, b"changed");
    writer.commit().await.map_err(fail("writer commit"))?;
    match tokio::time::timeout(Duration::from_secs(30), fired).await {
        Ok(result) => result.map_err(fail("watch")),
        Err(_) => Err("the watch did not fire within 30 s".into()),
    }
}

async fn clean_up(db: &FdbDatabase, prefix: &[u8]) -> Check {
    let end = strinc(prefix).ok_or("prefix has no successor")?;
    run(db, |trx, _| {
        let end = end.clone();
        async move {
            trx.clear_range(prefix, &end);
            Ok::<_, FdbError>(())
        }
    })
    .await
    .map_err(fail("clean up"))
}

#[tokio::test]
async fn fdb_backend_smoke() {
    let Some(opened) = FdbDatabase::open_from_env() else {
        println!("skipped: FDB_CLUSTER_FILE not set");
        return;
    };
    let db = match opened {
        Ok(db) => db,
        Err(error) => {
            shutdown_network();
            panic!("cannot open the cluster: {error}");
        }
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("sekai-test/{}/{nanos}/", std::process::id()).into_bytes();
    let mut failures = Vec::new();
    for (name, outcome) in [
        ("set_get", set_get(&db, &prefix).await),
        ("conflict", conflict(&db, &prefix).await),
        ("versionstamps", versionstamps(&db, &prefix).await),
        ("ranges", ranges(&db, &prefix).await),
        ("watches", watches(&db, &prefix).await),
        ("clean_up", clean_up(&db, &prefix).await),
    ] {
        if let Err(message) = outcome {
            failures.push(format!("{name}: {message}"));
        }
    }
    drop(db);
    shutdown_network();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
