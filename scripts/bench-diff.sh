#!/usr/bin/env bash
# Benchmark: `ibackup diff OLD NEW` against one `ibackup verify OLD`, timed in the same run
# (release build). Target: diff <= 2x verify.
#
#   scripts/bench-diff.sh [FILES] [RUNS]      (defaults: 250000 files, 5 runs of each)
#
# OLD is a generated backup of FILES files (examples/make_backup). NEW is generated from the
# same seed with 1% more files (the extra ones are "added"), then edited with Python's sqlite3
# and plistlib: WirelessDomain's rows and blobs removed (an eighth of the files, "removed", and a
# vanished domain), every 100th remaining file re-dated ("changed") and one HomeDomain blob
# deleted ("now missing").
# The expected counts are printed from the diff itself, so a run that compares nothing shows.
# Runs alternate verify / diff so that noise from the rest of the machine hits both alike; the
# figures are medians, with the peak memory (max RSS) of each. The load average is printed
# first: quote it with the figures.
#
# The backups are kept in $BENCH_DIR-diff-<files>-{old,new} (default /tmp/ibackup-bench-...)
# and reused.
set -euo pipefail
files=${1:-${N:-250000}}
runs=${2:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
prefix=${BENCH_DIR:-/tmp/ibackup-bench}
old=$prefix-diff-$files-old
new=$prefix-diff-$files-new

cd "$top"
cargo build --release --quiet --bin ibackup --example make_backup
target=${CARGO_TARGET_DIR:-$top/target}
bin=${IBACKUP:-$target/release/ibackup}
make="$target/release/examples/make_backup"

[ -d "$old" ] || "$make" "$old" "$files" >/dev/null
if [ ! -d "$new" ]; then
  "$make" "$new.tmp" $((files + files / 100)) >/dev/null
  python3 - "$new.tmp" <<'EOF'
import os, plistlib, sqlite3, sys
root = sys.argv[1]
db = sqlite3.connect(os.path.join(root, "Manifest.db"))
for (file_id,) in db.execute("SELECT fileID FROM Files WHERE domain = 'WirelessDomain'"):
    try:
        os.remove(os.path.join(root, file_id[:2], file_id))
    except FileNotFoundError:
        pass
db.execute("DELETE FROM Files WHERE domain = 'WirelessDomain'")
rows = db.execute("SELECT fileID, file FROM Files WHERE flags = 1 ORDER BY relativePath").fetchall()
for n, (file_id, record) in enumerate(rows):
    if n % 100:
        continue
    archive = plistlib.loads(record)
    for obj in archive["$objects"]:
        if isinstance(obj, dict) and "LastModified" in obj:
            obj["LastModified"] += 86400
    db.execute("UPDATE Files SET file = ? WHERE fileID = ?",
               (plistlib.dumps(archive, fmt=plistlib.FMT_BINARY), file_id))
# One blob the older backup has goes missing ("now missing").
(file_id,) = db.execute("SELECT fileID FROM Files WHERE domain = 'HomeDomain' AND flags = 1 "
                        "ORDER BY relativePath LIMIT 1").fetchone()
os.remove(os.path.join(root, file_id[:2], file_id))
db.commit()
EOF
  mv "$new.tmp" "$new"
fi

# verify must pass on OLD, and diff must find the losses (exit 1), before either is timed.
"$bin" verify "$old" --json >/dev/null || { echo "verify OLD did not exit 0" >&2; exit 1; }
set +e
"$bin" diff "$old" "$new" --json >/tmp/ibackup-bench-diff.json
code=$?
set -e
[ "$code" = 1 ] || { echo "diff did not exit 1 (got $code)" >&2; exit 1; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "backups: $old ($files files) and $new, ibackup $bin"
python3 - /tmp/ibackup-bench-diff.json <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["totals"]
print(f"diff found: {t['added']} added, {t['removed']} removed, {t['changed']} changed, "
      f"{d['now_missing']} now missing; findings {[f['code'] for f in d['findings']]}")
EOF

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# timed KIND CMD...: runs CMD once, appends its wall ms and peak KB to the arrays named after
# KIND (the exit code is not checked here: diff exits 1 by design).
timed() {
  local kind=$1; shift
  local t0 t1 kb
  t0=$(date +%s%N)
  kb=$( { /usr/bin/time -f '%M' "$@" >/dev/null; } 2>&1 | tail -n1 ) || true
  t1=$(date +%s%N)
  eval "${kind}_ms+=($(( (t1 - t0) / 1000000 )))"
  eval "${kind}_kb+=($kb)"
}

verify_ms=(); verify_kb=(); diff_ms=(); diff_kb=()
# One untimed round warms the page cache.
"$bin" verify "$old" --json >/dev/null
"$bin" diff "$old" "$new" --json >/dev/null || true
for _ in $(seq "$runs"); do
  timed verify "$bin" verify "$old" --json
  timed diff "$bin" diff "$old" "$new" --json
done
v=$(median "${verify_ms[@]}"); d=$(median "${diff_ms[@]}")
vk=$(median "${verify_kb[@]}"); dk=$(median "${diff_kb[@]}")
printf '\n%10s %10s %8s %10s %10s\n' "verify ms" "diff ms" "d/v" "verify MB" "diff MB"
printf '%10s %10s %8s %10.1f %10.1f\n' "$v" "$d" "$(awk -v a="$d" -v b="$v" 'BEGIN { printf "%.2f", a / b }')" \
  "$(awk -v k="$vk" 'BEGIN { print k / 1024 }')" "$(awk -v k="$dk" 'BEGIN { print k / 1024 }')"
echo "runs (ms): verify ${verify_ms[*]} | diff ${diff_ms[*]}"
echo "target: d/v <= 2.00"
