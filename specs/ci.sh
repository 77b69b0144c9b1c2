#!/usr/bin/env bash
# CI for specs/: keep WorldProtocol.tla well-formed with a TLA+ parser from PyPI.
# (The Rust twin, sekai-specs, is checked by `cargo test -p sekai-specs` with the workspace.)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
# `tla` is johnyf's TLA+ parser; parstools is its only dependency.
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
    "tla==0.0.4" "parstools==0.0.5"
"$python" "$here/check_tla.py" "$@"
