//! The messages of an input stream (`Avatar.openInputs`): the `InputMessage`s a client writes on
//! the QUIC bidirectional stream the edge opened, and the `InputAnswer`s the edge writes back,
//! each in Cap'n Proto stream framing.
//!
//! Invariants: an input is encoded and read through the same functions as `Avatar.send`'s
//! parameters (`wire::fill_send`, `wire::read_input`), so both paths mean the same; decoding
//! never panics on hostile input (every failure is a [`WireError`]).

use capnp::serialize;
use sekai_schema::edge_capnp::{input_answer, input_message};
use sekai_schema::PlayerId;

use crate::model::{Action, Input};
use crate::wire::{copy_action, read_input, WireError};

/// How the reason of an input refused by an overloaded edge starts (`Ack.error` or an input
/// stream's `refused`): the input was not stored and its seq is free again; send it again later
/// (docs/PROTOCOL.md §5, "Load shedding").
pub const OVERLOADED: &str = "overloaded";

/// Whether a refusal's `reason` is the edge shedding load (see [`OVERLOADED`]).
pub fn is_overloaded(reason: &str) -> bool {
    reason.starts_with(OVERLOADED)
}

/// One answer on an input stream, for the oldest inputs not answered yet.
#[derive(Clone, Debug, PartialEq)]
pub enum InputAnswer {
    /// The first message: the client's tag of the stream.
    Opened(u64),
    /// The oldest unanswered inputs, through the first one whose seq is this, are durable.
    Accepted(u64),
    /// The oldest unanswered input was refused (not stored).
    Refused {
        /// Its seq (it may be sent again).
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The edge reads no more of the stream; unanswered inputs may or may not be durable.
    Closed(String),
}

/// Encodes input `seq` with `action` as a framed `InputMessage`, ready to write on the stream.
pub fn encode_input_message(seq: u64, action: &Action) -> Result<Vec<u8>, WireError> {
    let mut builder = crate::codec::new_message();
    let mut root = builder.init_root::<input_message::Builder<'_>>();
    root.set_seq(seq);
    copy_action(action, |reader| root.set_action(reader))?;
    Ok(serialize::write_message_to_words(&builder))
}

/// Reads `player`'s input from a decoded `InputMessage` (refused when it has no action).
pub fn read_input_message(
    player: PlayerId,
    message: input_message::Reader<'_>,
) -> Result<Input, WireError> {
    if !message.has_action() {
        return Err(capnp::Error::failed("the input has no action".into()).into());
    }
    read_input(player, message.get_seq(), message.get_action()?)
}

/// Encodes `answer` as a framed `InputAnswer`.
pub fn encode_answer(answer: &InputAnswer) -> Vec<u8> {
    let mut builder = crate::codec::new_message();
    let mut root = builder.init_root::<input_answer::Builder<'_>>();
    match answer {
        InputAnswer::Opened(tag) => root.set_opened(*tag),
        InputAnswer::Accepted(seq) => root.set_accepted(*seq),
        InputAnswer::Refused { seq, reason } => {
            let mut refused = root.init_refused();
            refused.set_seq(*seq);
            refused.set_reason(reason.as_str());
        }
        InputAnswer::Closed(reason) => root.set_closed(reason.as_str()),
    }
    serialize::write_message_to_words(&builder)
}

/// Reads one decoded `InputAnswer`.
pub fn read_answer(message: input_answer::Reader<'_>) -> Result<InputAnswer, WireError> {
    let text = |t: capnp::Result<capnp::text::Reader<'_>>| -> Result<String, WireError> {
        Ok(t?.to_string().map_err(capnp::Error::from)?)
    };
    Ok(match message.which().map_err(capnp::Error::from)? {
        input_answer::Opened(tag) => InputAnswer::Opened(tag),
        input_answer::Accepted(seq) => InputAnswer::Accepted(seq),
        input_answer::Refused(refused) => InputAnswer::Refused {
            seq: refused.get_seq(),
            reason: text(refused.get_reason())?,
        },
        input_answer::Closed(reason) => InputAnswer::Closed(text(reason)?),
    })
}

/// Folds answers in input order into the fewest that mean the same: a run of acceptances with
/// strictly increasing seqs becomes its last one. `accepted(n)` settles the oldest unanswered
/// inputs through the first whose seq is `n`; within such a run `n` is only the last seq, so
/// the folded answer settles exactly the run (a resend of a lower, durable seq starts a new run).
pub fn coalesce(answers: impl IntoIterator<Item = InputAnswer>) -> Vec<InputAnswer> {
    let mut out: Vec<InputAnswer> = Vec::new();
    for answer in answers {
        if let (Some(InputAnswer::Accepted(last)), InputAnswer::Accepted(seq)) =
            (out.last_mut(), &answer)
        {
            if *seq > *last {
                *last = *seq;
                continue;
            }
        }
        out.push(answer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use capnp::message;
    use sekai_schema::Vec3;

    fn decode_answer(bytes: &[u8]) -> InputAnswer {
        let mut rest = bytes;
        let message =
            serialize::read_message_from_flat_slice(&mut rest, message::ReaderOptions::new())
                .unwrap();
        assert!(rest.is_empty());
        read_answer(message.get_root().unwrap()).unwrap()
    }

    #[test]
    fn every_answer_round_trips() {
        for answer in [
            InputAnswer::Opened(7),
            InputAnswer::Accepted(42),
            InputAnswer::Refused {
                seq: 3,
                reason: "seq 3 is not the next one".into(),
            },
            InputAnswer::Closed("input not stored".into()),
        ] {
            assert_eq!(decode_answer(&encode_answer(&answer)), answer);
        }
    }

    #[test]
    fn an_input_round_trips_for_the_sessions_player() {
        let action = Action::Move {
            to: Vec3::new(1.5, 0.0, -2.0),
        };
        let bytes = encode_input_message(9, &action).unwrap();
        let mut rest = &bytes[..];
        let message =
            serialize::read_message_from_flat_slice(&mut rest, message::ReaderOptions::new())
                .unwrap();
        let input = read_input_message(5, message.get_root().unwrap()).unwrap();
        assert_eq!(
            input,
            Input {
                player: 5,
                seq: 9,
                action
            }
        );
    }

    #[test]
    fn an_input_without_an_action_is_refused() {
        let mut builder = message::Builder::new_default();
        builder.init_root::<input_message::Builder<'_>>().set_seq(1);
        let bytes = serialize::write_message_to_words(&builder);
        let mut rest = &bytes[..];
        let message =
            serialize::read_message_from_flat_slice(&mut rest, message::ReaderOptions::new())
                .unwrap();
        assert!(read_input_message(5, message.get_root().unwrap()).is_err());
    }

    #[test]
    fn increasing_acceptances_fold_and_refusals_keep_their_place() {
        let refused = InputAnswer::Refused {
            seq: 7,
            reason: "rate".into(),
        };
        let answers = [
            InputAnswer::Accepted(5),
            InputAnswer::Accepted(6),
            refused.clone(),
            InputAnswer::Accepted(7),
            InputAnswer::Accepted(8),
            // A resend of a durable seq, and of it again: each starts a run of its own.
            InputAnswer::Accepted(3),
            InputAnswer::Accepted(3),
            InputAnswer::Accepted(9),
        ];
        assert_eq!(
            coalesce(answers),
            vec![
                InputAnswer::Accepted(6),
                refused,
                InputAnswer::Accepted(8),
                InputAnswer::Accepted(3),
                InputAnswer::Accepted(9),
            ]
        );
    }
}
