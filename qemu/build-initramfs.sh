#!/usr/bin/env bash
# build-initramfs.sh [CACHE_DIR]
#
# Builds, once, an initramfs made by Debian's own initramfs-tools (`mkinitramfs`) for the kernel
# build-guest.sh downloads, told to load the NVDIMM, virtio-pmem and filesystem modules: the
# initramfs a user of a stock Debian kernel makes to boot an mkimage image as the ROOT on
# /dev/pmem0 (see qemu/boot-root.sh and the README's "Booting a container image").
#
# The recipe (what this script runs, as root):
#   dpkg-deb -x linux-image-VERSION.deb KPKG; depmod -b KPKG VERSION
#   CONFDIR/initramfs.conf: MODULES=list BUSYBOX=auto COMPRESS=zstd
#   CONFDIR/modules:        one module a line ($ROOT_MODULES below)
#   mkinitramfs -d CONFDIR -o initrd-root.img VERSION
# mkinitramfs reads modules only from /lib/modules/VERSION (its MODULESDIR is fixed): it runs in a
# private mount namespace (unshare --mount) where the package's lib/ and boot/ are overlaid on
# /usr/lib and /boot, so nothing is written to the host's /lib/modules or /boot.
#
# Output in CACHE_DIR (the guest cache of build-guest.sh, which this calls first):
#   initrd-root.img     the initramfs
#   initrd-root.stamp   hash of this build's inputs; when it matches, the script exits at once
# On success prints the initrd path (one line) on stdout; progress goes to stderr.
# Host needs: initramfs-tools (mkinitramfs), udev, kmod (depmod), util-linux (unshare), zstd, root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'build-initramfs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# nfit: the ACPI NFIT driver, without which there is no NVDIMM bus and no /dev/pmem0; libnvdimm:
# listed although nfit depends on it because ndctl's /etc/modprobe.d/nvdimm-security.conf (on the
# build host when ndctl is installed) turns it into an `install` rule, which mkinitramfs does not
# follow as a dependency: without the line the initramfs has no libnvdimm.ko; nd_pmem: the pmem block device, fsdax through the PFN info block
# (nd_btt comes as its dependency); virtio_pci + virtio_pmem: the virtio-pmem device; the root
# filesystems; crc32c_generic: ext4, jbd2 and xfs ask the crypto API for crc32c (a soft
# dependency), and under TCG the CPU may lack the instruction crc32c_intel needs.
ROOT_MODULES="libnvdimm nfit nd_pmem virtio_pci virtio_pmem ext4 xfs erofs crc32c_generic"

cache=$("$here/build-guest.sh" ${1:+"$1"}) || die "building the guest failed"
# shellcheck disable=SC1091
. "$cache/guest.env"

inputs_hash() {
  {
    sha256sum "$here/build-initramfs.sh" | cut -d' ' -f1
    basename "$deb"
    echo "initramfs-tools=$(dpkg-query -W -f='${Version}' initramfs-tools 2>/dev/null || echo none)"
    echo "busybox=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo none)"
    echo "udev=$(dpkg-query -W -f='${Version}' udev 2>/dev/null || echo none)"
  } | sha256sum | cut -d' ' -f1
}
cached() { [[ -s $cache/initrd-root.img && -f $cache/initrd-root.stamp && $(cat "$cache/initrd-root.stamp") == "$1" ]]; }

deb=$(ls "$cache/debs/${KERNEL_PACKAGE}_"*.deb 2>/dev/null | sort -V | tail -n1 || true)
[[ -n $deb ]] || die "no kernel package in $cache/debs"
want=$(inputs_hash)
if cached "$want"; then echo "$cache/initrd-root.img"; exit 0; fi
exec 9>"$cache/.lock-initramfs"
flock 9
if cached "$want"; then echo "$cache/initrd-root.img"; exit 0; fi

t0=$SECONDS
[[ $(id -u) == 0 ]] || die "needs root (mkinitramfs in a private mount namespace)"
command -v mkinitramfs >/dev/null || die "missing mkinitramfs (apt-get install initramfs-tools)"
# Without udev's init-bottom script the initramfs does not move /dev onto the root, and its last
# step (run-init with <ROOT/dev/console) fails on a root with an empty /dev: a kernel panic.
command -v udevadm >/dev/null || die "missing udev (apt-get install udev): the initramfs needs it to move /dev"

work=$(mktemp -d "${TMPDIR:-/tmp}/mkimage-initramfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/kpkg"
[[ -d $work/kpkg/lib/modules/$KERNEL_VERSION ]] || die "no modules for $KERNEL_VERSION in $deb"
depmod -b "$work/kpkg" "$KERNEL_VERSION"

conf=$work/conf
mkdir -p "$conf/conf.d" "$conf/hooks" "$conf/scripts"
cat >"$conf/initramfs.conf" <<'EOF'
MODULES=list
BUSYBOX=auto
COMPRESS=zstd
DEVICE=
NFSROOT=auto
RUNSIZE=10%
FSTYPE=auto
EOF
printf '%s\n' $ROOT_MODULES >"$conf/modules"

# The overlays put KPKG/lib/modules at /usr/lib/modules (= /lib/modules) and KPKG/boot/config-*
# (which mkinitramfs reads to check the kernel can decompress the initramfs) in /boot, for
# mkinitramfs only.
unshare --mount --propagation private -- sh -c '
  mount -t overlay mkimage-kmods -o "lowerdir=$1/lib:/usr/lib" /usr/lib &&
  mount -t overlay mkimage-kboot -o "lowerdir=$1/boot:/boot" /boot &&
  exec mkinitramfs -d "$2" -o "$3" "$4"' sh "$work/kpkg" "$conf" "$work/initrd-root.img" "$KERNEL_VERSION" >&2 ||
  die "mkinitramfs failed"

rm -f "$cache/initrd-root.stamp"
mv -f "$work/initrd-root.img" "$cache/initrd-root.img"
echo "$want" >"$cache/initrd-root.stamp"
log "built $cache/initrd-root.img ($(du -k "$cache/initrd-root.img" | cut -f1) KiB, modules: $ROOT_MODULES) in $((SECONDS - t0)) s"
echo "$cache/initrd-root.img"
