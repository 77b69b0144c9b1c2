//! The session logic as state machines without I/O (in the manner of `quinn-proto`): the
//! server feeds them events and a virtual clock and carries out what they decide.
//!
//! - [`input`]: sequence numbers and the rate limit of one session's inputs;
//! - [`subscriber`]: one subscription's filter, cursor and seen set;
//! - [`outbox`]: its bounded, coalescing outbound queue;
//! - [`rate`]: the token bucket;
//! - [`avatar`]: where the session's avatar is;
//! - [`shedding`]: when the edge refuses inputs to keep the ones it takes fast.

pub mod avatar;
pub mod input;
pub mod outbox;
pub mod rate;
pub mod shedding;
pub mod subscriber;

pub use avatar::AvatarLocation;
pub use input::{Admission, InputError, InputGate, InputLimits};
pub use outbox::{Outbound, Outbox};
pub use rate::TokenBucket;
pub use shedding::{InputTiming, ShedConfig, Shedder};
pub use subscriber::Subscriber;
