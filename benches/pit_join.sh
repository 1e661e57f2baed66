#!/usr/bin/env bash
# Point-in-time join benchmark: Larder vs Feast 0.67 (DuckDB offline store, from PyPI). Not a test.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
cargo build --release --bin larder
cache_rocksdb
ensure_venv
ensure_feast_venv "duckdb"
[ -n "$FEAST_PYTHON" ] || { echo "Feast is needed for this benchmark" >&2; exit 1; }
exec "$VENV/bin/python" benches/pit_join.py --larder "$CARGO_TARGET_DIR/release/larder" --feast-python "$FEAST_PYTHON" "$@"
