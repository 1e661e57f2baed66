#!/usr/bin/env bash
# The main job: build Larder, apply the example feature_repo/, materialize it into the
# embedded RocksDB store, serve it, and show the answer to a sample online request.
#
#   scripts/run.sh                 # stops the server after the sample request
#   scripts/run.sh --keep-serving  # keeps serving on http://127.0.0.1:6566 until Ctrl-C
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$LARDER_ROOT"

KEEP=0
[ "${1:-}" = "--keep-serving" ] && KEEP=1
PORT="${LARDER_PORT:-6566}"

ensure_build_deps
apt_install curl
ensure_venv
log "Building larder (release)"
cargo build --release --bin larder
touch server/src/main.rs  # the target dir is shared by clones: make the binary this checkout's
cargo build --release --bin larder
cache_rocksdb
LARDER="$CARGO_TARGET_DIR/release/larder"
REPO="$LARDER_ROOT/feature_repo"

log "larder apply"
"$LARDER" -c "$REPO" apply
log "larder registry history"
"$LARDER" -c "$REPO" registry history
log "larder materialize 2024-01-01T00:00:00 2024-01-15T00:00:00"
"$LARDER" -c "$REPO" materialize 2024-01-01T00:00:00 2024-01-15T00:00:00

log "larder serve --port $PORT"
"$LARDER" -c "$REPO" serve --port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done

REQUEST='{"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [1001, 1002, 9999]}}'
log "POST /get-online-features $REQUEST"
curl -sf -X POST "http://127.0.0.1:$PORT/get-online-features" -H 'Content-Type: application/json' -d "$REQUEST" \
  | "$VENV/bin/python" -m json.tool
log "Feature service driver_activity_v1 with full feature names"
curl -sf -X POST "http://127.0.0.1:$PORT/get-online-features" -H 'Content-Type: application/json' \
  -d '{"feature_service": "driver_activity_v1", "entities": {"driver_id": [1001], "customer_id": ["C001"]}, "full_feature_names": true}' \
  | "$VENV/bin/python" -m json.tool

if [ "$KEEP" = 1 ]; then
  log "Serving on http://127.0.0.1:$PORT (API docs at /docs); Ctrl-C stops"
  wait $SERVER
else
  log "Done. Run scripts/run.sh --keep-serving to keep the server up (API docs at http://127.0.0.1:$PORT/docs)."
fi
