#!/usr/bin/env bash
# Point-in-time join benchmark: Larder vs Feast 0.67 (DuckDB offline store, from PyPI). Not a test.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
cargo build --release --bin larder
cache_rocksdb
FEAST_VENV="$LARDER_CACHE/feast-0.67-venv"
if ! "$FEAST_VENV/bin/python" -c 'import feast, duckdb, ibis' 2>/dev/null; then
  python3 -m venv "$FEAST_VENV"
  "$FEAST_VENV/bin/pip" install -q 'feast[redis,duckdb]==0.67.0'
fi
ensure_venv
exec "$VENV/bin/python" benches/pit_join.py --larder "$CARGO_TARGET_DIR/release/larder" --feast-python "$FEAST_VENV/bin/python" "$@"
