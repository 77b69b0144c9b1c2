//! The push task of one subscription: drains its outbox into the client's `DeltaSink`.
//!
//! Invariants:
//! - messages are sent in outbox order; each request is sent (`send()`) before the next is
//!   built, and Cap'n Proto delivers calls on one capability in the order they were sent;
//! - a batched subscription gets every delta waiting at the front of its outbox (at most
//!   [`MAX_DELTAS_PER_CALL`]) in one `deltas` call: one message per pass, not one per commit;
//! - at most `window` calls are unanswered at a time, so a slow client's backlog stays in its
//!   outbox, where it is coalesced within the budget, never in unbounded RPC buffers;
//! - a failed call (client gone or its sink refused) or a reset ends the subscription;
//! - a stalled client ends its subscription: when the window is full and no call was answered
//!   for `stall_timeout` (counted from the last answer, or from the moment calls started
//!   flowing after an idle spell), the edge sends a `reset` with [`stall_reason`] without
//!   waiting for its answer and stops pushing, so a client that stopped answering its sink or
//!   reading its stream costs at most `window` calls plus the outbox budget, and only for
//!   `stall_timeout`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use sekai_schema::edge_capnp::delta_sink;

use crate::fanout::Slot;
use crate::session::Outbound;
use sekai_model::wire::{fill_delta, fill_deltas, fill_snapshot};

/// The most deltas one `DeltaSink.deltas` call carries.
pub const MAX_DELTAS_PER_CALL: usize = 256;

/// The reason of the reset sent to a stalled subscription (see the module's invariants).
pub fn stall_reason(window: usize, stall_timeout: Duration) -> String {
    format!(
        "client stalled: none of the {window} unanswered sink calls was answered within {} ms",
        stall_timeout.as_millis()
    )
}

/// Pushes a subscription's messages until it ends; then closes its slot. With `batched`,
/// consecutive deltas go in one `deltas` call; a client that leaves a full window unanswered
/// for `stall_timeout` is reset.
pub async fn push(
    slot: Arc<Slot>,
    sink: delta_sink::Client,
    window: usize,
    batched: bool,
    stall_timeout: Duration,
) {
    let mut inflight: FuturesOrdered<LocalBoxFuture<'static, Result<(), capnp::Error>>> =
        FuturesOrdered::new();
    let mut ending = false;
    // The last answer, or when calls started flowing again after the window was empty.
    let mut progress = tokio::time::Instant::now();
    loop {
        if slot.is_closed() {
            break;
        }
        if inflight.is_empty() {
            progress = tokio::time::Instant::now();
        }
        while !ending && inflight.len() < window.max(1) {
            match next_message(&slot, batched) {
                None => break,
                Some(Next::Deltas(deltas)) => inflight.push_back(send_deltas(&sink, &deltas)),
                Some(Next::One(item)) => {
                    ending = matches!(item, Outbound::Reset { .. });
                    inflight.push_back(send(&sink, item));
                }
            }
        }
        if inflight.is_empty() {
            if ending {
                break;
            }
            slot.ready().await;
            continue;
        }
        let full = !ending && inflight.len() >= window.max(1);
        let answered = {
            let ready = Box::pin(slot.ready());
            let stalled = Box::pin(async move {
                if full {
                    tokio::time::sleep_until(progress + stall_timeout).await;
                } else {
                    futures::future::pending::<()>().await;
                }
            });
            match select(inflight.next(), select(ready, stalled)).await {
                Either::Left((answer, _)) => answer,
                Either::Right((Either::Left(_), _)) => None,
                Either::Right((Either::Right(_), _)) => {
                    let reason = stall_reason(window.max(1), stall_timeout);
                    tracing::info!(%reason, "resetting a stalled subscription");
                    // Not awaited: a stalled client may never answer it.
                    let mut request = sink.reset_request();
                    request.get().set_reason(reason.as_str());
                    drop(request.send());
                    break;
                }
            }
        };
        match answered {
            Some(Err(error)) => {
                tracing::debug!(%error, "delta sink failed; ending the subscription");
                break;
            }
            Some(Ok(())) => progress = tokio::time::Instant::now(),
            None => {}
        }
    }
    slot.close();
}

/// The next message of a subscription: a batch of deltas, or one message of any kind.
pub(crate) enum Next {
    /// The deltas at the front of the outbox (at most [`MAX_DELTAS_PER_CALL`]), oldest first.
    Deltas(Vec<([u8; 10], sekai_layer::world::model::Delta)>),
    /// The next message, one of any kind.
    One(Outbound),
}

impl Next {
    /// The highest seq among the outcomes it carries (a subscriber keeps only its own player's).
    pub(crate) fn last_outcome_seq(&self) -> Option<u64> {
        let last = |delta: &sekai_layer::world::model::Delta| {
            delta.outcomes.iter().map(|outcome| outcome.seq).max()
        };
        match self {
            Next::Deltas(deltas) => deltas.iter().filter_map(|(_, delta)| last(delta)).max(),
            Next::One(Outbound::Delta { delta, .. }) => last(delta),
            Next::One(_) => None,
        }
    }
}

/// One look at a subscription's outbox: with `batched`, the deltas at its front, else (or when
/// none is at the front) its next message; `None` when it is empty.
pub(crate) fn next_message(slot: &Slot, batched: bool) -> Option<Next> {
    let mut subscriber = slot.lock();
    if batched {
        let deltas = subscriber.poll_deltas(MAX_DELTAS_PER_CALL);
        if !deltas.is_empty() {
            return Some(Next::Deltas(deltas));
        }
    }
    subscriber.poll_transmit().map(Next::One)
}

/// Sends `deltas` in one `deltas` call now; the returned future resolves with the answer.
fn send_deltas(
    sink: &delta_sink::Client,
    deltas: &[([u8; 10], sekai_layer::world::model::Delta)],
) -> LocalBoxFuture<'static, Result<(), capnp::Error>> {
    let mut request = sink.deltas_request();
    match fill_deltas(request.get(), deltas) {
        Ok(()) => request.send().promise.map(|r| r.map(drop)).boxed_local(),
        Err(error) => futures::future::ready(Err(error.into())).boxed_local(),
    }
}

/// Sends one message now; the returned future resolves with the client's answer.
fn send(
    sink: &delta_sink::Client,
    item: Outbound,
) -> LocalBoxFuture<'static, Result<(), capnp::Error>> {
    let sent = match item {
        Outbound::Snapshot { entities, at } => {
            let mut request = sink.snapshot_request();
            fill_snapshot(request.get(), &entities, &at)
                .map(|()| request.send().promise.map(|r| r.map(drop)).boxed_local())
        }
        Outbound::Delta { stamp, delta } => {
            let mut request = sink.delta_request();
            fill_delta(request.get(), &stamp, &delta)
                .map(|()| request.send().promise.map(|r| r.map(drop)).boxed_local())
        }
        Outbound::Reset { reason } => {
            tracing::info!(%reason, "resetting a subscription");
            let mut request = sink.reset_request();
            request.get().set_reason(reason.as_str());
            Ok(request.send().promise.map(|r| r.map(drop)).boxed_local())
        }
    };
    match sent {
        Ok(answer) => answer,
        Err(error) => futures::future::ready(Err(error.into())).boxed_local(),
    }
}
