//! World values to and from the edge protocol's Cap'n Proto, through the layer's codec.
//!
//! The edge protocol reuses `world.capnp`'s structs; the layer's `codec` is the one place that
//! converts them to and from the model (with its validation). Here the codec writes a delta or an
//! entity straight into an RPC message's field (the pushes' hot path: no intermediate message),
//! other values are encoded by the codec and copied in, and an RPC struct is copied out into a
//! flat message and decoded by the codec, so nothing about the encoding is written twice.
//!
//! Invariants: reading never panics on hostile input (every failure is a [`WireError`]); a decoded
//! value satisfies the codec's invariants; versionstamps are exactly 10 bytes.

use crate::codec::{
    decode_delta, decode_entity, encode_entity, encode_input, read_input_action, write_delta,
    write_entity, CodecError,
};
use crate::model::{Action, Delta, Entity, Input};
use capnp::message::{self, ReaderOptions};
use capnp::serialize;
use sekai_schema::edge_capnp::{avatar, delta_sink, stamped_delta};
use sekai_schema::world_capnp::{action, delta, entity_state, input};
use sekai_schema::PlayerId;

/// Why an RPC value does not convert.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The Cap'n Proto message is malformed.
    #[error("malformed message: {0}")]
    Capnp(#[from] capnp::Error),
    /// The value breaks an invariant of the world model.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A versionstamp that is not 10 bytes.
    #[error("a versionstamp is 10 bytes, got {0}")]
    BadStamp(usize),
}

impl From<WireError> for capnp::Error {
    fn from(e: WireError) -> Self {
        capnp::Error::failed(e.to_string())
    }
}

/// Fills a `DeltaSink.delta` request.
pub fn fill_delta(
    mut params: delta_sink::delta_params::Builder<'_>,
    stamp: &[u8; 10],
    value: &Delta,
) -> Result<(), WireError> {
    params.set_versionstamp(stamp);
    write_delta(value, params.init_delta());
    Ok(())
}

/// Fills a `DeltaSink.deltas` request with `deltas`, oldest first.
pub fn fill_deltas(
    params: delta_sink::deltas_params::Builder<'_>,
    deltas: &[([u8; 10], Delta)],
) -> Result<(), WireError> {
    fill_stamped_deltas(params.init_batch(list_len(deltas.len())), deltas)
}

/// Fills a list of `StampedDelta`, initialised to `deltas.len()`, with `deltas` in order.
pub(crate) fn fill_stamped_deltas(
    mut list: capnp::struct_list::Builder<'_, stamped_delta::Owned>,
    deltas: &[([u8; 10], Delta)],
) -> Result<(), WireError> {
    for (i, (stamp, value)) in deltas.iter().enumerate() {
        let mut item = list.reborrow().get(u32::try_from(i).unwrap_or(u32::MAX));
        item.set_versionstamp(stamp);
        write_delta(value, item.init_delta());
    }
    Ok(())
}

/// Fills a `DeltaSink.snapshot` request.
pub fn fill_snapshot(
    mut params: delta_sink::snapshot_params::Builder<'_>,
    entities: &[Entity],
    at: &[u8; 10],
) -> Result<(), WireError> {
    params.set_at(at);
    fill_entities(params.init_entities(list_len(entities.len())), entities)
}

/// Fills a list of `EntityState`, initialised to `entities.len()`, with `entities` in order.
pub(crate) fn fill_entities(
    mut list: capnp::struct_list::Builder<'_, entity_state::Owned>,
    entities: &[Entity],
) -> Result<(), WireError> {
    for (i, entity) in entities.iter().enumerate() {
        write_entity(
            entity,
            list.reborrow().get(u32::try_from(i).unwrap_or(u32::MAX)),
        );
    }
    Ok(())
}

/// Runs `f` with a Cap'n Proto reader of `entity` (to copy it into any builder).
pub fn with_entity<R>(
    entity: &Entity,
    f: impl FnOnce(entity_state::Reader<'_>) -> capnp::Result<R>,
) -> Result<R, WireError> {
    let bytes = encode_entity(entity);
    let message = flat_reader(&bytes)?;
    Ok(f(message.get_root::<entity_state::Reader<'_>>()?)?)
}

/// Fills an `Avatar.send` request.
pub fn fill_send(
    mut params: avatar::send_params::Builder<'_>,
    seq: u64,
    value: &Action,
) -> Result<(), WireError> {
    params.set_seq(seq);
    copy_action(value, |action| params.set_action(action))
}

/// Runs `f` with a Cap'n Proto reader of `action` (to copy it into any builder).
pub fn copy_action(
    action: &Action,
    f: impl FnOnce(action::Reader<'_>) -> capnp::Result<()>,
) -> Result<(), WireError> {
    let bytes = encode_input(&Input {
        player: 0,
        seq: 0,
        action: action.clone(),
    });
    let message = flat_reader(&bytes)?;
    f(message.get_root::<input::Reader<'_>>()?.get_action()?)?;
    Ok(())
}

/// Reads a delta.
pub fn read_delta(r: delta::Reader<'_>) -> Result<Delta, WireError> {
    Ok(decode_delta(&copy_out::<delta::Owned>(r)?)?)
}

/// Reads an entity state.
pub fn read_entity(r: entity_state::Reader<'_>) -> Result<Entity, WireError> {
    Ok(decode_entity(&copy_out::<entity_state::Owned>(r)?)?)
}

/// Builds `player`'s input `seq` from an action sent over the wire.
pub fn read_input(player: PlayerId, seq: u64, r: action::Reader<'_>) -> Result<Input, WireError> {
    Ok(read_input_action(player, seq, r)?)
}

/// Reads a 10-byte versionstamp.
pub fn read_stamp(data: &[u8]) -> Result<[u8; 10], WireError> {
    data.try_into().map_err(|_| WireError::BadStamp(data.len()))
}

/// Copies a struct into a message of its own and flattens it.
fn copy_out<T: capnp::traits::Owned>(r: T::Reader<'_>) -> Result<Vec<u8>, WireError>
where
    for<'a> T::Reader<'a>: capnp::traits::SetterInput<T>,
{
    let mut message = crate::codec::new_message();
    message.set_root::<T>(r)?;
    Ok(serialize::write_message_to_words(&message))
}

/// A Cap'n Proto list length for `len` items (lists hold at most `u32::MAX`).
pub(crate) fn list_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Reads a flat message produced by the layer's codec.
pub(crate) fn flat_reader(
    bytes: &[u8],
) -> capnp::Result<message::Reader<serialize::BufferSegments<&[u8]>>> {
    let mut rest = bytes;
    serialize::read_message_from_flat_slice(&mut rest, ReaderOptions::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Change, EntityKind, Inventory, ItemKind, Outcome};
    use sekai_schema::{EntityId, RegionId, Vec3};

    fn sample() -> Delta {
        let mut inventory = Inventory::default();
        inventory.add(ItemKind::Wood, 3);
        Delta {
            region: RegionId::new(1, -2),
            frame: 8,
            changes: vec![
                Change::Upsert(Entity {
                    id: EntityId(9),
                    kind: EntityKind::PlayerAvatar,
                    hp: 100,
                    position: Vec3::new(300.0, 0.0, -400.0),
                    inventory,
                    owner: 4,
                }),
                Change::Remove(EntityId(10)),
            ],
            outcomes: vec![Outcome {
                player: 4,
                seq: 2,
                accepted: false,
                reason: "out of reach".into(),
            }],
        }
    }

    #[test]
    fn deltas_snapshots_and_actions_round_trip_through_requests() {
        let value = sample();
        let mut message = message::Builder::new_default();
        let params = message.init_root::<delta_sink::delta_params::Builder<'_>>();
        fill_delta(params, &[7; 10], &value).unwrap();
        let reader = message
            .get_root_as_reader::<delta_sink::delta_params::Reader<'_>>()
            .unwrap();
        assert_eq!(
            read_stamp(reader.get_versionstamp().unwrap()).unwrap(),
            [7; 10]
        );
        assert_eq!(read_delta(reader.get_delta().unwrap()).unwrap(), value);

        let Change::Upsert(entity) = value.changes[0].clone() else {
            unreachable!()
        };
        let mut message = message::Builder::new_default();
        let params = message.init_root::<delta_sink::snapshot_params::Builder<'_>>();
        fill_snapshot(params, std::slice::from_ref(&entity), &[1; 10]).unwrap();
        let reader = message
            .get_root_as_reader::<delta_sink::snapshot_params::Reader<'_>>()
            .unwrap();
        let list = reader.get_entities().unwrap();
        assert_eq!(read_entity(list.get(0)).unwrap(), entity);

        let action = Action::Harvest {
            target: EntityId(5),
        };
        let mut message = message::Builder::new_default();
        fill_send(message.init_root(), 3, &action).unwrap();
        let reader = message
            .get_root_as_reader::<avatar::send_params::Reader<'_>>()
            .unwrap();
        let input = read_input(4, reader.get_seq(), reader.get_action().unwrap()).unwrap();
        assert_eq!(
            input,
            Input {
                player: 4,
                seq: 3,
                action
            }
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(matches!(read_stamp(&[1; 9]), Err(WireError::BadStamp(9))));
        // An entity whose stored region does not match its position.
        let mut message = message::Builder::new_default();
        let mut e = message.init_root::<entity_state::Builder<'_>>();
        Vec3::new(1_000.0, 0.0, 0.0).write_capnp(e.reborrow().init_position());
        let reader = message
            .get_root_as_reader::<entity_state::Reader<'_>>()
            .unwrap();
        assert!(matches!(read_entity(reader), Err(WireError::Codec(_))));
    }
}
