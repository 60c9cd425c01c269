#!/usr/bin/env bash
# selftest.sh [--keep DIR]
#
# Proves the guest harness end to end WITHOUT mkimage: makes NVDIMM images by hand (ndctl
# write-infoblock, mkfs.ext4 at an offset, mkfs.xfs and a zfs-fuse pool on loop devices), boots
# each with boot.sh and checks what the guest reports. Ends with "N passed, M failed".
#
# Needs root (losetup, zfs-fuse), ndctl, e2fsprogs, xfsprogs, zfs-fuse, node (for the JSON checks).
# Leaves nothing behind: loop devices, pools, the zfs-fuse daemon it started, temp files.
#   --keep DIR   make the images in DIR and keep them (and the reports, *.json)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
keep=''
[[ ${1:-} == --keep ]] && keep=${2:?--keep DIR}

log() { printf 'selftest: %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "needs root (losetup, zfs-fuse)"; exit 2; }

if [[ -n $keep ]]; then mkdir -p "$keep"; work=$(cd "$keep" && pwd); else
  work=$(mktemp -d "${TMPDIR:-/tmp}/mkimage-selftest.XXXXXX")
fi
loops=() pool='' pool_imported=0 zfs_pid=''
cleanup() {
  set +e
  ((pool_imported)) && zpool export "$pool" 2>/dev/null
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
  if [[ -n $zfs_pid ]]; then kill "$zfs_pid" 2>/dev/null; while kill -0 "$zfs_pid" 2>/dev/null; do sleep 0.2; done; fi
  [[ -n $keep ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

MiB=1048576
HDR=$((2 * MiB)) # dataoff: the partition starts 2 MiB into the image
passed=0 failed=0

# newimage FILE SIZE_MIB: sparse file with a kernel-style fsdax PFN info block (RAM mode, 2 MiB)
newimage() {
  rm -f "$1"
  truncate -s "$(($2 * MiB))" "$1"
  ndctl write-infoblock -o "$1" -m fsdax -M mem -a 2M >/dev/null 2>&1
}
# attach FILE: loop device over the partition alone
attach() {
  local size l
  size=$(stat -c %s "$1")
  l=$(losetup --find --show --offset "$HDR" --sizelimit "$((size - HDR))" "$1")
  loops+=("$l")
  echo "$l"
}
detach() { losetup -d "$1"; loops=("${loops[@]/$1/}"); }

# boot NAME IMAGE [boot.sh options]: boots, stores the report in $work/NAME.json
boot() {
  local name=$1 img=$2
  shift 2
  if "$here/boot.sh" "$img" "$@" >"$work/$name.json"; then
    log "$name: booted in $(sed 's/.*"bootSeconds":\([0-9.]*\).*/\1/' "$work/$name.json") s"
  else
    log "$name: boot.sh failed ($?)"
    echo '{}' >"$work/$name.json"
  fi
}
# check NAME JS_EXPRESSION...: each expression is evaluated with r = the report
check() {
  local name=$1 out
  shift
  out=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    let bad = 0;
    for (const e of process.argv.slice(2)) {
      let ok = false;
      try { ok = Boolean(new Function("r", "return (" + e + ")")(r)); } catch (err) {}
      console.log((ok ? "PASS " : "FAIL ") + e);
      if (!ok) bad++;
    }' "$work/$name.json" "$@") || true
  while IFS= read -r line; do
    printf '  %s: %s\n' "$name" "$line" >&2
    case $line in PASS*) passed=$((passed + 1)) ;; FAIL*) failed=$((failed + 1)) ;; esac
  done <<<"$out"
}
check_host() { # check_host NAME DESCRIPTION COMMAND...: a check run on the host
  local name=$1 what=$2
  shift 2
  if "$@" >/dev/null 2>&1; then printf '  %s: PASS %s\n' "$name" "$what" >&2; passed=$((passed + 1))
  else printf '  %s: FAIL %s\n' "$name" "$what" >&2; failed=$((failed + 1)); fi
}

"$here/build-guest.sh" >/dev/null

# Files every filesystem gets
mkdir -p "$work/tree/sub"
echo hello >"$work/tree/hello.txt"
head -c 100000 /dev/zero | tr '\0' 'x' >"$work/tree/sub/data.bin"
ln -sf hello.txt "$work/tree/link"
hello_sha=$(sha256sum <"$work/tree/hello.txt" | cut -c1-64)
data_sha=$(sha256sum <"$work/tree/sub/data.bin" | cut -c1-64)
wrote='written by the mkimage test guest'

# 1. ext4, 1 GiB, files from a directory, the guest writes
img=$work/ext4.img
newimage "$img" 1024
mkfs.ext4 -q -F -b 4096 -E offset=$HDR -d "$work/tree" "$img" $(((1024 - 2) * 256))
boot ext4 "$img" --write
check ext4 'r.mode === "fsdax"' "r.pmem.size === $(((1024 - 2) * MiB))" 'r.pfn.mode === "ram"' \
  "r.pfn.dataoff === $HDR" 'r.pfn.align === 2097152' 'r.blkid.type === "ext4"' \
  'r.mount.daxOk && r.mount.daxActive' \
  "r.files.some(f => f.path === '/hello.txt' && f.sha256 === '$hello_sha')" \
  "r.files.some(f => f.path === '/sub/data.bin' && f.size === 100000 && f.sha256 === '$data_sha')" \
  "r.files.some(f => f.path === '/link' && f.type === 'symlink' && f.target === 'hello.txt')" \
  'r.write.ok && r.umount === true' 'r.errors.length === 0 && r.modulesFailed.length === 0'
check_host ext4 'host reads /guest-wrote.txt' \
  bash -c "[[ \$(debugfs -R 'cat /guest-wrote.txt' '$img?offset=$HDR' 2>/dev/null) == '$wrote' ]]"

# 2. the same image read-only: nothing may change
sum=$(sha256sum <"$img")
boot ext4-ro "$img" --readonly --write
check ext4-ro 'r.mode === "fsdax"' 'r.pmem.ro === true' 'r.mount.daxOk' 'r.mount.options.startsWith("ro,")' \
  'r.write.ok === false'
check_host ext4-ro 'image unchanged' bash -c "[[ \$(sha256sum <'$img') == '$sum' ]]"

# 3. negative: one byte of the PFN block changed (npfns: the checksum no longer matches)
cp --sparse=always "$img" "$work/bad.img"
printf '\x01' | dd of="$work/bad.img" bs=1 seek=$((4096 + 0x40)) conv=notrunc status=none
boot bad "$work/bad.img"
check bad 'r.mode === "raw"' 'r.pfn === null' "r.pmem.size === $((1024 * MiB))" 'r.pmem.dax === false' \
  'r.blkid.type === ""'
rm -f "$work/bad.img"

# 4. negative: size not a multiple of 2 MiB (the kernel refuses the namespace: no /dev/pmem0)
cp --sparse=always "$img" "$work/odd.img"
truncate -s $(((1024 + 1) * MiB)) "$work/odd.img"
boot odd "$work/odd.img"
check odd 'r.mode === "none"' 'r.pmem.present === false' \
  'r.kernelLog.some(l => l.includes("misaligned"))'
rm -f "$work/odd.img"

# 5. xfs, 512 MiB (xfsprogs wants > 300 MB), formatted through a loop device
img=$work/xfs.img
newimage "$img" 512
l=$(attach "$img")
mkfs.xfs -q -b size=4096 -m reflink=0 -L selftest "$l"
mkdir -p "$work/mnt"
mount "$l" "$work/mnt"
cp -a "$work/tree/." "$work/mnt/"
umount "$work/mnt"
detach "$l"
boot xfs "$img" --write
check xfs 'r.mode === "fsdax"' "r.pmem.size === $((510 * MiB))" 'r.blkid.type === "xfs"' \
  'r.blkid.label === "selftest"' 'r.mount.daxOk && r.mount.daxActive' \
  "r.files.some(f => f.path === '/hello.txt' && f.sha256 === '$hello_sha')" 'r.write.ok && r.umount'

# 6. ZFS, 256 MiB, through the host's zfs-fuse (started here when not running)
if ! zpool list >/dev/null 2>&1; then
  zfs-fuse --no-daemon >/dev/null 2>&1 &
  zfs_pid=$!
  for _ in $(seq 50); do zpool list >/dev/null 2>&1 && break; sleep 0.2; done
fi
pool=mkgt$$
img=$work/zfs.img
newimage "$img" 256
l=$(attach "$img")
zpool create -f -o cachefile=none -R "$work/altroot" "$pool" "$l" && pool_imported=1
zfs create "$pool/a"
echo hello >"$(zfs get -H -o value mountpoint "$pool/a")/hello.txt"
zfs snapshot "$pool/a@s1"
zpool export "$pool" && pool_imported=0
detach "$l"
boot zfs "$img" --write
check zfs 'r.mode === "fsdax"' 'r.blkid.type === "zfs_member"' "r.zfs.pool === '$pool'" \
  'r.zfs.imported && !r.zfs.forced && r.zfs.exported' \
  "JSON.stringify(r.zfs.list) === JSON.stringify(['$pool', '$pool/a', '$pool/a@s1'])" \
  "r.files.some(f => f.path === '/a/hello.txt' && f.sha256 === '$hello_sha')" 'r.write.ok'
# The host imports the pool the guest exported and finds what the guest wrote.
l=$(attach "$img")
mkdir -p "$work/zdev"
ln -sf "$l" "$work/zdev/"
zpool import -d "$work/zdev" -R "$work/altroot" "$pool" && pool_imported=1
root=$(zfs get -H -o value mountpoint "$pool")
check_host zfs 'host reads /guest-wrote.txt' bash -c "[[ \$(cat '$root/guest-wrote.txt') == '$wrote' ]]"
zpool export "$pool" && pool_imported=0
detach "$l"

echo "$passed passed, $failed failed"
((failed == 0))
