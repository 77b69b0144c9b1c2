//! An input stream (`Avatar.openInputs`): the client writes `InputMessage`s on a QUIC
//! bidirectional stream the edge opened, and the edge writes back `InputAnswer`s, one per T1
//! commit rather than one per input, with no call, answer or finish message per input.
//!
//! Two halves: a reader task admits each input through the avatar's gate and queues it for T1
//! in order (exactly as `Avatar.send` does), handing the future of its answer to the writer; the
//! writer awaits the answers in input order and writes every one that is ready in one write,
//! consecutive acceptances folded into one (`input_stream::coalesce`). While the player has a
//! streamed subscription, that write waits briefly for the subscription's next push, which
//! carries it in the same packet ([`HeldAnswers`]).
//!
//! Invariants:
//! - the first message is `opened(tag)`; answers follow in the order of the inputs, so each
//!   answers the oldest unanswered inputs (the client needs no seq bookkeeping beyond a queue);
//! - an input is accepted only once it is durable (the answer future resolves after the
//!   batcher's T1, or the frame that stored it directly, committed), like `Avatar.send`'s
//!   acknowledgement;
//! - the reader runs at most [`MAX_UNANSWERED`] inputs ahead of the writer (queued for it, not
//!   counting those the writer is answering); past that it stops reading and QUIC's flow control
//!   holds the client back, so a client cannot queue unbounded work;
//! - a stream that cannot be read on (malformed framing, a failed T1) gets `closed(reason)` and
//!   is finished; one that stops making progress (the client reads no answers for the stall
//!   timeout, or the stream is gone) is reset; in every such end the session is broken (its gate
//!   and its batcher mark) *before* the reader stops, because an admitted input may be left
//!   unqueued: no later input of the session is stored after it (`Avatar::submit` checks again
//!   once it holds the turn), so no gap can open behind an answer; the client must log in again
//!   and resend above `lastSeq`;
//! - the client finishing its side ends the stream cleanly once every input read is answered;
//! - an avatar has at most one input stream open at a time (a second `openInputs` is refused
//!   while one is open), so a client cannot make the edge hold unbounded streams and tasks;
//! - nothing read from the network panics; a bad stream never touches other sessions.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use capnp::message::ReaderOptions;
use futures::FutureExt;
use sekai_layer::kv::Database;
use sekai_model::input_stream::{coalesce, encode_answer, read_input_message, InputAnswer};
use sekai_model::stream::STREAM_RESET_STALLED;
use sekai_schema::edge_capnp::input_message;
use sekai_schema::PlayerId;
use tokio::sync::mpsc;

use super::held_answers::HeldAnswers;
use super::rpc::Avatar;
use super::stream_push::{write_within, End};
use super::EdgeLimits;

/// The most inputs of one stream waiting for their answer.
pub const MAX_UNANSWERED: usize = 256;

/// Largest input message read, in words: an input is a few dozen bytes.
const MAX_INPUT_WORDS: usize = 1024;

/// The future of one input's answer.
type Answering = Pin<Box<dyn Future<Output = InputAnswer>>>;

/// Serves one input stream of `avatar` until it ends.
pub async fn serve_inputs<D: Database>(
    avatar: Rc<Avatar<D>>,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    tag: u64,
    limits: EdgeLimits,
) {
    let (answers_tx, mut answers) = mpsc::channel(MAX_UNANSWERED);
    let reader = tokio::task::spawn_local(read_inputs(avatar.clone(), recv, answers_tx));
    let held = avatar.held_answers();
    held.give(send);
    let ended = write_answers(held, tag, &mut answers, &limits).await;
    if !matches!(ended, Ok(true)) {
        // Before the reader stops: an input it admitted but had not queued yet must not be
        // overtaken by a later one (the batcher and the gate refuse everything from now on).
        avatar.break_session();
    }
    reader.abort();
    let send = held.lend();
    avatar.input_stream_ended();
    let Some(mut send) = send else {
        return;
    };
    match ended {
        Ok(_) => {
            let _ = send.finish();
        }
        Err(End::Stalled) => {
            tracing::info!(player = avatar.player(), "resetting a stalled input stream");
            let _ = send.reset(STREAM_RESET_STALLED.into());
        }
        Err(End::Gone | End::Unencodable(_)) => {
            tracing::debug!(player = avatar.player(), "input stream gone")
        }
    }
}

/// Reads the client's inputs, admitting each and handing the future of its answer to the
/// writer, until the client finishes (clean) or the stream breaks (a final `closed` answer).
async fn read_inputs<D: Database>(
    avatar: Rc<Avatar<D>>,
    mut recv: quinn::RecvStream,
    answers: mpsc::Sender<Answering>,
) {
    let options = *ReaderOptions::new().traversal_limit_in_words(Some(MAX_INPUT_WORDS));
    loop {
        let message = match capnp_futures::serialize::try_read_message(&mut recv, options).await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            // The connection's end is not the stream's fault: nothing to answer.
            Err(_) if avatar.connection().close_reason().is_some() => return,
            Err(error) => {
                let reason = format!("malformed input stream: {error}; log in again");
                return close(&answers, avatar.player(), reason).await;
            }
        };
        let (seq, input) = match message.get_root::<input_message::Reader<'_>>() {
            Ok(root) => (root.get_seq(), read_input_message(avatar.player(), root)),
            Err(error) => {
                // Not even a seq to refuse by: the stream cannot go on.
                let reason = format!("unreadable input message: {error}; log in again");
                return close(&answers, avatar.player(), reason).await;
            }
        };
        let pending = avatar.submit(seq, input).await;
        let settle = avatar.clone();
        if answers
            .send(Box::pin(async move { settle.settle(pending).await }))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Hands the writer a final `closed(reason)`: the reader reads no more.
async fn close(answers: &mpsc::Sender<Answering>, player: PlayerId, reason: String) {
    tracing::warn!(player, %reason, "closing an input stream");
    let answer: Answering = Box::pin(std::future::ready(InputAnswer::Closed(reason)));
    let _ = answers.send(answer).await;
}

/// Writes `opened(tag)`, then the answers in order (everything ready in one write, held for
/// the player's next push while one can carry it) until the reader is done: `Ok(true)` when the
/// client finished its side and everything was answered, `Ok(false)` after a `closed` answer.
async fn write_answers(
    held: &HeldAnswers,
    tag: u64,
    answers: &mut mpsc::Receiver<Answering>,
    limits: &EdgeLimits,
) -> Result<bool, End> {
    let stall_timeout = limits.stall_timeout;
    write_myself(
        held,
        &encode_answer(&InputAnswer::Opened(tag)),
        stall_timeout,
    )
    .await?;
    let mut next: Option<Answering> = None;
    loop {
        let first = match next.take() {
            Some(answering) => answering,
            None => match answers.recv().await {
                Some(answering) => answering,
                None => return Ok(true),
            },
        };
        let mut ready = vec![first.await];
        // Every answer already settled goes in the same write (a T1 commit answers many).
        while let Ok(mut answering) = answers.try_recv() {
            match (&mut answering).now_or_never() {
                Some(answer) => ready.push(answer),
                None => {
                    next = Some(answering);
                    break;
                }
            }
        }
        // Nothing follows a `closed` answer.
        let closed = ready
            .iter()
            .position(|a| matches!(a, InputAnswer::Closed(_)));
        if let Some(at) = closed {
            ready.truncate(at + 1);
        }
        let accepted_through = ready
            .iter()
            .filter_map(|a| match a {
                InputAnswer::Accepted(seq) => Some(*seq),
                _ => None,
            })
            .max();
        let mut bytes: Vec<u8> = coalesce(ready).iter().flat_map(encode_answer).collect();
        if closed.is_none() && held.worth_holding(accepted_through) {
            bytes = held.hold(bytes, limits.answer_hold).await;
        }
        if !bytes.is_empty() {
            write_myself(held, &bytes, stall_timeout).await?;
        }
        if closed.is_some() {
            return Ok(false);
        }
    }
}

/// Writes `bytes` on the input stream by the writer itself (no push can write meanwhile).
async fn write_myself(
    held: &HeldAnswers,
    bytes: &[u8],
    stall_timeout: Duration,
) -> Result<(), End> {
    let Some(mut stream) = held.lend() else {
        return Err(End::Gone);
    };
    let written = write_within(&mut stream, bytes, stall_timeout).await;
    held.give(stream);
    written
}
