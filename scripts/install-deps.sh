#!/usr/bin/env bash
# Installs the system packages mkimage and its tests use, on Debian 12 / Ubuntu (as root).
#   e2fsprogs xfsprogs      mkfs.ext4 / e2fsck, mkfs.xfs / xfs_repair
#   util-linux mount fdisk  losetup, fallocate, mount, sfdisk/fdisk
#   file ndctl              what host tools say about an image; ndctl write-infoblock (reference PFN block)
#   zfs-fuse                a real (userspace) ZFS for --fs zfs where no OpenZFS module is loaded
#   qemu-system-x86 busybox-static cpio zstd xz-utils   guest boot tests (qemu/)
#   gcc libc6-dev           the static guest init (guest/init.c, npm run build) and test entrypoints
#   initramfs-tools udev    mkinitramfs: the initrd that boots an image as the root (qemu/build-initramfs.sh);
#                           udev: its init-bottom script moves /dev onto the root (else no /dev/console)
#   erofs-utils fakeroot attr  --fs erofs (mkfs.erofs, fsck.erofs), --from without root (faked-sysv),
#                           xattrs on the staged tree (setfattr); zstd also decompresses zstd layers
#   mmdebstrap              the real-data test's Debian rootfs (test/system/helpers/rootfs.ts)
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (sudo $0)" >&2
  exit 1
fi
packages=(e2fsprogs xfsprogs util-linux mount fdisk file ndctl zfs-fuse qemu-system-x86 busybox-static cpio zstd xz-utils kmod gcc libc6-dev initramfs-tools udev erofs-utils fakeroot attr mmdebstrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps.sh: all packages present"
