#!/usr/bin/env bash
# Runs every test, installing what is missing first (Debian packages, the Python SDK in a
# virtualenv). `.ci/run` calls this.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --quick         # skip fmt/clippy
#   scripts/test.sh --group NAME    # one group: rust (cargo fmt, clippy, tests and fuzz), or a
#                                   # pytest group of pytest.ini: fast, services, kafka, browser, feast
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$LARDER_ROOT"

QUICK=0
GROUP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --group)
      GROUP="${2:-}"
      shift
      case "$GROUP" in
        rust | fast | services | kafka | browser | feast) ;;
        *) echo "--group: one of rust, fast, services, kafka, browser, feast" >&2; exit 2 ;;
      esac
      ;;
    *) echo "usage: scripts/test.sh [--quick] [--group NAME]" >&2; exit 2 ;;
  esac
  shift
done

ensure_build_deps
ensure_test_services
ensure_venv
ensure_feast_venv redis,grpcio,postgres,ray
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed (https://rustup.rs)" >&2
  exit 1
fi

rust_tests() {
  if [ "$QUICK" = 0 ]; then
    log "cargo fmt --check"
    cargo fmt --all --check
    log "cargo clippy -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
  fi
  # A server built without the embedded store and Kafka (no RocksDB C++, no librdkafka) builds
  # and passes its own tests. Run before the default build, which then relinks target/debug/larder.
  log "cargo test: larder-server with --no-default-features --features redis"
  if [ "$QUICK" = 0 ]; then
    cargo clippy -p larder-server --no-default-features --features redis --all-targets -- -D warnings
  fi
  cargo test -p larder-server --no-default-features --features redis
}

build_binary() {
  log "cargo build"
  cargo build --workspace --bins
  # The target dir is shared by every clone: when this clone's build is already fresh, cargo does
  # not copy its binary over one that another clone built. Relink the (small) binary crate so that
  # target/debug/larder is this checkout's.
  touch server/src/main.rs
  cargo build --workspace --bins
  cache_rocksdb
}

if [ -z "$GROUP" ] || [ "$GROUP" = rust ]; then
  rust_tests
  build_binary
  log "cargo test"
  cargo test --workspace
  LARDER_FUZZ_QUIET=1 "$LARDER_ROOT/scripts/fuzz.sh" "${LARDER_FUZZ_SECONDS:-30}"
  if [ "$GROUP" = rust ]; then
    log "The rust group passed."
    exit 0
  fi
else
  build_binary
fi

export LARDER_BIN="$CARGO_TARGET_DIR/debug/larder"
if [ -z "$GROUP" ]; then
  log "Python tests (SDK and end-to-end against the real server), every group"
  "$VENV/bin/python" -m pytest -q --durations=15 tests/
  log "All tests passed."
else
  log "Python tests, group $GROUP"
  "$VENV/bin/python" -m pytest -q --durations=15 -m "$GROUP" tests/
  log "The $GROUP group passed."
fi
