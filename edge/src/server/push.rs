//! The push task of one subscription: drains its outbox into the client's `DeltaSink`.
//!
//! Invariants:
//! - messages are sent in outbox order; each request is sent (`send()`) before the next is
//!   built, and Cap'n Proto delivers calls on one capability in the order they were sent;
//! - at most `window` calls are unanswered at a time, so a slow client's backlog stays in its
//!   outbox, where it is coalesced within the budget, never in unbounded RPC buffers;
//! - a failed call (client gone or its sink refused) or a reset ends the subscription.

use std::sync::Arc;

use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use sekai_schema::edge_capnp::delta_sink;

use crate::fanout::Slot;
use crate::session::Outbound;
use crate::wire::{fill_delta, fill_snapshot};

/// Pushes a subscription's messages until it ends; then closes its slot.
pub async fn push(slot: Arc<Slot>, sink: delta_sink::Client, window: usize) {
    let mut inflight: FuturesOrdered<LocalBoxFuture<'static, Result<(), capnp::Error>>> =
        FuturesOrdered::new();
    let mut ending = false;
    loop {
        if slot.is_closed() {
            break;
        }
        while !ending && inflight.len() < window.max(1) {
            let Some(item) = slot.lock().poll_transmit() else {
                break;
            };
            ending = matches!(item, Outbound::Reset { .. });
            inflight.push_back(send(&sink, item));
        }
        if inflight.is_empty() {
            if ending {
                break;
            }
            slot.ready().await;
            continue;
        }
        let answered = {
            let ready = Box::pin(slot.ready());
            match select(inflight.next(), ready).await {
                Either::Left((answer, _)) => answer,
                Either::Right(((), _)) => None,
            }
        };
        if let Some(Err(error)) = answered {
            tracing::debug!(%error, "delta sink failed; ending the subscription");
            break;
        }
    }
    slot.close();
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
