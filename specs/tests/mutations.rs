//! Each invariant can fail: a model with one deliberate bug ([`Mutation`]) must yield a
//! counterexample for the property that bug targets. The mutations of T2's gap handling are
//! equivalent to the protocol now that the edge's gate opens no gaps, and are checked to be.

use sekai_specs::check::property_names;
use sekai_specs::properties::names;
use sekai_specs::{check, Bounds, Mutation, WorldModel};

/// Checks `mutation` at `bounds`, stopping at the first counterexample of its target property.
fn assert_caught(mutation: Mutation, bounds: Bounds) {
    let Some(target) = mutation.breaks() else {
        panic!("{mutation:?} has no target property");
    };
    assert_breaks(mutation, bounds, target);
}

/// Checks `mutation` at `bounds`, stopping at the first counterexample of `target`.
fn assert_breaks(mutation: Mutation, bounds: Bounds, target: &'static str) {
    let model = WorldModel::new(bounds).with_mutation(mutation);
    let report = check(model, Some(target));
    let trace = report.discoveries.get(target);
    assert!(
        trace.is_some(),
        "{mutation:?} should violate {target}, but {} states passed",
        report.unique_states
    );
    println!(
        "{mutation:?} violates {target} after {} states; counterexample: {:#?}",
        report.unique_states,
        trace.map(Vec::as_slice).unwrap_or_default()
    );
}

macro_rules! mutation_test {
    ($name:ident, $mutation:ident, $bounds:ident) => {
        #[test]
        fn $name() {
            assert_caught(Mutation::$mutation, Bounds::$bounds());
        }
    };
}

mutation_test!(
    type_ok_fails_when_harvest_ignores_hp,
    HarvestDeadTree,
    shared_tree
);
mutation_test!(
    at_most_once_fails_without_seq_check,
    NoSeqCheck,
    edge_faults
);
mutation_test!(
    no_acked_lost_fails_when_ack_precedes_commit,
    AckBeforeDurable,
    edge_faults
);
mutation_test!(
    acked_input_lost_when_login_reports_applied_seq,
    LastSeqIsApplied,
    edge_faults
);
mutation_test!(
    gap_opens_when_the_gate_lets_seqs_skip_ahead,
    SkipAhead,
    edge_faults
);
mutation_test!(
    contiguous_frames_fails_when_empty_frames_skip_records,
    FrameSkip,
    edge_faults
);
mutation_test!(
    conservation_fails_without_lease_check,
    NoLeaseCheck,
    edge_faults
);
mutation_test!(
    cache_coherence_fails_when_unknown_t2_keeps_cache,
    UnknownKeepsCache,
    edge_faults
);
mutation_test!(
    view_fails_when_resume_ignores_cursor,
    ResumeWithoutCursor,
    edge_faults
);
mutation_test!(
    view_fails_when_replay_ignores_trim,
    ReplayIgnoresTrim,
    edge_faults
);

/// Further properties these mutations break, so that every property has a failing mutant
/// (`PerPlayerOrder` and the liveness property lost theirs when the gap mutants became
/// equivalent).
#[test]
fn order_fails_without_seq_check() {
    assert_breaks(
        Mutation::NoSeqCheck,
        Bounds::edge_faults(),
        names::PER_PLAYER_ORDER,
    );
}

#[test]
fn skipping_ahead_loses_an_acknowledged_input() {
    assert_breaks(
        Mutation::SkipAhead,
        Bounds::edge_faults(),
        names::NO_ACKED_LOST,
    );
}

#[test]
fn skipping_ahead_leaves_an_input_never_applied() {
    assert_breaks(
        Mutation::SkipAhead,
        Bounds::edge_faults(),
        names::ALL_INPUTS_EVENTUALLY_APPLIED,
    );
}

/// T2's gap handling is unreachable behind the gate: its mutants pass every property.
#[test]
fn gap_handling_mutants_are_equivalent_behind_the_gate() {
    for mutation in Mutation::EQUIVALENT {
        let model = WorldModel::new(Bounds::edge_faults()).with_mutation(mutation);
        let failures = property_names(&model, true);
        let report = check(model, None);
        for name in failures {
            let trace = report.discoveries.get(name);
            assert!(trace.is_none(), "{mutation:?} violates {name}: {trace:#?}");
        }
        println!(
            "{mutation:?}: every property holds ({} states)",
            report.unique_states
        );
    }
}

#[test]
fn every_mutation_has_a_test_and_a_target() {
    assert_eq!(Mutation::ALL.len(), 10);
    assert!(Mutation::ALL.iter().all(|m| m.breaks().is_some()));
    assert!(Mutation::EQUIVALENT.iter().all(|m| m.breaks().is_none()));
    assert!(Mutation::None.breaks().is_none());
}
