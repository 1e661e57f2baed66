#!/usr/bin/env bash
# Bulk materialization inside `larder serve` and online reads beside it (idle vs during, wrk).
# Not a test: the figures go into the issue notes.
#
#   benches/materialize_serving.sh [--rows 10000000] [--keys 1000000] [--conns 1]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
apt_install wrk
cargo build --release --bin larder
cache_rocksdb
ensure_venv
exec "$VENV/bin/python" benches/materialize_serving.py --larder "$CARGO_TARGET_DIR/release/larder" "$@"
