#!/usr/bin/env bash
# The USB rig's steps, run inside the VM that scripts/usb-vm.sh boots (do not run it on a
# host: it creates USB gadgets and kills what it started there). /build holds ibackup and
# ibackup-sim, /rig this script and a backup folder; the kernel has dummy_hcd, libcomposite and
# usb_f_fs loaded and configfs mounted.
#
# The gadget looks like an iPhone: Apple's vendor id, an iPhone product id, the UDID without
# dashes as its serial, a still-image (PTP) interface in configuration 1 and the usbmux
# interface in configuration 2, so every host has to switch configuration. Prints
# `usb-vm: PASS` when every step passed.
set -uo pipefail
export PATH=/build:/usr/sbin:/usr/bin
export IBACKUP_SIM_LOG=1
gadget=/sys/kernel/config/usb_gadget/iphone
udc=$(ls /sys/class/udc | head -n 1)
sim_pid=""
muxd_pid=""
failures=0

say() { printf 'usb-vm: %s\n' "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
fail() {
  say "  FAIL: $*"
  failures=$((failures + 1))
}
# Runs a command, showing it and its output indented; its status is returned.
show() {
  local t0 rc
  t0=$(now)
  "$@" >/tmp/out 2>&1
  rc=$?
  say "  \$ $*   [$(elapsed "$t0") s, exit $rc]"
  head -n 40 /tmp/out | sed 's/^/      /'
  [ "$(wc -l </tmp/out)" -le 40 ] || say "      ... ($(wc -l </tmp/out) lines in all)"
  return $rc
}
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local limit=$1
  shift
  local until=$(($(date +%s) + limit))
  while ! "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$until" ] || return 1
    sleep 0.2
  done
}

# --- the phones: one profile each ---------------------------------------------------------
# A: paired, and the phone whose backup is in /rig/backups. Its name is as long as it takes
# for lockdownd's answer to GetValue (no session, the root values) to travel as a mux packet of
# exactly 1024 bytes: two full 512-byte USB packets, so a zero-length packet has to end it.
udid_a=00008110-001A2C3E0E38801E
name_a="VM iPhone A (named so that its GetValue answer fills two whole 512-byte packets)"
cat >/tmp/a.json <<EOF
{ "udid": "$udid_a", "name": "$name_a", "product_type": "iPhone14,5",
  "ios_version": "17.5.1", "build_version": "21F90",
  "storage": { "total_bytes": 256000000000, "available_bytes": 101000000000 },
  "battery": { "percent": 64, "charging": false, "external_power": false },
  "will_encrypt": true, "find_my": true }
EOF
# B: never paired; "Trust This Computer?" is answered after two asks.
udid_b=00008120-000C5D1E3A41C01E
cat >/tmp/b.json <<EOF
{ "udid": "$udid_b", "name": "VM iPhone B", "paired": false,
  "pairing": { "pending_for": 2, "outcome": "accept" } }
EOF
# C: never paired, and nobody ever taps Trust: pairing waits until the phone is unplugged.
udid_c=00008030-001E4D2A0C91802E
cat >/tmp/c.json <<EOF
{ "udid": "$udid_c", "name": "VM iPhone C", "paired": false,
  "pairing": { "pending_for": 1000000, "outcome": "accept" } }
EOF

# --- the gadget -----------------------------------------------------------------------------
make_gadget() {
  mkdir -p $gadget/strings/0x409 $gadget/configs/c.1/strings/0x409 \
    $gadget/configs/c.2/strings/0x409 $gadget/functions/ffs.ptp $gadget/functions/ffs.usbmux \
    || return 1
  echo 0x05ac >$gadget/idVendor
  echo 0x12a8 >$gadget/idProduct
  echo 0x0200 >$gadget/bcdUSB
  echo 0x1100 >$gadget/bcdDevice
  echo "Apple Inc." >$gadget/strings/0x409/manufacturer
  echo "iPhone" >$gadget/strings/0x409/product
  echo "PTP" >$gadget/configs/c.1/strings/0x409/configuration
  echo "Apple Mobile Device" >$gadget/configs/c.2/strings/0x409/configuration
  echo 500 >$gadget/configs/c.1/MaxPower
  echo 500 >$gadget/configs/c.2/MaxPower
  ln -s $gadget/functions/ffs.ptp $gadget/configs/c.1/
  ln -s $gadget/functions/ffs.usbmux $gadget/configs/c.2/
  mkdir -p /dev/ffs-ptp /dev/ffs-usbmux
  mount -t functionfs ptp /dev/ffs-ptp && mount -t functionfs usbmux /dev/ffs-usbmux
}

unplug() { echo "" >$gadget/UDC 2>/dev/null; }
plug() { echo "$udc" >$gadget/UDC; }

# The phone as the host's kernel sees it: its sysfs folder.
usb_device() {
  local d
  for d in /sys/bus/usb/devices/*; do
    [ -f "$d/idVendor" ] && [ "$(cat "$d/idVendor")" = 05ac ] && { echo "$d"; return 0; }
  done
  return 1
}

# What udev's rule from the usbmuxd package would do: the phone's device file belongs to the
# usbmux user, the one usbmuxd runs as.
give_to_usbmux() {
  local d
  d=$(usb_device) || return 1
  chown usbmux "$(printf '/dev/bus/usb/%03d/%03d' "$(cat "$d/busnum")" "$(cat "$d/devnum")")"
}

sessions_ended() { grep -c "mux session ended" /tmp/sim.log; }
more_sessions_ended_than() { [ "$(sessions_ended)" -gt "$1" ]; }

stop_phone() {
  [ -n "$sim_pid" ] || return 0
  local before
  before=$(sessions_ended)
  unplug
  # The phone logs the session the unplug ended (what crossed the bus) before it goes.
  wait_for 5 more_sessions_ended_than "$before"
  kill "$sim_pid" 2>/dev/null
  wait "$sim_pid" 2>/dev/null
  sim_pid=""
}

# Starts ibackup-sim on the gadget with profile $1 (UDID $2) and plugs it in.
start_phone() {
  local profile=$1 udid=$2
  shift 2
  stop_phone
  echo "${udid//-/}" >$gadget/strings/0x409/serialnumber
  : >/tmp/sim.out
  ibackup-sim --ffs /dev/ffs-usbmux --ffs-ptp /dev/ffs-ptp --profile "$profile" "$@" \
    >/tmp/sim.out 2>>/tmp/sim.log &
  sim_pid=$!
  local t0
  t0=$(now)
  wait_for 30 grep -q ready /tmp/sim.out || { fail "the simulator did not start"; return 1; }
  say "  ibackup-sim --ffs ready with $(basename "$profile") after $(elapsed "$t0") s"
  t0=$(now)
  plug || { fail "cannot bind the gadget to $udc"; return 1; }
  wait_for 20 usb_device || { fail "the host side never saw the phone"; return 1; }
  say "  plugged in: the host enumerated it after $(elapsed "$t0") s"
  give_to_usbmux
}

start_usbmuxd() {
  usbmuxd -f -v >>/tmp/usbmuxd.log 2>&1 &
  muxd_pid=$!
  wait_for 20 test -S /var/run/usbmuxd || { fail "usbmuxd did not start"; return 1; }
}

stop_usbmuxd() {
  [ -n "$muxd_pid" ] || return 0
  kill "$muxd_pid" 2>/dev/null
  wait "$muxd_pid" 2>/dev/null
  muxd_pid=""
}

# Checks a JSON document (file $1) with Python expressions (the arguments after $2) over `d`
# (the document) and `p` (the profile, file $2): each one that is not true is a failure.
check_json() {
  python3 - "$@" <<'EOF' >/tmp/check 2>&1
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError as e:
    print(f"{sys.argv[1]} is not JSON ({e})")
    sys.exit(1)
p = json.load(open(sys.argv[2]))
for check in sys.argv[3:]:
    try:
        ok = eval(check)
    except Exception as e:
        ok, check = False, f"{check} ({type(e).__name__}: {e})"
    if ok is not True:
        print(check)
EOF
  local line
  while read -r line; do fail "JSON check: $line"; done </tmp/check
  [ ! -s /tmp/check ]
}

step_start=""
# usbmuxd, started, lists the phone with UDID $1 (called $2) within 30 s.
usbmuxd_lists() {
  wait_for 30 sh -c "ibackup --transport usbmuxd devices | grep -q $1" \
    || fail "usbmuxd never listed $2"
}

# idevicepair, through usbmuxd, validates this host's pairing with the phone with UDID $1.
validate_pairing() {
  show idevicepair -u "$1" validate || fail "idevicepair validate failed"
  grep -q "SUCCESS: Validated pairing with device $1" /tmp/out || fail "idevicepair: not validated"
}

step() {
  step_start=$(now)
  step_failures=$failures
  say ""
  say "step $*"
}
step_done() {
  local verdict=ok
  [ "$failures" -eq "$step_failures" ] || verdict=FAILED
  say "step $1: $verdict in $(elapsed "$step_start") s"
  timings+=("step $1 $verdict $(elapsed "$step_start") s")
}
timings=()

# ============================================================================================
say "guest kernel $(uname -r), USB device controller $udc"
boot_done=$(now)
make_gadget || { say "cannot create the gadget"; exit 1; }

# --- 1. direct USB over libusb and the kernel's host stack ----------------------------------
step 1 "ibackup --transport usb devices / device --json (libusb)"
start_phone /tmp/a.json "$udid_a" --lockdown-dir /var/lib/lockdown
dev=$(usb_device)
say "  the kernel sees $(cat "$dev/manufacturer") $(cat "$dev/product") serial $(cat "$dev/serial"), $(cat "$dev/bNumConfigurations") configurations, active $(cat "$dev/bConfigurationValue")"
[ "$(cat "$dev/bConfigurationValue")" = 1 ] || fail "the phone did not start in configuration 1"
zlp_before=$(grep -c "sent a zero-length packet" /tmp/sim.log)
show ibackup --transport usb devices || fail "devices failed"
grep -qF "$udid_a  $name_a (iPhone14,5, iOS 17.5.1)  via usb (USB)" /tmp/out \
  || fail "devices does not list phone A"
zlp=$(($(grep -c "sent a zero-length packet" /tmp/sim.log) - zlp_before))
say "  the phone sent $zlp zero-length packet(s) meanwhile (its 1024-byte answer)"
[ "$zlp" -ge 1 ] || fail "no zero-length packet after the 1024-byte answer"
show ibackup --transport usb device --json || fail "device --json failed"
cp /tmp/out /tmp/device-a.json
check_json /tmp/device-a.json /tmp/a.json \
  'd["schema"] == "ibackup.device/1"' \
  'd["udid"] == p["udid"] and d["name"] == p["name"]' \
  'd["product_type"] == p["product_type"] and d["ios_version"] == p["ios_version"]' \
  'd["build_version"] == p["build_version"]' \
  'd["connection"] == "usb" and d["connection_type"] == "USB"' \
  'd["paired"] is True and d["pair_record"] == "/var/lib/lockdown/" + p["udid"] + ".plist"' \
  'd["storage"] == p["storage"]' \
  'd["battery"] == p["battery"]' \
  'd["backup"]["will_encrypt"] is True and d["backup"]["requires_encryption"] is False' \
  'd["backup"]["last_computer_backup"].endswith("Z")' \
  'd["icloud"]["backup_enabled"] is True and d["icloud"]["last_backup"].endswith("Z")' \
  'd["icloud"]["last_backup_time_zone"] == "Europe/Paris"' \
  'd["find_my"] is True' \
  'sorted(d) == sorted(["schema", "udid", "name", "product_type", "ios_version", "build_version", "connection", "connection_type", "paired", "pair_record", "storage", "battery", "backup", "icloud", "find_my", "findings"])'
say "  the host switched to configuration $(cat "$dev/bConfigurationValue"); usbmux endpoints:"
for ep in "$dev"/*:2.0/ep_*; do
  [ -e "$ep" ] && say "    $(basename "$ep") $(cat "$ep/direction") $(cat "$ep/type") wMaxPacketSize $(cat "$ep/wMaxPacketSize")"
done
[ "$(cat "$dev/bConfigurationValue")" = 2 ] || fail "the host did not switch to configuration 2"
step_done 1

# --- 2. Debian's usbmuxd as an independent host ---------------------------------------------
step 2 "usbmuxd -f -v + ibackup --transport usbmuxd + ideviceinfo + idevicepair validate"
start_usbmuxd
usbmuxd_lists "$udid_a" "phone A"
show ibackup --transport usbmuxd device --json || fail "device --json through usbmuxd failed"
cp /tmp/out /tmp/device-a-muxd.json
check_json /tmp/device-a-muxd.json /tmp/a.json \
  'd["udid"] == p["udid"] and d["name"] == p["name"] and d["connection"] == "usbmuxd"' \
  'd["connection_type"] == "USB" and d["paired"] is True' \
  'd["storage"] == p["storage"] and d["battery"] == p["battery"] and d["find_my"] is True'
show ideviceinfo -u "$udid_a" || fail "ideviceinfo failed"
grep -q "^UniqueDeviceID: $udid_a" /tmp/out || fail "ideviceinfo: no UniqueDeviceID"
grep -qF "DeviceName: $name_a" /tmp/out || fail "ideviceinfo: no DeviceName"
show ideviceinfo -u "$udid_a" -q com.apple.disk_usage -k TotalDiskCapacity \
  || fail "ideviceinfo -q com.apple.disk_usage failed"
grep -qx 256000000000 /tmp/out || fail "ideviceinfo: wrong TotalDiskCapacity"
validate_pairing "$udid_a"
stop_usbmuxd
step_done 2

# --- 3. pairing over USB; the record then serves usbmuxd too --------------------------------
step 3 "ibackup pair over USB with an unpaired phone; the record works through usbmuxd"
start_phone /tmp/b.json "$udid_b"
show ibackup --transport usb device --json || fail "device --json (unpaired) failed"
check_json /tmp/out /tmp/b.json 'd["udid"] == p["udid"] and d["paired"] is False' \
  || fail "the phone should not be paired yet"
IBACKUP_PAIR_TIMEOUT=120 show ibackup --transport usb pair || fail "pair failed"
[ -s "/var/lib/lockdown/$udid_b.plist" ] || fail "no pair record saved for $udid_b"
show ibackup --transport usb device --json || fail "device --json after pairing failed"
check_json /tmp/out /tmp/b.json 'd["paired"] is True and d["storage"]["total_bytes"] > 0' \
  || fail "the paired session did not work over USB"
start_usbmuxd
usbmuxd_lists "$udid_b" "phone B"
show ibackup --transport usbmuxd device --json || fail "device --json through usbmuxd failed"
check_json /tmp/out /tmp/b.json 'd["paired"] is True and d["connection"] == "usbmuxd" and d["battery"]["percent"] > 0' \
  || fail "the record made over USB did not work through usbmuxd"
validate_pairing "$udid_b"
stop_usbmuxd
step_done 3

# --- 4. unplugged mid-session, then plugged in again ----------------------------------------
step 4 "unplug (unbind the UDC) while ibackup waits for Trust; replug"
start_phone /tmp/c.json "$udid_c"
IBACKUP_PAIR_TIMEOUT=300 ibackup --transport usb pair >/tmp/pair-c.out 2>&1 &
pair_pid=$!
# The phone has been asked and shows its Trust dialog; a few more asks go by.
wait_for 60 grep -q "Tap Trust" /tmp/pair-c.out || fail "pair never waited for Trust"
sleep 2
kill -0 "$pair_pid" 2>/dev/null || fail "pair ended before the unplug"
unplugged=$(now)
unplug
say "  unplugged (UDC unbound)"
for _ in $(seq 1 300); do
  kill -0 "$pair_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pair_pid" 2>/dev/null; then
  fail "pair still running 30 s after the unplug"
  kill "$pair_pid"
fi
wait "$pair_pid"
rc=$?
say "  pair ended $(elapsed "$unplugged") s after the unplug with exit status $rc:"
sed 's/^/      /' /tmp/pair-c.out
[ "$rc" -ne 0 ] || fail "pair claimed success on an unplugged phone"
grep -qiE "unplug|disconnect|no longer|gone|closed|not connected" /tmp/pair-c.out \
  || fail "the message does not say the phone went away"
plug || fail "cannot plug the phone in again"
wait_for 20 usb_device || fail "the host side never saw the phone again"
show ibackup --transport usb devices || fail "devices after replug failed"
grep -q "^$udid_c" /tmp/out || fail "devices does not list the phone after replug"
show ibackup --transport usb device --json || fail "device --json after replug failed"
check_json /tmp/out /tmp/c.json 'd["udid"] == p["udid"] and d["name"] == p["name"]' \
  || fail "no fresh mux session after the replug"
step_done 4

# --- 5. the full diagnosis over the real stack ----------------------------------------------
step 5 "ibackup inspect (no argument) with a backup folder"
start_phone /tmp/a.json "$udid_a" --lockdown-dir /var/lib/lockdown
cp -r /rig/backups /tmp/backups
IBACKUP_BACKUP_DIR=/tmp/backups show ibackup --transport usb inspect || fail "inspect failed"
grep -q "UDID        $udid_a" /tmp/out || fail "inspect: no phone"
grep -q "Paired      yes" /tmp/out || fail "inspect: not paired"
grep -q "/tmp/backups/$udid_a" /tmp/out || fail "inspect: the phone's backup is not shown"
# Phone A has Find My on: the verdict names it as what stands in the way of a restore.
grep -q "Not ready to restore to the connected iPhone" /tmp/out || fail "inspect: no restore verdict"
grep -q "Find My is on" /tmp/out || fail "inspect: Find My not named"
IBACKUP_BACKUP_DIR=/tmp/backups ibackup --transport usb inspect --json >/tmp/inspect.json \
  2>/tmp/inspect.err || fail "inspect --json failed"
check_json /tmp/inspect.json /tmp/a.json 'd["device_error"] is None and d["device"]["udid"] == p["udid"] and any(b["backup"]["udid"] == p["udid"] for b in d["backups"])' \
  || fail "inspect --json: no full diagnosis"
step_done 5
stop_phone

# --- what usbmuxd said about the phone ------------------------------------------------------
say ""
say "usbmuxd's log about the simulated phone (of $(wc -l </tmp/usbmuxd.log) lines):"
grep -iE "found new device|connecting to new device|connected to v|device .* added|serial|client .* connect|removed|version" \
  /tmp/usbmuxd.log | sed 's/^/    /' | head -n 40
grep -qiE "Connected to v2.0 device" /tmp/usbmuxd.log || fail "usbmuxd never completed the mux handshake"
say ""
say "the simulated phone's mux sessions (one per ENABLE):"
grep "mux session ended" /tmp/sim.log | sed 's/^/    /'
if [ "$failures" -gt 0 ]; then
  say ""
  say "the simulator's log:"
  tail -n 60 /tmp/sim.log | sed 's/^/    /'
fi

say ""
say "timings (guest clock):"
for t in "${timings[@]}"; do say "  $t"; done
if [ "$failures" -eq 0 ]; then
  say "PASS (all steps in $(elapsed "$boot_done") s)"
else
  say "FAILED: $failures check(s)"
  exit 1
fi
