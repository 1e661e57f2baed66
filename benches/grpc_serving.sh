#!/usr/bin/env bash
# Sets up and runs the gRPC online-serving benchmark (Larder's ServingService vs Feast 0.67's
# `feast listen` gRPC server, on the same Feast deployment). Not a test: the figures go into the
# issue notes.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
cargo build --release --bin larder
cache_rocksdb
ensure_feast_venv "redis,grpcio"
[ -n "$FEAST_PYTHON" ] || { echo "Feast is needed for this benchmark" >&2; exit 1; }
exec "$FEAST_PYTHON" benches/grpc_serving.py --larder "$CARGO_TARGET_DIR/release/larder" --feast-python "$FEAST_PYTHON" "$@"
