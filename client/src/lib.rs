//! The Sekai client SDK, written against the edge protocol (`docs/PROTOCOL.md`), like any
//! Cap'n Proto client would be.
//!
//! - [`core`]: [`ClientCore`], the protocol logic without I/O (seqs, acknowledgements, resends
//!   after a login, mirrors of subscribed areas, an event queue a game loop polls once per
//!   frame); `Send`, so a game keeps it wherever it likes;
//! - [`backoff`]: when to try reconnecting again, without clocks;
//! - [`driver`] (feature `quinn`, on by default): [`EdgeClient`], the core driven over QUIC and
//!   Cap'n Proto RPC on tokio; [`streams`]: the reader of its subscriptions' unidirectional
//!   streams (`Session.subscribeStream`); [`inputs`]: its input stream (`Avatar.openInputs`);
//!   [`tls`]: its TLS configuration.
//!
//! The simulator drives the same [`ClientCore`] with modelled transport and time.
//!
//! ```
//! use sekai_client::{ClientCore, Event};
//! use sekai_model::Action;
//!
//! let mut core = ClientCore::new();
//! core.queue_events(true);
//! let seq = core.send(Action::Idle); // the driver sends it with this seq
//! core.on_accepted(seq);             // the edge's ack arrived
//! assert_eq!(core.poll_event(), Some(Event::Acked { seq }));
//! ```

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod backoff;
pub mod core;
#[cfg(feature = "quinn")]
pub mod driver;
#[cfg(feature = "quinn")]
pub mod inputs;
#[cfg(feature = "quinn")]
pub mod streams;
#[cfg(feature = "quinn")]
pub mod tls;

pub use backoff::{overload_wait, Backoff, ReconnectPolicy, OVERLOAD_BACKOFF};
pub use core::{ClientCore, Event, Mirror, Resume, SubId};
#[cfg(feature = "quinn")]
pub use driver::{
    client_endpoint, client_endpoint_on, start_rpc, ClientConfig, ClientError, EdgeClient,
    MirrorEvent, SubscriptionHandle, ACK_TIMEOUT,
};
