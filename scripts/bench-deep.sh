#!/usr/bin/env bash
# Benchmarks `ibackup verify --deep` on an encrypted backup against OpenSSL decrypting the same
# blobs, in one run (issue 4; target: ibackup <= 1.5x OpenSSL's time).
#
#   1. writes an encrypted backup of FILES blobs of MB megabytes each (examples/
#      make_encrypted_backup.rs, the test-support writer; small key-derivation counts, so the
#      time is the decryption, which scripts/bench-kdf.sh measures separately);
#   2. warms the page cache, so both sides read from memory;
#   3. times `ibackup verify --deep` (the whole command: plists, manifest decryption and scan,
#      every blob decrypted and its padding and size checked, in parallel with rayon);
#   4. times `openssl enc -d -aes-256-cbc` over the same blobs with each blob's key, as many in
#      parallel as there are cores (xargs -P), output to /dev/null.
# Prints both times, the throughput and the ratio ibackup / OpenSSL.
# Usage: scripts/bench-deep.sh [FILES, default 16] [MB per file, default 16]
set -euo pipefail

cd "$(dirname "$0")/.."
FILES=${1:-16}
MB=${2:-16}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --bin ibackup --example make_encrypted_backup
IBACKUP="$CARGO_TARGET_DIR/release/ibackup"
MAKE="$CARGO_TARGET_DIR/release/examples/make_encrypted_backup"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CORES=$(nproc)

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'; }

export IBACKUP_PASSWORD="bench-deep password"
echo "== writing an encrypted backup: $FILES blobs of ~$MB MB"
"$MAKE" "$WORK/backup" "$FILES" "$MB" >"$WORK/keys"
bytes=$(awk '{ print $1 }' "$WORK/keys" | xargs stat -c %s | awk '{ s += $1 } END { print s }')
awk '{ print $1 }' "$WORK/keys" | xargs cat >/dev/null # warm the page cache for both sides

start=$(now)
"$IBACKUP" verify "$WORK/backup" --deep --json >"$WORK/report.json"
ours=$(since "$start")
decrypted=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["files"]["decrypted"], r["complete"])' "$WORK/report.json")
if [[ "$decrypted" != "$FILES True" ]]; then
    echo "ibackup did not decrypt every blob intact: $decrypted" >&2
    exit 1
fi

start=$(now)
xargs -P "$CORES" -L 1 sh -c \
    'openssl enc -d -aes-256-cbc -K "$1" -iv 00000000000000000000000000000000 -in "$0" -out /dev/null' \
    <"$WORK/keys"
theirs=$(since "$start")

mbps() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", b / t / 1e6 }'; }
echo "$bytes bytes in $FILES blobs, $CORES cores"
echo "ibackup verify --deep ${ours}s ($(mbps "$ours") MB/s), openssl enc -d ${theirs}s ($(mbps "$theirs") MB/s)"
echo "verify --deep ratio (ibackup/openssl): $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')  (target <= 1.5)"
