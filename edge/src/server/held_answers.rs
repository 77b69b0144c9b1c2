//! Input answers held for the player's next push, so that one QUIC packet carries both.
//!
//! An input's answer is ready when its T1 commits; the delta that shows the input applied
//! follows a frame later, a millisecond or two after (when a processor of the same process
//! stored the input directly, the answer and the delta come from the same commit, and the
//! answer usually arrives first: the committer answers before it fires the watches). Written
//! at once, each would leave in its own packet (and the client would acknowledge each). So while the player has a streamed
//! subscription open, the input stream's writer hands its answers here and waits: the
//! subscription's push task writes them on the input stream right before its own message, in
//! the same task turn, so quinn's driver builds one packet for both. When no push comes within
//! the hold (`EdgeLimits::answer_hold`), the writer writes them itself.
//!
//! Invariants:
//! - answers reach the input stream in the order they were held, and before any answer held
//!   later: the writer waits for the held bytes to be gone before it holds or writes more;
//! - a push never waits on the input stream: it writes only what the stream takes at once (QUIC
//!   flow control may refuse); the writer then writes the rest at once, with its usual stall
//!   timeout;
//! - while the writer writes by itself, the stream is out of here ([`HeldAnswers::lend`]), so the
//!   two never write at once;
//! - an answer is held only while a streamed subscription of the player is open, and for at most
//!   the hold (plus the timer's millisecond granularity): a subscription with nothing to push, or
//!   whose stream is blocked, costs its player's answers that wait and nothing more; answers
//!   whose inputs' outcomes a push already wrote are not held (nothing is left to ride with);
//! - an error a push meets writing the answers is left for the writer to meet: the bytes stay
//!   held.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;

/// The answers of one player's input stream waiting for a push, and that stream.
#[derive(Default)]
pub struct HeldAnswers {
    /// The input stream's send half, while an input stream is open and its writer is not
    /// writing by itself.
    stream: RefCell<Option<quinn::SendStream>>,
    /// Encoded answers not yet written, oldest first.
    bytes: RefCell<Vec<u8>>,
    /// Streamed subscriptions of the player whose push task carries answers.
    carriers: Cell<usize>,
    /// Signalled when a push wrote what the input stream took of the held bytes.
    emptied: Notify,
    /// The highest seq whose outcome a push of the player wrote: answers through it have
    /// nothing left to ride with.
    pushed_through: Cell<u64>,
}

impl HeldAnswers {
    /// Whether answers through `seq` should be held: a streamed subscription is open to carry
    /// them, and has not already written the outcome of `seq` (an input stored directly is
    /// answered by the commit that applied it, and its delta may leave first).
    pub fn worth_holding(&self, seq: Option<u64>) -> bool {
        self.carriers.get() > 0 && seq.is_none_or(|seq| seq > self.pushed_through.get())
    }

    /// A push wrote the outcomes through `seq`.
    pub fn outcome_pushed(&self, seq: u64) {
        self.pushed_through.set(self.pushed_through.get().max(seq));
    }

    /// Counts a push task as a carrier until the returned guard drops.
    pub fn carrier(self: &std::rc::Rc<Self>) -> CarrierGuard {
        self.carriers.set(self.carriers.get() + 1);
        CarrierGuard(self.clone())
    }

    /// Hands the input stream over (its writer is about to hold answers, or is done writing by
    /// itself).
    pub fn give(&self, stream: quinn::SendStream) {
        debug_assert!(self.stream.borrow().is_none(), "one input stream at a time");
        *self.stream.borrow_mut() = Some(stream);
    }

    /// Takes the input stream back for the writer to write (or finish) by itself; `None` once
    /// nothing holds it.
    pub fn lend(&self) -> Option<quinn::SendStream> {
        self.stream.borrow_mut().take()
    }

    /// Holds `bytes` (the writer's next answers) for the next push, and waits until a push
    /// wrote what the stream took or `hold` passed; returns what is still held, for the writer
    /// to write.
    pub async fn hold(&self, bytes: Vec<u8>, hold: Duration) -> Vec<u8> {
        debug_assert!(
            self.bytes.borrow().is_empty(),
            "held answers are written first"
        );
        *self.bytes.borrow_mut() = bytes;
        let _ = tokio::time::timeout(hold, self.emptied.notified()).await;
        std::mem::take(&mut *self.bytes.borrow_mut())
    }

    /// Writes the held answers on the input stream, as much as it takes without waiting: a push
    /// calls this right before writing its own message, so both leave in one packet.
    pub fn carry(&self) {
        let mut bytes = self.bytes.borrow_mut();
        if bytes.is_empty() {
            return;
        }
        let mut stream = self.stream.borrow_mut();
        let Some(stream) = stream.as_mut() else {
            return;
        };
        while !bytes.is_empty() {
            match stream.write(&bytes).now_or_never() {
                Some(Ok(written)) if written > 0 => {
                    bytes.drain(..written);
                }
                // Flow control, or an error the writer will meet itself: it takes the rest now.
                _ => break,
            }
        }
        self.emptied.notify_waiters();
    }
}

/// Counts one push task as a carrier of held answers while it lives.
pub struct CarrierGuard(std::rc::Rc<HeldAnswers>);

impl Drop for CarrierGuard {
    fn drop(&mut self) {
        let carriers = &self.0.carriers;
        carriers.set(carriers.get().saturating_sub(1));
    }
}
