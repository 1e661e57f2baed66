#!/usr/bin/env bash
# Stream ingestion benchmark: Larder's Kafka consumer vs Feast 0.67's push-based pattern, on one
# tansu broker with the same events in the same run (events/s, event-to-visible p50/p99).
# Not a test: the figures go into the issue notes.
#
#   benches/stream_ingest.sh [--events 200000] [--rate 1000] [--duration 15]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
cargo build --release --bin larder
cache_rocksdb
ensure_venv
ensure_feast_venv
[ -n "$FEAST_PYTHON" ] || { echo "Feast is needed for this benchmark" >&2; exit 1; }
"$FEAST_PYTHON" -c 'import confluent_kafka' 2>/dev/null || "$(dirname "$FEAST_PYTHON")/pip" install -q confluent-kafka
exec "$VENV/bin/python" benches/stream_ingest.py --larder "$CARGO_TARGET_DIR/release/larder" --feast-python "$FEAST_PYTHON" "$@"
