#!/usr/bin/env bash
# Records what ibackup prints (stdout, stderr, exit code) for every fixture backup and every
# simulator profile, one file per run, into OUT. Two snapshots taken before and after a change
# that must not change behaviour are compared with `diff -r BEFORE AFTER`.
#
#   scripts/json-snapshot.sh OUT
#
# IBACKUP and IBACKUP_SIM name the binaries to use (default: built here, release); PROFILES the
# simulator profile folder. Runs take place in a fixed scratch folder so that paths in the output
# are the same from one snapshot to the next.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: scripts/json-snapshot.sh OUT}")
if [ -z "${IBACKUP:-}" ] || [ -z "${IBACKUP_SIM:-}" ]; then
  cargo build --release --quiet --locked --workspace --bins
  target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  IBACKUP=${IBACKUP:-$target/release/ibackup}
  IBACKUP_SIM=${IBACKUP_SIM:-$target/release/ibackup-sim}
fi
profiles=${PROFILES:-sim/profiles}
scratch=/tmp/ibackup-json-snapshot
# One snapshot at a time on a machine: they share the scratch folder.
exec 9>"$scratch.lock"
flock 9
rm -rf "$scratch" "$out"
mkdir -p "$scratch" "$out"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT

run() { # NAME ARGS...: runs ibackup with a fixed environment and records what it did
  local name=$1; shift
  local code=0
  env -i PATH="$PATH" HOME="$scratch" USBMUXD_SOCKET_ADDRESS="$scratch/usbmuxd.sock" \
    IBACKUP_LOCKDOWN_DIR="$scratch/lockdown" IBACKUP_TRANSPORT=usbmuxd \
    IBACKUP_DEVICE_WAIT=1 IBACKUP_PAIR_TIMEOUT=2 IBACKUP_PASSWORD=password \
    "$IBACKUP" "$@" >"$out/$name.stdout" 2>"$out/$name.stderr" </dev/null || code=$?
  echo "$code" >"$out/$name.exit"
}

backups=(fixtures/sample-backup/* fixtures/sample-backups/* fixtures/third-party/synthetic-encrypted-ios26)
[ -d ../shared/samples/real-ios14-partial ] && backups+=(../shared/samples/real-ios14-partial)

# No phone: every fixture backup through every backup command, JSON and text.
mkdir -p "$scratch/lockdown"
for b in "${backups[@]}"; do
  n=$(basename "$b")
  run "nophone-verify-json-$n" verify --json "$b"
  run "nophone-verify-deep-json-$n" verify --deep --json "$b"
  run "nophone-verify-text-$n" verify --verbose "$b"
  run "nophone-inspect-json-$n" inspect --json "$b"
  run "nophone-inspect-text-$n" inspect "$b"
done
run nophone-inspect-json-folder inspect --json fixtures/sample-backups
run nophone-inspect-text-folder inspect fixtures/sample-backups
run nophone-device-json device --json
run nophone-message-json inspect --json --message "Backup needs restart" fixtures/sample-backups

# One simulated phone per profile: the device commands, then the backup commands with it there.
for p in "$profiles"/*.json; do
  n=$(basename "$p" .json)
  rm -rf "$scratch/lockdown" "$scratch/usbmuxd.sock"
  mkdir -p "$scratch/lockdown"
  "$IBACKUP_SIM" --listen "$scratch/usbmuxd.sock" --profile "$p" >"$scratch/ready" 2>/dev/null &
  sim=$!
  # Up to 30 s for the simulator to listen: a loaded machine can be slow to start it.
  for _ in $(seq 600); do grep -q ready "$scratch/ready" 2>/dev/null && break; sleep 0.05; done
  run "$n-device-json" device --json
  run "$n-device-text" device
  run "$n-devices-json" devices --json
  run "$n-inspect-json" inspect --json fixtures/sample-backups
  run "$n-inspect-text" inspect fixtures/sample-backups
  run "$n-verify-json" verify --json fixtures/sample-backup/00008110-001A2C3E0E38801E
  run "$n-pair-json" pair --json
  kill "$sim" 2>/dev/null || true
  wait "$sim" 2>/dev/null || true
done
# A new pairing makes a new random HostID: keep only its shape.
sed -i -E 's/"host_id": "[0-9A-F-]+"/"host_id": "(random)"/' "$out"/*-pair-json.stdout
# The simulated phone dates its last backups from the moment it starts: in the runs with a
# phone, keep only the shape of the times (the fixture backups' own dates are fixed).
for p in "$profiles"/*.json; do
  sed -i -E -e 's/20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/(time)/g' \
    -e 's/20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC/(time)/g' \
    -e 's/[0-9]{1,2} [A-Z][a-z]{2} 20[0-9]{2}, [0-9]{2}:[0-9]{2}/(time)/g' \
    "$out/$(basename "$p" .json)"-*
done
echo "$(ls "$out" | wc -l) files in $out"
