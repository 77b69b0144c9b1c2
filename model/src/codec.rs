//! The Cap'n Proto encoding of the world's stored and transported values (`schema/capnp/world.capnp`):
//! entity states, inputs, deltas and frame records, each one message in the flat word format of
//! `capnp::serialize` (one segment up to [`FIRST_SEGMENT_WORDS`], more beyond).
//!
//! Invariants:
//! - `decode_x(&encode_x(v)) == Ok(v)` for every value `v`;
//! - decoding never panics: garbage, truncated or trailing bytes, unknown enum values or union
//!   variants, invalid UTF-8 and oversized messages all give a [`CodecError`];
//! - decoding does not depend on where the bytes sit in memory: a slice at an address that is
//!   not a multiple of 8 (which Cap'n Proto's reader refuses) is copied into aligned words
//!   first (found by the `world_codec` fuzz target);
//! - whatever decodes re-encodes to a message the decoder accepts: a message whose list
//!   elements are smaller than the schema's (zero-size structs cost one word for any count)
//!   decodes to a value whose encoding is far larger, so a delta or frame record whose
//!   encoding would exceed [`TRAVERSAL_LIMIT_WORDS`] is refused as amplified (found by the
//!   `world_codec` fuzz target; checked by re-encoding only when a cheap upper bound of the
//!   encoding exceeds the limit, which canonical values under FDB's value limit never do);
//! - decoding reads at most [`TRAVERSAL_LIMIT_WORDS`] words, a bound sized for FDB's 100 kB value
//!   limit, so a hostile message cannot make it do unbounded work;
//! - decoded inventories keep the model's invariant (positive counts, one stack per kind): a stack
//!   with a zero count or a repeated kind is an error, and an entity's stored `region` must be the
//!   region of its position.

use capnp::message::{self, ReaderOptions};
use capnp::serialize;
use sekai_schema::world_capnp::{
    action, delta, entity_change, entity_state, frame_record, input, input_outcome, inventory,
    EntityType,
};

use crate::model::{
    Action, Change, Delta, Entity, EntityId, EntityKind, FrameRecord, Input, Inventory, ItemKind,
    Outcome, RegionId, Vec3,
};
use sekai_schema::world_capnp;

/// The largest value FDB stores, in bytes.
pub const MAX_VALUE_BYTES: usize = 100_000;

/// How many 8-byte words one decode may traverse: four times a maximal value, which leaves room
/// for the reader's double counting of re-read pointers while bounding hostile messages.
pub const TRAVERSAL_LIMIT_WORDS: usize = 4 * MAX_VALUE_BYTES / 8;

/// Why bytes do not decode to a world value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a well-formed message of the expected struct.
    #[error("cannot decode {what}: {source}")]
    Malformed {
        /// The value being decoded (e.g. "entity").
        what: &'static str,
        /// What Cap'n Proto reported.
        #[source]
        source: capnp::Error,
    },
    /// The message decoded but breaks an invariant of the value.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The value being decoded.
        what: &'static str,
        /// The broken invariant.
        reason: &'static str,
    },
    /// Bytes follow the message.
    #[error("cannot decode {what}: {extra} trailing bytes after the message")]
    TrailingBytes {
        /// The value being decoded.
        what: &'static str,
        /// How many bytes follow.
        extra: usize,
    },
}

/// What a reader function may fail with: a Cap'n Proto error or a broken invariant.
enum ReadError {
    Capnp(capnp::Error),
    Invalid(&'static str),
}

impl From<capnp::Error> for ReadError {
    fn from(e: capnp::Error) -> Self {
        Self::Capnp(e)
    }
}

impl From<capnp::NotInSchema> for ReadError {
    fn from(e: capnp::NotInSchema) -> Self {
        Self::Capnp(e.into())
    }
}

impl From<std::str::Utf8Error> for ReadError {
    fn from(e: std::str::Utf8Error) -> Self {
        Self::Capnp(e.into())
    }
}

type ReadResult<T> = Result<T, ReadError>;

/// Encodes an entity's full state.
pub fn encode_entity(entity: &Entity) -> Vec<u8> {
    encode(|m| write_entity(entity, m.init_root()))
}

/// Decodes an entity's full state.
pub fn decode_entity(bytes: &[u8]) -> Result<Entity, CodecError> {
    decode("entity", bytes, |m| read_entity(m.get_root()?))
}

/// Encodes an input.
pub fn encode_input(value: &Input) -> Vec<u8> {
    encode(|m| {
        let mut b = m.init_root::<input::Builder<'_>>();
        b.set_player(value.player);
        b.set_seq(value.seq);
        write_action(&value.action, b.init_action());
    })
}

/// Builds `player`'s input `seq` from an action read where it lies (a field of an RPC or stream
/// message), with [`decode_input`]'s checks.
pub(crate) fn read_input_action(
    player: sekai_schema::PlayerId,
    seq: u64,
    r: action::Reader<'_>,
) -> Result<Input, CodecError> {
    let action = read_action(r).map_err(|e| codec_error("input", e))?;
    Ok(Input {
        player,
        seq,
        action,
    })
}

/// Decodes an input.
pub fn decode_input(bytes: &[u8]) -> Result<Input, CodecError> {
    decode("input", bytes, |m| {
        let r = m.get_root::<input::Reader<'_>>()?;
        Ok(Input {
            player: r.get_player(),
            seq: r.get_seq(),
            action: read_action(r.get_action()?)?,
        })
    })
}

/// Encodes a delta.
pub fn encode_delta(value: &Delta) -> Vec<u8> {
    encode(|m| write_delta(value, m.init_root::<delta::Builder<'_>>()))
}

/// Writes a delta into `b` (an RPC message's field as well as a root).
pub(crate) fn write_delta(value: &Delta, mut b: delta::Builder<'_>) {
    value.region.write_capnp(b.reborrow().init_region());
    b.set_frame(value.frame);
    let mut changes = b.reborrow().init_changes(list_len(value.changes.len()));
    for (i, change) in value.changes.iter().enumerate() {
        write_change(change, changes.reborrow().get(list_len(i)));
    }
    let mut outcomes = b.init_outcomes(list_len(value.outcomes.len()));
    for (i, outcome) in value.outcomes.iter().enumerate() {
        write_outcome(outcome, outcomes.reborrow().get(list_len(i)));
    }
}

/// Decodes a delta.
pub fn decode_delta(bytes: &[u8]) -> Result<Delta, CodecError> {
    decode("delta", bytes, |m| {
        let r = m.get_root::<delta::Reader<'_>>()?;
        let value = Delta {
            region: RegionId::read_capnp(r.get_region()?),
            frame: r.get_frame(),
            changes: r
                .get_changes()?
                .iter()
                .map(read_change)
                .collect::<ReadResult<_>>()?,
            outcomes: r
                .get_outcomes()?
                .iter()
                .map(read_outcome)
                .collect::<ReadResult<_>>()?,
        };
        let bound = 8
            + value.changes.len() * WORDS_PER_CHANGE
            + value
                .outcomes
                .iter()
                .map(|o| 6 + o.reason.len() / 8)
                .sum::<usize>();
        not_amplified(&value, bound, encode_delta)?;
        Ok(value)
    })
}

/// An upper bound of the words one change takes in a canonical delta (list element, entity
/// state, id, position, an inventory of at most one stack per item kind, region).
const WORDS_PER_CHANGE: usize = 32;

/// Refuses `value` when its encoding would exceed what [`decode`] accepts; `bound` is a cheap
/// upper bound of that encoding in words, and only a bound over the limit costs an encode.
fn not_amplified<T>(value: &T, bound: usize, encode: fn(&T) -> Vec<u8>) -> ReadResult<()> {
    if bound <= TRAVERSAL_LIMIT_WORDS || encode(value).len() / 8 <= TRAVERSAL_LIMIT_WORDS {
        Ok(())
    } else {
        Err(ReadError::Invalid(
            "its encoding would exceed the decode limit (an amplified message)",
        ))
    }
}

/// Encodes a frame record.
pub fn encode_frame_record(value: &FrameRecord) -> Vec<u8> {
    encode(|m| {
        let mut b = m.init_root::<frame_record::Builder<'_>>();
        value.region.write_capnp(b.reborrow().init_region());
        b.set_frame(value.frame);
        b.set_rejected(value.rejected);
        let mut inputs = b.init_inputs_applied(list_len(value.inputs.len()));
        for (i, (player, seq)) in value.inputs.iter().enumerate() {
            let mut entry = inputs.reborrow().get(list_len(i));
            entry.set_player(*player);
            entry.set_seq(*seq);
        }
    })
}

/// Decodes a frame record.
pub fn decode_frame_record(bytes: &[u8]) -> Result<FrameRecord, CodecError> {
    decode("frame record", bytes, |m| {
        let r = m.get_root::<frame_record::Reader<'_>>()?;
        let value = FrameRecord {
            region: RegionId::read_capnp(r.get_region()?),
            frame: r.get_frame(),
            inputs: r
                .get_inputs_applied()?
                .iter()
                .map(|i| (i.get_player(), i.get_seq()))
                .collect(),
            rejected: r.get_rejected(),
        };
        not_amplified(&value, 8 + 2 * value.inputs.len(), encode_frame_record)?;
        Ok(value)
    })
}

/// Words in the first segment of every message this crate builds. Almost all of them (an input,
/// an answer, an entity, a frame's delta) fit in 1 KiB; a bigger one grows a second segment.
/// Cap'n Proto's default is 8 KiB, allocated zeroed for every message: at a few tens of thousands
/// of messages per second, a measurable share of the server's CPU went to zeroing them.
pub const FIRST_SEGMENT_WORDS: u32 = 128;

/// An empty message whose first segment is [`FIRST_SEGMENT_WORDS`] long.
pub fn new_message() -> message::Builder<message::HeapAllocator> {
    message::Builder::new(message::HeapAllocator::new().first_segment_words(FIRST_SEGMENT_WORDS))
}

/// Builds a message with `write` and flattens it to bytes.
fn encode(write: impl FnOnce(&mut message::Builder<message::HeapAllocator>)) -> Vec<u8> {
    let mut message = new_message();
    write(&mut message);
    serialize::write_message_to_words(&message)
}

/// The reader of one flat message.
type FlatReader<'a> = message::Reader<serialize::BufferSegments<&'a [u8]>>;

/// Reads one message from `bytes` (all of them) and converts it with `read`; bytes at an
/// unaligned address are copied into aligned words first.
fn decode<R>(
    what: &'static str,
    bytes: &[u8],
    read: impl FnOnce(&FlatReader<'_>) -> ReadResult<R>,
) -> Result<R, CodecError> {
    if bytes.as_ptr().align_offset(BYTES_PER_WORD) == 0 {
        return decode_aligned(what, bytes, read);
    }
    let mut words = capnp::Word::allocate_zeroed_vec(bytes.len().div_ceil(BYTES_PER_WORD));
    let aligned = &mut capnp::Word::words_to_bytes_mut(&mut words)[..bytes.len()];
    aligned.copy_from_slice(bytes);
    decode_aligned(what, aligned, read)
}

/// Bytes per Cap'n Proto word (the alignment its reader needs).
const BYTES_PER_WORD: usize = 8;

/// [`decode`] of bytes at an aligned address.
fn decode_aligned<R>(
    what: &'static str,
    bytes: &[u8],
    read: impl FnOnce(&FlatReader<'_>) -> ReadResult<R>,
) -> Result<R, CodecError> {
    let mut rest = bytes;
    let message = serialize::read_message_from_flat_slice(&mut rest, reader_options())
        .map_err(|source| CodecError::Malformed { what, source })?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes {
            what,
            extra: rest.len(),
        });
    }
    read(&message).map_err(|e| codec_error(what, e))
}

/// A reading failure of `what`, as the codec reports it.
fn codec_error(what: &'static str, e: ReadError) -> CodecError {
    match e {
        ReadError::Capnp(source) => CodecError::Malformed { what, source },
        ReadError::Invalid(reason) => CodecError::Invalid { what, reason },
    }
}

fn reader_options() -> ReaderOptions {
    *ReaderOptions::new().traversal_limit_in_words(Some(TRAVERSAL_LIMIT_WORDS))
}

/// A list length or index as Cap'n Proto's `u32` (lists of a ≤100 kB value are far shorter; a
/// longer one saturates and the builder reports it rather than wrapping).
fn list_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Writes an entity into `b` (an RPC message's field as well as a root).
pub(crate) fn write_entity(e: &Entity, mut b: entity_state::Builder<'_>) {
    e.id.write_capnp(b.reborrow().init_id());
    b.set_type(entity_type(e.kind));
    b.set_hp(e.hp);
    e.position.write_capnp(b.reborrow().init_position());
    write_inventory(&e.inventory, b.reborrow().init_inventory());
    b.set_owner(e.owner);
    e.region().write_capnp(b.init_region());
}

fn read_entity(r: entity_state::Reader<'_>) -> ReadResult<Entity> {
    let entity = Entity {
        id: EntityId::read_capnp(r.get_id()?),
        kind: entity_kind(r.get_type()?),
        hp: r.get_hp(),
        position: Vec3::read_capnp(r.get_position()?),
        inventory: read_inventory(r.get_inventory()?)?,
        owner: r.get_owner(),
    };
    if RegionId::read_capnp(r.get_region()?) != entity.region() {
        return Err(ReadError::Invalid(
            "stored region is not the region of the position",
        ));
    }
    Ok(entity)
}

fn write_inventory(inv: &Inventory, b: inventory::Builder<'_>) {
    let mut items = b.init_items(list_len(inv.0.len()));
    for (i, (kind, count)) in inv.0.iter().enumerate() {
        let mut stack = items.reborrow().get(list_len(i));
        stack.set_kind(item_kind_to_capnp(*kind));
        stack.set_count(*count);
    }
}

fn read_inventory(r: inventory::Reader<'_>) -> ReadResult<Inventory> {
    let mut inv = Inventory::default();
    for stack in r.get_items()?.iter() {
        let kind = item_kind_from_capnp(stack.get_kind()?);
        if stack.get_count() == 0 {
            return Err(ReadError::Invalid("inventory stack with a zero count"));
        }
        if inv.0.insert(kind, stack.get_count()).is_some() {
            return Err(ReadError::Invalid("inventory with two stacks of one kind"));
        }
    }
    Ok(inv)
}

fn write_action(a: &Action, mut b: action::Builder<'_>) {
    match a {
        Action::Move { to } => to.write_capnp(b.init_move()),
        Action::Harvest { target } => target.write_capnp(b.init_harvest()),
        Action::Build { at, kind } => {
            let mut build = b.init_build();
            at.write_capnp(build.reborrow().init_position());
            build.set_kind(entity_type(*kind));
        }
        Action::Interact { target } => target.write_capnp(b.init_interact()),
        Action::Idle => b.set_idle(()),
    }
}

fn read_action(r: action::Reader<'_>) -> ReadResult<Action> {
    use action::Which;
    Ok(match r.which()? {
        Which::Move(to) => Action::Move {
            to: Vec3::read_capnp(to?),
        },
        Which::Harvest(target) => Action::Harvest {
            target: EntityId::read_capnp(target?),
        },
        Which::Build(build) => Action::Build {
            at: Vec3::read_capnp(build.get_position()?),
            kind: entity_kind(build.get_kind()?),
        },
        Which::Interact(target) => Action::Interact {
            target: EntityId::read_capnp(target?),
        },
        Which::Idle(()) => Action::Idle,
    })
}

fn write_change(c: &Change, b: entity_change::Builder<'_>) {
    match c {
        Change::Upsert(entity) => write_entity(entity, b.init_upsert()),
        Change::Remove(id) => id.write_capnp(b.init_remove()),
    }
}

fn read_change(r: entity_change::Reader<'_>) -> ReadResult<Change> {
    use entity_change::Which;
    Ok(match r.which()? {
        Which::Upsert(entity) => Change::Upsert(read_entity(entity?)?),
        Which::Remove(id) => Change::Remove(EntityId::read_capnp(id?)),
    })
}

fn write_outcome(o: &Outcome, mut b: input_outcome::Builder<'_>) {
    b.set_player(o.player);
    b.set_seq(o.seq);
    b.set_accepted(o.accepted);
    b.set_reason(o.reason.as_str());
}

fn read_outcome(r: input_outcome::Reader<'_>) -> ReadResult<Outcome> {
    Ok(Outcome {
        player: r.get_player(),
        seq: r.get_seq(),
        accepted: r.get_accepted(),
        reason: r.get_reason()?.to_str()?.to_owned(),
    })
}

fn entity_type(kind: EntityKind) -> EntityType {
    match kind {
        EntityKind::PlayerAvatar => EntityType::PlayerAvatar,
        EntityKind::Tree => EntityType::Tree,
        EntityKind::Rock => EntityType::Rock,
        EntityKind::ItemWood => EntityType::ItemWood,
        EntityKind::ItemStone => EntityType::ItemStone,
        EntityKind::StructureWall => EntityType::StructureWall,
    }
}

fn entity_kind(t: EntityType) -> EntityKind {
    match t {
        EntityType::PlayerAvatar => EntityKind::PlayerAvatar,
        EntityType::Tree => EntityKind::Tree,
        EntityType::Rock => EntityKind::Rock,
        EntityType::ItemWood => EntityKind::ItemWood,
        EntityType::ItemStone => EntityKind::ItemStone,
        EntityType::StructureWall => EntityKind::StructureWall,
    }
}

fn item_kind_to_capnp(kind: ItemKind) -> world_capnp::ItemKind {
    match kind {
        ItemKind::Wood => world_capnp::ItemKind::Wood,
        ItemKind::Stone => world_capnp::ItemKind::Stone,
    }
}

fn item_kind_from_capnp(kind: world_capnp::ItemKind) -> ItemKind {
    match kind {
        world_capnp::ItemKind::Wood => ItemKind::Wood,
        world_capnp::ItemKind::Stone => ItemKind::Stone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(id: u128, kind: EntityKind) -> Entity {
        let mut inventory = Inventory::default();
        inventory.add(ItemKind::Wood, 3);
        inventory.add(ItemKind::Stone, u32::MAX);
        Entity {
            id: EntityId(id),
            kind,
            hp: 42,
            position: Vec3::new(-300.5, 1.25, 70_000.0),
            inventory,
            owner: u64::MAX,
        }
    }

    fn all_kinds() -> [EntityKind; 6] {
        [
            EntityKind::PlayerAvatar,
            EntityKind::Tree,
            EntityKind::Rock,
            EntityKind::ItemWood,
            EntityKind::ItemStone,
            EntityKind::StructureWall,
        ]
    }

    fn all_actions() -> Vec<Action> {
        vec![
            Action::Move {
                to: Vec3::new(1.0, -2.0, 3.5),
            },
            Action::Harvest {
                target: EntityId(u128::MAX),
            },
            Action::Build {
                at: Vec3::new(0.0, 0.0, -0.0),
                kind: EntityKind::StructureWall,
            },
            Action::Interact {
                target: EntityId(1 << 100),
            },
            Action::Idle,
        ]
    }

    fn sample_delta() -> Delta {
        Delta {
            region: RegionId::new(-1, 273),
            frame: 9,
            changes: all_kinds()
                .into_iter()
                .enumerate()
                .map(|(i, k)| Change::Upsert(entity(i as u128, k)))
                .chain([Change::Remove(EntityId(77))])
                .collect(),
            outcomes: vec![
                Outcome {
                    player: 1,
                    seq: 2,
                    accepted: true,
                    reason: String::new(),
                },
                Outcome {
                    player: 3,
                    seq: 4,
                    accepted: false,
                    reason: "out of reach — ünïcode".into(),
                },
            ],
        }
    }

    #[test]
    fn entities_round_trip() {
        for kind in all_kinds() {
            let e = entity(0x0123_4567_89ab_cdef_0011_2233_4455_6677, kind);
            assert_eq!(decode_entity(&encode_entity(&e)).unwrap(), e);
        }
        let bare = Entity {
            inventory: Inventory::default(),
            owner: 0,
            ..entity(0, EntityKind::Tree)
        };
        assert_eq!(decode_entity(&encode_entity(&bare)).unwrap(), bare);
    }

    #[test]
    fn inputs_round_trip() {
        for (seq, action) in all_actions().into_iter().enumerate() {
            let i = Input {
                player: 12,
                seq: seq as u64,
                action,
            };
            assert_eq!(decode_input(&encode_input(&i)).unwrap(), i);
        }
    }

    /// Regression (fuzzing, `world_codec` crash-414f58d7): a 280-byte delta whose changes are
    /// zero-size list elements decoded to a value whose encoding (98,343 words) its own decoder
    /// refused. It is now refused as amplified, and whatever decodes re-encodes decodably.
    #[test]
    fn amplified_messages_are_refused() {
        let crash = include_bytes!("../tests/data/fuzz-delta-amplified.bin");
        let error = decode_delta(&crash[1..]).unwrap_err();
        assert!(error.to_string().contains("amplified"), "{error}");
        // The fuzz target's property on the same input: whatever decodes re-encodes decodably.
        for bytes in [&crash[1..], &encode_delta(&sample_delta())[..]] {
            if let Ok(delta) = decode_delta(bytes) {
                assert!(decode_delta(&encode_delta(&delta)).is_ok());
            }
        }
    }

    /// Regression (fuzzing): a value stored at an unaligned address decodes like any other.
    #[test]
    fn values_at_unaligned_addresses_decode() {
        let unaligned = |bytes: Vec<u8>| {
            let mut shifted = vec![0u8];
            shifted.extend_from_slice(&bytes);
            shifted
        };
        let e = entity(5, EntityKind::Rock);
        let bytes = unaligned(encode_entity(&e));
        assert_eq!(decode_entity(&bytes[1..]).unwrap(), e);
        let d = sample_delta();
        assert_eq!(decode_delta(&unaligned(encode_delta(&d))[1..]).unwrap(), d);
        let i = Input {
            player: 1,
            seq: 2,
            action: Action::Idle,
        };
        assert_eq!(decode_input(&unaligned(encode_input(&i))[1..]).unwrap(), i);
        let f = FrameRecord {
            inputs: vec![(1, 2)],
            ..FrameRecord::default()
        };
        let bytes = unaligned(encode_frame_record(&f));
        assert_eq!(decode_frame_record(&bytes[1..]).unwrap(), f);
        // Truncated and unaligned: an error, no panic.
        assert!(decode_entity(&bytes[1..bytes.len() - 3]).is_err());
    }

    #[test]
    fn deltas_and_frame_records_round_trip() {
        let d = sample_delta();
        assert_eq!(decode_delta(&encode_delta(&d)).unwrap(), d);
        assert_eq!(
            decode_delta(&encode_delta(&Delta::default())).unwrap(),
            Delta::default()
        );
        let f = FrameRecord {
            region: RegionId::new(i32::MIN, i32::MAX),
            frame: u64::MAX,
            inputs: vec![(1, 1), (2, 7), (1, 2)],
            rejected: 1,
        };
        assert_eq!(decode_frame_record(&encode_frame_record(&f)).unwrap(), f);
    }

    #[test]
    fn garbage_truncated_and_trailing_bytes_are_errors() {
        let bytes = encode_delta(&sample_delta());
        for len in 0..bytes.len() {
            assert!(decode_delta(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode_delta(&trailing),
            Err(CodecError::TrailingBytes { extra: 8, .. })
        ));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in [1usize, 7, 8, 16, 64, 300] {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            // Must not panic; mostly errors, and never a spurious decode of a huge message.
            let _ = decode_entity(&garbage);
            let _ = decode_input(&garbage);
            let _ = decode_delta(&garbage);
            let _ = decode_frame_record(&garbage);
        }
        let error = decode_entity(b"not capnp").unwrap_err();
        assert!(
            error.to_string().starts_with("cannot decode entity"),
            "{error}"
        );
    }

    /// Overwrites the 16-bit enum at `byte` of the data section of the root struct (which starts
    /// right after the 8-byte segment table and the 8-byte root pointer).
    fn patch_u16(bytes: &mut [u8], byte: usize, value: u16) {
        let at = 16 + byte;
        bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }

    #[test]
    fn unknown_enum_values_and_broken_invariants_are_errors() {
        // EntityState's data section: type (u16) at byte 0, hp (u32) at byte 4.
        let mut bytes = encode_entity(&entity(5, EntityKind::Rock));
        patch_u16(&mut bytes, 0, 999);
        let error = decode_entity(&bytes).unwrap_err();
        assert!(matches!(error, CodecError::Malformed { .. }), "{error}");

        let moved = Entity {
            position: Vec3::new(10_000.0, 0.0, 0.0),
            ..entity(5, EntityKind::Rock)
        };
        let mut message = message::Builder::new_default();
        let mut b = message.init_root::<entity_state::Builder<'_>>();
        write_entity(&entity(5, EntityKind::Rock), b.reborrow());
        moved.region().write_capnp(b.init_region());
        let wrong_region = serialize::write_message_to_words(&message);
        assert!(matches!(
            decode_entity(&wrong_region),
            Err(CodecError::Invalid { .. })
        ));

        let mut message = message::Builder::new_default();
        let b = message.init_root::<entity_state::Builder<'_>>();
        let mut items = b.init_inventory().init_items(2);
        items.reborrow().get(0).set_count(1);
        items.reborrow().get(1).set_count(1);
        let twice = serialize::write_message_to_words(&message);
        let error = decode_entity(&twice).unwrap_err();
        assert!(error.to_string().contains("two stacks"), "{error}");
    }

    #[test]
    fn unknown_union_variants_are_errors() {
        let mut message = message::Builder::new_default();
        let mut b = message.init_root::<input::Builder<'_>>();
        b.set_player(1);
        b.reborrow().init_action().set_idle(());
        let mut bytes = serialize::write_message_to_words(&message);
        // Segment table 8 bytes, root pointer 8, Input's data 16 (player, seq) and pointer 8,
        // then the action struct, whose union discriminant is the u16 at its data byte 0.
        let discriminant = 8 + 8 + 16 + 8;
        assert_eq!(
            bytes[discriminant..discriminant + 2],
            4u16.to_le_bytes(),
            "idle"
        );
        bytes[discriminant..discriminant + 2].copy_from_slice(&9u16.to_le_bytes());
        assert!(matches!(
            decode_input(&bytes),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn messages_beyond_the_traversal_limit_are_errors() {
        let big = FrameRecord {
            inputs: (0..TRAVERSAL_LIMIT_WORDS as u64).map(|i| (i, i)).collect(),
            ..FrameRecord::default()
        };
        let error = decode_frame_record(&encode_frame_record(&big)).unwrap_err();
        assert!(
            error.to_string().contains("cannot decode frame record"),
            "{error}"
        );
    }
}
