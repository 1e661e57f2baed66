#!/usr/bin/env bash
# Sets up and runs the online-serving benchmark: Larder on RocksDB and on Redis against the
# bare-axum floor and Feast 0.67 from PyPI on Redis (see benches/online_serving.py).
# Not a test: the figures go into the issue notes.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
apt_install wrk redis-server
cargo build --release --bin larder
cargo build --release -p larder-bench-floor
cache_rocksdb
ensure_venv
ensure_feast_venv "redis"
[ -n "$FEAST_PYTHON" ] || { echo "Feast is needed for this benchmark" >&2; exit 1; }
exec "$VENV/bin/python" benches/online_serving.py --larder "$CARGO_TARGET_DIR/release/larder" \
  --floor "$CARGO_TARGET_DIR/release/larder-bench-floor" --feast-python "$FEAST_PYTHON" "$@"
