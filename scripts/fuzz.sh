#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets) and prints one line per target: executions,
# seconds, and whether it crashed. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh                 10,000,000 executions of every target
#   scripts/fuzz.sh 20000           a smoke pass (what CI runs)
#   scripts/fuzz.sh 10000000 mbfile keybag
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and grows its own corpus in
# fuzz/corpus/TARGET (not committed); fuzz/dicts/TARGET.dict, when there is one, gives libFuzzer
# words to splice in (SQL for manifest_db). A crash stops the script: its input is in
# fuzz/artifacts/TARGET; copy it to fuzz/regressions/TARGET and add a test that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build -O >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  start=$(date +%s)
  log=$(mktemp)
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
  if cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
       -runs="$runs" -rss_limit_mb=1024 -timeout=5 -max_len=65536 ${dict[@]+"${dict[@]}"} >"$log" 2>&1; then
    line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1)
    echo "$t: ${line:-done} ($(( $(date +%s) - start )) s), no crash"
  else
    echo "$t: FAILED after $(( $(date +%s) - start )) s"; grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5
    rm -f "$log"; exit 1
  fi
  rm -f "$log"
done
