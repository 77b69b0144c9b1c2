//! Embedded-engine rules beyond the shared suite: recovery, versionstamps across restarts,
//! injected faults, and a crash test that SIGKILLs a committing child process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions, FaultConfig};
use sekai_layer::kv::conformance::stamped_param;
use sekai_layer::kv::{codes, run, Database, FdbError, MutationType, Transaction};

async fn commit_stamped(db: &EmbeddedDatabase) -> [u8; 10] {
    let trx = db.create_trx().unwrap();
    trx.atomic_op(
        &stamped_param(b"log/"),
        b"",
        MutationType::SetVersionstampedKey,
    );
    let stamp = trx.get_versionstamp();
    trx.commit().await.unwrap();
    stamp.await.unwrap()
}

#[tokio::test]
async fn commits_survive_reopen_and_versionstamps_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let db = EmbeddedDatabase::open(dir.path()).unwrap();
        let trx = db.create_trx().unwrap();
        trx.set(b"k", b"v");
        trx.commit().await.unwrap();
        commit_stamped(&db).await
    };
    let db = EmbeddedDatabase::open(dir.path()).unwrap();
    let trx = db.create_trx().unwrap();
    assert_eq!(trx.get(b"k", false).await.unwrap(), Some(b"v".to_vec()));
    let after = commit_stamped(&db).await;
    assert!(after > before, "{after:?} <= {before:?}");
}

#[tokio::test]
async fn unknown_results_apply_or_not_as_injected() {
    let only = |applied: bool| FaultConfig {
        seed: 7,
        unknown_applied: if applied { 1.0 } else { 0.0 },
        unknown_not_applied: if applied { 0.0 } else { 1.0 },
        ..FaultConfig::default()
    };
    for applied in [true, false] {
        let options = EngineOptions {
            faults: Some(only(applied)),
            ..EngineOptions::default()
        };
        let db = EmbeddedDatabase::temporary(options).unwrap();
        let trx = db.create_trx().unwrap();
        trx.set(b"k", b"v");
        let result = trx.commit().await;
        assert_eq!(result.unwrap_err().code(), codes::COMMIT_UNKNOWN_RESULT);
        let check = db.create_trx().unwrap();
        assert_eq!(check.get(b"k", false).await.unwrap().is_some(), applied);
        let counts = db.fault_counts();
        assert_eq!(
            (counts.unknown_applied, counts.unknown_not_applied),
            if applied { (1, 0) } else { (0, 1) }
        );
    }
}

/// The idiom layer code uses under 1021: an id made outside the loop and a marker key.
#[tokio::test]
async fn run_with_a_marker_is_exactly_once_under_every_fault() {
    let seed = 0x0005_EC41_u64;
    println!("seed {seed}");
    let db = EmbeddedDatabase::temporary(EngineOptions {
        faults: Some(FaultConfig::uniform(seed, 0.2)),
        ..EngineOptions::default()
    })
    .unwrap();
    for op in 0u32..200 {
        let marker = format!("done/{op}").into_bytes();
        run(&db, |trx, _maybe| {
            let marker = marker.clone();
            async move {
                if trx.get(&marker, false).await?.is_some() {
                    return Ok::<_, FdbError>(());
                }
                trx.set(&marker, b"");
                trx.atomic_op(b"count", &1u64.to_le_bytes(), MutationType::Add);
                Ok(())
            }
        })
        .await
        .unwrap();
    }
    let trx = db.create_trx().unwrap();
    let count = trx.get(b"count", false).await.unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(count.try_into().unwrap()), 200);
    let counts = db.fault_counts();
    println!("{counts:?}");
    assert!(counts.unknown_applied > 0 && counts.unknown_not_applied > 0);
    assert!(counts.not_committed > 0 && counts.too_old > 0);
}

const CHILD_DIR: &str = "SEKAI_CRASH_CHILD_DIR";

/// The child side of the crash test: commits keys in a loop and prints each acknowledged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let db = EmbeddedDatabase::open(&dir).unwrap();
    let start: u64 = std::env::var("SEKAI_CRASH_START").unwrap().parse().unwrap();
    let mut tasks = Vec::new();
    for lane in 0..4u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let n = start + i * 4 + lane;
                let trx = db.create_trx().unwrap();
                trx.set(format!("ack/{n:012}").as_bytes(), &n.to_le_bytes());
                trx.commit().await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {n}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn sigkill_loses_nothing_acknowledged() {
    let seed: u64 = std::env::var("SEKAI_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_125);
    println!("crash test seed {seed} (rerun with SEKAI_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<u64> = Vec::new();
    for round in 0..20u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env("SEKAI_CRASH_START", (round * 10_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (acks_tx, acks_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line
                    .strip_prefix("ACK ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    let _ = acks_tx.send(n);
                }
            }
        });
        let first = acks_rx.recv_timeout(Duration::from_secs(60));
        let kill_after = Duration::from_millis(rng.gen_range(0..300));
        std::thread::sleep(kill_after);
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let acks: Vec<u64> = first.into_iter().chain(acks_rx.try_iter()).collect();
        acknowledged.extend(acks.iter().copied());
        let db = EmbeddedDatabase::open(dir.path()).unwrap();
        let trx = db.create_trx().unwrap();
        for n in &acknowledged {
            let value = trx
                .get(format!("ack/{n:012}").as_bytes(), true)
                .await
                .unwrap();
            assert_eq!(
                value,
                Some(n.to_le_bytes().to_vec()),
                "round {round}: acknowledged {n} lost (seed {seed})"
            );
        }
        println!(
            "round {round}: killed after {kill_after:?}, {} acknowledged in total, all present",
            acknowledged.len()
        );
    }
    assert!(
        acknowledged.len() > 20,
        "the child committed too little to test anything"
    );
}

/// The journal keeps zeros written ahead of its end (the patched fjall in `vendor/`): a store
/// whose journal ran through many zeroed chunks, reopened, holds every commit, and so does one
/// reopened again after appending to a recovered journal (opened to append, never zeroed).
#[tokio::test]
async fn commits_survive_reopen_across_the_journal_zeroed_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let value = |n: u32| vec![(n % 251) as u8; 1024];
    let commit_range = |db: EmbeddedDatabase, range: std::ops::Range<u32>| async move {
        for n in range {
            let trx = db.create_trx().unwrap();
            trx.set(format!("z/{n:06}").as_bytes(), &value(n));
            trx.commit().await.unwrap();
        }
    };
    let check = |db: EmbeddedDatabase, count: u32| async move {
        let trx = db.create_trx().unwrap();
        for n in 0..count {
            let got = trx.get(format!("z/{n:06}").as_bytes(), true).await.unwrap();
            assert_eq!(got, Some(value(n)), "commit {n} of {count} lost");
        }
    };
    // About 1.3 MB of journal: several 256 KiB chunks of zeros written ahead, each overwritten.
    let first = 1_200;
    commit_range(EmbeddedDatabase::open(dir.path()).unwrap(), 0..first).await;
    let db = EmbeddedDatabase::open(dir.path()).unwrap();
    check(db.clone(), first).await;
    commit_range(db, first..first + 300).await;
    check(EmbeddedDatabase::open(dir.path()).unwrap(), first + 300).await;
}

/// With a commit interval, commits that arrive while a group is "open" share the next group:
/// one fsync and one commit version for all of them (FDB's commit batching), and each still
/// gets its own versionstamp.
#[tokio::test]
async fn commits_within_the_commit_interval_share_one_group() {
    let db = EmbeddedDatabase::temporary(EngineOptions {
        commit_interval: Duration::from_millis(500),
        ..EngineOptions::default()
    })
    .unwrap();
    // An idle engine commits at once; this group opens the interval.
    commit_stamped(&db).await;
    let before = db.stats();
    let commits = (0..20).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { commit_stamped(&db).await })
    });
    let mut stamps = Vec::new();
    for commit in commits.collect::<Vec<_>>() {
        stamps.push(commit.await.unwrap());
    }
    let after = db.stats();
    assert_eq!(after.commits - before.commits, 20);
    assert_eq!(
        after.fsyncs - before.fsyncs,
        1,
        "20 commits in one interval, one group"
    );
    let versions: std::collections::BTreeSet<_> = stamps.iter().map(|s| s[..8].to_vec()).collect();
    assert_eq!(versions.len(), 1, "one group, one commit version");
    let distinct: std::collections::BTreeSet<_> = stamps.iter().collect();
    assert_eq!(distinct.len(), 20, "each commit keeps its own versionstamp");
}

/// The committer remembers the values of keys atomic operations touched (its `counters`); a
/// set, a clear or a range clear in a later group must show through to the next atomic op, and
/// a reopened engine starts from the store.
#[tokio::test]
async fn atomic_ops_see_every_write_made_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let open = || EmbeddedDatabase::open(dir.path()).unwrap();
    let add = |n: u64| {
        move |trx: &sekai_layer::embedded::EmbeddedTransaction| {
            trx.atomic_op(b"c/k", &n.to_le_bytes(), MutationType::Add)
        }
    };
    async fn commit(
        db: &EmbeddedDatabase,
        write: impl Fn(&sekai_layer::embedded::EmbeddedTransaction),
    ) {
        let trx = db.create_trx().unwrap();
        write(&trx);
        trx.commit().await.unwrap();
    }
    async fn value(db: &EmbeddedDatabase) -> Option<u64> {
        let trx = db.create_trx().unwrap();
        trx.get(b"c/k", false)
            .await
            .unwrap()
            .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()))
    }
    let db = open();
    commit(&db, add(1)).await;
    commit(&db, add(2)).await;
    assert_eq!(value(&db).await, Some(3));
    commit(&db, |trx| trx.set(b"c/k", &10u64.to_le_bytes())).await;
    commit(&db, add(1)).await;
    assert_eq!(
        value(&db).await,
        Some(11),
        "a set between adds shows through"
    );
    commit(&db, |trx| trx.clear(b"c/k")).await;
    commit(&db, add(5)).await;
    assert_eq!(
        value(&db).await,
        Some(5),
        "a clear between adds shows through"
    );
    commit(&db, |trx| trx.clear_range(b"c/", b"c0")).await;
    commit(&db, add(7)).await;
    assert_eq!(
        value(&db).await,
        Some(7),
        "a range clear between adds shows through"
    );
    drop(db);
    let db = open();
    commit(&db, add(1)).await;
    assert_eq!(
        value(&db).await,
        Some(8),
        "a reopened engine adds to the stored value"
    );
}

/// Every file path under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// With a tiny memtable the store flushes and compacts over and over while commits and reads go
/// on: lsm-tree installs each new version (its list of tables) after persisting it with its lock
/// released (vendor/README.md, lsm-tree's third patch), so a memtable rotating meanwhile must
/// neither lose a sealed memtable nor resurrect one. Every commit reads back, during the run and
/// after a reopen. (Installing the persisted version without the rotated memtables fails this
/// test in every run: checked by hand, 3 of 3.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_and_compactions_lose_nothing_while_commits_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        memtable_bytes: 64 << 10,
        ..EngineOptions::default()
    };
    let value = |n: u32| format!("{n:08}").repeat(256).into_bytes();
    let key = |n: u32| format!("k/{n:06}").into_bytes();
    let total = 6_000;
    let db = EmbeddedDatabase::open_with(dir.path(), options).unwrap();
    for n in 0..total {
        let trx = db.create_trx().unwrap();
        trx.set(&key(n), &value(n));
        trx.set(b"hot", &n.to_be_bytes());
        trx.commit().await.unwrap();
        if n % 97 == 0 {
            let trx = db.create_trx().unwrap();
            for back in [0, n / 2, n.saturating_sub(1)] {
                let got = trx.get(&key(back), true).await.unwrap();
                assert_eq!(got, Some(value(back)), "commit {back} unreadable after {n}");
            }
            let hot = trx.get(b"hot", true).await.unwrap();
            assert_eq!(
                hot,
                Some(n.to_be_bytes().to_vec()),
                "the newest write of hot"
            );
        }
    }
    // The run must have flushed and compacted: tables written (ids are never reused) and some
    // of them merged away.
    let tables: Vec<u64> = files_under(dir.path())
        .iter()
        .filter(|path| path.parent().is_some_and(|dir| dir.ends_with("tables")))
        .filter_map(|path| path.file_name()?.to_str()?.parse().ok())
        .collect();
    let newest = tables.iter().copied().max().unwrap_or(0);
    assert!(
        newest >= 8 && (tables.len() as u64) <= newest,
        "expected flushes and compactions, found tables {tables:?}"
    );
    drop(db);
    let db = EmbeddedDatabase::open(dir.path()).unwrap();
    let trx = db.create_trx().unwrap();
    for n in 0..total {
        let got = trx.get(&key(n), true).await.unwrap();
        assert_eq!(
            got,
            Some(value(n)),
            "commit {n} of {total} lost after reopen"
        );
    }
    let hot = trx.get(b"hot", true).await.unwrap();
    assert_eq!(hot, Some((total - 1).to_be_bytes().to_vec()));
}
