# World data of Sekai: entities, inputs, frame records and deltas.
#
# These structs are stored as values in the database (entity states, inbox
# inputs, frame records, change-log deltas) and are reused by the edge
# protocol (edge.capnp). Keys are NOT Cap'n Proto: they are tuple-encoded,
# see sekai-schema's `keys` module.
#
# Compatibility: only ever add fields at the end with new ordinals; never
# renumber, retype or remove a field (old records stay in the log).
@0xa494d240e20b22e4;

# Generated C++ lands in namespace `sekai` (Godot has its own `godot::Input`).
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("sekai");

# A 128-bit random entity id (no global counter). `hi` holds the first 8
# bytes big-endian, `lo` the last 8, so (hi, lo) orders like the 16 bytes.
struct EntityId {
  hi @0 :UInt64;
  lo @1 :UInt64;
}

# What an entity is.
enum EntityType {
  playerAvatar @0;
  tree @1;
  rock @2;
  itemWood @3;
  itemStone @4;
  structureWall @5;
}

# A position in metres. x and z span the ground plane, y is up.
struct Vec3 {
  x @0 :Float32;
  y @1 :Float32;
  z @2 :Float32;
}

# A region: one REGION_SIZE x REGION_SIZE tile of the ground plane.
struct RegionId {
  x @0 :Int32;
  z @1 :Int32;
}

# A kind of item that can be carried.
enum ItemKind {
  wood @0;
  stone @1;
}

# `count` items of one kind.
struct ItemStack {
  kind @0 :ItemKind;
  count @1 :UInt32;
}

# What an entity carries: at most one stack per kind.
struct Inventory {
  items @0 :List(ItemStack);
}

# The full state of one live entity.
struct EntityState {
  id @0 :EntityId;
  type @1 :EntityType;
  hp @2 :UInt32;
  position @3 :Vec3;
  inventory @4 :Inventory;
  owner @5 :UInt64;       # player id of the owner; 0 = nobody
  region @6 :RegionId;    # the region whose processor owns this entity
}

# What a player asks its avatar to do.
struct Action {
  union {
    move @0 :Vec3;          # walk towards this target position
    harvest @1 :EntityId;   # harvest this tree or rock
    build :group {          # place a structure
      position @2 :Vec3;
      kind @3 :EntityType;
    }
    interact @4 :EntityId;  # pick up / use this entity
    idle @5 :Void;
  }
}

# One input of one player, as stored in a region's inbox.
# `seq` increases by one per input of that player.
struct Input {
  player @0 :UInt64;
  seq @1 :UInt64;
  action @2 :Action;
}

# Names one input: (player, seq).
struct InputRef {
  player @0 :UInt64;
  seq @1 :UInt64;
}

# The record of one processed frame of one region (frame/(region, frame)).
struct FrameRecord {
  region @0 :RegionId;
  frame @1 :UInt64;
  inputsApplied @2 :List(InputRef);  # in application order
  rejected @3 :UInt32;               # inputs consumed but refused by the rules
}

# One change to one entity.
struct EntityChange {
  union {
    upsert @0 :EntityState;  # created or changed: the full new state
    remove @1 :EntityId;     # destroyed or left the region
  }
}

# The outcome of one input in a frame.
struct InputOutcome {
  player @0 :UInt64;
  seq @1 :UInt64;
  accepted @2 :Bool;
  reason @3 :Text;   # why it was rejected; empty when accepted
}

# What one frame of one region changed (changelog/(region, versionstamp)).
struct Delta {
  region @0 :RegionId;
  frame @1 :UInt64;
  changes @2 :List(EntityChange);
  outcomes @3 :List(InputOutcome);
}
