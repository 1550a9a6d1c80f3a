#!/usr/bin/env bash
# Shows `ibackup inspect` (no argument) on two simulated desks: a healthy phone with a fresh,
# complete backup, and a troubled one (iOS 18.0, Find My on, battery low and unplugged, an
# unfinished backup made on a newer iOS, and the message "Backup needs restart").
#   scripts/demo-diagnosis.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cargo build --quiet -p ibackup --bin ibackup --example make_backup -p ibackup-sim --bin ibackup-sim
bin="${CARGO_TARGET_DIR:-$top/target}/debug"
udid=00008110-001A2B3C4D5E801E

desk() { # NAME PROFILE_JSON DAYS_AGO MAKE_BACKUP_OPTIONS...
  local dir; dir=$(mktemp -d)
  local name=$1 profile=$2 days=$3; shift 3
  echo "$profile" > "$dir/profile.json"
  "$bin/examples/make_backup" "$dir/backups/$udid" 120 --udid "$udid" --name "Simulated iPhone" \
    --days-ago "$days" "$@" >/dev/null
  # Its files were last written the day it was made (else an unfinished one reads as a backup
  # still being written).
  find "$dir/backups" -exec touch -h -d "@$(( $(date +%s) - days * 86400 ))" {} +
  "$bin/ibackup-sim" --listen "$dir/usbmuxd.sock" --profile "$dir/profile.json" >"$dir/sim.out" &
  local sim=$!
  for _ in $(seq 50); do grep -q ready "$dir/sim.out" 2>/dev/null && break; sleep 0.1; done
  echo "=== $name"
  USBMUXD_SOCKET_ADDRESS="UNIX:$dir/usbmuxd.sock" IBACKUP_LOCKDOWN_DIR="$dir" \
    IBACKUP_BACKUP_DIR="$dir/backups" "$bin/ibackup" inspect "${MESSAGE[@]}" || true
  kill "$sim"; wait "$sim" 2>/dev/null || true
  rm -rf "$dir"
}

MESSAGE=()
desk "A healthy phone and backup" '{ "will_encrypt": true }' 1
MESSAGE=(--message "Backup needs restart")
desk "A troubled phone" \
  '{ "ios_version": "18.0", "build_version": "22A3354", "find_my": true,
     "battery": { "percent": 12, "charging": false, "external_power": false } }' \
  3 --ios 18.1 --defect unfinished --defect missing-blob
