#!/usr/bin/env bash
# Sets up and runs the online-serving benchmark (Larder vs Feast 0.67 from PyPI on redis).
# Not a test: the figures go into the issue notes.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
apt_install wrk redis-server
cargo build --release --bin larder
cache_rocksdb
FEAST_VENV="$LARDER_CACHE/feast-0.67-venv"
if [ ! -x "$FEAST_VENV/bin/feast" ]; then
  python3 -m venv "$FEAST_VENV"
  "$FEAST_VENV/bin/pip" install -q 'feast[redis]==0.67.0'
fi
ensure_venv
exec "$VENV/bin/python" benches/online_serving.py --larder "$CARGO_TARGET_DIR/release/larder" --feast-python "$FEAST_VENV/bin/python" "$@"
