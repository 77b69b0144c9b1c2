//! Input streams (`Avatar.openInputs`) from outside, as a C++ client would use them: raw Cap'n
//! Proto RPC for the call, then `InputMessage`s written and `InputAnswer`s read on the QUIC
//! bidirectional stream the edge opens. Answers come in input order (acceptances going up; the
//! folding of several into one is `sekai_model::input_stream`'s unit test), a refusal names its
//! seq, a resend of a durable seq is accepted again, a second stream is refused while one is open, a finished stream is finished back, and garbage on the stream closes it with a reason
//! and breaks only that session. Waits are bounded; no timing is asserted.

mod common;

use capnp::message::ReaderOptions;
use common::*;
use sekai_layer::world::model::Action;
use sekai_model::input_stream::{encode_input_message, read_answer, InputAnswer};
use sekai_model::stream::StreamEvent;
use sekai_schema::edge_capnp::avatar;
use sekai_schema::Vec3;

/// The avatar capability of `raw`'s session.
fn avatar_of(raw: &Raw) -> avatar::Client {
    raw.session.avatar_request().send().pipeline.get_avatar()
}

/// Opens an input stream on `raw`'s avatar with `tag`; checks its first answer is `opened(tag)`.
async fn open_inputs(raw: &Raw, tag: u64) -> (quinn::SendStream, quinn::RecvStream) {
    let avatar = avatar_of(raw);
    let mut request = avatar.open_inputs_request();
    request.get().set_tag(tag);
    request.send().promise.await.expect("openInputs answered");
    let (send, mut recv) = raw
        .connection
        .accept_bi()
        .await
        .expect("the edge opens a stream");
    assert_eq!(next(&mut recv).await, Some(InputAnswer::Opened(tag)));
    (send, recv)
}

/// The next answer on `recv`, `None` once finished (bounded wait).
async fn next(recv: &mut quinn::RecvStream) -> Option<InputAnswer> {
    let message = tokio::time::timeout(
        WAIT,
        capnp_futures::serialize::try_read_message(recv, ReaderOptions::new()),
    )
    .await
    .expect("an answer or the stream's end in time")
    .expect("a well-framed answer")?;
    Some(read_answer(message.get_root().expect("root")).expect("a valid answer"))
}

/// Answers until every seq up to `last` is accepted; returns them all.
async fn answers_until_accepted(recv: &mut quinn::RecvStream, last: u64) -> Vec<InputAnswer> {
    let mut answers = Vec::new();
    loop {
        let answer = next(recv).await.expect("the stream goes on");
        let done = answer == InputAnswer::Accepted(last);
        answers.push(answer);
        if done {
            return answers;
        }
    }
}

fn step(x: f32) -> Action {
    Action::Move {
        to: Vec3::new(x, 0.0, 10.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_answered_in_order_and_a_finished_stream_is_finished_back() {
    let world = world(true).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let raw = raw_login(&world, 1, None).await;
            let (mut send, mut recv) = open_inputs(&raw, 5).await;
            // One input stream per avatar at a time.
            let avatar = avatar_of(&raw);
            let mut second = avatar.open_inputs_request();
            second.get().set_tag(6);
            let refused = second
                .send()
                .promise
                .await
                .err()
                .expect("a second stream refused");
            assert!(refused.extra.contains("open already"), "{refused}");
            // Five inputs in one write: answered in order, consecutive acceptances folded.
            let mut bytes = Vec::new();
            for seq in 1..=5 {
                bytes.extend(encode_input_message(seq, &step(10.0 + seq as f32)).unwrap());
            }
            send.write_all(&bytes).await.unwrap();
            let answers = answers_until_accepted(&mut recv, 5).await;
            let mut last = 0;
            for answer in &answers {
                let InputAnswer::Accepted(seq) = answer else {
                    panic!("expected only acceptances, got {answers:?}");
                };
                assert!(*seq > last, "acceptances go up: {answers:?}");
                last = *seq;
            }
            // A seq out of order is refused by name, and the next one still goes through.
            send.write_all(&encode_input_message(9, &step(11.0)).unwrap())
                .await
                .unwrap();
            match next(&mut recv).await {
                Some(InputAnswer::Refused { seq: 9, reason }) => {
                    assert!(reason.contains("out of order"), "{reason}")
                }
                other => panic!("expected seq 9 refused, got {other:?}"),
            }
            // A resend of a durable seq with the same action is accepted again.
            send.write_all(&encode_input_message(5, &step(15.0)).unwrap())
                .await
                .unwrap();
            assert_eq!(next(&mut recv).await, Some(InputAnswer::Accepted(5)));
            send.write_all(&encode_input_message(6, &step(16.0)).unwrap())
                .await
                .unwrap();
            assert_eq!(next(&mut recv).await, Some(InputAnswer::Accepted(6)));
            // The inputs are durable: a new login reports them.
            let again = world.connect(1).await;
            assert_eq!(again.last_seq_at_login(), 6);
            drop(again);
            send.finish().unwrap();
            assert_eq!(next(&mut recv).await, None, "the edge finishes its side");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_stream_closes_it_with_a_reason_and_breaks_only_that_session() {
    let world = world(true).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let raw = raw_login(&world, 1, None).await;
            let (mut send, mut recv) = open_inputs(&raw, 1).await;
            send.write_all(&encode_input_message(1, &step(11.0)).unwrap())
                .await
                .unwrap();
            assert_eq!(next(&mut recv).await, Some(InputAnswer::Accepted(1)));
            // A frame header claiming 2^32 - 1 segments: not a Cap'n Proto message.
            send.write_all(&[0xff; 16]).await.unwrap();
            match next(&mut recv).await {
                Some(InputAnswer::Closed(reason)) => {
                    assert!(reason.contains("malformed input stream"), "{reason}")
                }
                other => panic!("expected the stream closed, got {other:?}"),
            }
            assert_eq!(next(&mut recv).await, None, "nothing follows `closed`");
            // That session is broken: its inputs by call are refused until it logs in again.
            let avatar = avatar_of(&raw);
            let mut request = avatar.send_request();
            sekai_model::wire::fill_send(request.get(), 2, &step(12.0)).unwrap();
            let reply = request.send().promise.await.expect("send answered");
            let ack = reply.get().unwrap().get_ack().unwrap();
            match ack.which().unwrap() {
                sekai_schema::edge_capnp::ack::Error(reason) => {
                    let reason = reason.unwrap().to_str().unwrap().to_string();
                    assert!(reason.contains("session broken"), "{reason}");
                }
                sekai_schema::edge_capnp::ack::Accepted(seq) => {
                    panic!("seq {seq} accepted on a broken session")
                }
            }
            // Another player, and the same player after a new login, play on.
            let other = world.connect(2).await;
            other
                .send(step(13.0))
                .await
                .expect("another player's input");
            let again = world.connect(1).await;
            assert_eq!(again.last_seq_at_login(), 1);
            again.send(step(14.0)).await.expect("after a new login");
        })
        .await;
}

/// While a streamed subscription of the player is open, its push task carries the input
/// stream's answers (`held_answers`). The hold here outlasts the test's wait, so an answer
/// arrives only if a push carried it: every input is answered, in order, alongside the deltas
/// that apply them. Once the subscription is cancelled nothing carries, and the answers come at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_held_for_a_push_still_come_in_order_with_and_without_a_carrier() {
    let world = world_with(true, |config| config.limits.answer_hold = 3 * WAIT).await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let raw = raw_login(&world, 1, None).await;
            let (subscription, mut pushes) = subscribe_stream(&raw, 3).await;
            let (mut send, mut recv) = open_inputs(&raw, 4).await;
            // Player 2 moves in the area every 50 ms, so a push of player 1 always comes soon:
            // an answer that reaches the edge's writer after the push of its own delta (the T1
            // answer and the frame's push race) rides on the next push instead of waiting out
            // the hold. Without `carry`, no answer would come within the wait.
            let other = raw_login(&world, 2, None).await;
            let (mut other_send, _other_recv) = open_inputs(&other, 5).await;
            let pacing = std::rc::Rc::new(std::cell::Cell::new(true));
            let pacer = tokio::task::spawn_local({
                let pacing = pacing.clone();
                async move {
                    let mut seq = 0;
                    while pacing.get() {
                        seq += 1;
                        let to = step(20.0 + (seq % 10) as f32);
                        let message = encode_input_message(seq, &to).unwrap();
                        other_send.write_all(&message).await.unwrap();
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            });
            let mut applied = 0;
            for seq in 1..=20 {
                send.write_all(&encode_input_message(seq, &step(10.0 + seq as f32)).unwrap())
                    .await
                    .unwrap();
                let answers = answers_until_accepted(&mut recv, seq).await;
                assert_eq!(answers, vec![InputAnswer::Accepted(seq)]);
                // The delta applying it arrives on the subscription's stream.
                while applied < seq {
                    match next_event(&mut pushes).await.unwrap() {
                        Some(StreamEvent::Deltas(deltas)) => {
                            for (_, delta) in deltas {
                                for outcome in delta.outcomes.iter().filter(|o| o.player == 1) {
                                    assert!(outcome.accepted, "{outcome:?}");
                                    assert_eq!(outcome.seq, applied + 1, "applied in order");
                                    applied = outcome.seq;
                                }
                            }
                        }
                        Some(StreamEvent::Snapshot { .. }) => {}
                        other => panic!("expected deltas, got {other:?}"),
                    }
                }
            }
            pacing.set(false);
            pacer.await.unwrap();
            // No carrier any more: the writer writes by itself.
            drop(subscription);
            // Deltas already on the way (player 2 moved) come first, then the stream finishes.
            while let Some(event) = next_event(&mut pushes).await.unwrap() {
                assert!(
                    matches!(event, StreamEvent::Deltas(_)),
                    "only deltas before the end, got {event:?}"
                );
            }
            for seq in 21..=25 {
                send.write_all(&encode_input_message(seq, &step(10.0 + seq as f32)).unwrap())
                    .await
                    .unwrap();
                assert_eq!(next(&mut recv).await, Some(InputAnswer::Accepted(seq)));
            }
            send.finish().unwrap();
            assert_eq!(next(&mut recv).await, None, "the edge finishes its side");
        })
        .await;
}
