//! The push task of a streamed subscription (`Session.subscribeStream`): drains its outbox onto
//! the subscription's own QUIC unidirectional stream, with no answers to wait for.
//!
//! Invariants:
//! - the first message is `opened(tag)`; then the outbox's messages in order, each written whole
//!   before the next is built, so the client reads them in commit order;
//! - every delta waiting at the front of the outbox (at most
//!   [`MAX_DELTAS_PER_CALL`](super::push::MAX_DELTAS_PER_CALL)) goes in one
//!   message: one message per fan-out pass, not one per commit;
//! - backpressure is QUIC's flow control: while a write waits for the client to read, the backlog
//!   stays in the outbox, where it is coalesced within the budget, never in unbounded buffers;
//! - a write that makes no progress for `stall_timeout` resets the stream with
//!   [`STREAM_RESET_STALLED`] and ends the subscription, so a client that stopped reading costs at
//!   most its stream's flow-control window plus the outbox budget, and only for `stall_timeout`;
//! - the player's input answers held for a push ([`HeldAnswers`]) are written right before each
//!   message, in the same task turn, so one packet carries both;
//! - a reset from the fan-out is written, then the stream is finished; a closed slot (the client
//!   cancelled or dropped its subscription) finishes the stream; a failed write (the client
//!   stopped the stream or left) ends the subscription.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use sekai_model::stream::{encode, StreamMessage, STREAM_RESET_STALLED};
use sekai_model::wire::WireError;

use super::held_answers::HeldAnswers;
use super::push::{next_message, Next};
use crate::fanout::Slot;
use crate::session::Outbound;

/// Why a stream the edge writes ended early.
pub(super) enum End {
    /// No byte was accepted for the stall timeout.
    Stalled,
    /// The stream or connection is gone.
    Gone,
    /// A message did not encode.
    Unencodable(WireError),
}

/// Pushes a subscription's messages onto `stream` until it ends; then closes its slot.
pub async fn push_stream(
    slot: Arc<Slot>,
    mut stream: quinn::SendStream,
    tag: u64,
    stall_timeout: Duration,
    held: Rc<HeldAnswers>,
) {
    let carrier = held.carrier();
    let drained = drain(&slot, &mut stream, tag, stall_timeout, &held).await;
    drop(carrier);
    match drained {
        Ok(()) => {
            let _ = stream.finish();
        }
        Err(End::Stalled) => {
            tracing::info!(
                stall_ms = stall_timeout.as_millis() as u64,
                "resetting a stalled subscription stream"
            );
            let _ = stream.reset(STREAM_RESET_STALLED.into());
        }
        Err(End::Gone) => tracing::debug!("subscription stream gone; ending the subscription"),
        Err(End::Unencodable(error)) => {
            tracing::error!(%error, "a subscription's message does not encode; ending it");
            let _ = stream.reset(0u32.into());
        }
    }
    slot.close();
}

/// Writes `opened(tag)`, then the outbox's messages, until the slot closes or a reset was
/// written (`Ok`: finish the stream) or the stream fails.
async fn drain(
    slot: &Slot,
    stream: &mut quinn::SendStream,
    tag: u64,
    stall_timeout: Duration,
    held: &HeldAnswers,
) -> Result<(), End> {
    write(stream, encode(StreamMessage::Opened(tag)), stall_timeout).await?;
    loop {
        let next = loop {
            if slot.is_closed() {
                return Ok(());
            }
            if let Some(next) = next_message(slot, true) {
                break next;
            }
            slot.ready().await;
        };
        // The player's held input answers leave in the same packet as this message.
        held.carry();
        write(stream, encode_next(&next), stall_timeout).await?;
        if let Some(seq) = next.last_outcome_seq() {
            held.outcome_pushed(seq);
        }
        if matches!(next, Next::One(Outbound::Reset { .. })) {
            return Ok(());
        }
    }
}

/// Encodes the next outbox message as a stream message.
fn encode_next(next: &Next) -> Result<Vec<u8>, WireError> {
    match next {
        Next::Deltas(deltas) => encode(StreamMessage::Deltas(deltas)),
        Next::One(Outbound::Snapshot { entities, at }) => {
            encode(StreamMessage::Snapshot { entities, at })
        }
        Next::One(Outbound::Delta { stamp, delta }) => {
            encode(StreamMessage::Deltas(&[(*stamp, delta.clone())]))
        }
        Next::One(Outbound::Reset { reason }) => {
            tracing::info!(%reason, "resetting a subscription");
            encode(StreamMessage::Reset(reason))
        }
    }
}

/// Writes all of `encoded`, giving up when no byte is accepted for `stall_timeout`.
async fn write(
    stream: &mut quinn::SendStream,
    encoded: Result<Vec<u8>, WireError>,
    stall_timeout: Duration,
) -> Result<(), End> {
    let encoded = encoded.map_err(End::Unencodable)?;
    write_within(stream, &encoded, stall_timeout).await
}

/// Writes all of `bytes`, giving up when no byte is accepted for `stall_timeout`.
pub(super) async fn write_within(
    stream: &mut quinn::SendStream,
    mut bytes: &[u8],
    stall_timeout: Duration,
) -> Result<(), End> {
    while !bytes.is_empty() {
        // Almost every write is taken at once (the stream has flow-control credit): only one
        // that must wait arms the stall timer, so the common write costs no timer entry.
        let mut write = std::pin::pin!(stream.write(bytes));
        let written = match (&mut write).now_or_never() {
            Some(written) => written,
            None => match tokio::time::timeout(stall_timeout, write).await {
                Err(_) => return Err(End::Stalled),
                Ok(written) => written,
            },
        };
        match written {
            Err(_) => return Err(End::Gone),
            Ok(written) => bytes = &bytes[written..],
        }
    }
    Ok(())
}
