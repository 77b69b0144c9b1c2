# The edge protocol: what a VR client and an edge node say over QUIC with
# Cap'n Proto RPC. Object capabilities: a token yields a Session, the session
# yields the player's own Avatar, and inputs can only be sent through it.
#
# Compatibility: only ever add methods/fields with new ordinals.
@0xf54b6188da012343;

# Generated C++ lands in namespace `sekai` (Godot has its own `godot::Input`).
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("sekai");

using World = import "world.capnp";

# An area of interest: a circle on the ground plane (y is ignored).
struct Area {
  center @0 :World.Vec3;
  radius @1 :Float32;
}

# The edge's answer to one input.
struct Ack {
  union {
    accepted @0 :UInt64;  # the seq that is now durably in the inbox
    error @1 :Text;       # why the input was refused (not stored)
  }
}

# One change-log entry, filtered to an area, with its 10-byte versionstamp.
struct StampedDelta {
  versionstamp @0 :Data;
  delta @1 :World.Delta;
}

# The bootstrap capability of an edge node.
interface Gateway {
  # Exchange a login token for a session; fails on a bad token.
  login @0 (token :Text) -> (session :Session);
}

# One logged-in player.
interface Session {
  # The player's own avatar: the only way to send inputs.
  avatar @0 () -> (avatar :Avatar);

  # Subscribe to an area of interest. The edge calls `sink.snapshot` once
  # (or replays deltas after `resumeFrom`), then `sink.delta` in commit
  # order. `resumeFrom` is the 10-byte versionstamp of the last delta the
  # client applied, or empty for a fresh snapshot. With `batched` the edge
  # calls `sink.deltas` instead of `sink.delta`: every delta waiting for the
  # client in one call (one message per fan-out pass, not one per commit).
  subscribe @1 (area :Area, sink :DeltaSink, resumeFrom :Data, batched :Bool)
      -> (subscription :Subscription);

  # Who is logged in: the player, the avatar's state at login, and the
  # highest input seq already durable for the player (now: it grows as this
  # session's inputs are acknowledged). Every seq at or below `lastSeq` is
  # durable and will be applied; send `lastSeq + 1` next, and resend only
  # unacknowledged inputs above it, in order (see docs/PROTOCOL.md).
  info @2 () -> (player :UInt64, avatar :World.EntityState, lastSeq :UInt64);
}

# The player's avatar.
interface Avatar {
  # Send one input. `seq` must be the player's next sequence number; a
  # resend of an already acknowledged seq is acknowledged again, not applied
  # twice.
  send @0 (seq :UInt64, action :World.Action) -> (ack :Ack);
}

# Implemented by the client: where the edge pushes world state.
interface DeltaSink {
  # The full state of the area as of versionstamp `at` (10 bytes).
  snapshot @0 (entities :List(World.EntityState), at :Data) -> ();

  # One change-log entry, filtered to the area, stamped with its 10-byte
  # versionstamp. Versionstamps strictly increase per subscription.
  delta @1 (versionstamp :Data, delta :World.Delta) -> ();

  # The stream cannot continue (e.g. the client fell too far behind); the
  # client should drop its state and subscribe again.
  reset @2 (reason :Text) -> ();

  # Several consecutive deltas, oldest first (only for subscriptions made
  # with `batched`); the same as calling `delta` for each, in order.
  deltas @3 (batch :List(StampedDelta)) -> ();
}

# A live subscription; dropping it or calling cancel ends it.
interface Subscription {
  cancel @0 () -> ();
}
