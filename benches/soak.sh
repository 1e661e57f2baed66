#!/usr/bin/env bash
# Bounded soak: `larder serve` (release, RocksDB) under a fixed request rate of online reads mixed
# with pushes, for --seconds (default 120). Reports errors (must be 0), p50/p99 and the server's
# memory at start and end. Not a test: the figures go into the issue notes.
#
#   benches/soak.sh [--seconds 120] [--rate 400]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
cargo build --release --bin larder
cache_rocksdb
ensure_venv
exec "$VENV/bin/python" benches/soak.py --larder "$CARGO_TARGET_DIR/release/larder" "$@"
