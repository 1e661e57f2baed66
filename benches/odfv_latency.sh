#!/usr/bin/env bash
# Latency that on-demand views add to /get-online-features: none vs SQL (in-process DataFusion)
# vs Feast's pandas and python UDFs (Python worker), same server, same data. Not a test.
#
#   benches/odfv_latency.sh [--duration 10]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$LARDER_ROOT"
ensure_build_deps
apt_install wrk
cargo build --release --bin larder
cache_rocksdb
ensure_venv
exec "$VENV/bin/python" benches/odfv_latency.py --larder "$CARGO_TARGET_DIR/release/larder" "$@"
