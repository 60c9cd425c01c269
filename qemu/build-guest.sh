#!/usr/bin/env bash
# build-guest.sh [CACHE_DIR]
#
# Builds, once, the minimal Linux guest that qemu/boot.sh boots: a Debian 12 kernel (vmlinuz) and
# an initramfs (initrd.img) holding busybox, the NVDIMM/DAX/ext4/xfs/fuse modules, blkid,
# zfs-fuse with its libraries, and qemu/guest-init.sh as /init.
#
# CACHE_DIR defaults to $MKIMAGE_GUEST_CACHE, else <repo>/.cache/guest (gitignored).
# Output in CACHE_DIR:
#   vmlinuz, initrd.img   what boot.sh boots
#   vmlinux               the same kernel uncompressed (ELF with a PVH entry), which boot.sh boots
#                         instead of vmlinuz when present: ~4 s faster per boot under TCG
#   guest.env             KERNEL_PACKAGE=, KERNEL_VERSION=, KERNEL_DEB_VERSION=, BUILT_AT=
#   stamp                 hash of this build's inputs; when it matches, the script exits at once
#   debs/                 the downloaded kernel .deb (kept so a rebuild does not download again)
# On success prints CACHE_DIR (one line) on stdout; progress goes to stderr.
#
# Environment:
#   MKIMAGE_GUEST_CACHE   default cache dir
#   MKIMAGE_GUEST_KERNEL  kernel package to use (e.g. linux-image-6.1.0-56-amd64-unsigned);
#                         default: the one linux-image-amd64 depends on, unsigned flavour
#
# Host needs (Debian 12): apt-get, dpkg, busybox-static, zfs-fuse, util-linux (blkid), cpio, gzip,
# xz-utils, zstd (only if the kernel ships .ko.zst). See qemu/PACKAGES.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cache=${1:-${MKIMAGE_GUEST_CACHE:-$repo/.cache/guest}}

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Modules the guest loads, by set, by module name; their dependencies are added automatically.
# The guest loads "base" at boot and a filesystem's set only when it needs it (xfs.ko alone takes
# ~0.7 s to load under TCG). crc32c_generic: ext4/jbd2/libcrc32c ask the crypto API for "crc32c"
# (a softdep busybox insmod does not follow), and with no modprobe in the guest it must be loaded.
declare -A MODULE_SETS=(
  [base]="libnvdimm nfit nd_btt nd_pmem dax_pmem device_dax"
  [ext4]="crc32c_generic crc16 mbcache jbd2 ext4"
  [xfs]="crc32c_generic libcrc32c xfs"
  [fuse]="fuse"
  [erofs]="crc32c_generic erofs"
)

# Host programs copied into the guest with their shared libraries.
GUEST_PROGRAMS="/usr/sbin/zfs-fuse /usr/sbin/zpool /usr/sbin/zfs /usr/sbin/blkid"
# Libraries loaded with dlopen that ldd does not show (glibc loads libgcc_s for pthread_cancel/exit).
GUEST_EXTRA_LIBS="libgcc_s.so.1"

# ---------------------------------------------------------------------------------------------
# Cache check: the stamp is a hash of everything that decides the result.
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
inputs_hash() {
  {
    sha256sum "$here/build-guest.sh" "$here/guest-init.sh" | cut -d' ' -f1
    echo "kernel=${MKIMAGE_GUEST_KERNEL:-default}"
    echo "busybox-static=$(pkgver busybox-static) zfs-fuse=$(pkgver zfs-fuse) util-linux=$(pkgver util-linux)"
  } | sha256sum | cut -d' ' -f1
}
cached() {
  [[ -s $cache/vmlinuz && -s $cache/initrd.img && -f $cache/stamp ]] &&
    [[ $(cat "$cache/stamp") == "$1" ]]
}

want=$(inputs_hash)
if cached "$want"; then echo "$cache"; exit 0; fi

mkdir -p "$cache"
# Several test workers may call us at once: one builds, the others wait and then find the cache.
exec 9>"$cache/.lock"
flock 9
if cached "$want"; then echo "$cache"; exit 0; fi

t0=$SECONDS
for p in busybox zfs-fuse zpool zfs blkid cpio gzip xz dpkg apt-get; do
  command -v "$p" >/dev/null || [[ -x /usr/sbin/$p ]] || die "missing host program '$p' (see qemu/PACKAGES)"
done
if [[ ! -x /bin/busybox ]] || ldd /bin/busybox >/dev/null 2>&1; then
  die "/bin/busybox must be the static one (apt-get install busybox-static)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mkimage-guest-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------------------------------------
# 1. The kernel package.
resolve_kernel() {
  local meta
  meta=$(apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
  if [[ -n $meta ]] && apt-cache show "$meta-unsigned" >/dev/null 2>&1; then
    echo "$meta-unsigned"; return
  fi
  # Fallback: the newest 6.1 unsigned amd64 image the archive lists.
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' 2>/dev/null |
    cut -d' ' -f1 | sort -V | tail -n1
}
kpkg=${MKIMAGE_GUEST_KERNEL:-}
if [[ -z $kpkg ]]; then
  kpkg=$(resolve_kernel)
  if [[ -z $kpkg && $(id -u) == 0 ]]; then
    log "apt lists know no kernel package: running apt-get update"
    apt-get update -qq >&2 || true
    kpkg=$(resolve_kernel)
  fi
  [[ -n $kpkg ]] || die "cannot find a linux-image-*-amd64-unsigned package (run apt-get update?)"
fi
kdebver=$(apt-cache show "$kpkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
mkdir -p "$cache/debs"
deb=$(ls "$cache/debs/${kpkg}_"*.deb 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z $deb || ( -n $kdebver && $deb != *"_${kdebver//:/%3a}_"* ) ]]; then
  log "downloading $kpkg ${kdebver:-}"
  rm -f "$cache/debs/"*.deb
  (cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >&2) ||
    die "apt-get download $kpkg failed"
  deb=$(ls "$cache/debs/${kpkg}_"*.deb | sort -V | tail -n1)
fi
log "using $(basename "$deb")"
dpkg-deb -x "$deb" "$work/kpkg"
kver=$(ls "$work/kpkg/lib/modules" | head -n1)
[[ -n $kver && -f $work/kpkg/boot/vmlinuz-$kver ]] || die "no vmlinuz/modules in $deb"
kmods=$work/kpkg/lib/modules/$kver

# ---------------------------------------------------------------------------------------------
# 2. The initramfs tree.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,mnt,etc/zfs,lib/modules,lib64,var/lock}
ln -s bin "$root/sbin"
mkdir -p "$root/usr"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"

# busybox and a symlink per applet
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox || -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
done

# Modules: index name -> file (names use '_' where file names may use '-').
declare -A modfile=()
while IFS= read -r f; do
  n=${f##*/}; n=${n%%.ko*}; n=${n//-/_}
  modfile[$n]=$f
done < <(find "$kmods/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
builtin_mod() { sed 's|.*/||; s|\.ko.*||; s|-|_|g' "$kmods/modules.builtin" | grep -qx "$1"; }

# Decompress one module into $work/mods/<name>.ko: busybox insmod loads only plain .ko files
# (it reads the whole file and hands it to init_module, which wants an ELF image).
mkdir -p "$work/mods"
plain_module() {
  local src=${modfile[$1]} dst=$work/mods/$1.ko
  case $src in
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) cp "$src" "$dst" ;;
  esac
}
modinfo_depends() { tr '\0' '\n' <"$work/mods/$1.ko" | sed -n 's/^depends=//p' | tr ',' ' '; }

# Depth-first: dependencies before the module itself. Writes lib/modules/<set>.order.
declare -A copied=()
add_module() { # add_module NAME: appends NAME and its dependencies to $order, deps first
  local m=$1 d
  [[ -n ${seen[$m]:-} ]] && return
  seen[$m]=1
  if [[ -z ${modfile[$m]:-} ]]; then
    builtin_mod "$m" && return
    die "module $m not found in $kpkg"
  fi
  [[ -f $work/mods/$m.ko ]] || plain_module "$m"
  for d in $(modinfo_depends "$m"); do add_module "${d//-/_}"; done
  order+=("$m")
}
for set in "${!MODULE_SETS[@]}"; do
  declare -A seen=()
  order=()
  for m in ${MODULE_SETS[$set]}; do add_module "$m"; done
  for m in "${order[@]}"; do
    [[ -n ${copied[$m]:-} ]] || cp "$work/mods/$m.ko" "$root/lib/modules/$m.ko"
    copied[$m]=1
  done
  printf '%s\n' "${order[@]}" >"$root/lib/modules/$set.order"
  log "modules $set: ${order[*]}"
  unset seen
done
echo "$kver" >"$root/etc/kernel-version"

# Programs and every library they need, at the paths ldd gives (plus the dynamic loader).
copy_path() { # copy a host file, following symlinks, to the same path in the guest
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}
libs=()
for p in $GUEST_PROGRAMS; do
  [[ -x $p ]] || die "missing $p (apt-get install zfs-fuse util-linux)"
  cp -L "$p" "$root/bin/$(basename "$p")"
  while read -r lib; do libs+=("$lib"); done < <(ldd "$p" | grep -o '/[^ ]*' | grep -v '^/usr/sbin')
done
for l in $GUEST_EXTRA_LIBS; do
  f=$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ { print $NF; exit }')
  [[ -n $f ]] && libs+=("$f") && while read -r d; do libs+=("$d"); done < <(ldd "$f" | grep -o '/[^ ]*')
done
for l in $(printf '%s\n' "${libs[@]}" | sort -u); do copy_path "$l"; done

# zfs-fuse reads /etc/zfs/zfsrc if present: keep the defaults small for a small guest.
cat >"$root/etc/zfs/zfsrc" <<'EOF'
max-arc-size = 64
vdev-cache-size = 10
zfs-prefetch-disable
EOF
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

install -m 0755 "$here/guest-init.sh" "$root/init"

# extract_vmlinux BZIMAGE OUT: find the compressed payload by its magic and decompress it; keep it
# only when it is an ELF with a PVH entry note (Xen note type 18, XEN_ELFNOTE_PHYS32_ENTRY).
extract_vmlinux() {
  local magic tool off
  for magic in xz gzip zstd; do
    case $magic in
      xz) off=$(LC_ALL=C grep -abo $'\xfd7zXZ\x00' "$1" | head -n1 | cut -d: -f1); tool='xz -dc --single-stream' ;;
      gzip) off=$(LC_ALL=C grep -abo $'\x1f\x8b\x08' "$1" | head -n1 | cut -d: -f1); tool='gzip -dc' ;;
      zstd) off=$(LC_ALL=C grep -abo $'\x28\xb5\x2f\xfd' "$1" | head -n1 | cut -d: -f1); tool='zstd -qdc' ;;
    esac
    [[ -n $off ]] || continue
    tail -c +$((off + 1)) "$1" | $tool >"$2" 2>/dev/null || true
    [[ $(head -c4 "$2" | od -An -c | tr -d ' ') == '177ELF' ]] || continue
    has_pvh_note "$2" && return 0
  done
  return 1
}
# has_pvh_note ELF: an ELF note "Xen" of type 18 (namesz 4, descsz 4 or 8, type 0x12, "Xen\0").
has_pvh_note() {
  LC_ALL=C grep -qaP '\x04\x00\x00\x00[\x04\x08]\x00\x00\x00\x12\x00\x00\x00Xen\x00' "$1"
}

# ---------------------------------------------------------------------------------------------
# 3. Pack, then publish atomically (stamp last).
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
  cpio --quiet -o -H newc --reproducible -R 0:0) | gzip -6 -n >"$work/initrd.img"
cp "$work/kpkg/boot/vmlinuz-$kver" "$work/vmlinuz"
# vmlinux: the uncompressed ELF kernel inside the bzImage. QEMU boots it through its PVH entry
# point (CONFIG_PVH), skipping the in-guest decompression that costs ~4 s per boot under TCG.
extract_vmlinux "$work/vmlinuz" "$work/vmlinux" || { log "no PVH vmlinux (boot.sh will use vmlinuz)"; rm -f "$work/vmlinux"; }
rm -f "$cache/stamp"
mv -f "$work/vmlinuz" "$cache/vmlinuz"
rm -f "$cache/vmlinux"
[[ -f $work/vmlinux ]] && mv -f "$work/vmlinux" "$cache/vmlinux"
mv -f "$work/initrd.img" "$cache/initrd.img"
cat >"$cache/guest.env" <<EOF
KERNEL_PACKAGE=$kpkg
KERNEL_DEB_VERSION=$(dpkg-deb -f "$deb" Version)
KERNEL_VERSION=$kver
BUILT_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
echo "$want" >"$cache/stamp"
log "built $cache (kernel $kver, initrd $(du -k "$cache/initrd.img" | cut -f1) KiB) in $((SECONDS - t0)) s"
echo "$cache"
