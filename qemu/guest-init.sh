#!/bin/sh
# /init of the mkimage test guest (busybox sh, PID 1). Copied into the initramfs by build-guest.sh.
#
# Loads the NVDIMM and filesystem modules, waits for /dev/pmem0, inspects it, mounts it (ext4/xfs
# with -o dax) or imports the ZFS pool on it (zfs-fuse), optionally writes a file, unmounts or
# exports cleanly, then prints ONE line "MKIMAGE-GUEST {json}" on the console and powers off.
#
# Kernel command line options (all optional):
#   mkimage.fs=TYPE       filesystem type to mount (default: what blkid finds)
#   mkimage.write=1       write /guest-wrote.txt (GUEST_WROTE_CONTENT below) into the filesystem
#   mkimage.pool=NAME     import this ZFS pool (default: the pool blkid names, if zfs_member)
#   mkimage.readonly=1    mount read-only / never write
#   mkimage.wait=SECONDS  how long to wait for /dev/pmem0 (default 5)
#   mkimage.maxfiles=N    list at most N entries (default 2000)
#   mkimage.hashmax=BYTES hash regular files smaller than this (default 67108864)
#   mkimage.nodax=1       mount without -o dax
#   mkimage.shell=1       open a shell on the console before powering off (for humans)
#   mkimage.trace=1       trace the commands of this script on the console
# Nothing here may stop the report: every step records its failure and goes on.

export PATH=/bin
umask 022
set -f # no globbing of words we split (cmdline, lists); re-enabled where needed

GUEST_WROTE_CONTENT='written by the mkimage test guest'

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mount -t tmpfs tmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/zfs /var/lock /etc/zfs
[ -e /etc/mtab ] || ln -s /proc/self/mounts /etc/mtab
# Only emergencies on the console: kernel messages must not cut into the report line.
echo 1 >/proc/sys/kernel/printk
# No modprobe in this guest: an empty path makes request_module() fail at once.
echo >/proc/sys/kernel/modprobe 2>/dev/null

# ---------------------------------------------------------------------------------------------
# JSON helpers. The report is built in $R as a list of "key":value pairs.
R=''
# jstr STRING: a JSON string literal (stdin lines joined with \n; control characters dropped).
jstr() { printf '%s' "$1" | jstr_stdin; }
jstr_stdin() {
  awk 'BEGIN { printf "\"" } NR > 1 { printf "\\n" }
       { s = $0; gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s)
         gsub(/[\001-\010\013-\037]/, "", s); printf "%s", s }
       END { printf "\"" }'
}
# jarr: stdin lines -> JSON array of strings
jarr() {
  awk 'BEGIN { printf "["; n = 0 }
       { s = $0; gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s)
         gsub(/[\001-\010\013-\037]/, "", s); printf "%s\"%s\"", (n++ ? "," : ""), s }
       END { printf "]" }'
}
jbool() { if [ "$1" = 1 ] || [ "$1" = true ]; then echo true; else echo false; fi; }
# jnum VALUE: a decimal number, or null when VALUE is empty / not a number
jnum() { case $1 in '' | *[!0-9]*) echo null ;; *) echo "$1" ;; esac; }
put() { R="$R${R:+,}\"$1\":$2"; }          # put KEY RAW_JSON
puts() { put "$1" "$(jstr "$2")"; }        # put KEY STRING
ERRORS=''
err() { ERRORS="$ERRORS$1
"; }
# hex or decimal sysfs number -> decimal (busybox sh arithmetic is 64-bit)
num() { case $1 in '') echo '' ;; *) echo $(($1)) 2>/dev/null || echo '' ;; esac; }
rd() { cat "$1" 2>/dev/null; } # read a sysfs attribute, empty when missing/unreadable
# mark STEP: record the guest uptime when STEP ended (reported as "timings")
TIMINGS=''
mark() { read -r up _ </proc/uptime; TIMINGS="$TIMINGS${TIMINGS:+,}\"$1\":$up"; }
mark init

# ---------------------------------------------------------------------------------------------
# Options
OPT_FS='' OPT_WRITE=0 OPT_POOL='' OPT_RO=0 OPT_WAIT=5 OPT_MAXFILES=2000 OPT_HASHMAX=67108864
OPT_NODAX=0 OPT_SHELL=0 OPT_TRACE=0
for arg in $(cat /proc/cmdline); do
  case $arg in
    mkimage.fs=*) OPT_FS=${arg#*=} ;;
    mkimage.write=*) OPT_WRITE=${arg#*=} ;;
    mkimage.pool=*) OPT_POOL=${arg#*=} ;;
    mkimage.readonly=*) OPT_RO=${arg#*=} ;;
    mkimage.wait=*) OPT_WAIT=${arg#*=} ;;
    mkimage.maxfiles=*) OPT_MAXFILES=${arg#*=} ;;
    mkimage.hashmax=*) OPT_HASHMAX=${arg#*=} ;;
    mkimage.nodax=*) OPT_NODAX=${arg#*=} ;;
    mkimage.shell=*) OPT_SHELL=${arg#*=} ;;
    mkimage.trace=*) OPT_TRACE=${arg#*=} ;;
  esac
done
# mkimage.trace=1: trace every command on the console (debugging a guest that hangs)
[ "$OPT_TRACE" = 1 ] && set -x

put version 1
puts kernel "$(uname -r)"
puts cmdline "$(cat /proc/cmdline)"

# ---------------------------------------------------------------------------------------------
# Modules: sets of modules in load order (dependencies first), made on the build host. "base" is
# the NVDIMM stack; a filesystem's set is loaded when that filesystem is needed.
FAILED=''
load_set() { # load_set NAME
  [ -f "/lib/modules/$1.order" ] || return 0
  for m in $(cat "/lib/modules/$1.order"); do
    [ -d "/sys/module/$m" ] && continue
    out=$(insmod "/lib/modules/$m.ko" 2>&1) || FAILED="$FAILED$m: $out
"
  done
}
load_set base
mark modules

# ---------------------------------------------------------------------------------------------
# /dev/pmem0
# Stop waiting early once nd_pmem has logged a failed probe (a refused info block): no pmem0 will
# come (give a second probe half a second).
i=0 failed_at=''
while [ ! -b /dev/pmem0 ] && [ $i -lt $((OPT_WAIT * 10)) ]; do
  if [ -z "$failed_at" ] && [ $((i % 5)) = 4 ] && dmesg | grep -q 'nd_pmem.*probe of .* failed'; then
    failed_at=$i
  fi
  [ -n "$failed_at" ] && [ $((i - failed_at)) -ge 5 ] && break
  sleep 0.1
  i=$((i + 1))
done
# Probing is asynchronous: let the nd bus settle a moment so sysfs below is complete.
[ -b /dev/pmem0 ] && sleep 0.1
PMEM=0
[ -b /dev/pmem0 ] && PMEM=1
mark pmem
set +f
put pmemDevices "$(ls -d /sys/block/pmem* 2>/dev/null | sed 's|.*/||' | jarr)"
set -f
if [ $PMEM = 1 ]; then
  sectors=$(rd /sys/block/pmem0/size)
  # partitions: the kernel scans a raw namespace's MBR (pmem0p1); behind a pfn there is none
  parts=$(set +f; cd /sys/block/pmem0 && for p in pmem0p*; do [ -d "$p" ] && echo "$p"; done)
  put pmem "{\"present\":true,\"size\":$(jnum $((sectors * 512))),\"ro\":$(jbool "$(rd /sys/block/pmem0/ro)"),\"dax\":$(jbool "$(rd /sys/block/pmem0/queue/dax)"),\"partitions\":$(printf '%s' "$parts" | jarr)}"
else
  put pmem '{"present":false,"size":null,"ro":null,"dax":null,"partitions":[]}'
fi

# The namespace and what claims it (pfn = fsdax, dax = devdax, btt = sector). Seed devices
# (pfnX.Y with an empty "namespace") are not active.
set +f
NS='' NSRES=''
for d in /sys/bus/nd/devices/namespace*; do
  [ -e "$d/mode" ] || continue
  NS=$(basename "$d")
  NSRES=$(num "$(rd "$d/resource")")
  put namespace "{\"name\":$(jstr "$NS"),\"mode\":$(jstr "$(rd "$d/mode")"),\"size\":$(jnum "$(rd "$d/size")"),\"resource\":$(jnum "$NSRES"),\"holder\":$(jstr "$(rd "$d/holder")")}"
  break
done
[ -n "$NS" ] || put namespace null
PFN=null CLAIM=none
for d in /sys/bus/nd/devices/pfn* /sys/bus/nd/devices/dax* /sys/bus/nd/devices/btt*; do
  [ -e "$d/namespace" ] || continue
  [ -n "$(rd "$d/namespace")" ] || continue
  name=$(basename "$d")
  case $name in pfn*) CLAIM=pfn ;; dax*) CLAIM=dax ;; btt*) CLAIM=btt ;; esac
  res=$(num "$(rd "$d/resource")")
  dataoff=''
  [ -n "$res" ] && [ -n "$NSRES" ] && dataoff=$((res - NSRES))
  PFN="{\"name\":$(jstr "$name"),\"namespace\":$(jstr "$(rd "$d/namespace")"),\"mode\":$(jstr "$(rd "$d/mode")"),\"align\":$(jnum "$(rd "$d/align")"),\"size\":$(jnum "$(rd "$d/size")"),\"resource\":$(jnum "$res"),\"dataoff\":$(jnum "$dataoff"),\"uuid\":$(jstr "$(rd "$d/uuid")")}"
  break
done
set -f
puts claim "$CLAIM"
# mode: what /dev/pmem0 is, as ndctl names it: fsdax (behind a pfn device), sector (behind a
# btt), raw (the whole namespace); devdax (a dax device claims the namespace: no pmem0 by design);
# none (no /dev/pmem0: no namespace, or the kernel refused the info block, see claim/kernelLog).
case $PMEM:$CLAIM in
  1:pfn) MODE=fsdax ;; 1:btt) MODE=sector ;; 1:none) MODE=raw ;; *:dax) MODE=devdax ;; *) MODE=none ;;
esac
puts mode "$MODE"
put pfn "$PFN"
mark sysfs

# ---------------------------------------------------------------------------------------------
# What is on it
FSTYPE='' LABEL=''
if [ $PMEM = 1 ]; then
  BLKID=$(blkid -p -o export /dev/pmem0 2>/dev/null)
  FSTYPE=$(printf '%s\n' "$BLKID" | sed -n 's/^TYPE=//p')
  LABEL=$(printf '%s\n' "$BLKID" | sed -n 's/^LABEL=//p')
  put blkid "{\"type\":$(jstr "$FSTYPE"),\"uuid\":$(jstr "$(printf '%s\n' "$BLKID" | sed -n 's/^UUID=//p')"),\"label\":$(jstr "$LABEL"),\"ptType\":$(jstr "$(printf '%s\n' "$BLKID" | sed -n 's/^PTTYPE=//p')")}"
else
  put blkid null
fi
mark blkid

# list_files DIR: JSON array of {path,type,size,mode,uid,gid,sha256[,target]} below DIR.
list_files() {
  (
    cd "$1" || exit 0
    find . -mindepth 1 -type f -size -"${OPT_HASHMAX}"c -exec sha256sum {} + 2>/dev/null >/tmp/sums
    # sorted by path (C locale), at most OPT_MAXFILES entries
    sep=$(printf '\001')
    find . -mindepth 1 -exec stat -c '%F|%a|%u|%g|%s|%n' {} + 2>/dev/null |
      awk -F'|' -v sep="$sep" '{ n = $6; for (i = 7; i <= NF; i++) n = n "|" $i; print n sep $0 }' |
      LC_ALL=C sort | cut -d "$sep" -f 2- | head -n "$OPT_MAXFILES" >/tmp/stats
    find . -mindepth 1 -type l 2>/dev/null | head -n "$OPT_MAXFILES" | while IFS= read -r l; do
      printf '%s|%s\n' "$l" "$(readlink "$l")"
    done >/tmp/links
    awk -v maxfiles="$OPT_MAXFILES" '
      function js(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s)
                       gsub(/[\001-\037]/, "", s); return "\"" s "\"" }
      function rel(p) { return substr(p, 2) }           # "./a/b" -> "/a/b"
      FILENAME == "/tmp/sums" { sum[substr($0, 67)] = substr($0, 1, 64); next }
      FILENAME == "/tmp/links" { i = index($0, "|"); tgt[substr($0, 1, i - 1)] = substr($0, i + 1); next }
      {
        n = split($0, f, "|"); name = f[6]; for (i = 7; i <= n; i++) name = name "|" f[i]
        t = f[1]
        type = (t ~ /regular/) ? "file" : (t == "directory") ? "dir" : (t == "symbolic link") ? "symlink" : \
               (t ~ /character/) ? "char" : (t ~ /block/) ? "block" : t     # also "fifo", "socket"
        e = "{\"path\":" js(rel(name)) ",\"type\":" js(type) ",\"size\":" f[5] ",\"mode\":" js(f[2]) ",\"uid\":" f[3] ",\"gid\":" f[4]
        if (type == "file") e = e ",\"sha256\":" ((name in sum) ? js(sum[name]) : "null")
        if (type == "symlink") e = e ",\"target\":" js(tgt[name])
        out = out (count++ ? "," : "") e "}"
      }
      END { printf "[%s]", out }' /tmp/sums /tmp/links /tmp/stats
  )
}

MNT=/mnt
MOUNTED=0
MOUNT=null FILES=null WRITE=null UMOUNT=null ZFS=null

write_file() { # write_file DIR -> sets WRITE
  if { printf '%s\n' "$GUEST_WROTE_CONTENT" >"$1/guest-wrote.txt" && sync; } 2>/tmp/werr; then
    WRITE="{\"ok\":true,\"path\":\"/guest-wrote.txt\",\"sha256\":$(jstr "$(sha256sum "$1/guest-wrote.txt" | cut -c1-64)"),\"error\":\"\"}"
  else
    WRITE="{\"ok\":false,\"path\":\"/guest-wrote.txt\",\"sha256\":null,\"error\":$(jstr "$(cat /tmp/werr)")}"
  fi
}

case $FSTYPE in zfs_member) KIND=zfs ;; *) KIND=fs ;; esac
[ -n "$OPT_POOL" ] && KIND=zfs
case $OPT_FS in zfs | zfs_member) KIND=zfs ;; esac
[ -n "$OPT_FS" ] && [ "$OPT_FS" != zfs ] && [ "$OPT_FS" != zfs_member ] && KIND=fs && FSTYPE=$OPT_FS

case $KIND:$FSTYPE in
  fs:ext2 | fs:ext3 | fs:ext4) load_set ext4 ;;
  fs:?*) load_set "$FSTYPE" ;;
  zfs:*) load_set fuse ;;
esac
mark fsmodules

if [ $PMEM = 1 ] && [ $KIND = fs ] && [ -n "$FSTYPE" ]; then
  # ext4 / xfs / anything the kernel mounts: first with -o dax, then without, to still list files.
  ro=''
  [ "$OPT_RO" = 1 ] && ro=ro,
  [ "$(rd /sys/block/pmem0/ro)" = 1 ] && ro=ro,
  DAXOK=false DAXERR='' ERR=''
  if [ "$OPT_NODAX" != 1 ]; then
    if DAXERR=$(mount -t "$FSTYPE" -o "${ro}dax" /dev/pmem0 $MNT 2>&1); then
      DAXOK=true MOUNTED=1 DAXERR=''
    fi
  fi
  if [ $MOUNTED = 0 ]; then
    ERR=$(mount -t "$FSTYPE" -o "${ro%,}" /dev/pmem0 $MNT 2>&1) && MOUNTED=1 ERR=''
    [ -z "${ro%,}" ] && [ $MOUNTED = 0 ] && ERR=$(mount -t "$FSTYPE" /dev/pmem0 $MNT 2>&1) && MOUNTED=1 ERR=''
  fi
  OPTS=$(awk -v m=$MNT '$2 == m { print $4 }' /proc/mounts)
  DAXACTIVE=false
  case ",$OPTS," in *,dax,* | *,dax=always,* | *,dax=inode,*) DAXACTIVE=true ;; esac
  MOUNT="{\"type\":$(jstr "$FSTYPE"),\"ok\":$(jbool $MOUNTED),\"daxOk\":$DAXOK,\"daxActive\":$DAXACTIVE,\"options\":$(jstr "$OPTS"),\"daxError\":$(jstr "$DAXERR"),\"error\":$(jstr "$ERR")}"
  if [ $MOUNTED = 1 ]; then
    FILES=$(list_files $MNT)
    if [ "$OPT_WRITE" = 1 ]; then
      if [ -z "$ro" ]; then write_file $MNT; else
        WRITE='{"ok":false,"path":"/guest-wrote.txt","sha256":null,"error":"read-only"}'
      fi
    fi
    sync
    if UERR=$(umount $MNT 2>&1); then UMOUNT=true; else UMOUNT=false; err "umount: $UERR"; fi
  fi
elif [ $PMEM = 1 ] && [ $KIND = zfs ]; then
  # ZFS through zfs-fuse: start the daemon, import from /dev/pmem0 alone, list, export.
  POOL=${OPT_POOL:-$LABEL}
  ZTIMEOUT=60 # seconds for one zpool/zfs command: a hung daemon must not hang the report
  [ -e /dev/fuse ] || mknod /dev/fuse c 10 229
  STARTED=false IMPORTED=false FORCED=false EXPORTED=false IERR='' ICMD='' LIST='[]' ZROOT=''
  # --no-daemon in the background: when zfs-fuse daemonizes itself it hangs in this guest.
  zfs-fuse --no-daemon --no-kstat-mount >/tmp/zfs-fuse.log 2>&1 &
  ZPID=$!
  i=0
  while [ $i -lt 100 ]; do
    if timeout 10 zpool list >/dev/null 2>&1; then STARTED=true; break; fi
    sleep 0.1
    i=$((i + 1))
  done
  mark zfsDaemon
  [ -n "$POOL" ] || IERR='no pool name (give mkimage.pool=NAME)'
  if [ $STARTED = true ] && [ -n "$POOL" ]; then
    # zfs-fuse 0.7 takes only a directory after -d: give it one holding just /dev/pmem0.
    # Without -f first; -f (reported as "forced") only when that fails.
    mkdir -p /run/zdev
    ln -s /dev/pmem0 /run/zdev/pmem0
    for f in '' -f; do
      ICMD="zpool import -d /run/zdev -R $MNT${f:+ $f} $POOL"
      if out=$(timeout "$ZTIMEOUT" zpool import -d /run/zdev -R $MNT $f "$POOL" 2>&1); then
        IMPORTED=true
        [ "$f" = -f ] && FORCED=true
        break
      fi
      IERR="$IERR${IERR:+
}$ICMD: $out"
    done
    mark zfsImport
    if [ $IMPORTED = true ]; then
      LIST=$(timeout "$ZTIMEOUT" zfs list -H -t all -o name 2>/tmp/zerr | jarr)
      [ -s /tmp/zerr ] && err "zfs list: $(cat /tmp/zerr)"
      ZROOT=$(timeout "$ZTIMEOUT" zfs get -H -o value mountpoint "$POOL" 2>/dev/null)
      case $ZROOT in /*) [ -d "$ZROOT" ] || ZROOT='' ;; *) ZROOT='' ;; esac
      FILES=$(list_files $MNT)
      if [ "$OPT_WRITE" = 1 ]; then
        if [ "$OPT_RO" = 1 ]; then
          WRITE='{"ok":false,"path":"/guest-wrote.txt","sha256":null,"error":"read-only"}'
        elif [ -n "$ZROOT" ]; then write_file "$ZROOT"; else
          WRITE='{"ok":false,"path":"/guest-wrote.txt","sha256":null,"error":"pool root dataset not mounted"}'
        fi
      fi
      sync
      mark zfsList
      if XERR=$(timeout "$ZTIMEOUT" zpool export "$POOL" 2>&1); then EXPORTED=true; else err "zpool export: $XERR"; fi
      mark zfsExport
    fi
  fi
  ZFS="{\"pool\":$(jstr "$POOL"),\"daemon\":$STARTED,\"imported\":$IMPORTED,\"forced\":$FORCED,\"importCommand\":$(jstr "$ICMD"),\"error\":$(jstr "$IERR"),\"list\":$LIST,\"rootMountpoint\":$(jstr "$ZROOT"),\"exported\":$EXPORTED}"
  # Stop the daemon. After a clean export it holds nothing: SIGKILL (SIGTERM takes ~3 s under
  # TCG). Otherwise SIGTERM and let it finish (it flushes and closes the device).
  if [ $EXPORTED = true ]; then kill -9 "$ZPID" 2>/dev/null; else kill "$ZPID" 2>/dev/null; fi
  i=0
  while kill -0 "$ZPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ $STARTED = true ] || err "zfs-fuse: $(cat /tmp/zfs-fuse.log)"
  mark zfsStop
fi
mark fs
put mount "$MOUNT"
put zfs "$ZFS"
put files "${FILES:-null}"
if [ "$FILES" != null ] && [ -n "$FILES" ] && [ "$(wc -l </tmp/stats)" -ge "$OPT_MAXFILES" ]; then
  put filesTruncated true
else
  put filesTruncated false
fi
put write "$WRITE"
put umount "$UMOUNT"

put modulesFailed "$(printf '%s' "$FAILED" | jarr)"
put modules "$(cut -d' ' -f1 /proc/modules | sort | jarr)"

# Kernel messages about the device and filesystems (the reason when something is missing).
put kernelLog "$(dmesg | grep -iE 'nvdimm|nd_|pmem|pfn|dax|nfit|namespace|ext4|xfs|fuse|zfs|error|fail|warn' |
  grep -vE '[Cc]ommand line|last_pfn|ACPI: (SSDT|NFIT|Reserving)|MMCONFIG|acpi/hmat|TSC' | tail -n 40 | jarr)"
put errors "$(printf '%s' "$ERRORS" | jarr)"
mark report
put timings "{$TIMINGS}"
put guestSeconds "$(cut -d' ' -f1 /proc/uptime)"

sync
printf 'MKIMAGE-GUEST {%s}\n' "$R"
# Make sure the serial line is out before the power goes (tty output is asynchronous).
stty -F /dev/console sane 2>/dev/null # TCSADRAIN: waits until the output is sent
echo "MKIMAGE-GUEST-END"
stty -F /dev/console sane 2>/dev/null
sleep 0.1

if [ "$OPT_SHELL" = 1 ]; then setsid -c sh -i </dev/console >/dev/console 2>&1; fi
poweroff -f
sleep 10 # poweroff -f does not return; never let PID 1 exit (that is a kernel panic)
