#!/usr/bin/env bash
# Measures, in one run, `ibackup backup --full` against Debian's `idevicebackup2 backup --full`
# on the same simulated phone (ibackup-sim, sim/profiles/backup-large.json: 20,000 files, 2 GB),
# and a plain local copy of the same bytes (`cp -r` of the backup idevicebackup2 made), then
# prints the wall times, ibackup's ratio to idevicebackup2, and each one's MB/s.
#
#   scripts/bench-backup.sh                  # 3 rounds, release build
#   RUNS=1 PROFILE=sim/profiles/backup-large.json scripts/bench-backup.sh
#
# Each round runs the three one after another, alternating which client goes first; every
# backup goes into a fresh folder, removed after it is measured, so the disk holds at most two
# copies. ibackup's time includes its verify of the new backup (the figure a user waits for);
# both clients' backups are checked complete with `ibackup verify` before anything counts.
# Needs: libimobiledevice-utils, about 5 GB free in TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
PROFILE=${PROFILE:-sim/profiles/backup-large.json}

command -v idevicebackup2 >/dev/null || {
    echo "idevicebackup2 is missing: apt-get install libimobiledevice-utils" >&2
    exit 2
}
# shellcheck source=scripts/sim-phone.sh
. scripts/sim-phone.sh
start_sim --profile "$PROFILE"
udid=$("$IBACKUP" device --json | sed -n 's/.*"udid": "\([^"]*\)".*/\1/p' | head -1)
[ -n "$udid" ] || { echo "the simulated phone did not answer" >&2; exit 2; }

now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
ours=0; theirs=0; copy=0; bytes=0
run_ours() {
    rm -rf "$dir/ours"; mkdir -p "$dir/ours"
    local a b; a=$(now_us)
    "$IBACKUP" backup --full --to "$dir/ours" --quiet >"$dir/ours.out" 2>&1 || {
        cat "$dir/ours.out" >&2; echo "ibackup backup failed" >&2; exit 2; }
    b=$(now_us); ours=$((ours + b - a))
    grep -qx complete "$dir/ours.out"
    rm -rf "$dir/ours"
}
run_theirs() {
    rm -rf "$dir/theirs"; mkdir -p "$dir/theirs"
    local a b; a=$(now_us)
    idevicebackup2 backup --full "$dir/theirs" >"$dir/theirs.out" 2>&1 || {
        tail -5 "$dir/theirs.out" >&2; echo "idevicebackup2 failed" >&2; exit 2; }
    b=$(now_us); theirs=$((theirs + b - a))
    "$IBACKUP" verify "$dir/theirs/$udid" --quiet | grep -qx complete
    bytes=$(du -sb "$dir/theirs/$udid" | cut -f1)
    # The plain copy of the same bytes, while they are in the page cache as they were for the
    # clients (which wrote them).
    rm -rf "$dir/copy"
    a=$(now_us); cp -r "$dir/theirs/$udid" "$dir/copy"; sync -f "$dir/copy" 2>/dev/null || true
    b=$(now_us); copy=$((copy + b - a))
    rm -rf "$dir/copy" "$dir/theirs"
}
for i in $(seq "$RUNS"); do
    if (( i % 2 )); then run_ours; run_theirs; else run_theirs; run_ours; fi
done

awk -v o="$ours" -v t="$theirs" -v c="$copy" -v n="$RUNS" -v b="$bytes" -v p="$PROFILE" 'BEGIN {
    os = o / n / 1e6; ts = t / n / 1e6; cs = c / n / 1e6; mb = b / 1e6;
    printf "backup of %.0f MB (%s), %d rounds\n", mb, p, n;
    printf "  ibackup backup --full (with verify): %7.2f s  %7.1f MB/s\n", os, mb / os;
    printf "  idevicebackup2 backup --full:        %7.2f s  %7.1f MB/s\n", ts, mb / ts;
    printf "  cp -r of the same backup:            %7.2f s  %7.1f MB/s\n", cs, mb / cs;
    printf "  ratio ibackup / idevicebackup2:      %7.2f\n", os / ts;
}'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
