#!/usr/bin/env bash
# Benchmark: `ibackup verify` on a generated backup of 250,000 files, against a baseline measured
# in the same run: stat-ing every blob with `find DIR -type f -printf '%s\n'`. Warm cache.
#
#   scripts/bench-verify.sh [FILES] [RUNS]      (defaults: 250000 files, 7 runs each)
#
# Prints the median wall time of each, their ratio (target <= 1.3), and ibackup's peak memory
# (target < 150 MB). Runs alternate so that machine noise hits both alike. The backup is kept in
# $BENCH_DIR (default: a folder under /tmp) and reused by later runs.
set -euo pipefail
files=${1:-250000}
runs=${2:-7}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${BENCH_DIR:-/tmp/ibackup-bench-$files}

cd "$top"
cargo build --release --quiet --bin ibackup --example make_backup
bin="${CARGO_TARGET_DIR:-$top/target}/release/ibackup"
make="${CARGO_TARGET_DIR:-$top/target}/release/examples/make_backup"
[ -d "$dir" ] || "$make" "$dir" "$files"

# Warm the cache with both, and check that the backup verifies.
find "$dir" -type f -printf '%s\n' >/dev/null
"$bin" verify "$dir" --json >/dev/null || { echo "verify did not exit 0" >&2; exit 1; }

ms() { echo $(( $(date +%s%N) / 1000000 )); }
base=(); ours=(); peak=0
for _ in $(seq "$runs"); do
  t0=$(ms); find "$dir" -type f -printf '%s\n' >/dev/null; t1=$(ms)
  base+=($((t1 - t0)))
  t0=$(ms)
  rss=$( { /usr/bin/time -f '%M' "$bin" verify "$dir" --json >/dev/null; } 2>&1 | tail -n1 )
  t1=$(ms)
  ours+=($((t1 - t0)))
  [ "$rss" -gt "$peak" ] && peak=$rss
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
b=$(median "${base[@]}"); o=$(median "${ours[@]}")
echo "files:                  $files"
echo "find -printf (baseline): ${b} ms median of $runs (${base[*]})"
echo "ibackup verify:          ${o} ms median of $runs (${ours[*]})"
awk -v o="$o" -v b="$b" 'BEGIN { printf "ratio verify/find:       %.2f (target <= 1.30)\n", o / b }'
awk -v k="$peak" 'BEGIN { printf "peak memory of verify:   %.1f MB (target < 150)\n", k / 1024 }'
