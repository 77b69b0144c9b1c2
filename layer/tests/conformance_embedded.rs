//! The KV conformance suite on the embedded engine (a fresh temporary database per case), with
//! the committer thread (group commit) and with inline commits.

use sekai_layer::embedded::{EmbeddedDatabase, EngineOptions, ManualClock, MVCC_WINDOW_VERSIONS};
use sekai_layer::kv::conformance::Harness;

struct Embedded {
    db: EmbeddedDatabase,
    clock: ManualClock,
}

impl Harness for Embedded {
    type Db = EmbeddedDatabase;

    fn db(&self) -> &EmbeddedDatabase {
        &self.db
    }

    fn prefix(&self) -> &[u8] {
        b"conformance/"
    }

    async fn age_past_mvcc_window(&self) {
        self.clock.advance(MVCC_WINDOW_VERSIONS + 1);
    }
}

async fn embedded() -> Embedded {
    open(false)
}

fn open(inline_commits: bool) -> Embedded {
    let clock = ManualClock::default();
    let options = EngineOptions {
        manual_clock: Some(clock.clone()),
        inline_commits,
        ..EngineOptions::default()
    };
    Embedded {
        db: EmbeddedDatabase::temporary(options).expect("open temporary engine"),
        clock,
    }
}

sekai_layer::conformance_tests!(embedded());

/// The same suite with inline commits (the simulator's deterministic mode).
mod inline_commits {
    use super::*;

    async fn embedded_inline() -> Embedded {
        open(true)
    }

    sekai_layer::conformance_tests!(embedded_inline());
}
