//! TLC on `WorldProtocol.tla` at tiny bounds: the spec as written passes and counts exactly the
//! twin's distinct and generated states, and textual copies of it with one deliberate bug each make TLC
//! report the invariant that bug breaks.
//!
//! Needs `java` and `tla2tools.jar`: the jar is `$TLA2TOOLS_JAR`, or `specs/.tlc/tla2tools.jar`
//! as `specs/ci.sh` leaves it. Without either, each test prints `skipped` and passes.
//! Also checks that the checked-in `.cfg` files set the bounds their comments claim.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sekai_specs::{check, tlc, Bounds, WorldModel};

const SPEC: &str = include_str!("../WorldProtocol.tla");

/// The invariants every cfg below checks (all of `WorldProtocol.tla`'s).
const INVARIANTS: &str = "INVARIANTS\n    TypeOK\n    AtMostOnce\n    PerPlayerOrder\n    \
    AckedAppliedOrPending\n    NoAckedLost\n    ContiguousFrames\n    Conservation\n    \
    HolderCacheCoherent\n    ViewMatchesDbWhenQuiet\n    NoGap\n";

/// One region, one player with two inputs, one processor; one unknown result per transaction
/// kind, one re-login and no other fault: a few hundred states, enough for duplicates, lost
/// acknowledgements and reused seqs.
fn tiny() -> Bounds {
    Bounds {
        regions: 1,
        players: 1,
        watchers: 1,
        processors: 1,
        inputs_per_player: 2,
        tree_hp: 1,
        t1_unknown: 1,
        t2_unknown: 1,
        crashes: 0,
        takeovers: 0,
        disconnects: 0,
        trims: 0,
        reconnects: 1,
    }
}

/// `java` and the jar, or `None` (with the reason printed) when either is missing.
fn tlc() -> Option<PathBuf> {
    let jar = std::env::var_os("TLA2TOOLS_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tlc/tla2tools.jar"));
    if !jar.is_file() {
        println!(
            "skipped: no tla2tools.jar at {} (run specs/ci.sh)",
            jar.display()
        );
        return None;
    }
    let java = Command::new("java").arg("-version").output();
    if !java.is_ok_and(|o| o.status.success()) {
        println!("skipped: java is not installed");
        return None;
    }
    Some(jar)
}

/// TLC runs one at a time (the tests of this file run in parallel otherwise).
static TLC_LOCK: Mutex<()> = Mutex::new(());

/// Runs TLC (one worker, no deadlock check) on `spec` at `bounds`, checking `invariants` (a
/// cfg `INVARIANTS` section), in a fresh temporary directory; returns TLC's output.
fn run_tlc(jar: &Path, name: &str, spec: &str, bounds: &Bounds, invariants: &str) -> String {
    let _one_at_a_time = TLC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("sekai-tlc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = format!("SPECIFICATION Spec\n{}{invariants}", bounds.tlc_constants());
    std::fs::write(dir.join("WorldProtocol.tla"), spec).expect("write spec");
    std::fs::write(dir.join("Tiny.cfg"), cfg).expect("write cfg");
    let output = Command::new("java")
        .current_dir(&dir)
        .args(["-XX:+UseParallelGC", "-cp"])
        .arg(jar)
        .args(["tlc2.TLC", "-workers", "1", "-deadlock", "-cleanup"])
        .args([
            "-metadir",
            "states",
            "-config",
            "Tiny.cfg",
            "WorldProtocol.tla",
        ])
        .output()
        .expect("run java");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    println!("[{name}] TLC output:\n{text}");
    text
}

/// `SPEC` with `find` (which must occur exactly once) replaced by `replace`.
fn mutate(find: &str, replace: &str) -> String {
    assert_eq!(
        SPEC.matches(find).count(),
        1,
        "mutation anchor not unique: {find}"
    );
    SPEC.replacen(find, replace, 1)
}

#[test]
fn tlc_passes_the_spec_and_agrees_with_the_twin() {
    let Some(jar) = tlc() else { return };
    let bounds = tiny();
    let out = run_tlc(&jar, "spec", SPEC, &bounds, INVARIANTS);
    assert!(out.contains("Model checking completed. No error has been found."));
    let (distinct, generated) = tlc::final_counts(&out).expect("TLC reported no state count");
    let twin = check(WorldModel::new(bounds.clone()), None);
    println!(
        "bounds {bounds}: TLC {distinct} distinct states, {generated} generated; twin {}, {}",
        twin.unique_states, twin.total_states
    );
    assert_eq!(
        (distinct, generated),
        (twin.unique_states, twin.total_states)
    );
}

/// Runs TLC on `SPEC` with `find` replaced by `replace`, checking only `invariant` (as the
/// twin's mutation tests stop at their target property), and asserts TLC reports it violated.
fn assert_tlc_catches(name: &str, find: &str, replace: &str, invariant: &str) {
    let Some(jar) = tlc() else { return };
    let invariants = format!("INVARIANT {invariant}\n");
    let out = run_tlc(&jar, name, &mutate(find, replace), &tiny(), &invariants);
    assert!(
        out.contains(&format!("Invariant {invariant} is violated")),
        "TLC did not report {invariant} for {name}"
    );
}

/// `Mutation::NoSeqCheck`: T2 applies every entry, so a duplicate left by a retried T1 is
/// applied twice.
#[test]
fn tlc_catches_no_seq_check() {
    assert_tlc_catches(
        "NoSeqCheck",
        "IN  IF e.seq = last + 1\n",
        "IN  IF TRUE\n",
        "AtMostOnce",
    );
}

/// `Mutation::AckBeforeDurable`: the edge acknowledges a T1 whose commit is unknown.
#[test]
fn tlc_catches_ack_before_durable() {
    assert_tlc_catches(
        "AckBeforeDurable",
        "/\\ IF Unknown(o)\n                   THEN /\\ retry'",
        "/\\ IF FALSE\n                   THEN /\\ retry'",
        "NoAckedLost",
    );
}

/// `Mutation::LastSeqIsApplied`: login reports the applied record, so a client reuses the
/// seq of an acknowledged input that is not applied yet, and T2 drops the new input.
#[test]
fn tlc_catches_last_seq_is_applied() {
    assert_tlc_catches(
        "LastSeqIsApplied",
        "LoginSeq(p) == durable[p]\n",
        "LoginSeq(p) == applied[Home(p)][p]\n",
        "AckedAppliedOrPending",
    );
}

/// The bounds a `.cfg` file next to the spec sets.
fn cfg_bounds(file: &str) -> Bounds {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect("read cfg");
    Bounds::from_tlc_cfg(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn cfg_files_set_the_bounds_they_claim() {
    assert_eq!(cfg_bounds("WorldProtocol.cfg"), Bounds::small());
    assert_eq!(cfg_bounds("WorldProtocolCI.cfg"), Bounds::small());
    let liveness = Bounds {
        regions: 1,
        players: 1,
        ..Bounds::large()
    };
    assert_eq!(cfg_bounds("WorldProtocolLiveness.cfg"), liveness);
}
