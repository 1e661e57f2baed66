#!/usr/bin/env bash
# Online store benchmark: Larder on RocksDB vs Larder on Redis (read latency p50/p99 under wrk,
# materialization rows/s), and Feast 0.67's own materialization into the same redis-server, on
# the same data in the same run. Not a test: the figures go into the issue notes.
#
#   benches/redis_store.sh [--rows 200000] [--duration 10]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
apt_install wrk redis-server
cargo build --release --bin larder
cache_rocksdb
ensure_venv
ensure_feast_venv "redis"
[ -n "$FEAST_PYTHON" ] || { echo "Feast is needed for this benchmark" >&2; exit 1; }
exec "$VENV/bin/python" benches/redis_store.py --larder "$CARGO_TARGET_DIR/release/larder" --feast-python "$FEAST_PYTHON" "$@"
