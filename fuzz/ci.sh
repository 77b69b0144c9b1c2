#!/usr/bin/env bash
# Runs every fuzz target for a few seconds (default 5; FUZZ_SECONDS overrides) from its checked-in
# corpus, on the stable toolchain (RUSTC_BOOTSTRAP=1: cargo-fuzz needs nightly flags), without a
# sanitizer (the code under test is safe Rust; panics are what is hunted). Installs cargo-fuzz
# when missing (measured: 80 s to install, about 6.5 min to build the targets the first time on
# two shared cores). SEKAI_SKIP_FUZZ=1 skips it all. New corpus entries go to a scratch
# directory, so the checked-in corpus stays small.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${SEKAI_SKIP_FUZZ:-0}" = 1 ]; then
  echo "fuzz: skipped (SEKAI_SKIP_FUZZ=1)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
seconds="${FUZZ_SECONDS:-5}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target" "corpus/$target"
  echo "fuzz: $target for $seconds s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|panicked|ERROR" || true
  # A crash leaves an artifact: fail with it.
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz: $target crashed; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none $target artifacts/$target/crash-*" >&2
    exit 1
  fi
done
