//! The messages of a streamed subscription (`Session.subscribeStream`): what the edge writes on
//! the subscription's QUIC unidirectional stream, one `StreamMessage` after another in Cap'n
//! Proto stream framing, and what a client reads back.
//!
//! Invariants: encoding goes through the same codec as the RPC sink's requests (`wire`), so a
//! delta or entity means the same on both paths; decoding never panics on hostile input (every
//! failure is a [`WireError`]) and yields only values that satisfy the codec's invariants.

use capnp::message;
use capnp::serialize;
use sekai_schema::edge_capnp::stream_message;

use crate::model::{Delta, Entity};
use crate::protocol::Stamp;
use crate::wire::{
    fill_entities, fill_stamped_deltas, list_len, read_delta, read_entity, read_stamp, WireError,
};

/// The QUIC application error code with which the edge resets the stream of a client that
/// stopped reading it for longer than the stall timeout.
pub const STREAM_RESET_STALLED: u32 = 1;

/// A message to write on a subscription's stream.
#[derive(Clone, Copy, Debug)]
pub enum StreamMessage<'a> {
    /// The first message: the client's tag for the subscription.
    Opened(u64),
    /// The full state of the area as of `at`.
    Snapshot {
        /// The entities in the area.
        entities: &'a [Entity],
        /// The versionstamp the state is current at.
        at: &'a Stamp,
    },
    /// Consecutive deltas, oldest first.
    Deltas(&'a [(Stamp, Delta)]),
    /// The stream ends; the client should subscribe afresh.
    Reset(&'a str),
}

/// A message read from a subscription's stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The first message: the client's tag for the subscription.
    Opened(u64),
    /// The full state of the area as of `at`.
    Snapshot {
        /// The entities in the area.
        entities: Vec<Entity>,
        /// The versionstamp the state is current at.
        at: Stamp,
    },
    /// Consecutive deltas, oldest first.
    Deltas(Vec<(Stamp, Delta)>),
    /// The stream ends; the client should subscribe afresh.
    Reset(String),
}

/// Encodes `message` in stream framing, ready to write on the stream.
pub fn encode(message: StreamMessage<'_>) -> Result<Vec<u8>, WireError> {
    let mut builder = crate::codec::new_message();
    let mut root = builder.init_root::<stream_message::Builder<'_>>();
    match message {
        StreamMessage::Opened(tag) => root.set_opened(tag),
        StreamMessage::Snapshot { entities, at } => {
            let mut snapshot = root.init_snapshot();
            snapshot.set_at(at);
            fill_entities(snapshot.init_entities(list_len(entities.len())), entities)?;
        }
        StreamMessage::Deltas(deltas) => {
            fill_stamped_deltas(root.init_deltas(list_len(deltas.len())), deltas)?
        }
        StreamMessage::Reset(reason) => root.set_reset(reason),
    }
    Ok(serialize::write_message_to_words(&builder))
}

/// Reads one decoded `StreamMessage`.
pub fn read(message: stream_message::Reader<'_>) -> Result<StreamEvent, WireError> {
    Ok(match message.which().map_err(capnp::Error::from)? {
        stream_message::Opened(tag) => StreamEvent::Opened(tag),
        stream_message::Snapshot(snapshot) => StreamEvent::Snapshot {
            entities: snapshot
                .get_entities()?
                .iter()
                .map(read_entity)
                .collect::<Result<_, _>>()?,
            at: read_stamp(snapshot.get_at()?)?,
        },
        stream_message::Deltas(deltas) => StreamEvent::Deltas(
            deltas?
                .iter()
                .map(|item| {
                    Ok((
                        read_stamp(item.get_versionstamp()?)?,
                        read_delta(item.get_delta()?)?,
                    ))
                })
                .collect::<Result<_, WireError>>()?,
        ),
        stream_message::Reset(reason) => {
            StreamEvent::Reset(reason?.to_string().map_err(capnp::Error::from)?)
        }
    })
}

/// Decodes one framed message from the front of `bytes` (what [`encode`] wrote), with the
/// reader `options` (their traversal limit bounds what a hostile message can cost).
pub fn decode(bytes: &[u8], options: message::ReaderOptions) -> Result<StreamEvent, WireError> {
    let mut rest = bytes;
    let message = serialize::read_message_from_flat_slice(&mut rest, options)?;
    read(message.get_root()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Change, EntityKind, Inventory};
    use sekai_schema::{EntityId, RegionId, Vec3};

    fn entity(id: u128) -> Entity {
        Entity {
            id: EntityId(id),
            kind: EntityKind::Tree,
            hp: 50,
            position: Vec3::new(10.0, 0.0, 20.0),
            inventory: Inventory::default(),
            owner: 0,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let options = message::ReaderOptions::new();
        let delta = Delta {
            region: RegionId::new(0, 0),
            frame: 3,
            changes: vec![Change::Upsert(entity(1)), Change::Remove(EntityId(2))],
            outcomes: vec![],
        };
        let deltas = [([1; 10], delta.clone()), ([2; 10], delta)];
        let entities = [entity(5), entity(6)];
        let cases = [
            (StreamMessage::Opened(42), StreamEvent::Opened(42)),
            (
                StreamMessage::Snapshot {
                    entities: &entities,
                    at: &[9; 10],
                },
                StreamEvent::Snapshot {
                    entities: entities.to_vec(),
                    at: [9; 10],
                },
            ),
            (
                StreamMessage::Deltas(&deltas),
                StreamEvent::Deltas(deltas.to_vec()),
            ),
            (
                StreamMessage::Reset("too slow"),
                StreamEvent::Reset("too slow".into()),
            ),
        ];
        for (message, event) in cases {
            let bytes = encode(message).unwrap();
            assert_eq!(decode(&bytes, options).unwrap(), event);
        }
    }

    #[test]
    fn hostile_bytes_are_errors() {
        let options = message::ReaderOptions::new();
        assert!(decode(&[], options).is_err());
        assert!(decode(&[0, 0, 0, 0, 9, 0, 0, 0], options).is_err());
        // A snapshot whose versionstamp is 3 bytes.
        let mut builder = message::Builder::new_default();
        let mut snapshot = builder
            .init_root::<stream_message::Builder<'_>>()
            .init_snapshot();
        snapshot.set_at(&[1, 2, 3]);
        snapshot.init_entities(0);
        let bytes = serialize::write_message_to_words(&builder);
        assert!(matches!(
            decode(&bytes, options),
            Err(WireError::BadStamp(3))
        ));
    }
}
