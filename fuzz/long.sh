#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 10 million) from its checked-in corpus,
# one after the other, under `nice -n 19`; new corpus entries go to a scratch directory. Inputs
# are capped at 1 KiB and comparisons are not traced (`--no-trace-compares`: tracing them was
# about 45% of world_codec's time), which is what makes 10 million executions of the slow
# targets take minutes, not hours. A crash fails the run and leaves its input in artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
runs="${RUNS:-10000000}"
for target in $(cargo fuzz list); do
  scratch="$(mktemp -d)"
  echo "fuzz: $target for $runs executions"
  RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run -s none --no-trace-compares "$target" "$scratch" \
    "corpus/$target" -- -runs="$runs" -max_len=1024 -print_final_stats=1 2>&1 |
    grep -E "^Done|stat::number_of_executed_units|stat::average_exec_per_sec|panicked|ERROR" || true
  rm -rf "$scratch"
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz: $target crashed; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none $target artifacts/$target/crash-*" >&2
    exit 1
  fi
done
