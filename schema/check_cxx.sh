#!/usr/bin/env bash
# Checks that the schemas compile to C++ (what Godot clients generate) and that the generated
# code builds: `capnp compile -oc++`, then g++ on each generated file against libcapnp's headers.
# Every generated type lives in namespace `sekai` ($Cxx.namespace), so nothing clashes with
# Godot's own types (`godot::Input`).
#
# Needs `capnp` and libcapnp-dev (Debian: capnproto libcapnp-dev) and g++.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
capnp compile -oc++:"$out" --src-prefix="$here/capnp" "$here/capnp/world.capnp" "$here/capnp/edge.capnp"
for header in "$out"/*.capnp.h; do
  grep -q '^namespace sekai {' "$header" || { echo "$header: types not in namespace sekai" >&2; exit 1; }
done
for source in "$out"/*.capnp.c++; do
  g++ -std=c++17 -fsyntax-only -I"$out" -x c++ "$source"
done
echo "schemas compile to C++ in namespace sekai: $(ls "$out" | tr '\n' ' ')"
