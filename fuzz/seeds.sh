#!/usr/bin/env bash
# Regenerates the hand-made seeds of fuzz/corpus with `capnp encode` (capnproto): one valid
# message per value kind, prefixed by the byte that selects the decoder in each target.
set -euo pipefail
cd "$(dirname "$0")"
world=../schema/capnp/world.capnp
edge=../schema/capnp/edge.capnp
enc() { capnp encode -I ../schema/capnp "$1" "$2"; }
seed() { # target selector name schema struct text
  mkdir -p "corpus/$1"
  { printf "\\x$2"; echo "$6" | enc "$4" "$5"; } > "corpus/$1/seed-$3"
}
entity='(id = (hi = 1, lo = 2), type = tree, hp = 5, position = (x = 10, y = 0, z = 10), inventory = (items = [(kind = wood, count = 3)]), owner = 7, region = (x = 0, z = 0))'
seed world_codec 00 entity "$world" EntityState "$entity"
seed world_codec 01 input "$world" Input '(player = 3, seq = 9, action = (build = (position = (x = 1, y = 0, z = 2), kind = structureWall)))'
seed world_codec 02 delta "$world" Delta "(region = (x = 0, z = 0), frame = 4, changes = [(upsert = $entity), (remove = (hi = 1, lo = 3))], outcomes = [(player = 3, seq = 9, accepted = false, reason = \"out of reach\")])"
seed world_codec 03 frame "$world" FrameRecord '(region = (x = 1, z = -1), frame = 12, inputsApplied = [(player = 3, seq = 9), (player = 4, seq = 1)], rejected = 1)'
seed wire 00 action "$world" Action '(move = (x = 1, y = 0, z = 2))'
seed wire 01 delta "$world" Delta "(region = (x = 0, z = 0), frame = 4, changes = [(upsert = $entity)], outcomes = [])"
seed wire 02 entity "$world" EntityState "$entity"
seed wire 03 area "$edge" Area '(center = (x = 5, y = 0, z = 5), radius = 24)'
