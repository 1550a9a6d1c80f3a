# Sourced by the benchmarks that meet the simulated phone (bench-device.sh, bench-backup.sh):
# builds the release ibackup and ibackup-sim, makes a scratch folder `$dir` (removed on exit,
# the simulator stopped), and `start_sim [ibackup-sim options]` starts the phone behind a
# usbmuxd socket there and points ibackup and libimobiledevice's tools at it.
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p ibackup --bin ibackup -p ibackup-sim --bin ibackup-sim
IBACKUP="$TARGET/release/ibackup"
SIM="$TARGET/release/ibackup-sim"

dir=$(mktemp -d)
sim_pid=""
cleanup() {
    if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

start_sim() {
    "$SIM" --listen "$dir/usbmuxd.sock" "$@" >"$dir/ready" &
    sim_pid=$!
    for _ in $(seq 200); do
        grep -q ready "$dir/ready" 2>/dev/null && break
        sleep 0.05
    done
    grep -q ready "$dir/ready" || { echo "ibackup-sim did not start" >&2; exit 2; }
    export USBMUXD_SOCKET_ADDRESS="UNIX:$dir/usbmuxd.sock"
    export IBACKUP_LOCKDOWN_DIR="$dir/lockdown"
    export HOME="$dir"
    mkdir -p "$dir/lockdown"
}
