//! Exhaustive breadth-first checks of the unmutated protocol.
//!
//! Each test prints its bounds and the number of states explored, asserts that no `always`
//! or `eventually` property has a counterexample, and that every `sometimes` property was
//! reached (so the bounds really exercise duplicates, stale holders, trims and resends of
//! inputs a re-login reported durable).

use sekai_specs::check::property_names;
use sekai_specs::{check, Bounds, WorldModel};

/// Checks the protocol at `bounds` and asserts the outcome; `expected` lists the `sometimes`
/// properties these bounds must reach.
fn check_protocol(label: &str, bounds: Bounds, expected: &[&str]) {
    let model = WorldModel::new(bounds.clone());
    let failures = property_names(&model, true);
    let start = std::time::Instant::now();
    let report = check(model, None);
    println!("[{label}] bounds: {bounds}");
    println!(
        "[{label}] explored {} distinct states ({} generated, max depth {}) in {:.1?}",
        report.unique_states,
        report.total_states,
        report.max_depth,
        start.elapsed()
    );
    for name in failures {
        let trace = report.discoveries.get(name);
        assert!(trace.is_none(), "[{label}] {name} violated: {trace:#?}");
        println!("[{label}]   holds: {name}");
    }
    for name in expected {
        assert!(report.found(name), "[{label}] never reached: {name}");
        println!("[{label}]   reached: {name}");
    }
}

use sekai_specs::properties::names::{
    SOMETIMES_CURSOR_BEHIND_TRIM as TRIM, SOMETIMES_DUPLICATE_INBOX_ENTRY as DUP,
    SOMETIMES_DURABLE_RESEND as RESEND, SOMETIMES_STALE_HOLDER as STALE,
};

#[test]
fn two_regions_with_crash_takeover_and_unknown_results() {
    check_protocol("small", Bounds::small(), &[DUP, RESEND, STALE]);
}

#[test]
fn one_region_with_every_fault_including_edge_faults() {
    check_protocol(
        "edge_faults",
        Bounds::edge_faults(),
        &[DUP, RESEND, STALE, TRIM],
    );
}

#[test]
fn two_players_racing_for_one_wood() {
    check_protocol("shared_tree", Bounds::shared_tree(), &[DUP, RESEND, TRIM]);
}

/// The largest bounds (about a minute in a debug build): every fault, two regions.
#[test]
fn two_regions_with_every_fault() {
    check_protocol("large", Bounds::large(), &[DUP, RESEND, STALE, TRIM]);
}
