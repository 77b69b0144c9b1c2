//! Reads the streams of a connection's streamed subscriptions (`Session.subscribeStream`): every
//! unidirectional stream the edge opens carries one subscription's `StreamMessage`s, the first of
//! which names the subscription by the tag the client chose.
//!
//! Invariants: a stream's messages reach `on_event` in the order the edge wrote them, tagged
//! with the stream's `opened` tag; a stream whose first message is not `opened`, or that carries
//! a second `opened`, is stopped and ignored; a stream that breaks while its connection is alive
//! (the edge reset it as stalled, or it sent what does not decode) ends with a
//! [`StreamEvent::Reset`], so the client subscribes afresh; a stream cut by the connection's end
//! ends silently (the reconnect resumes it); nothing read from the network panics.

use std::rc::Rc;

use capnp::message::ReaderOptions;
use sekai_model::stream::{read, StreamEvent};
use sekai_model::wire::WireError;

/// Where a stream's events go: the subscription's tag and the event.
pub type StreamHandler = Rc<dyn Fn(u64, StreamEvent)>;

/// The application error code with which the client stops a stream that breaks the protocol.
pub const STREAM_STOP_PROTOCOL: u32 = 2;

/// Accepts the edge's unidirectional streams on `connection` until it closes, reading each as a
/// task of the current `LocalSet`.
pub async fn read_streams(
    connection: quinn::Connection,
    options: ReaderOptions,
    on_event: StreamHandler,
) {
    while let Ok(stream) = connection.accept_uni().await {
        tokio::task::spawn_local(read_stream(
            connection.clone(),
            stream,
            options,
            on_event.clone(),
        ));
    }
}

/// Reads one subscription's stream to its end.
async fn read_stream(
    connection: quinn::Connection,
    mut stream: quinn::RecvStream,
    options: ReaderOptions,
    on_event: StreamHandler,
) {
    let tag = match next(&mut stream, options).await {
        Ok(Some(StreamEvent::Opened(tag))) => tag,
        other => {
            tracing::warn!(?other, "a subscription stream did not start with `opened`");
            let _ = stream.stop(STREAM_STOP_PROTOCOL.into());
            return;
        }
    };
    loop {
        let reason = match next(&mut stream, options).await {
            Ok(None) => return,
            Ok(Some(StreamEvent::Opened(_))) => {
                let _ = stream.stop(STREAM_STOP_PROTOCOL.into());
                "the edge sent a second `opened` on a subscription stream".to_string()
            }
            Ok(Some(event)) => {
                on_event(tag, event);
                continue;
            }
            Err(_) if connection.close_reason().is_some() => return,
            Err(error) => format!("subscription stream broke: {error}"),
        };
        on_event(tag, StreamEvent::Reset(reason));
        return;
    }
}

/// The next message of `stream`; `None` once the edge finished it.
async fn next(
    stream: &mut quinn::RecvStream,
    options: ReaderOptions,
) -> Result<Option<StreamEvent>, WireError> {
    match capnp_futures::serialize::try_read_message(stream, options).await? {
        None => Ok(None),
        Some(message) => Ok(Some(read(message.get_root()?)?)),
    }
}
