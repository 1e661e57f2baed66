#!/usr/bin/env bash
# Fuzzes the request parsers with libFuzzer through cargo-fuzz (fuzz/fuzz_targets/). The
# instrumented build compiles only the wire-format crates (larder-protocol, larder-registry).
# cargo-fuzz's flags are nightly-only; RUSTC_BOOTSTRAP lets the stable toolchain take them.
#
#   scripts/fuzz.sh          # 30 s, what the test command runs
#   scripts/fuzz.sh 3600     # an hour
#   scripts/fuzz.sh 0        # until stopped (Ctrl-C)
#
# The corpus grows across runs in ~/.cache/larder/fuzz-corpus; the committed seeds are in
# fuzz/seeds/. A crash leaves its input in fuzz/artifacts/request_parsers/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run request_parsers fuzz/artifacts/request_parsers/<file>
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$LARDER_ROOT"
seconds="${1:-30}"
ensure_cargo_fuzz
corpus="$LARDER_CACHE/fuzz-corpus/request_parsers"
mkdir -p "$corpus"
log "Fuzzing the request parsers for ${seconds}s (0 = until stopped)"
run() {
  RUSTC_BOOTSTRAP=1 cargo fuzz run request_parsers "$corpus" fuzz/seeds/request_parsers -- \
    -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1
}
if [ "${LARDER_FUZZ_QUIET:-0}" = 1 ]; then
  # libFuzzer prints a line per new coverage point: keep it in a log, show the end.
  out="$LARDER_CACHE/fuzz-last.log"
  if run >"$out" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$out" || true
  else
    tail -n 80 "$out" >&2
    echo "fuzzing failed; the crashing input is in fuzz/artifacts/request_parsers/ (full log: $out)" >&2
    exit 1
  fi
else
  run
fi
