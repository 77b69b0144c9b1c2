//! Each invariant can fail: a model with one deliberate bug ([`Mutation`]) must yield a
//! counterexample for the property that bug targets.

use sekai_specs::{check, Bounds, Mutation, WorldModel};

/// Checks `mutation` at `bounds`, stopping at the first counterexample of its target property.
fn assert_caught(mutation: Mutation, bounds: Bounds) {
    let Some(target) = mutation.breaks() else {
        return;
    };
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
mutation_test!(order_fails_with_high_water_mark, HighWaterMark, edge_faults);
mutation_test!(
    exactly_once_fails_when_gapped_inputs_are_cleared,
    ClearGapped,
    edge_faults
);
mutation_test!(
    no_acked_lost_fails_when_ack_precedes_commit,
    AckBeforeDurable,
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

#[test]
fn every_mutation_has_a_test_and_a_target() {
    assert_eq!(Mutation::ALL.len(), 10);
    assert!(Mutation::ALL.iter().all(|m| m.breaks().is_some()));
    assert!(Mutation::None.breaks().is_none());
}
