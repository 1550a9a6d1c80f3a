#!/usr/bin/env bash
# Measures, in one run, `ibackup device` against libimobiledevice's full `ideviceinfo` (session +
# TLS) on the same simulated phone (ibackup-sim), and prints the ratio.
#
#   scripts/bench-device.sh            # 100 rounds, release build
#   RUNS=20 scripts/bench-device.sh
#
# Each round runs both commands once, alternating which goes first, and times each with bash's
# EPOCHREALTIME (no extra process per measurement). Needs: libimobiledevice-utils.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-100}

if ! command -v ideviceinfo >/dev/null; then
    echo "ideviceinfo is missing: apt-get install libimobiledevice-utils libusbmuxd-tools" >&2
    exit 2
fi
# shellcheck source=scripts/sim-phone.sh
. scripts/sim-phone.sh
start_sim

# Both must succeed and read the same phone before anything is timed.
"$IBACKUP" device --json | grep -q '"paired": true'
ideviceinfo | grep -q 'ActivationState: Activated'

now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
ours=0
theirs=0
for i in $(seq "$RUNS"); do
    if (( i % 2 )); then
        a=$(now_us); "$IBACKUP" device >/dev/null; b=$(now_us); ours=$((ours + b - a))
        a=$(now_us); ideviceinfo >/dev/null; b=$(now_us); theirs=$((theirs + b - a))
    else
        a=$(now_us); ideviceinfo >/dev/null; b=$(now_us); theirs=$((theirs + b - a))
        a=$(now_us); "$IBACKUP" device >/dev/null; b=$(now_us); ours=$((ours + b - a))
    fi
done

awk -v o="$ours" -v t="$theirs" -v n="$RUNS" 'BEGIN {
    printf "runs: %d each, same simulated phone, same socket\n", n
    printf "ibackup device:       %.2f ms per run\n", o / n / 1000
    printf "ideviceinfo (full):   %.2f ms per run\n", t / n / 1000
    printf "ratio ibackup/ideviceinfo: %.2f (below 1 means ibackup is faster)\n", o / t
}'
