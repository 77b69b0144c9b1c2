//! The client's input stream (`Avatar.openInputs`): inputs written as `InputMessage`s on the
//! QUIC bidirectional stream the edge opens, answers read back as `InputAnswer`s.
//!
//! Invariants: the edge answers inputs in the order they were written, so the unanswered inputs
//! form a queue and each answer settles its front (`accepted(n)`: every one through the first
//! whose seq is `n`; `refused`: the front one); an answer that does not fit the queue, a `closed`
//! answer, or the stream's end settles every unanswered input as a lost connection (the caller
//! reconnects and resends them) and marks the stream dead, so later sends fail at once; a write
//! cut off part-way (its future dropped) resets the stream and marks it dead, so no later message
//! is ever appended to half a frame; nothing read from the network panics.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use capnp::message::ReaderOptions;
use sekai_model::input_stream::{encode_input_message, read_answer, InputAnswer};
use sekai_model::Action;
use sekai_schema::edge_capnp::avatar;
use tokio::sync::oneshot;

use crate::driver::ClientError;

/// How an input was answered.
type Answer = Result<u64, ClientError>;

/// Inputs written and not answered yet, oldest first.
type Unanswered = Rc<RefCell<VecDeque<(u64, oneshot::Sender<Answer>)>>>;

/// An open input stream.
pub struct InputStream {
    send: tokio::sync::Mutex<quinn::SendStream>,
    unanswered: Unanswered,
    /// Set once the stream can carry no more inputs (it ended, broke, or a write was cut off).
    dead: Rc<Cell<bool>>,
}

/// Resets the stream and marks it dead unless the write it guards completed.
struct WriteGuard<'a> {
    send: &'a mut quinn::SendStream,
    dead: &'a Cell<bool>,
    done: bool,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.dead.set(true);
            let _ = self.send.reset(0u32.into());
        }
    }
}

impl InputStream {
    /// Asks the edge for an input stream with `tag` through `avatar` and accepts it on
    /// `connection`; its answers are read by a task of the current `LocalSet`.
    pub async fn open(
        connection: &quinn::Connection,
        avatar: &avatar::Client,
        tag: u64,
        options: ReaderOptions,
    ) -> Result<Self, ClientError> {
        let mut request = avatar.open_inputs_request();
        request.get().set_tag(tag);
        request.send().promise.await?;
        let (send, mut recv) = connection.accept_bi().await?;
        match next(&mut recv, options).await {
            Ok(Some(InputAnswer::Opened(opened))) if opened == tag => {}
            other => {
                let _ = recv.stop(crate::streams::STREAM_STOP_PROTOCOL.into());
                return Err(ClientError::InputStream(format!(
                    "the input stream did not start with `opened({tag})`: {other:?}"
                )));
            }
        }
        let unanswered = Unanswered::default();
        let dead = Rc::new(Cell::new(false));
        tokio::task::spawn_local(read_answers(
            recv,
            unanswered.clone(),
            dead.clone(),
            options,
        ));
        Ok(Self {
            send: tokio::sync::Mutex::new(send),
            unanswered,
            dead,
        })
    }

    /// Writes input `seq` and waits for its answer: its seq once durable, or why it was refused
    /// or could not be answered.
    pub async fn send(&self, seq: u64, action: &Action) -> Answer {
        let bytes = encode_input_message(seq, action)?;
        let (answer, answered) = oneshot::channel();
        let mut send = self.send.lock().await;
        if self.dead.get() {
            return Err(ClientError::InputStream(
                "the input stream is closed".into(),
            ));
        }
        self.unanswered.borrow_mut().push_back((seq, answer));
        let mut guard = WriteGuard {
            send: &mut send,
            dead: &self.dead,
            done: false,
        };
        let written = guard.send.write_all(&bytes).await;
        guard.done = written.is_ok();
        drop(guard);
        if let Err(error) = written {
            return Err(ClientError::InputStream(error.to_string()));
        }
        drop(send);
        answered.await.unwrap_or_else(|_| {
            Err(ClientError::InputStream(
                "the input stream ended before the answer".into(),
            ))
        })
    }
}

/// Settles the unanswered inputs from the edge's answers until the stream ends; then settles
/// the rest as lost.
async fn read_answers(
    mut recv: quinn::RecvStream,
    unanswered: Unanswered,
    dead: Rc<Cell<bool>>,
    options: ReaderOptions,
) {
    let reason = loop {
        match next(&mut recv, options).await {
            Ok(Some(answer)) => {
                if let Err(reason) = settle(&unanswered, answer) {
                    let _ = recv.stop(crate::streams::STREAM_STOP_PROTOCOL.into());
                    break reason;
                }
            }
            Ok(None) => break "the edge finished the input stream".to_string(),
            Err(error) => break format!("input stream broke: {error}"),
        }
    };
    dead.set(true);
    for (_, answer) in unanswered.borrow_mut().drain(..) {
        let _ = answer.send(Err(ClientError::InputStream(reason.clone())));
    }
}

/// Settles the front of `unanswered` with `answer`; `Err` when the stream cannot go on.
fn settle(unanswered: &Unanswered, answer: InputAnswer) -> Result<(), String> {
    let mut queue = unanswered.borrow_mut();
    match answer {
        InputAnswer::Accepted(through) => {
            if !queue.iter().any(|(seq, _)| *seq == through) {
                return Err(format!(
                    "the edge accepted seq {through}, which is not unanswered"
                ));
            }
            while let Some((seq, answer)) = queue.pop_front() {
                let _ = answer.send(Ok(seq));
                if seq == through {
                    break;
                }
            }
            Ok(())
        }
        InputAnswer::Refused { seq, reason } => match queue.pop_front() {
            Some((sent, answer)) if sent == seq => {
                let _ = answer.send(Err(ClientError::Refused { seq, reason }));
                Ok(())
            }
            other => Err(format!(
                "the edge refused seq {seq}, but the oldest unanswered is {:?}",
                other.map(|(sent, _)| sent)
            )),
        },
        InputAnswer::Closed(reason) => Err(format!("the edge closed the input stream: {reason}")),
        InputAnswer::Opened(_) => Err("a second `opened` on the input stream".into()),
    }
}

/// The next answer on `recv`; `None` once the edge finished the stream.
async fn next(
    recv: &mut quinn::RecvStream,
    options: ReaderOptions,
) -> Result<Option<InputAnswer>, ClientError> {
    match capnp_futures::serialize::try_read_message(recv, options).await? {
        None => Ok(None),
        Some(message) => Ok(Some(read_answer(message.get_root()?)?)),
    }
}
