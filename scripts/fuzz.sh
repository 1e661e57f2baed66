#!/usr/bin/env bash
# Fuzzes the request parsers and Feast's message decoders with libFuzzer through cargo-fuzz
# (fuzz/fuzz_targets/). The instrumented build compiles only the wire-format crates
# (larder-protocol, larder-registry, larder-feast-model).
# cargo-fuzz's flags are nightly-only; RUSTC_BOOTSTRAP lets the stable toolchain take them.
#
#   scripts/fuzz.sh          # 30 s, what the test command runs
#   scripts/fuzz.sh 3600     # an hour
#   scripts/fuzz.sh 0        # until stopped (Ctrl-C)
#
# The corpus grows across runs in ~/.cache/larder/fuzz-corpus; the committed seeds are in
# fuzz/seeds/. A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$LARDER_ROOT"
seconds="${1:-30}"
ensure_cargo_fuzz
# Each target runs for the given time: request_parsers (the HTTP bodies, values, keys, rows) and
# feast_registry (Feast's registry and value messages, seeded with the registry Feast 0.67
# writes for its template).
fuzz_one() {
  local target="$1" max_len="$2"
  local corpus="$LARDER_CACHE/fuzz-corpus/$target"
  mkdir -p "$corpus"
  log "Fuzzing $target for ${seconds}s (0 = until stopped)"
  run() {
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 -print_final_stats=1
  }
  if [ "${LARDER_FUZZ_QUIET:-0}" = 1 ]; then
    # libFuzzer prints a line per new coverage point: keep it in a log, show the end.
    local out="$LARDER_CACHE/fuzz-last-$target.log"
    if run >"$out" 2>&1; then
      grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$out" || true
    else
      tail -n 80 "$out" >&2
      echo "fuzzing failed; the crashing input is in fuzz/artifacts/$target/ (full log: $out)" >&2
      exit 1
    fi
  else
    run
  fi
}
fuzz_one request_parsers 8192
fuzz_one feast_registry 65536
