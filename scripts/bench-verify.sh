#!/usr/bin/env bash
# Benchmark: `ibackup verify` and `ibackup inspect` on a generated backup, against a baseline
# measured in the same run: stat-ing every blob with `find DIR -type f -printf '%s\n'`.
#
#   scripts/bench-verify.sh [FILES] [RUNS]      (defaults: 250000 files, 7 runs of each)
#
# MODES (default "both one-core cold") picks the conditions, each timed separately:
#   both      warm page cache, both programs free to use every core   (target: ratio <= 1.0)
#   one-core  warm cache, both pinned to core 0 with `taskset -c 0`     (target: ratio <= 1.5)
#   cold      `echo 3 > /proc/sys/vm/drop_caches` before every run     (target: ratio <= 1.0);
#             needs root, skipped otherwise
# Runs alternate find / verify / inspect so that noise from the rest of the machine hits all
# three alike; the figures are medians. Peak memory (max RSS) is reported per run kind, and
# per listed file beyond a base: the peak of `verify` on a backup of 1,000 files (target:
# <= 100 bytes per file). The load average is printed first: quote it with the figures.
#
# The backups are kept in $BENCH_DIR-<files> (default /tmp/ibackup-bench-<files>) and reused.
set -euo pipefail
files=${1:-250000}
runs=${2:-7}
modes=${MODES:-both one-core cold}
top=$(cd "$(dirname "$0")/.." && pwd)
prefix=${BENCH_DIR:-/tmp/ibackup-bench}
dir=$prefix-$files
small=$prefix-1000

cd "$top"
cargo build --release --quiet --bin ibackup --example make_backup
target=${CARGO_TARGET_DIR:-$top/target}
bin=${IBACKUP:-$target/release/ibackup}
make="$target/release/examples/make_backup"
[ -d "$dir" ] || "$make" "$dir" "$files"
[ -d "$small" ] || "$make" "$small" 1000

# Both commands must succeed on the backup before they are timed.
"$bin" verify "$dir" --json >/dev/null || { echo "verify did not exit 0" >&2; exit 1; }
"$bin" inspect "$dir" --json >/dev/null || { echo "inspect did not exit 0" >&2; exit 1; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "backup:  $dir ($files files), ibackup $bin"

can_drop() { [ -w /proc/sys/vm/drop_caches ]; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# timed KIND MODE CMD...: runs CMD once under MODE, appends its wall ms and peak KB to the
# arrays named after KIND.
timed() {
  local kind=$1 mode=$2; shift 2
  local pin=()
  [ "$mode" = one-core ] && pin=(taskset -c 0)
  [ "$mode" = cold ] && drop
  local t0 t1 kb
  t0=$(date +%s%N)
  kb=$( { "${pin[@]}" /usr/bin/time -f '%M' "$@" >/dev/null; } 2>&1 | tail -n1 )
  t1=$(date +%s%N)
  eval "${kind}_ms+=($(( (t1 - t0) / 1000000 )))"
  eval "${kind}_kb+=($kb)"
}

base_kb=$( { /usr/bin/time -f '%M' "$bin" verify "$small" --json >/dev/null; } 2>&1 | tail -n1 )

printf '\n%-9s %10s %10s %10s %8s %8s %10s %10s\n' mode "find ms" "verify ms" "inspect ms" \
  "v/find" "i/find" "verify MB" "B/file"
for mode in $modes; do
  if [ "$mode" = cold ] && ! can_drop; then
    echo "cold: skipped (cannot write /proc/sys/vm/drop_caches; run as root)"
    continue
  fi
  find_ms=(); find_kb=(); verify_ms=(); verify_kb=(); inspect_ms=(); inspect_kb=()
  # One untimed round warms the cache (and, for cold runs, the binaries themselves).
  find "$dir" -type f -printf '%s\n' >/dev/null
  "$bin" verify "$dir" --json >/dev/null
  for _ in $(seq "$runs"); do
    timed find "$mode" find "$dir" -type f -printf '%s\n'
    timed verify "$mode" "$bin" verify "$dir" --json
    timed inspect "$mode" "$bin" inspect "$dir" --json
  done
  f=$(median "${find_ms[@]}"); v=$(median "${verify_ms[@]}"); i=$(median "${inspect_ms[@]}")
  peak=$(printf '%s\n' "${verify_kb[@]}" "${inspect_kb[@]}" | sort -n | tail -n1)
  per_file=$(awk -v p="$peak" -v b="$base_kb" -v n="$files" 'BEGIN { printf "%.0f", (p - b) * 1024 / n }')
  printf '%-9s %10s %10s %10s %8s %8s %10.1f %10s\n' "$mode" "$f" "$v" "$i" \
    "$(ratio "$v" "$f")" "$(ratio "$i" "$f")" "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" "$per_file"
  echo "          runs (ms): find ${find_ms[*]} | verify ${verify_ms[*]} | inspect ${inspect_ms[*]}"
done
echo
echo "base: peak of verify on 1,000 files $(awk -v k="$base_kb" 'BEGIN { printf "%.1f", k / 1024 }') MB;" \
  "B/file = (peak - base) / files"
echo "targets: both <= 1.00, one-core <= 1.50, cold <= 1.00, B/file <= 100"
