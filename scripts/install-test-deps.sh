#!/usr/bin/env bash
# Installs what the tests and CI checks need, skipping what is already there:
#   - python3 (the independent fixture writers) and PyPI's `cryptography` (encrypted fixtures)
#   - the Windows target and MinGW linker for the Windows build check
#   - libusb's headers and pkg-config: direct USB links the system libusb (rusb / libusb1-sys)
#   - groff (groff-base), to render the man page
# Uses sudo when not run as root.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# libimobiledevice's tools are the independent clients of the simulated iPhone; groff renders
# the man page in tests/cli_conventions.rs.
apt_packages=(gcc-mingw-w64-x86-64 libimobiledevice-utils libusbmuxd-tools libusb-1.0-0-dev pkg-config groff-base)
command -v python3 >/dev/null || apt_packages+=(python3 python3-pip)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

if ! python3 -c 'import cryptography' 2>/dev/null; then
  python3 -m pip install --quiet cryptography 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages cryptography
fi

rustup target list --installed | grep -q '^x86_64-pc-windows-gnu$' \
  || rustup target add x86_64-pc-windows-gnu
