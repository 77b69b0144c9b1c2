//! The tuple key layout of one world — the only place it is defined.
//!
//! Every key is `prefix ‖ tuple`, where `prefix` is the world's prefix (see
//! [`WorldKeys::numbered`] and [`WorldKeys::new`]) and `tuple` is a FoundationDB tuple
//! (`foundationdb-tuple`) whose first element is a small integer tag naming the subspace
//! ([`KeyKind::tag`]; the table writes the kinds' names). Regions are encoded as two integer
//! elements `(x, z)`, cells as two integer elements `(x, z)`, entity ids as one UUID element (16
//! bytes), player ids, frames and sequence numbers as integers, and versionstamps as 12-byte
//! tuple versionstamps (10-byte commit versionstamp plus a 2-byte user version).
//!
//! | subspace | key tuple after the prefix | value (by convention) |
//! |---|---|---|
//! | entities | `("entity", id)` | `EntityState` Cap'n Proto message |
//! | spatial index | `("spatial", rx, rz, cx, cz, id)` | empty (written on a change of cell) |
//! | reverse spatial index | `("spatial_rev", id)` | [`WorldKeys::spatial_rev_value`]: `(rx, rz, cx, cz)` |
//! | region inbox | `("inbox", rx, rz, versionstamp)` | `Input` message |
//! | region change log | `("changelog", rx, rz, versionstamp)` | `Delta` message |
//! | frame records | `("frame", rx, rz, frame)` | `FrameRecord` message |
//! | region head (watched) | `("head", rx, rz)` | written by every frame (layer-defined) |
//! | players | `("player", player)` | layer-defined player record |
//! | applied sequence | `("applied", player)` | highest applied seq of that player (layer-defined) |
//! | region lease | `("lease", rx, rz)` | layer-defined lease record |
//! | region version | `("region_version", rx, rz)` | layer-defined version for cache validation |
//! | inbox signal | `("inbox_signal", rx, rz)` | bumped by atomic ADD on every T1; the processor watches it |
//! | change-log floor | `("changelog_floor", rx, rz)` | the 10-byte versionstamp the log was trimmed up to (inclusive) |
//! | node heartbeats | `("node", holder)` | layer-defined: the node's expiry (a read version) and roles |
//!
//! The inbox and change log are written with FDB's `SET_VERSIONSTAMPED_KEY`
//! atomic op, whose parameter is the key with an *incomplete* versionstamp
//! and a 4-byte little-endian offset of that versionstamp appended (API
//! version ≥ 520); [`WorldKeys::inbox_versionstamped`] and
//! [`WorldKeys::changelog_versionstamped`] build exactly that. Appenders never
//! read, so they never conflict, and the keys sort in commit order (then by
//! user version inside one transaction).
//!
//! **Why short.** The embedded engine's memtable (fjall's skiplist of `ByteView` keys) keeps a
//! key of at most 20 bytes inside the skiplist node and compares it there; a longer key lives
//! on the heap, and every comparison on the way down the skiplist follows that pointer, a cache
//! miss (half the cost of a memtable insert at 800 bots, 2026-11-30). With a numbered world
//! (`(0,)` is one byte) and integer tags (the entity tag `0` is one byte, the others two), every
//! key a move or a frame writes fits, except the spatial index's.
//!
//! Invariants:
//! - every key starts with the world prefix, and different subspaces never
//!   overlap (tags are distinct tuple integers, and a tuple element's encoding is never a
//!   prefix of another's);
//! - the world prefix is at most [`MAX_PREFIX_LEN`] bytes and does not start
//!   with `0xff` (FDB's system keys), so every key is shorter than
//!   [`MAX_KEY_LEN`] (100) bytes;
//! - within one region the inbox and change log sort by versionstamp, i.e.
//!   in commit order; frames sort by frame number;
//! - decoding never panics: every `decode_*` returns a [`KeyError`] on bytes
//!   that are not a well-formed key of the expected kind.

use crate::geometry::{CellId, RegionId};
use crate::ids::{EntityId, PlayerId};
use foundationdb_tuple::{PackError, Subspace, TuplePack, Uuid, Versionstamp};
use std::fmt;

/// Largest world prefix, in bytes (after tuple encoding for [`WorldKeys::new`]).
pub const MAX_PREFIX_LEN: usize = 40;

/// Every key built here is strictly shorter than this many bytes (including
/// the 4-byte offset suffix of versionstamped keys).
pub const MAX_KEY_LEN: usize = 100;

/// Room reserved for a key's tuple after its subspace's prefix: the longest (a spatial key's
/// region, cell and UUID) takes 33 bytes, so every key is built in one allocation.
const KEY_TAIL_BYTES: usize = 48;

/// Why a key or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The world prefix is longer than [`MAX_PREFIX_LEN`] bytes.
    PrefixTooLong {
        /// Length of the refused prefix, in bytes.
        len: usize,
    },
    /// The world prefix is empty or starts with `0xff` (FDB system keys).
    InvalidPrefix,
    /// The key is not in this world, or not in the subspace that was asked for.
    WrongSubspace,
    /// The key is in the right subspace but its tuple does not decode as the
    /// expected elements.
    Malformed(String),
    /// The key holds an incomplete versionstamp (it was never committed
    /// through `SET_VERSIONSTAMPED_KEY`).
    IncompleteVersionstamp,
    /// A cell index is `>= CELLS_PER_SIDE`.
    CellOutOfRange {
        /// Cell index along x.
        x: u16,
        /// Cell index along z.
        z: u16,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::PrefixTooLong { len } => {
                write!(
                    f,
                    "world prefix is {len} bytes, at most {MAX_PREFIX_LEN} allowed"
                )
            }
            KeyError::InvalidPrefix => {
                write!(f, "world prefix must be non-empty and not start with 0xff")
            }
            KeyError::WrongSubspace => write!(f, "key is not in the expected subspace"),
            KeyError::Malformed(why) => write!(f, "malformed key: {why}"),
            KeyError::IncompleteVersionstamp => write!(f, "key holds an incomplete versionstamp"),
            KeyError::CellOutOfRange { x, z } => write!(f, "cell ({x}, {z}) is out of range"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<PackError> for KeyError {
    fn from(e: PackError) -> Self {
        match e {
            PackError::BadPrefix => KeyError::WrongSubspace,
            other => KeyError::Malformed(other.to_string()),
        }
    }
}

/// The kinds of key in a world, one per subspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// `entity/(id)`: one entity's state.
    Entity,
    /// `spatial/(region, cell, id)`: the spatial index.
    Spatial,
    /// `spatial_rev/(id)`: where the spatial index has an entity.
    SpatialRev,
    /// `inbox/(region, versionstamp)`: pending inputs of a region.
    Inbox,
    /// `changelog/(region, versionstamp)`: deltas of a region, in commit order.
    Changelog,
    /// `frame/(region, frame)`: frame records of a region.
    Frame,
    /// `head/(region)`: the key edges watch; changed by every frame.
    Head,
    /// `player/(player)`: player records.
    Player,
    /// `applied/(player)`: highest applied input seq of a player.
    Applied,
    /// `lease/(region)`: who processes a region.
    Lease,
    /// `region_version/(region)`: a region's version, for cache validation.
    RegionVersion,
    /// `inbox_signal/(region)`: bumped by atomic ADD on every inbox append; watched.
    InboxSignal,
    /// `changelog_floor/(region)`: how far the change log was trimmed.
    ChangelogFloor,
    /// `durable/(player)`: the highest input seq of a player that is durable (in an inbox or
    /// applied), with a digest of that input; raised by atomic MAX in T1.
    Durable,
    /// `node/(holder)`: a live node's heartbeat (its lease-holder id as a UUID element).
    Node,
}

impl KeyKind {
    /// Every kind, in the order of their subspaces' tags (a kind's tag is its place here).
    pub const ALL: [KeyKind; 15] = [
        KeyKind::Entity,
        KeyKind::Spatial,
        KeyKind::SpatialRev,
        KeyKind::Inbox,
        KeyKind::Changelog,
        KeyKind::Frame,
        KeyKind::Head,
        KeyKind::Player,
        KeyKind::Applied,
        KeyKind::Lease,
        KeyKind::RegionVersion,
        KeyKind::InboxSignal,
        KeyKind::ChangelogFloor,
        KeyKind::Durable,
        KeyKind::Node,
    ];

    /// The tuple integer that starts this kind's subspace after the prefix: the kind's place in
    /// [`KeyKind::ALL`] (stored in every key, so a kind keeps its number forever).
    pub const fn tag(self) -> i64 {
        self as i64
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One decoded key of a world (see [`WorldKeys::decode`] and [`WorldKeys::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldKey {
    /// `entity/(id)`.
    Entity(EntityId),
    /// `spatial/(region, cell, id)`.
    Spatial {
        /// Region of the entity.
        region: RegionId,
        /// Cell of the entity inside `region`.
        cell: CellId,
        /// The entity.
        id: EntityId,
    },
    /// `spatial_rev/(id)`.
    SpatialRev(EntityId),
    /// `inbox/(region, versionstamp)`.
    Inbox {
        /// The region whose inbox it is.
        region: RegionId,
        /// Commit versionstamp and user version of the input.
        versionstamp: Versionstamp,
    },
    /// `changelog/(region, versionstamp)`.
    Changelog {
        /// The region whose change log it is.
        region: RegionId,
        /// Commit versionstamp and user version of the delta.
        versionstamp: Versionstamp,
    },
    /// `frame/(region, frame)`.
    Frame {
        /// The region.
        region: RegionId,
        /// The frame number.
        frame: u64,
    },
    /// `head/(region)`.
    Head(RegionId),
    /// `player/(player)`.
    Player(PlayerId),
    /// `applied/(player)`.
    Applied(PlayerId),
    /// `lease/(region)`.
    Lease(RegionId),
    /// `region_version/(region)`.
    RegionVersion(RegionId),
    /// `inbox_signal/(region)`.
    InboxSignal(RegionId),
    /// `changelog_floor/(region)`.
    ChangelogFloor(RegionId),
    /// `durable/(player)`.
    Durable(PlayerId),
    /// `node/(holder)`.
    Node(u128),
}

impl WorldKey {
    /// The kind of this key.
    pub fn kind(&self) -> KeyKind {
        match self {
            WorldKey::Entity(_) => KeyKind::Entity,
            WorldKey::Spatial { .. } => KeyKind::Spatial,
            WorldKey::SpatialRev(_) => KeyKind::SpatialRev,
            WorldKey::Inbox { .. } => KeyKind::Inbox,
            WorldKey::Changelog { .. } => KeyKind::Changelog,
            WorldKey::Frame { .. } => KeyKind::Frame,
            WorldKey::Head(_) => KeyKind::Head,
            WorldKey::Player(_) => KeyKind::Player,
            WorldKey::Applied(_) => KeyKind::Applied,
            WorldKey::Lease(_) => KeyKind::Lease,
            WorldKey::RegionVersion(_) => KeyKind::RegionVersion,
            WorldKey::InboxSignal(_) => KeyKind::InboxSignal,
            WorldKey::ChangelogFloor(_) => KeyKind::ChangelogFloor,
            WorldKey::Durable(_) => KeyKind::Durable,
            WorldKey::Node(_) => KeyKind::Node,
        }
    }
}

/// The keys of one world: builds, ranges and decodes every kind of key.
///
/// Cheap to clone; build it once per world and share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldKeys {
    root: Subspace,
    subspaces: [Subspace; KeyKind::ALL.len()],
}

/// A `(begin, end)` key range: `begin` inclusive, `end` exclusive.
pub type KeyRange = (Vec<u8>, Vec<u8>);

fn region_range(sub: &Subspace, region: RegionId) -> KeyRange {
    sub.subspace(&(region.x, region.z)).range()
}

fn check_cell(x: u16, z: u16) -> Result<CellId, KeyError> {
    CellId::new(x, z).ok_or(KeyError::CellOutOfRange { x, z })
}

fn complete(vs: Versionstamp) -> Result<Versionstamp, KeyError> {
    if vs.is_complete() {
        Ok(vs)
    } else {
        Err(KeyError::IncompleteVersionstamp)
    }
}

impl WorldKeys {
    /// Keys of world number `world`: the prefix is the tuple `(world,)`, one byte for world 0
    /// and two for worlds 1–255 (the short prefixes FDB's directory layer hands out), so whole
    /// keys are valid tuples and most fit the memtable's 20 inline bytes (see the module docs).
    /// What `sekai serve` and the simulation use.
    pub fn numbered(world: u32) -> Self {
        // A tuple integer takes at most 5 bytes here and starts with 0x14..=0x18: always a
        // valid prefix.
        Self::with_root(Subspace::all().subspace(&world))
    }

    /// Keys of the world named `world`: the prefix is `world` encoded as one
    /// tuple string element (e.g. `WorldKeys::new("sekai/demo")`), so whole
    /// keys are valid tuples. Longer keys than [`WorldKeys::numbered`]'s: for tests and tools
    /// that want a readable prefix. Fails when the encoded prefix is longer than
    /// [`MAX_PREFIX_LEN`] or `world` is empty.
    pub fn new(world: &str) -> Result<Self, KeyError> {
        if world.is_empty() {
            return Err(KeyError::InvalidPrefix);
        }
        Self::from_prefix(Subspace::all().subspace(&world).into_bytes())
    }

    /// Keys of the world whose keys all start with the raw bytes `prefix`.
    /// Fails when `prefix` is empty, starts with `0xff` or is longer than
    /// [`MAX_PREFIX_LEN`].
    pub fn from_prefix(prefix: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let prefix = prefix.into();
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(KeyError::PrefixTooLong { len: prefix.len() });
        }
        if prefix.first().is_none_or(|&b| b == 0xff) {
            return Err(KeyError::InvalidPrefix);
        }
        Ok(Self::with_root(Subspace::from_bytes(prefix)))
    }

    fn with_root(root: Subspace) -> Self {
        let subspaces = KeyKind::ALL.map(|k| root.subspace(&k.tag()));
        Self { root, subspaces }
    }

    /// The world prefix that starts every key.
    pub fn prefix(&self) -> &[u8] {
        self.root.bytes()
    }

    /// The range of every key of this world.
    pub fn range(&self) -> KeyRange {
        self.root.range()
    }

    /// The subspace of one kind of key.
    pub fn subspace(&self, kind: KeyKind) -> &Subspace {
        &self.subspaces[kind.index()]
    }

    /// The range of every key of one kind.
    pub fn kind_range(&self, kind: KeyKind) -> KeyRange {
        self.subspace(kind).range()
    }

    /// Builds the key of `key`.
    pub fn encode(&self, key: &WorldKey) -> Vec<u8> {
        match key {
            WorldKey::Entity(id) => self.entity(*id),
            WorldKey::Spatial { region, cell, id } => self.spatial(*region, *cell, *id),
            WorldKey::SpatialRev(id) => self.spatial_rev(*id),
            WorldKey::Inbox {
                region,
                versionstamp,
            } => self.inbox(*region, versionstamp),
            WorldKey::Changelog {
                region,
                versionstamp,
            } => self.changelog(*region, versionstamp),
            WorldKey::Frame { region, frame } => self.frame(*region, *frame),
            WorldKey::Head(region) => self.head(*region),
            WorldKey::Player(player) => self.player(*player),
            WorldKey::Applied(player) => self.applied(*player),
            WorldKey::Lease(region) => self.lease(*region),
            WorldKey::RegionVersion(region) => self.region_version(*region),
            WorldKey::InboxSignal(region) => self.inbox_signal(*region),
            WorldKey::ChangelogFloor(region) => self.changelog_floor(*region),
            WorldKey::Durable(player) => self.durable(*player),
            WorldKey::Node(holder) => self.node(*holder),
        }
    }

    /// Decodes any key of this world.
    pub fn decode(&self, key: &[u8]) -> Result<WorldKey, KeyError> {
        if !self.root.is_start_of(key) {
            return Err(KeyError::WrongSubspace);
        }
        let kind = KeyKind::ALL
            .into_iter()
            .find(|k| self.subspace(*k).is_start_of(key))
            .ok_or(KeyError::WrongSubspace)?;
        Ok(match kind {
            KeyKind::Entity => WorldKey::Entity(self.decode_entity(key)?),
            KeyKind::Spatial => {
                let (region, cell, id) = self.decode_spatial(key)?;
                WorldKey::Spatial { region, cell, id }
            }
            KeyKind::SpatialRev => WorldKey::SpatialRev(self.decode_spatial_rev(key)?),
            KeyKind::Inbox => {
                let (region, versionstamp) = self.decode_inbox(key)?;
                WorldKey::Inbox {
                    region,
                    versionstamp,
                }
            }
            KeyKind::Changelog => {
                let (region, versionstamp) = self.decode_changelog(key)?;
                WorldKey::Changelog {
                    region,
                    versionstamp,
                }
            }
            KeyKind::Frame => {
                let (region, frame) = self.decode_frame(key)?;
                WorldKey::Frame { region, frame }
            }
            KeyKind::Head => WorldKey::Head(self.decode_head(key)?),
            KeyKind::Player => WorldKey::Player(self.decode_player(key)?),
            KeyKind::Applied => WorldKey::Applied(self.decode_applied(key)?),
            KeyKind::Lease => WorldKey::Lease(self.decode_lease(key)?),
            KeyKind::RegionVersion => WorldKey::RegionVersion(self.decode_region_version(key)?),
            KeyKind::InboxSignal => WorldKey::InboxSignal(self.decode_inbox_signal(key)?),
            KeyKind::ChangelogFloor => WorldKey::ChangelogFloor(self.decode_changelog_floor(key)?),
            KeyKind::Durable => WorldKey::Durable(self.decode_durable(key)?),
            KeyKind::Node => WorldKey::Node(self.decode_node(key)?),
        })
    }

    fn decode_region_key(&self, kind: KeyKind, key: &[u8]) -> Result<RegionId, KeyError> {
        let (x, z): (i32, i32) = self.subspace(kind).unpack(key)?;
        Ok(RegionId::new(x, z))
    }

    fn decode_stamped(
        &self,
        kind: KeyKind,
        key: &[u8],
    ) -> Result<(RegionId, Versionstamp), KeyError> {
        let (x, z, vs): (i32, i32, Versionstamp) = self.subspace(kind).unpack(key)?;
        Ok((RegionId::new(x, z), complete(vs)?))
    }

    /// `kind`'s subspace packed with `tuple`, in one allocation (as `Subspace::pack`, which
    /// grows its copy of the prefix a byte at a time; keys are built on every read and write).
    fn pack<T: TuplePack>(&self, kind: KeyKind, tuple: &T) -> Vec<u8> {
        let prefix = self.subspace(kind).bytes();
        let mut key = Vec::with_capacity(prefix.len() + KEY_TAIL_BYTES);
        key.extend_from_slice(prefix);
        tuple.pack_into_vec(&mut key);
        key
    }

    fn stamped(&self, kind: KeyKind, region: RegionId, vs: &Versionstamp) -> Vec<u8> {
        self.pack(kind, &(region.x, region.z, vs))
    }

    fn versionstamped(&self, kind: KeyKind, region: RegionId, user_version: u16) -> Vec<u8> {
        self.subspace(kind).pack_with_versionstamp(&(
            region.x,
            region.z,
            Versionstamp::incomplete(user_version),
        ))
    }

    fn stamped_after(&self, kind: KeyKind, region: RegionId, after: &[u8; 10]) -> KeyRange {
        let mut begin = self.stamped(kind, region, &Versionstamp::complete(*after, u16::MAX));
        begin.push(0x00);
        let (_, end) = region_range(self.subspace(kind), region);
        (begin, end)
    }

    // ----- entities -----

    /// `entity/(id)`: the key of one entity's state.
    pub fn entity(&self, id: EntityId) -> Vec<u8> {
        self.pack(KeyKind::Entity, &(id,))
    }

    /// Decodes an `entity/(id)` key.
    pub fn decode_entity(&self, key: &[u8]) -> Result<EntityId, KeyError> {
        let (id,): (EntityId,) = self.subspace(KeyKind::Entity).unpack(key)?;
        Ok(id)
    }

    // ----- spatial index -----

    /// `spatial/(region, cell, id)`: the spatial index entry of an entity.
    pub fn spatial(&self, region: RegionId, cell: CellId, id: EntityId) -> Vec<u8> {
        self.pack(KeyKind::Spatial, &(region.x, region.z, cell.x, cell.z, id))
    }

    /// The range of the spatial index entries of one region.
    pub fn spatial_region_range(&self, region: RegionId) -> KeyRange {
        region_range(self.subspace(KeyKind::Spatial), region)
    }

    /// The range of the spatial index entries of one cell.
    pub fn spatial_cell_range(&self, region: RegionId, cell: CellId) -> KeyRange {
        self.subspace(KeyKind::Spatial)
            .subspace(&(region.x, region.z, cell.x, cell.z))
            .range()
    }

    /// Decodes a `spatial/(region, cell, id)` key.
    pub fn decode_spatial(&self, key: &[u8]) -> Result<(RegionId, CellId, EntityId), KeyError> {
        let (rx, rz, cx, cz, id): (i32, i32, u16, u16, EntityId) =
            self.subspace(KeyKind::Spatial).unpack(key)?;
        Ok((RegionId::new(rx, rz), check_cell(cx, cz)?, id))
    }

    /// `spatial_rev/(id)`: where the spatial index holds an entity; its value
    /// is [`WorldKeys::spatial_rev_value`].
    pub fn spatial_rev(&self, id: EntityId) -> Vec<u8> {
        self.pack(KeyKind::SpatialRev, &(id,))
    }

    /// Decodes a `spatial_rev/(id)` key.
    pub fn decode_spatial_rev(&self, key: &[u8]) -> Result<EntityId, KeyError> {
        let (id,): (EntityId,) = self.subspace(KeyKind::SpatialRev).unpack(key)?;
        Ok(id)
    }

    /// The value stored under `spatial_rev/(id)`: the tuple `(rx, rz, cx, cz)`.
    pub fn spatial_rev_value(region: RegionId, cell: CellId) -> Vec<u8> {
        foundationdb_tuple::pack(&(region.x, region.z, cell.x, cell.z))
    }

    /// Decodes a value stored under `spatial_rev/(id)`.
    pub fn decode_spatial_rev_value(value: &[u8]) -> Result<(RegionId, CellId), KeyError> {
        let (rx, rz, cx, cz): (i32, i32, u16, u16) = foundationdb_tuple::unpack(value)?;
        Ok((RegionId::new(rx, rz), check_cell(cx, cz)?))
    }

    // ----- region inbox -----

    /// `inbox/(region, versionstamp)` with a complete versionstamp: the key of
    /// one stored input (e.g. to clear it after it was applied).
    pub fn inbox(&self, region: RegionId, versionstamp: &Versionstamp) -> Vec<u8> {
        self.stamped(KeyKind::Inbox, region, versionstamp)
    }

    /// The parameter of `SET_VERSIONSTAMPED_KEY` that appends one input to the
    /// inbox of `region`: `inbox/(region, incomplete versionstamp)` followed
    /// by the 4-byte little-endian offset of the versionstamp. Use a distinct
    /// `user_version` for each input appended in one transaction; it orders
    /// them after the commit versionstamp.
    pub fn inbox_versionstamped(&self, region: RegionId, user_version: u16) -> Vec<u8> {
        self.versionstamped(KeyKind::Inbox, region, user_version)
    }

    /// The range of the whole inbox of one region, in commit order.
    pub fn inbox_range(&self, region: RegionId) -> KeyRange {
        region_range(self.subspace(KeyKind::Inbox), region)
    }

    /// Decodes an `inbox/(region, versionstamp)` key; the versionstamp must be complete.
    pub fn decode_inbox(&self, key: &[u8]) -> Result<(RegionId, Versionstamp), KeyError> {
        self.decode_stamped(KeyKind::Inbox, key)
    }

    // ----- region change log -----

    /// `changelog/(region, versionstamp)` with a complete versionstamp.
    pub fn changelog(&self, region: RegionId, versionstamp: &Versionstamp) -> Vec<u8> {
        self.stamped(KeyKind::Changelog, region, versionstamp)
    }

    /// The parameter of `SET_VERSIONSTAMPED_KEY` that appends one delta to the
    /// change log of `region` (see [`WorldKeys::inbox_versionstamped`]).
    pub fn changelog_versionstamped(&self, region: RegionId, user_version: u16) -> Vec<u8> {
        self.versionstamped(KeyKind::Changelog, region, user_version)
    }

    /// The range of the whole change log of one region, in commit order.
    pub fn changelog_range(&self, region: RegionId) -> KeyRange {
        region_range(self.subspace(KeyKind::Changelog), region)
    }

    /// The range of the change log of one region strictly after every entry
    /// committed with the 10-byte commit versionstamp `after` (whatever its
    /// user version): where an edge cursor at `after` resumes.
    pub fn changelog_range_after(&self, region: RegionId, after: &[u8; 10]) -> KeyRange {
        self.stamped_after(KeyKind::Changelog, region, after)
    }

    /// Decodes a `changelog/(region, versionstamp)` key; the versionstamp must be complete.
    pub fn decode_changelog(&self, key: &[u8]) -> Result<(RegionId, Versionstamp), KeyError> {
        self.decode_stamped(KeyKind::Changelog, key)
    }

    // ----- frames -----

    /// `frame/(region, frame)`: the record of one processed frame.
    pub fn frame(&self, region: RegionId, frame: u64) -> Vec<u8> {
        self.pack(KeyKind::Frame, &(region.x, region.z, frame))
    }

    /// The range of every frame record of one region, by frame number.
    pub fn frame_range(&self, region: RegionId) -> KeyRange {
        region_range(self.subspace(KeyKind::Frame), region)
    }

    /// Decodes a `frame/(region, frame)` key.
    pub fn decode_frame(&self, key: &[u8]) -> Result<(RegionId, u64), KeyError> {
        let (x, z, frame): (i32, i32, u64) = self.subspace(KeyKind::Frame).unpack(key)?;
        Ok((RegionId::new(x, z), frame))
    }

    // ----- per-region singletons -----

    /// `head/(region)`: the key edges watch; every frame of the region changes it.
    pub fn head(&self, region: RegionId) -> Vec<u8> {
        self.pack(KeyKind::Head, &(region.x, region.z))
    }

    /// Decodes a `head/(region)` key.
    pub fn decode_head(&self, key: &[u8]) -> Result<RegionId, KeyError> {
        self.decode_region_key(KeyKind::Head, key)
    }

    /// `lease/(region)`: the lease of the region's processor.
    pub fn lease(&self, region: RegionId) -> Vec<u8> {
        self.pack(KeyKind::Lease, &(region.x, region.z))
    }

    /// Decodes a `lease/(region)` key.
    pub fn decode_lease(&self, key: &[u8]) -> Result<RegionId, KeyError> {
        self.decode_region_key(KeyKind::Lease, key)
    }

    /// `region_version/(region)`: the region's version, for cache validation.
    pub fn region_version(&self, region: RegionId) -> Vec<u8> {
        self.pack(KeyKind::RegionVersion, &(region.x, region.z))
    }

    /// Decodes a `region_version/(region)` key.
    pub fn decode_region_version(&self, key: &[u8]) -> Result<RegionId, KeyError> {
        self.decode_region_key(KeyKind::RegionVersion, key)
    }

    /// `inbox_signal/(region)`: a counter every T1 bumps with atomic ADD (never read by T1, so
    /// appenders never conflict); the region's processor watches it.
    pub fn inbox_signal(&self, region: RegionId) -> Vec<u8> {
        self.pack(KeyKind::InboxSignal, &(region.x, region.z))
    }

    /// Decodes an `inbox_signal/(region)` key.
    pub fn decode_inbox_signal(&self, key: &[u8]) -> Result<RegionId, KeyError> {
        self.decode_region_key(KeyKind::InboxSignal, key)
    }

    /// `changelog_floor/(region)`: the versionstamp up to which (inclusive) the region's change
    /// log was trimmed; a cursor at or below it cannot resume by replay.
    pub fn changelog_floor(&self, region: RegionId) -> Vec<u8> {
        self.pack(KeyKind::ChangelogFloor, &(region.x, region.z))
    }

    /// Decodes a `changelog_floor/(region)` key.
    pub fn decode_changelog_floor(&self, key: &[u8]) -> Result<RegionId, KeyError> {
        self.decode_region_key(KeyKind::ChangelogFloor, key)
    }

    // ----- players -----

    /// `player/(player)`: a player's record.
    pub fn player(&self, player: PlayerId) -> Vec<u8> {
        self.pack(KeyKind::Player, &(player,))
    }

    /// Decodes a `player/(player)` key.
    pub fn decode_player(&self, key: &[u8]) -> Result<PlayerId, KeyError> {
        let (player,): (PlayerId,) = self.subspace(KeyKind::Player).unpack(key)?;
        Ok(player)
    }

    /// `applied/(player)`: the highest input seq of the player that any region
    /// has applied (a player's inputs may be processed by different regions
    /// over time, so this is per player, not per region).
    pub fn applied(&self, player: PlayerId) -> Vec<u8> {
        self.pack(KeyKind::Applied, &(player,))
    }

    /// Decodes an `applied/(player)` key.
    pub fn decode_applied(&self, key: &[u8]) -> Result<PlayerId, KeyError> {
        let (player,): (PlayerId,) = self.subspace(KeyKind::Applied).unpack(key)?;
        Ok(player)
    }

    /// `durable/(player)`: the highest durable input seq of the player and a digest of that
    /// input (16 bytes: digest then seq, both little-endian, so atomic MAX keeps the highest
    /// seq). Written by every T1; read at login.
    pub fn durable(&self, player: PlayerId) -> Vec<u8> {
        self.pack(KeyKind::Durable, &(player,))
    }

    /// Decodes a `durable/(player)` key.
    pub fn decode_durable(&self, key: &[u8]) -> Result<PlayerId, KeyError> {
        let (player,): (PlayerId,) = self.subspace(KeyKind::Durable).unpack(key)?;
        Ok(player)
    }

    // ----- nodes -----

    /// `node/(holder)`: the heartbeat of the node whose lease-holder id is `holder`.
    pub fn node(&self, holder: u128) -> Vec<u8> {
        self.pack(KeyKind::Node, &(Uuid::from_u128(holder),))
    }

    /// Decodes a `node/(holder)` key.
    pub fn decode_node(&self, key: &[u8]) -> Result<u128, KeyError> {
        let (holder,): (Uuid,) = self.subspace(KeyKind::Node).unpack(key)?;
        Ok(holder.as_u128())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> WorldKeys {
        WorldKeys::new("sekai/test").unwrap()
    }

    #[test]
    fn keys_are_packed_as_their_subspace_packs_them() {
        let keys = keys();
        let region = RegionId::new(-3, 70_000);
        let cell = CellId::new(1, 15).unwrap();
        let id = EntityId(u128::MAX - 5);
        let sub = |kind| keys.subspace(kind);
        assert_eq!(
            keys.spatial(region, cell, id),
            sub(KeyKind::Spatial).pack(&(region.x, region.z, cell.x, cell.z, id))
        );
        assert_eq!(keys.entity(id), sub(KeyKind::Entity).pack(&(id,)));
        assert_eq!(
            keys.head(region),
            sub(KeyKind::Head).pack(&(region.x, region.z))
        );
        assert_eq!(
            keys.applied(u64::MAX),
            sub(KeyKind::Applied).pack(&(u64::MAX,))
        );
        assert_eq!(
            keys.frame(region, 7),
            sub(KeyKind::Frame).pack(&(region.x, region.z, 7u64))
        );
    }

    fn vs(commit: u64, batch: u16, user: u16) -> Versionstamp {
        let mut tr = [0u8; 10];
        tr[..8].copy_from_slice(&commit.to_be_bytes());
        tr[8..].copy_from_slice(&batch.to_be_bytes());
        Versionstamp::complete(tr, user)
    }

    const REGIONS: [RegionId; 5] = [
        RegionId::new(0, 0),
        RegionId::new(-1, 1),
        RegionId::new(i32::MIN, i32::MAX),
        RegionId::new(i32::MAX, i32::MIN),
        RegionId::new(300, -70000),
    ];

    fn samples() -> Vec<WorldKey> {
        let ids = [
            EntityId(0),
            EntityId(1),
            EntityId(u128::MAX),
            EntityId(0x00ff << 64),
        ];
        let cells = [CellId::new(0, 0).unwrap(), CellId::new(15, 3).unwrap()];
        let mut out = Vec::new();
        for id in ids {
            out.push(WorldKey::Entity(id));
            out.push(WorldKey::SpatialRev(id));
            for region in REGIONS {
                for cell in cells {
                    out.push(WorldKey::Spatial { region, cell, id });
                }
            }
        }
        for region in REGIONS {
            for v in [
                vs(0, 0, 0),
                vs(1, 2, 3),
                vs(u64::MAX, u16::MAX - 1, u16::MAX),
            ] {
                out.push(WorldKey::Inbox {
                    region,
                    versionstamp: v.clone(),
                });
                out.push(WorldKey::Changelog {
                    region,
                    versionstamp: v,
                });
            }
            for frame in [0, 1, 255, 256, u64::MAX] {
                out.push(WorldKey::Frame { region, frame });
            }
            out.push(WorldKey::Head(region));
            out.push(WorldKey::Lease(region));
            out.push(WorldKey::RegionVersion(region));
            out.push(WorldKey::InboxSignal(region));
            out.push(WorldKey::ChangelogFloor(region));
        }
        for p in [0, 1, 12345, u64::MAX] {
            out.push(WorldKey::Player(p));
            out.push(WorldKey::Applied(p));
            out.push(WorldKey::Durable(p));
        }
        for holder in [0, 1, u128::MAX, 0x1234 << 70] {
            out.push(WorldKey::Node(holder));
        }
        out
    }

    #[test]
    fn every_kind_round_trips() {
        let keys = keys();
        let samples = samples();
        for kind in KeyKind::ALL {
            assert!(
                samples.iter().any(|s| s.kind() == kind),
                "{kind:?} untested"
            );
        }
        for sample in samples {
            let key = keys.encode(&sample);
            assert!(key.starts_with(keys.prefix()));
            assert!(key.len() < MAX_KEY_LEN);
            assert_eq!(keys.decode(&key).unwrap(), sample, "{key:?}");
            let (begin, end) = keys.kind_range(sample.kind());
            assert!(
                begin <= key && key < end,
                "{sample:?} outside its kind range"
            );
            for other in KeyKind::ALL {
                if other != sample.kind() {
                    assert!(!keys.subspace(other).is_start_of(&key));
                }
            }
            // The specific decoder agrees with the generic one.
            match &sample {
                WorldKey::Entity(id) => assert_eq!(keys.decode_entity(&key).unwrap(), *id),
                WorldKey::Spatial { region, cell, id } => {
                    assert_eq!(keys.decode_spatial(&key).unwrap(), (*region, *cell, *id));
                    let (b, e) = keys.spatial_cell_range(*region, *cell);
                    assert!(b <= key && key < e);
                    let (b, e) = keys.spatial_region_range(*region);
                    assert!(b <= key && key < e);
                }
                WorldKey::SpatialRev(id) => {
                    assert_eq!(keys.decode_spatial_rev(&key).unwrap(), *id)
                }
                WorldKey::Inbox {
                    region,
                    versionstamp,
                } => {
                    assert_eq!(
                        keys.decode_inbox(&key).unwrap(),
                        (*region, versionstamp.clone())
                    );
                    let (b, e) = keys.inbox_range(*region);
                    assert!(b <= key && key < e);
                }
                WorldKey::Changelog {
                    region,
                    versionstamp,
                } => {
                    assert_eq!(
                        keys.decode_changelog(&key).unwrap(),
                        (*region, versionstamp.clone())
                    );
                    let (b, e) = keys.changelog_range(*region);
                    assert!(b <= key && key < e);
                }
                WorldKey::Frame { region, frame } => {
                    assert_eq!(keys.decode_frame(&key).unwrap(), (*region, *frame));
                    let (b, e) = keys.frame_range(*region);
                    assert!(b <= key && key < e);
                }
                WorldKey::Head(r) => assert_eq!(keys.decode_head(&key).unwrap(), *r),
                WorldKey::Player(p) => assert_eq!(keys.decode_player(&key).unwrap(), *p),
                WorldKey::Applied(p) => assert_eq!(keys.decode_applied(&key).unwrap(), *p),
                WorldKey::Durable(p) => assert_eq!(keys.decode_durable(&key).unwrap(), *p),
                WorldKey::Lease(r) => assert_eq!(keys.decode_lease(&key).unwrap(), *r),
                WorldKey::Node(h) => assert_eq!(keys.decode_node(&key).unwrap(), *h),
                WorldKey::InboxSignal(r) => {
                    assert_eq!(keys.decode_inbox_signal(&key).unwrap(), *r)
                }
                WorldKey::ChangelogFloor(r) => {
                    assert_eq!(keys.decode_changelog_floor(&key).unwrap(), *r)
                }
                WorldKey::RegionVersion(r) => {
                    assert_eq!(keys.decode_region_version(&key).unwrap(), *r)
                }
            }
        }
    }

    #[test]
    fn specific_decoders_refuse_other_kinds() {
        let keys = keys();
        let head = keys.head(RegionId::new(1, 2));
        assert_eq!(keys.decode_lease(&head), Err(KeyError::WrongSubspace));
        assert_eq!(keys.decode_entity(&head), Err(KeyError::WrongSubspace));
        let other = WorldKeys::new("sekai/other").unwrap();
        assert_eq!(other.decode(&head), Err(KeyError::WrongSubspace));
        assert_eq!(other.decode_head(&head), Err(KeyError::WrongSubspace));
    }

    #[test]
    fn spatial_rev_value_round_trips() {
        for region in REGIONS {
            let cell = CellId::new(7, 15).unwrap();
            let v = WorldKeys::spatial_rev_value(region, cell);
            assert_eq!(
                WorldKeys::decode_spatial_rev_value(&v).unwrap(),
                (region, cell)
            );
        }
        let bad = foundationdb_tuple::pack(&(1i32, 2i32, 16u16, 0u16));
        assert_eq!(
            WorldKeys::decode_spatial_rev_value(&bad),
            Err(KeyError::CellOutOfRange { x: 16, z: 0 })
        );
        assert!(WorldKeys::decode_spatial_rev_value(b"").is_err());
    }

    #[test]
    fn out_of_range_cells_are_refused() {
        let keys = keys();
        let key = keys
            .subspace(KeyKind::Spatial)
            .pack(&(0i32, 0i32, 0u16, 99u16, EntityId(5)));
        assert_eq!(
            keys.decode(&key),
            Err(KeyError::CellOutOfRange { x: 0, z: 99 })
        );
    }

    #[test]
    fn versionstamped_keys_have_the_offset_suffix() {
        let keys = keys();
        let region = RegionId::new(-3, 4);
        for (param, kind) in [
            (keys.inbox_versionstamped(region, 7), KeyKind::Inbox),
            (keys.changelog_versionstamped(region, 7), KeyKind::Changelog),
        ] {
            assert!(param.len() < MAX_KEY_LEN);
            let (key, offset) = param.split_at(param.len() - 4);
            let offset = u32::from_le_bytes(offset.try_into().unwrap()) as usize;
            // The 10 bytes at the offset are the placeholder; the database
            // replaces them with the commit versionstamp.
            assert_eq!(&key[offset..offset + 10], &[0xff; 10]);
            assert_eq!(key[offset - 1], 0x33, "versionstamp type code");
            assert_eq!(&key[offset + 10..], &7u16.to_be_bytes());
            // Simulate the commit and check the result decodes.
            let mut committed = key.to_vec();
            let stamp: [u8; 10] = *b"\x00\x00\x00\x00\x00\x00\x01\x00\x00\x02";
            committed[offset..offset + 10].copy_from_slice(&stamp);
            let expected = Versionstamp::complete(stamp, 7);
            match kind {
                KeyKind::Inbox => {
                    assert_eq!(keys.decode_inbox(&committed).unwrap(), (region, expected));
                    // An uncommitted key refuses to decode.
                    assert_eq!(
                        keys.decode_inbox(key),
                        Err(KeyError::IncompleteVersionstamp)
                    );
                }
                _ => {
                    assert_eq!(
                        keys.decode_changelog(&committed).unwrap(),
                        (region, expected)
                    );
                }
            }
        }
    }

    #[test]
    fn stamped_keys_sort_in_commit_order() {
        let keys = keys();
        let region = RegionId::new(0, 0);
        let order = [
            vs(1, 0, 0),
            vs(1, 0, 1),
            vs(1, 1, 0),
            vs(2, 0, 0),
            vs(256, 0, 0),
            vs(u64::MAX, 0, 0),
        ];
        let packed: Vec<_> = order.iter().map(|v| keys.changelog(region, v)).collect();
        assert!(packed.windows(2).all(|w| w[0] < w[1]));
        let frames: Vec<_> = [0u64, 1, 2, 255, 256, 65536, u64::MAX]
            .iter()
            .map(|f| keys.frame(region, *f))
            .collect();
        assert!(frames.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn changelog_range_after_skips_the_cursor_commit() {
        let keys = keys();
        let region = RegionId::new(5, 5);
        let cursor = vs(10, 3, 0);
        let tr: [u8; 10] = cursor.transaction_version().try_into().unwrap();
        let (begin, end) = keys.changelog_range_after(region, &tr);
        for (v, inside) in [
            (vs(10, 3, 0), false),
            (vs(10, 3, u16::MAX), false),
            (vs(10, 2, 9), false),
            (vs(10, 4, 0), true),
            (vs(11, 0, 0), true),
            (vs(u64::MAX, u16::MAX, u16::MAX), true),
        ] {
            let k = keys.changelog(region, &v);
            assert_eq!(begin <= k && k < end, inside, "{v:?}");
        }
        // Other regions stay outside.
        let k = keys.changelog(RegionId::new(5, 6), &vs(11, 0, 0));
        assert!(!(begin <= k && k < end));
    }

    #[test]
    fn region_ranges_do_not_overlap() {
        let keys = keys();
        let a = RegionId::new(1, 2);
        let b = RegionId::new(1, 3);
        let (_, a_end) = keys.inbox_range(a);
        let (b_begin, _) = keys.inbox_range(b);
        assert!(a_end <= b_begin);
        let k = keys.inbox(b, &vs(1, 0, 0));
        let (a_begin, a_end) = keys.inbox_range(a);
        assert!(!(a_begin <= k && k < a_end));
    }

    #[test]
    fn prefixes_are_validated() {
        assert_eq!(WorldKeys::new(""), Err(KeyError::InvalidPrefix));
        assert_eq!(WorldKeys::from_prefix(vec![]), Err(KeyError::InvalidPrefix));
        assert_eq!(
            WorldKeys::from_prefix(vec![0xff, 1]),
            Err(KeyError::InvalidPrefix)
        );
        assert!(matches!(
            WorldKeys::new(&"x".repeat(MAX_PREFIX_LEN)),
            Err(KeyError::PrefixTooLong { .. })
        ));
        let raw = WorldKeys::from_prefix(b"w1".to_vec()).unwrap();
        assert_eq!(raw.prefix(), b"w1");
        let named = WorldKeys::new("sekai/demo").unwrap();
        assert_eq!(named.prefix(), b"\x02sekai/demo\x00");
        let (b, e) = named.range();
        let k = named.entity(EntityId(9));
        assert!(b <= k && k < e);
    }

    #[test]
    fn numbered_worlds_keep_the_hot_keys_inline() {
        // 20 bytes: what the embedded engine's memtable keeps inside a skiplist node.
        const INLINE: usize = 20;
        let keys = WorldKeys::numbered(0);
        assert_eq!(keys.prefix(), b"\x14");
        assert_eq!(WorldKeys::numbered(1).prefix(), b"\x15\x01");
        let region = RegionId::new(-255, 255);
        let id = EntityId(u128::MAX);
        let player: PlayerId = u32::MAX.into();
        let stamp = vs(u64::MAX - 1, u16::MAX, u16::MAX);
        for key in [
            keys.entity(id),
            keys.spatial_rev(id),
            keys.applied(player),
            keys.durable(player),
            keys.inbox(region, &stamp),
            keys.changelog(region, &stamp),
            keys.frame(region, u32::MAX.into()),
            keys.head(region),
            keys.region_version(region),
        ] {
            assert!(key.len() <= INLINE, "{key:?} is {} bytes", key.len());
            assert!(
                keys.decode(&key).is_ok(),
                "{key:?}: {:?}",
                keys.decode(&key)
            );
        }
        for (a, b) in [(0, 1), (1, 256), (0, 256)] {
            let (a, b) = (WorldKeys::numbered(a), WorldKeys::numbered(b));
            let (begin, end) = b.range();
            assert!(!(begin.as_slice()..end.as_slice()).contains(&a.entity(id).as_slice()));
        }
    }

    #[test]
    fn longest_keys_fit_the_limit() {
        let keys = WorldKeys::from_prefix(vec![0x01; MAX_PREFIX_LEN]).unwrap();
        let mut longest = 0;
        for sample in samples() {
            longest = longest.max(keys.encode(&sample).len());
        }
        let region = RegionId::new(i32::MIN, i32::MIN);
        longest = longest.max(keys.inbox_versionstamped(region, u16::MAX).len());
        longest = longest.max(keys.changelog_versionstamped(region, u16::MAX).len());
        assert!(longest < MAX_KEY_LEN, "longest key is {longest} bytes");
    }

    /// A tiny deterministic generator, so the test needs no dependency.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let keys = keys();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let valid: Vec<Vec<u8>> = samples().iter().map(|s| keys.encode(s)).collect();
        for round in 0..20_000 {
            let mut key = valid[round % valid.len()].clone();
            match rng.next() % 4 {
                0 => key.truncate((rng.next() as usize) % (key.len() + 1)),
                1 => {
                    let i = (rng.next() as usize) % key.len();
                    key[i] = rng.next() as u8;
                }
                2 => key.push(rng.next() as u8),
                _ => {
                    key.truncate(keys.prefix().len());
                    for _ in 0..rng.next() % 40 {
                        key.push(rng.next() as u8);
                    }
                }
            }
            let _ = keys.decode(&key);
            for kind in KeyKind::ALL {
                let _ = keys.decode(&keys.subspace(kind).pack(&(rng.next(),)));
            }
            let _ = WorldKeys::decode_spatial_rev_value(&key);
        }
    }
}
