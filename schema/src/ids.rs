//! Identifiers of things in the world.
//!
//! Entity ids are 128 random bits chosen by whoever creates the entity: no
//! global counter, so creating entities never makes a hot key. Player ids are
//! `u64`s assigned by whatever issues login tokens.

use crate::world_capnp;
use foundationdb_tuple::{
    PackResult, TupleDepth, TuplePack, TupleUnpack, Uuid, VersionstampOffset,
};
use std::fmt;
use std::io;

/// A player's id (`0` is reserved for "nobody", e.g. an unowned entity).
pub type PlayerId = u64;

/// An entity's id: 16 random bytes, ordered like their big-endian `u128`.
///
/// In tuple keys it is encoded as one UUID element (type code `0x30` and the
/// 16 bytes), so it has a fixed length and sorts like the `u128`. In Cap'n
/// Proto it is `EntityId { hi, lo }` (the high and low 64 bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntityId(pub u128);

impl EntityId {
    /// Makes an id from its `u128` value.
    pub const fn from_u128(v: u128) -> Self {
        Self(v)
    }

    /// The id as a `u128`.
    pub const fn as_u128(&self) -> u128 {
        self.0
    }

    /// Makes an id from 16 bytes (big-endian), e.g. 16 bytes from an RNG.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }

    /// The 16 bytes of the id (big-endian).
    pub const fn to_bytes(&self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Makes an id from a slice; `None` unless it is exactly 16 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 16] = bytes.try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    /// Makes an id from its high and low 64 bits (the Cap'n Proto form).
    pub const fn from_hi_lo(hi: u64, lo: u64) -> Self {
        Self(((hi as u128) << 64) | lo as u128)
    }

    /// The high 64 bits.
    pub const fn hi(&self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// The low 64 bits.
    pub const fn lo(&self) -> u64 {
        self.0 as u64
    }

    /// Reads an id from its Cap'n Proto form.
    pub fn read_capnp(r: world_capnp::entity_id::Reader<'_>) -> Self {
        Self::from_hi_lo(r.get_hi(), r.get_lo())
    }

    /// Writes this id into a Cap'n Proto builder.
    pub fn write_capnp(&self, mut b: world_capnp::entity_id::Builder<'_>) {
        b.set_hi(self.hi());
        b.set_lo(self.lo());
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityId({:032x})", self.0)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl From<u128> for EntityId {
    fn from(v: u128) -> Self {
        Self(v)
    }
}

impl From<EntityId> for u128 {
    fn from(id: EntityId) -> Self {
        id.0
    }
}

impl TuplePack for EntityId {
    fn pack<W: io::Write>(
        &self,
        w: &mut W,
        tuple_depth: TupleDepth,
    ) -> io::Result<VersionstampOffset> {
        Uuid::from_u128(self.0).pack(w, tuple_depth)
    }
}

impl<'de> TupleUnpack<'de> for EntityId {
    fn unpack(input: &'de [u8], tuple_depth: TupleDepth) -> PackResult<(&'de [u8], Self)> {
        let (rest, uuid) = Uuid::unpack(input, tuple_depth)?;
        Ok((rest, Self(uuid.as_u128())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_and_word_forms_agree() {
        let bytes: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(17).wrapping_add(1));
        let id = EntityId::from_bytes(bytes);
        assert_eq!(id.to_bytes(), bytes);
        assert_eq!(EntityId::from_slice(&bytes), Some(id));
        assert_eq!(EntityId::from_slice(&bytes[1..]), None);
        assert_eq!(EntityId::from_hi_lo(id.hi(), id.lo()), id);
        assert_eq!(id.hi().to_be_bytes(), bytes[..8]);
        assert_eq!(id.lo().to_be_bytes(), bytes[8..]);
        assert_eq!(format!("{id}").len(), 32);
    }

    #[test]
    fn tuple_encoding_is_fixed_length_and_ordered() {
        let ids = [
            0u128,
            1,
            255,
            256,
            u64::MAX as u128,
            u64::MAX as u128 + 1,
            u128::MAX,
        ];
        let mut prev: Option<Vec<u8>> = None;
        for v in ids {
            let packed = foundationdb_tuple::pack(&(EntityId(v),));
            assert_eq!(packed.len(), 17);
            assert_eq!(packed[0], 0x30);
            let (back,): (EntityId,) = foundationdb_tuple::unpack(&packed).unwrap();
            assert_eq!(back, EntityId(v));
            if let Some(p) = prev {
                assert!(p < packed);
            }
            prev = Some(packed);
        }
        assert!(foundationdb_tuple::unpack::<(EntityId,)>(&[0x30, 1, 2]).is_err());
        assert!(foundationdb_tuple::unpack::<(EntityId,)>(&[0x15, 1]).is_err());
    }

    #[test]
    fn capnp_round_trip() {
        let id = EntityId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        let mut msg = capnp::message::Builder::new_default();
        id.write_capnp(msg.init_root::<world_capnp::entity_id::Builder>());
        let r = msg
            .get_root_as_reader::<world_capnp::entity_id::Reader>()
            .unwrap();
        assert_eq!(EntityId::read_capnp(r), id);
    }
}
