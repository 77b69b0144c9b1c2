//! An executable twin of `specs/WorldProtocol.tla`: the Sekai world protocol as a
//! [stateright](https://docs.rs/stateright) model, checked exhaustively by `cargo test`.
//!
//! The model refines the seed's `ExtendedWorldState.tla` (players, pending inputs, frame
//! number, frame log, entities) with what the real system adds:
//!
//! - **regions**, each with a lease `(holder, epoch)` in `lease/(region)`;
//! - **T1 behind the edge's input gate** ([`steps::inbox::submit_input`]): the gate stores
//!   only the seq after the highest it knows durable; T1 appends `(player, seq, input)` to
//!   the region's inbox under a versionstamp (kept in versionstamp order here) and raises
//!   `durable/(player)` with atomic MAX;
//! - **re-login** ([`steps::inbox::reconnect`]): login reports the durable record as
//!   `lastSeq`, the new session's gate starts there, and the client resends what it saw no
//!   acknowledgement for;
//! - **T2** ([`steps::processor::run_frame`]): the lease holder reads the lease, the inbox and
//!   the `applied/(region, player)` records in one transaction, applies each `(player, seq)`
//!   at most once and in seq order, appends a change-log delta and a frame record, clears what
//!   it consumed and bumps the frame number by one; the region's entities come from the
//!   processor's cache, which is why the lease epoch must be read in the same transaction;
//! - **`commit_unknown_result`** for T1 and T2: the commit applied or not, and the caller
//!   retries (a resent input may leave a duplicate inbox entry);
//! - **processor crash and lease takeover** (new epoch; a stale holder's T2 writes nothing);
//! - **edges**: a cursor per client, change-log trimming, and resume (replay from the cursor
//!   if nothing after it was trimmed, otherwise a snapshot).
//!
//! Entity state is kept small so conservation can be stated: one tree per region with hp,
//! wood in player inventories, wood on the ground.
//!
//! # Invariants
//!
//! Each is a stateright `always` property (see [`properties`]): `TypeOK`, `AtMostOnce`,
//! `PerPlayerOrder`, `AckedAppliedOrPending` (acknowledged inputs are applied or pending, so
//! eventually applied exactly once), `NoAckedLost`, `ContiguousFrames`, `Conservation`,
//! `HolderCacheCoherent`, `ViewMatchesDbWhenQuiet` and `NoGap`; plus the liveness property
//! `AllInputsEventuallyApplied`. Each [`Mutation`] removes one safeguard and the tests show
//! that the property it targets then fails.
//!
//! `specs/ci.sh` runs TLC on `WorldProtocol.tla` and requires it to count exactly the states
//! this model counts at the same constants ([`tlc`], `examples/states.rs`).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod action;
pub mod bounds;
pub mod check;
pub mod inputset;
pub mod model;
pub mod mutation;
pub mod properties;
pub mod state;
pub mod steps;
pub mod tlc;

pub use action::{Action, Outcome};
pub use bounds::{Bounds, InputKind};
pub use check::{check, Report};
pub use model::WorldModel;
pub use mutation::Mutation;
pub use state::State;
