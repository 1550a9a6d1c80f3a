#!/usr/bin/env bash
# The USB rig: the simulated iPhone as a real USB gadget in a small VM, met by ibackup over
# libusb and by Debian's usbmuxd and libimobiledevice tools (docs/device.md, "The USB rig").
#
# The guest runs Debian's stock kernel, whose dummy_hcd module holds both sides of a virtual
# USB bus: `ibackup-sim --ffs` is the phone on the gadget side (FunctionFS), the host side is
# the kernel's ordinary USB stack. The host's binaries and tools run unchanged in the guest
# (their folders shared read-only over 9p, under a tmpfs root). The steps themselves are in
# scripts/usb-vm-guest.sh.
#
# Uses the debug binaries of `cargo build --locked --workspace --bins` (CARGO_TARGET_DIR is
# honoured). Installs what it needs when missing (apt-get; sudo when not root). Exits non-zero
# when a step fails, when the VM cannot start, or when it runs past USB_VM_TIMEOUT seconds
# (default 900).
#   USB_VM_ACCEL=kvm|tcg  overrides the choice of accelerator
#   USB_VM_KEEP=1         keeps the work folder (initramfs, console log)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
limit=${USB_VM_TIMEOUT:-900}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
started=$(date +%s)

say() { printf 'usb-vm: %s\n' "$*"; }

# --- what the rig needs on the host -------------------------------------------------------
packages=(qemu-system-x86 linux-image-amd64 busybox-static usbmuxd libimobiledevice-utils
  usbutils cpio)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
say "packages ready after $(($(date +%s) - started)) s"

cargo build --locked --workspace --bins --quiet
bin_dir="${CARGO_TARGET_DIR:-$repo/target}/debug"
for b in ibackup ibackup-sim; do
  [ -x "$bin_dir/$b" ] || { say "missing $bin_dir/$b"; exit 1; }
done

# The kernel linux-image-amd64 stands for (not whatever else is in /boot): it has dummy_hcd.
version=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
kernel=/boot/vmlinuz-$version
[ -n "$version" ] && [ -f "$kernel" ] || { say "no kernel from linux-image-amd64 in /boot"; exit 1; }
[ -n "$(modprobe -S "$version" --show-depends dummy_hcd 2>/dev/null)" ] \
  || { say "kernel $version has no dummy_hcd module"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/usb-vm.XXXXXX")
if [ "${USB_VM_KEEP:-}" = 1 ]; then
  trap 'say "work folder kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi

# --- the initramfs: busybox, the modules and their dependencies, /init ----------------------
root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,mnt,newroot} "$root/lib/modules/$version"
cp /bin/busybox "$root/bin/busybox"
modules=(usb-common usbcore udc-core dummy_hcd configfs libcomposite usb_f_fs virtio_pci
  9pnet_virtio 9p overlay)
for m in "${modules[@]}"; do
  modprobe -S "$version" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | sort -u | while read -r ko; do
  mkdir -p "$root$(dirname "$ko")"
  cp "$ko" "$root$ko"
done
cp "/lib/modules/$version"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$version/"
depmod -b "$root" "$version"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in ${modules[*]}; do modprobe \$m || echo "usb-vm: cannot load \$m"; done
EOF
cat >>"$root/init" <<'EOF'
n=/newroot
mount -t tmpfs -o size=768m tmpfs $n
mkdir -p $n/usr $n/etc $n/build $n/rig $n/proc $n/sys $n/dev $n/tmp $n/run $n/root \
  $n/var/lib/lockdown /mnt/usr /mnt/etc /mnt/build /mnt/rig /mnt/ovl
for tag in usr etc build rig; do
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 $tag /mnt/$tag \
    || echo "usb-vm: cannot mount $tag"
done
mount --bind /mnt/usr $n/usr
mount --bind /mnt/build $n/build
mount --bind /mnt/rig $n/rig
# /etc is written to (usbmuxd, the tools): a tmpfs layer over the host's.
mount -t tmpfs tmpfs /mnt/ovl
mkdir -p /mnt/ovl/upper /mnt/ovl/work
mount -t overlay overlay -o lowerdir=/mnt/etc,upperdir=/mnt/ovl/upper,workdir=/mnt/ovl/work $n/etc
for d in bin sbin lib lib64; do ln -s usr/$d $n/$d; done
ln -s /run $n/var/run
mount -t proc proc $n/proc
mount -t sysfs sysfs $n/sys
mount -t devtmpfs devtmpfs $n/dev
mount -t configfs configfs $n/sys/kernel/config
mount -t tmpfs tmpfs $n/tmp
mount -t tmpfs tmpfs $n/run
chroot $n /usr/bin/env -i PATH=/usr/sbin:/usr/bin HOME=/root /bin/bash /rig/usb-vm-guest.sh
echo "usb-vm: guest exit status $?"
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"

# --- what the guest reads: its script, the phone profiles, a backup folder ------------------
rig="$work/rig"
mkdir -p "$rig"
cp scripts/usb-vm-guest.sh "$rig/"
cp -r fixtures/sample-backups "$rig/backups"

# --- the VM ---------------------------------------------------------------------------------
# KVM only where it can boot a stock kernel: a CPU with hardware virtualisation. (Some KVM
# variants, such as PVM, offer /dev/kvm without it and fail on the stock kernel.)
accel=${USB_VM_ACCEL:-}
if [ -z "$accel" ]; then
  accel=tcg
  if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
fi
share() { printf 'local,path=%s,mount_tag=%s,security_model=none,readonly=on,multidevs=remap' "$1" "$2"; }
say "booting $kernel with $accel (limit ${limit} s)"
vm_started=$(date +%s)
status=0
timeout --kill-after=10 "$limit" qemu-system-x86_64 -accel "$accel" -cpu max -smp 1 -m 2048 \
  -nographic -no-reboot -nic none -kernel "$kernel" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1" \
  -virtfs "$(share /usr usr)" -virtfs "$(share /etc etc)" \
  -virtfs "$(share "$bin_dir" build)" -virtfs "$(share "$rig" rig)" \
  </dev/null 2>&1 | tr -d '\r' | tee "$work/console.log" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  say "FAILED: the VM ran past ${limit} s and was stopped"
  exit 1
fi
say "VM ran $(($(date +%s) - vm_started)) s; whole rig $(($(date +%s) - started)) s"
if grep -q '^usb-vm: PASS' "$work/console.log"; then
  exit 0
fi
say "FAILED (see the guest's output above)"
exit 1
