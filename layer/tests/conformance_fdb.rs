//! The KV conformance suite on FoundationDB, where a cluster exists.
//!
//! Runs when `FDB_CLUSTER_FILE` names a cluster file (and `libfdb_c` ≥ 7.3 is installed);
//! otherwise prints "skipped: FDB_CLUSTER_FILE not set". One test function runs every case
//! in turn, each under its own key prefix (cleared at the end), because the FDB network is
//! booted once per process and must be stopped before the process exits.
#![cfg(feature = "fdb")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sekai_layer::fdb_backend::{shutdown_network, FdbDatabase};
use sekai_layer::kv::conformance::Harness;
use sekai_layer::kv::{run as run_trx, strinc, FdbError, Transaction};

struct Fdb {
    db: FdbDatabase,
    prefix: Vec<u8>,
}

impl Harness for Fdb {
    type Db = FdbDatabase;

    fn db(&self) -> &FdbDatabase {
        &self.db
    }

    fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    async fn age_past_mvcc_window(&self) {
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_foundationdb() {
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
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let make = |case: &str| {
        let harness = Fdb {
            db: db.clone(),
            prefix: format!("sekai-conformance/{run}/{case}/").into_bytes(),
        };
        async move { harness }
    };
    let mut failures = sekai_layer::conformance_run_all!(make).await;
    let prefix = format!("sekai-conformance/{run}/").into_bytes();
    let cleared = run_trx(&db, |trx, _| {
        let (begin, end) = (prefix.clone(), strinc(&prefix).unwrap_or_default());
        async move {
            trx.clear_range(&begin, &end);
            Ok::<_, FdbError>(())
        }
    })
    .await;
    if let Err(error) = cleared {
        failures.push(format!("clean-up: {error}"));
    }
    drop(db);
    shutdown_network();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
