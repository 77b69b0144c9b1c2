//! [`WorldModel`]: the world protocol as a stateright [`Model`].

use stateright::{Model, Property};

use crate::action::{Action, Outcome};
use crate::bounds::Bounds;
use crate::mutation::Mutation;
use crate::properties::{self as p, names};
use crate::state::State;
use crate::steps::{edge, inbox, lease, processor};

/// The world protocol at some bounds, possibly with a deliberate bug.
#[derive(Clone, Debug)]
pub struct WorldModel {
    /// Sizes and fault budgets.
    pub bounds: Bounds,
    /// The deliberate bug, or [`Mutation::None`].
    pub mutation: Mutation,
}

impl WorldModel {
    /// The protocol as specified, at `bounds`.
    pub fn new(bounds: Bounds) -> Self {
        WorldModel {
            bounds,
            mutation: Mutation::None,
        }
    }

    /// The same model with `mutation` applied.
    pub fn with_mutation(self, mutation: Mutation) -> Self {
        WorldModel { mutation, ..self }
    }
}

impl Model for WorldModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial(&self.bounds)]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        let b = &self.bounds;
        for (player, client) in (0..b.players).zip(&state.players) {
            let inputs = client
                .retry
                .iter()
                .map(|n| n.input)
                .chain(Some(client.next_input).filter(|&i| i <= b.inputs_per_player));
            for input in inputs {
                for outcome in Outcome::ALL {
                    actions.push(Action::SubmitInput {
                        player,
                        input,
                        outcome,
                    });
                }
            }
            actions.push(Action::Reconnect { player });
        }
        for processor in 0..b.processors {
            for region in 0..b.regions {
                for outcome in Outcome::ALL {
                    actions.push(Action::RunFrame {
                        processor,
                        region,
                        outcome,
                    });
                }
                actions.push(Action::Reload { processor, region });
                actions.push(Action::Acquire { processor, region });
                actions.push(Action::Takeover { processor, region });
            }
            actions.push(Action::Crash { processor });
        }
        for client in 0..b.watchers {
            actions.push(Action::Deliver { client });
            actions.push(Action::Disconnect { client });
            actions.push(Action::Resume { client });
        }
        for region in 0..b.regions {
            actions.push(Action::Trim { region });
        }
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        match action {
            Action::SubmitInput {
                player,
                input,
                outcome,
            } => inbox::submit_input(self, state, player, input, outcome),
            Action::Reconnect { player } => inbox::reconnect(self, state, player),
            Action::RunFrame {
                processor: q,
                region,
                outcome,
            } => processor::run_frame(self, state, q, region, outcome),
            Action::Reload { processor, region } => lease::reload(self, state, processor, region),
            Action::Acquire { processor, region } => lease::acquire(self, state, processor, region),
            Action::Takeover { processor, region } => {
                lease::takeover(self, state, processor, region)
            }
            Action::Crash { processor } => lease::crash(self, state, processor),
            Action::Deliver { client } => edge::deliver(self, state, client),
            Action::Disconnect { client } => edge::disconnect(self, state, client),
            Action::Resume { client } => edge::resume(self, state, client),
            Action::Trim { region } => edge::trim(self, state, region),
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(names::TYPE_OK, p::type_ok),
            Property::always(names::AT_MOST_ONCE, p::at_most_once),
            Property::always(names::PER_PLAYER_ORDER, p::per_player_order),
            Property::always(names::ACKED_APPLIED_OR_PENDING, p::acked_applied_or_pending),
            Property::always(names::NO_ACKED_LOST, p::no_acked_lost),
            Property::always(names::CONTIGUOUS_FRAMES, p::contiguous_frames),
            Property::always(names::CONSERVATION, p::conservation),
            Property::always(names::HOLDER_CACHE_COHERENT, p::holder_cache_coherent),
            Property::always(
                names::VIEW_MATCHES_DB_WHEN_QUIET,
                p::view_matches_db_when_quiet,
            ),
            Property::always(names::NO_GAP, p::no_gap),
            Property::eventually(names::ALL_INPUTS_EVENTUALLY_APPLIED, p::all_inputs_applied),
            Property::sometimes(
                names::SOMETIMES_DUPLICATE_INBOX_ENTRY,
                p::duplicate_inbox_entry,
            ),
            Property::sometimes(names::SOMETIMES_STALE_HOLDER, p::stale_holder),
            Property::sometimes(names::SOMETIMES_CURSOR_BEHIND_TRIM, p::cursor_behind_trim),
            Property::sometimes(names::SOMETIMES_DURABLE_RESEND, p::durable_resend),
        ]
    }
}
