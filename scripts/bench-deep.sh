#!/usr/bin/env bash
# Benchmarks `ibackup verify --deep` on an encrypted backup against OpenSSL decrypting the same
# blobs, in one run (issue 13; target: ibackup <= 1.2x OpenSSL's time, both modes).
#
#   scripts/bench-deep.sh large [FILES, default 16] [MB per file, default 16]
#   scripts/bench-deep.sh small [FILES, default 250000]     (files of 1 to 2,048 bytes)
#   (no mode: large with the defaults)
#
#   1. writes an encrypted backup (examples/make_encrypted_backup.rs, the test-support writer;
#      small key-derivation counts, so the time is the decryption, which scripts/bench-kdf.sh
#      measures separately);
#   2. warms the page cache (every blob read once, and one `verify --deep` that must find every
#      blob decrypted and the backup complete), so both sides read from memory;
#   3. times, alternately, RUNS times each (default 5):
#      - `ibackup verify --deep` (the whole command: plists, keybag, Manifest.db decryption and
#        scan, every blob's size, every blob's key unwrapped and the blob decrypted with its
#        padding and size checked, in parallel with rayon);
#      - OpenSSL decrypting the same blobs, as many at a time as there are cores, output to
#        /dev/null. large: one `openssl enc -d -aes-256-cbc` per blob with that blob's key
#        (`xargs -P nproc`). small: a process per file would time process start-up, not
#        decryption, so the blobs are split into nproc shares; each share is read by `cat`
#        (`xargs -n 2000`, so every file is opened and read as ibackup does) into ONE
#        `openssl enc -d -aes-256-cbc -nopad` (one key for the whole share: the AES work is the
#        same, the output is garbage), the shares in parallel (`xargs -P nproc`).
# Prints the load, both medians, the throughput and the ratio ibackup / OpenSSL.
# RUNS=n sets the runs per side; BENCH_DIR=dir keeps the backup there and reuses it (otherwise a
# temporary folder, deleted at the end); IBACKUP=path times another build of ibackup.
set -euo pipefail

cd "$(dirname "$0")/.."
MODE=large
if [[ "${1:-}" == large || "${1:-}" == small ]]; then
    MODE=$1
    shift
fi
if [[ $MODE == small ]]; then
    FILES=${1:-250000}
    SIZE=small
else
    FILES=${1:-16}
    SIZE=${2:-16}
fi
RUNS=${RUNS:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --bin ibackup --example make_encrypted_backup
IBACKUP=${IBACKUP:-$CARGO_TARGET_DIR/release/ibackup}
MAKE="$CARGO_TARGET_DIR/release/examples/make_encrypted_backup"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CORES=$(nproc)
IV=00000000000000000000000000000000

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

export IBACKUP_PASSWORD="bench-deep password"
backup=${BENCH_DIR:-$WORK/backup}
keys="$backup.keys"
if [[ ! -s "$keys" ]]; then
    echo "== writing an encrypted backup: $FILES blobs ($SIZE) in $backup"
    rm -rf "$backup"
    "$MAKE" "$backup" "$FILES" "$SIZE" >"$keys.part"
    mv "$keys.part" "$keys"
fi
awk '{ print $1 }' "$keys" >"$WORK/blobs"
bytes=$(xargs stat -c %s <"$WORK/blobs" | awk '{ s += $1 } END { print s }')
xargs cat <"$WORK/blobs" >/dev/null # warm the page cache for both sides

"$IBACKUP" verify "$backup" --deep --json >"$WORK/report.json"
decrypted=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["files"]["decrypted"], r["complete"])' "$WORK/report.json")
if [[ "$decrypted" != "$FILES True" ]]; then
    echo "ibackup did not decrypt every blob intact: $decrypted" >&2
    exit 1
fi

ibackup_run() { "$IBACKUP" verify "$backup" --deep --json >/dev/null; }
if [[ $MODE == small ]]; then
    split -n "r/$CORES" "$WORK/blobs" "$WORK/share."
    KEY=$(awk 'NR == 1 { print $2 }' "$keys")
    openssl_run() {
        printf '%s\n' "$WORK"/share.* | xargs -P "$CORES" -I{} sh -c \
            'xargs -n 2000 cat <"$0" | openssl enc -d -aes-256-cbc -nopad -K "$1" -iv "$2" >/dev/null' \
            {} "$KEY" "$IV"
    }
else
    openssl_run() {
        xargs -P "$CORES" -L 1 sh -c \
            'openssl enc -d -aes-256-cbc -K "$1" -iv 00000000000000000000000000000000 -in "$0" -out /dev/null' \
            <"$keys"
    }
fi

echo "== $MODE: $bytes bytes in $FILES blobs, $CORES cores, $RUNS runs each, alternating"
echo "load before: $(uptime)"
ours=() theirs=()
for _ in $(seq "$RUNS"); do
    start=$(now)
    ibackup_run
    ours+=("$(since "$start")")
    start=$(now)
    openssl_run
    theirs+=("$(since "$start")")
done
echo "load after:  $(uptime)"
o=$(median "${ours[@]}") t=$(median "${theirs[@]}")
mbps() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", b / t / 1e6 }'; }
echo "ibackup verify --deep: ${o}s median ($(mbps "$o") MB/s): ${ours[*]}"
echo "openssl enc -d:        ${t}s median ($(mbps "$t") MB/s): ${theirs[*]}"
echo "verify --deep ratio (ibackup/openssl), $MODE files: $(awk -v a="$o" -v b="$t" 'BEGIN { printf "%.2f", a / b }')  (target <= 1.2)"
