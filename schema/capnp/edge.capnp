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

# One message on the QUIC unidirectional stream of a subscription made with
# `Session.subscribeStream`. The stream carries standard Cap'n Proto stream
# framing (segment count and sizes, then the segments; `capnp::readMessage`
# / `capnp::serialize::read_message`), one message after another, with no
# answers: the client only reads. The first message is `opened` with the
# tag the client chose; after it, the same sequence `DeltaSink` would get:
# a snapshot (or the replay after `resumeFrom`), then deltas in commit order.
struct StreamMessage {
  union {
    opened @0 :UInt64;   # the `tag` of the `subscribeStream` call
    snapshot :group {    # the full state of the area as of `at` (10 bytes)
      entities @1 :List(World.EntityState);
      at @2 :Data;
    }
    deltas @3 :List(StampedDelta);  # consecutive deltas, oldest first
    reset @4 :Text;      # the stream ends here; subscribe afresh
  }
}

# One input a client writes on its input stream (see `Avatar.openInputs`),
# in standard Cap'n Proto stream framing: the same as `Avatar.send`'s
# parameters.
struct InputMessage {
  seq @0 :UInt64;
  action @1 :World.Action;
}

# What the edge writes back on an input stream, in the order of the inputs
# it answers. Each answer is for the oldest inputs not answered yet.
struct InputAnswer {
  union {
    opened @0 :UInt64;    # the first message: the `tag` of `openInputs`
    accepted @1 :UInt64;  # the oldest unanswered inputs, through the first
                          # whose seq is this, are durable
    refused :group {      # the oldest unanswered input (this seq) was refused,
      seq @2 :UInt64;     # not stored: its seq may be sent again
      reason @3 :Text;
    }
    closed @4 :Text;      # the edge reads no more of this stream; inputs not
                          # answered yet may or may not be durable: log in
                          # again and resend those above `Session.info.lastSeq`
  }
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

  # Subscribe like `subscribe`, but the edge pushes on a QUIC unidirectional
  # stream it opens for this subscription (see `StreamMessage`) instead of
  # calling a `DeltaSink`: one message per fan-out pass and no answers, so
  # half the packets. `tag` is the client's name for the subscription; the
  # stream's first message repeats it. Flow control is QUIC's: a client that
  # stops reading gets its stream reset with application error code 1
  # (stalled) after the edge's stall timeout. Dropping or cancelling the
  # subscription finishes the stream.
  subscribeStream @3 (area :Area, resumeFrom :Data, tag :UInt64)
      -> (subscription :Subscription);
}

# The player's avatar.
interface Avatar {
  # Send one input. `seq` must be the player's next sequence number; a
  # resend of an already acknowledged seq is acknowledged again, not applied
  # twice.
  send @0 (seq :UInt64, action :World.Action) -> (ack :Ack);

  # Open an input stream: the edge opens a QUIC bidirectional stream whose
  # first message (edge to client) is `InputAnswer.opened` with `tag`. The
  # client writes `InputMessage`s on it, with the same rules as `send`, and
  # reads `InputAnswer`s: one per T1 commit rather than one per input, and
  # no call, answer or finish message per input. Finishing the stream's
  # sending side ends it once every input written is answered.
  openInputs @1 (tag :UInt64) -> ();
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
