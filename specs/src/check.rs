//! Running the checker and summarising what it found.

use std::collections::{BTreeMap, BTreeSet};

use stateright::{Checker, HasDiscoveries, Model};

use crate::model::WorldModel;

/// The outcome of one exhaustive (breadth-first) check.
#[derive(Debug)]
pub struct Report {
    /// Distinct states visited.
    pub unique_states: usize,
    /// States generated, counting repeats.
    pub total_states: usize,
    /// The longest path explored.
    pub max_depth: usize,
    /// For each property with a discovery, the actions leading to it (a counterexample for
    /// `always` and `eventually` properties, an example for `sometimes` properties).
    pub discoveries: BTreeMap<&'static str, Vec<String>>,
}

impl Report {
    /// Whether `property` got a discovery.
    pub fn found(&self, property: &str) -> bool {
        self.discoveries.contains_key(property)
    }
}

/// Checks `model` breadth-first. With `stop_at`, checking stops as soon as that property has
/// a discovery (used for mutated models); without, it visits every reachable state.
pub fn check(model: WorldModel, stop_at: Option<&'static str>) -> Report {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut builder = model.checker().threads(threads);
    if let Some(name) = stop_at {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([name])));
    }
    let checker = builder.spawn_bfs().join();
    let discoveries = checker
        .discoveries()
        .into_iter()
        .map(|(name, path)| {
            let steps = path
                .into_actions()
                .iter()
                .map(|a| format!("{a:?}"))
                .collect();
            (name, steps)
        })
        .collect();
    Report {
        unique_states: checker.unique_state_count(),
        total_states: checker.state_count(),
        max_depth: checker.max_depth(),
        discoveries,
    }
}

/// The names of `model`'s properties whose discovery is a failure (`always`, `eventually`),
/// or, with `failures = false`, those whose discovery is expected (`sometimes`).
pub fn property_names(model: &WorldModel, failures: bool) -> Vec<&'static str> {
    model
        .properties()
        .into_iter()
        .filter(|p| p.expectation.discovery_is_failure() == failures)
        .map(|p| p.name)
        .collect()
}
