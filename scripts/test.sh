#!/usr/bin/env bash
# Runs every test, installing what is missing first (Debian packages, the Python SDK in a
# virtualenv). `.ci/run` calls this.
#
#   scripts/test.sh          # everything
#   scripts/test.sh --quick  # skip fmt/clippy
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$LARDER_ROOT"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

ensure_build_deps
ensure_test_services
ensure_venv
ensure_feast_venv redis,grpcio,postgres
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed (https://rustup.rs)" >&2
  exit 1
fi

if [ "$QUICK" = 0 ]; then
  log "cargo fmt --check"
  cargo fmt --all --check
  log "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
fi
log "cargo build"
cargo build --workspace --bins
# The target dir is shared by every clone: when this clone's build is already fresh, cargo does
# not copy its binary over one that another clone built. Relink the (small) binary crate so that
# target/debug/larder is this checkout's.
touch server/src/main.rs
cargo build --workspace --bins
cache_rocksdb
log "cargo test"
cargo test --workspace

LARDER_FUZZ_QUIET=1 "$LARDER_ROOT/scripts/fuzz.sh" "${LARDER_FUZZ_SECONDS:-30}"

log "Python tests (SDK and end-to-end against the real server)"
export LARDER_BIN="$CARGO_TARGET_DIR/debug/larder"
"$VENV/bin/python" -m pytest -q tests/
log "All tests passed."
