#!/usr/bin/env bash
# Regenerate the checked-in Rust code of the Cap'n Proto schemas.
#
# Needs the `capnp` compiler (Debian: `apt-get install capnproto`) and the
# Rust plugin `capnpc-rust` of the same version as the `capnp` crate
# (`cargo install capnpc --version 0.27.0 --locked`).
#
# Usage: schema/regenerate.sh [OUT_DIR]   (default: schema/src/generated)
# The test tests/generated_up_to_date.rs runs this into a temporary directory
# and fails if the result differs from the checked-in files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/src/generated}"
mkdir -p "$out"
cd "$here"
capnp compile -orust:"$out" --src-prefix=capnp capnp/world.capnp capnp/edge.capnp
