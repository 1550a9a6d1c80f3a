#!/usr/bin/env bash
# Runs the Windows build of ibackup for real, under Wine, and checks it against the Linux build.
# One line per step: ok or FAIL, the seconds it took, what it checked (docs/testing.md, "Windows
# under Wine", says what this proves and what it cannot).
#
#   scripts/wine-check.sh
#
# Installs Wine (Debian's wine64) when missing; the MinGW compiler and the Rust target come from
# scripts/install-test-deps.sh. Builds debug binaries in cargo's target folder, makes a fresh
# 64-bit Wine prefix in a temporary folder (removed at the end), and needs no display. Uses TCP
# port 27015 on 127.0.0.1 for the simulated phone: nothing else may listen there meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

wine=/usr/lib/wine/wine64
if [ ! -x "$wine" ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wine64 >/dev/null
fi
command -v x86_64-w64-mingw32-gcc >/dev/null || { echo "run scripts/install-test-deps.sh first (MinGW)"; exit 1; }

target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exe_dir=$target/x86_64-pc-windows-gnu/debug
exe=$exe_dir/ibackup.exe
linux=$target/debug/ibackup
sim_bin=$target/debug/ibackup-sim

work=$(mktemp -d /tmp/ibackup-wine.XXXXXX)
prefix=$work/prefix
sim=""
cleanup() {
  [ -n "$sim" ] && kill "$sim" 2>/dev/null && wait "$sim" 2>/dev/null
  WINEPREFIX=$prefix /usr/lib/wine/wineserver -k 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Wine's own settings: a 64-bit prefix, no debug chatter, and no offer to install Mono or Gecko
# (ibackup needs neither, and a machine without a display cannot answer the offer).
export WINEPREFIX=$prefix WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="

failures=0
step() { # TITLE COMMAND...: runs COMMAND, prints ok/FAIL with its time; on failure, its output
  local title=$1; shift
  local start rc=0 ms
  start=$(date +%s%N)
  "$@" >"$work/step.log" 2>&1 || rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  if [ "$rc" -eq 0 ]; then
    printf 'ok   %4d.%ds  %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$title"
  else
    printf 'FAIL %4d.%ds  %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$title"
    tail -n 30 "$work/step.log" | sed 's/^/       /'
    failures=$((failures + 1))
  fi
}

# Both builds run with the same small environment (the one scripts/json-snapshot.sh uses), so
# that only the OS differs. No phone: Linux gets a socket path where nothing listens; Windows
# keeps its default address, 127.0.0.1:27015, where nothing listens until the simulator starts.
scratch=$work/scratch
mkdir -p "$scratch/lockdown"
common=(IBACKUP_DEVICE_WAIT=1 IBACKUP_PAIR_TIMEOUT=2 IBACKUP_TRANSPORT=usbmuxd)
run_linux() { # ARGS...: the Linux build, no phone unless USBMUXD_SOCKET_ADDRESS says otherwise
  env -i PATH="$PATH" HOME="$scratch" "${common[@]}" IBACKUP_PASSWORD="${PASSWORD:-password}" \
    USBMUXD_SOCKET_ADDRESS="${LINUX_ADDRESS:-$scratch/usbmuxd.sock}" \
    IBACKUP_LOCKDOWN_DIR="$scratch/lockdown" "$linux" "$@" </dev/null
}
run_windows() { # ARGS...: the Windows build under Wine (the prefix's own %APPDATA% and so on)
  env -i PATH="$PATH" HOME="$scratch" WINEPREFIX="$WINEPREFIX" WINEARCH=win64 WINEDEBUG=-all \
    WINEDLLOVERRIDES="$WINEDLLOVERRIDES" "${common[@]}" IBACKUP_PASSWORD="${PASSWORD:-password}" "$wine" "$exe" "$@" </dev/null
}
winpath() { # PATH: the absolute Linux path as Windows sees it under Wine (drive Z: is /)
  printf 'Z:%s' "$(realpath -m "$1" | tr / '\\')"
}

# The one normalisation: in every string of the JSON, the backup path as it was typed becomes
# <BACKUP>, and in the characters right after it, up to the next space, comma or parenthesis (a
# file inside the backup), Windows' \ becomes /. Nothing else is changed; the two documents must
# then be equal.
same_json() { # LINUX_JSON WINDOWS_JSON LINUX_PATH WINDOWS_PATH
  python3 - "$@" <<'PY'
import json, re, sys
linux_file, windows_file, linux_path, windows_path = sys.argv[1:]
def norm(value, typed, sep):
    if isinstance(value, dict):
        return {k: norm(v, typed, sep) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v, typed, sep) for v in value]
    if isinstance(value, str) and typed:
        inside = lambda m: "<BACKUP>" + m.group(1).replace(sep, "/")
        return re.sub(re.escape(typed) + r"([^\s,()]*)", inside, value)
    return value
with open(linux_file) as f:
    a = norm(json.load(f), linux_path, "/")
with open(windows_file) as f:
    b = norm(json.load(f), windows_path, "\\")
if a != b:
    import difflib
    left = json.dumps(a, indent=2, sort_keys=True).splitlines()
    right = json.dumps(b, indent=2, sort_keys=True).splitlines()
    print("\n".join(difflib.unified_diff(left, right, "linux", "windows", lineterm="")))
    sys.exit(1)
PY
}

compare() { # COMMAND PATH: the command's JSON from both builds, the same once paths are set aside
  local cmd=$1 path=$2 code=0 wcode=0
  run_linux "$cmd" --json "$path" >"$work/linux.json" 2>"$work/linux.err" || code=$?
  run_windows "$cmd" --json "$(winpath "$path")" >"$work/windows.json" 2>"$work/windows.err" || wcode=$?
  [ "$code" -eq "$wcode" ] || { echo "exit codes differ: Linux $code, Windows $wcode"; head -c 1500 "$work/windows.json"; cat "$work/windows.err"; return 1; }
  same_json "$work/linux.json" "$work/windows.json" "$path" "$(winpath "$path")" || return 1
  no_verbatim_prefix "$work/windows.json" "$work/windows.err"
}

no_verbatim_prefix() { # FILES...: Windows output never shows \\?\ paths
  if grep -F -n '\\?\' "$@" || grep -F -n '\\\\?\\' "$@"; then
    echo "a \\\\?\\ path in the output"
    return 1
  fi
}

build_dll() {
  mkdir -p "$exe_dir"
  x86_64-w64-mingw32-gcc -shared -O2 -o "$exe_dir/bcryptprimitives.dll" \
    tests/windows/bcryptprimitives.c -ladvapi32
}
step "build the bcryptprimitives.dll stand-in (tests/windows/bcryptprimitives.c)" build_dll
step "cross-build ibackup.exe (x86_64-pc-windows-gnu, debug)" \
  cargo build --quiet --locked --target x86_64-pc-windows-gnu --bin ibackup
step "build ibackup and ibackup-sim for Linux (debug)" \
  cargo build --quiet --locked --workspace --bins
make_prefix() {
  "$wine" wineboot -i && /usr/lib/wine/wineserver -w
  # One wineserver for the whole run, kept up until the end: by default it quits a few seconds
  # after its last program, and a program started just as it quits can fail to start at all.
  /usr/lib/wine/wineserver -p
}
step "make a fresh 64-bit Wine prefix (wineboot)" make_prefix
step "ibackup.exe --version starts under Wine" run_windows --version
if [ "$failures" -gt 0 ]; then
  echo "wine-check: cannot go on"
  exit 1
fi

# a. Every fixture backup (the list scripts/json-snapshot.sh uses), and the folder of backups.
# They are checked in a copy whose files all date from the same fixed moment long ago: ibackup
# words a recent backup's age in minutes ("written to 8 minutes ago"), and two runs a second
# apart on either side of a minute's turn would then differ for no fault of either build.
fixtures=$work/fixtures
copy_fixtures() {
  mkdir -p "$fixtures/sample-backup" "$fixtures/sample-backups" "$fixtures/third-party"
  cp -r fixtures/sample-backup/* "$fixtures/sample-backup/"
  cp -r fixtures/sample-backups/* "$fixtures/sample-backups/"
  cp -r fixtures/third-party/synthetic-encrypted-ios26 "$fixtures/third-party/"
  find "$fixtures" -exec touch -h -d 2025-01-01T12:00:00Z {} +
}
step "copy the fixture backups, every file dated 2025-01-01 12:00 UTC" copy_fixtures
for b in "$fixtures"/sample-backup/* "$fixtures"/sample-backups/* "$fixtures"/third-party/*; do
  name=fixtures/${b#"$fixtures"/}
  step "verify --json $name: same JSON as Linux" compare verify "$b"
  step "inspect --json $name: same JSON as Linux" compare inspect "$b"
done
# The encrypted one again with its own password (fixtures/third-party/README.md): decrypting
# Manifest.db on Windows, where the runs above stop at the wrong password as json-snapshot's do.
PASSWORD=test-password-1234 step "verify --json fixtures/third-party/synthetic-encrypted-ios26 with its password: same JSON as Linux" \
  compare verify "$fixtures/third-party/synthetic-encrypted-ios26"
step "inspect --json fixtures/sample-backups (a folder of backups): same JSON as Linux" \
  compare inspect "$fixtures/sample-backups"

# b. The simulated phone on Apple Mobile Device Service's address, which the Windows build uses
# by default (USBMUXD_SOCKET_ADDRESS is not set for it).
start_sim() {
  "$sim_bin" --listen 127.0.0.1:27015 --profile sim/profiles/default.json >"$work/sim.ready" 2>"$work/sim.err" &
  sim=$!
  for _ in $(seq 600); do grep -q ready "$work/sim.ready" 2>/dev/null && break; sleep 0.05; done
  grep -q ready "$work/sim.ready" || { cat "$work/sim.err"; return 1; }
  sim_udid=$(LINUX_ADDRESS=127.0.0.1:27015 run_linux device --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["udid"])')
}
phone() { # COMMAND [PATH]: both builds against the simulator; the JSON must be the same
  local cmd=$1 path=${2:-} code=0 wcode=0
  local linux_args=("$cmd" --json) windows_args=("$cmd" --json)
  if [ -n "$path" ]; then
    linux_args+=("$path")
    windows_args+=("$(winpath "$path")")
  fi
  LINUX_ADDRESS=127.0.0.1:27015 run_linux "${linux_args[@]}" >"$work/linux.json" 2>"$work/linux.err" || code=$?
  run_windows "${windows_args[@]}" >"$work/windows.json" 2>"$work/windows.err" || wcode=$?
  [ "$code" -eq "$wcode" ] || { echo "exit codes differ: Linux $code, Windows $wcode"; head -c 1500 "$work/windows.json"; cat "$work/windows.err"; return 1; }
  # Both must have met the simulated phone (the UDID the Linux build read from it at start).
  local f
  for f in linux windows; do
    grep -q "\"$sim_udid\"" "$work/$f.json" \
      || { echo "the $f build did not meet the phone"; cat "$work/$f.err"; return 1; }
  done
  if [ -n "$path" ]; then
    same_json "$work/linux.json" "$work/windows.json" "$path" "$(winpath "$path")" || return 1
  else
    same_json "$work/linux.json" "$work/windows.json" "" "" || return 1
  fi
  no_verbatim_prefix "$work/windows.json" "$work/windows.err"
}
step "start ibackup-sim on 127.0.0.1:27015 (profile default)" start_sim
step "device --json reaches the simulator on 127.0.0.1:27015: same JSON as Linux" phone device
step "inspect --json fixtures/sample-backups with the simulated phone: same JSON as Linux" \
  phone inspect "$fixtures/sample-backups"
if [ -n "$sim" ]; then
  kill "$sim" 2>/dev/null || true
  wait "$sim" 2>/dev/null || true
  sim=""
fi

# c. The two default folders, each holding one of the fixture backups.
defaults() {
  local user users=$prefix/drive_c/users
  user=$(ls "$users" | grep -v '^Public$' | head -n 1)
  local appdata="$users/$user/AppData/Roaming/Apple Computer/MobileSync/Backup"
  local profile="$users/$user/Apple/MobileSync/Backup"
  mkdir -p "$appdata" "$profile"
  cp -r fixtures/sample-backups/00008110-001A2C3E0E38801E "$appdata/"
  cp -r fixtures/sample-backups/00008120-000C5D1E3A41C01E "$profile/"
  run_windows inspect --json >"$work/windows.json" 2>"$work/windows.err" || true
  python3 - "$work/windows.json" "$user" <<'PY' || return 1
import json, sys
doc = json.load(open(sys.argv[1]))
user = sys.argv[2]
want = {
    "00008110-001A2C3E0E38801E": "C:\\users\\%s\\AppData\\Roaming\\Apple Computer\\MobileSync\\Backup\\" % user,
    "00008120-000C5D1E3A41C01E": "C:\\users\\%s\\Apple\\MobileSync\\Backup\\" % user,
}
found = {}
def walk(v):
    if isinstance(v, dict):
        if isinstance(v.get("udid"), str) and isinstance(v.get("path"), str):
            found[v["udid"]] = v["path"]
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(doc)
bad = False
for udid, folder in want.items():
    path = found.get(udid)
    if path is None or path.lower() != (folder + udid).lower():
        print("%s: expected at %s%s, found %r" % (udid, folder, udid, path))
        bad = True
sys.exit(1 if bad else 0)
PY
  no_verbatim_prefix "$work/windows.json" "$work/windows.err"
}
step "inspect --json with no path finds %APPDATA%\\Apple Computer\\MobileSync\\Backup and %USERPROFILE%\\Apple\\MobileSync\\Backup" defaults

# d. Paths read as typed: a missing folder, a relative path, a path with forward slashes.
missing_folder() {
  local code=0
  run_windows inspect 'C:\no such\folder' >"$work/windows.out" 2>"$work/windows.err" || code=$?
  [ "$code" -ne 0 ] || { echo "a missing folder did not fail"; return 1; }
  grep -F -q 'C:\no such\folder does not exist' "$work/windows.err" \
    || { echo "the error does not name the path as typed:"; cat "$work/windows.err"; return 1; }
  no_verbatim_prefix "$work/windows.err" || return 1
  if grep -F -q 'Z:' "$work/windows.err"; then echo "a Z: path appeared:"; cat "$work/windows.err"; return 1; fi
}
step "inspect 'C:\\no such\\folder' names the folder as typed" missing_folder
typed_as_given() { # PATH: the JSON names the backup exactly as PATH
  local path=$1
  run_windows verify --json "$path" >"$work/windows.json" 2>"$work/windows.err" \
    || { cat "$work/windows.err"; return 1; }
  python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["backup"]["path"]; sys.exit(0 if p==sys.argv[2] else print("path reads %r, typed %r" % (p, sys.argv[2])) or 1)' \
    "$work/windows.json" "$path" || return 1
  no_verbatim_prefix "$work/windows.json" "$work/windows.err"
}
step "verify --json with a relative path names the backup as typed" \
  typed_as_given 'fixtures\sample-backup\00008110-001A2C3E0E38801E'
step "verify --json with / separators names the backup as typed" \
  typed_as_given 'fixtures/sample-backup/00008110-001A2C3E0E38801E'
quoted_folder() {
  # cmd.exe turns `ibackup verify "fixtures\...\801E\"` into the argument `fixtures\...\801E"`
  # (the backslash escapes the closing quote); Wine hands the program this argument as it is.
  run_windows verify --json 'fixtures\sample-backup\00008110-001A2C3E0E38801E"' \
    >"$work/windows.json" 2>"$work/windows.err" || { cat "$work/windows.err"; return 1; }
  python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["backup"]["path"]; sys.exit(0 if p==sys.argv[2] else print("path reads %r" % p) or 1)' \
    "$work/windows.json" 'fixtures\sample-backup\00008110-001A2C3E0E38801E'
}
step 'verify --json with the quote cmd.exe leaves after a trailing \ finds the backup' quoted_folder

if [ "$failures" -gt 0 ]; then
  echo "wine-check: $failures step(s) failed"
  exit 1
fi
echo "wine-check: all steps passed"
