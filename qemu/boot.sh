#!/usr/bin/env bash
# boot.sh IMAGE [options]
#
# Boots the test guest (built and cached by build-guest.sh, which this calls first) under
# qemu-system-x86_64 with IMAGE as an NVDIMM (mkimage's REFERENCE.md section 4), and prints on
# stdout the guest's report: ONE line of JSON, with host fields "bootSeconds" and "accel" added.
#
# Options:
#   --timeout SECONDS   give up after this long (default 240, or $MKIMAGE_GUEST_TIMEOUT)
#   --mem MIB           guest RAM in MiB (default: 256 + 1/64 of the image for its struct pages,
#                       rounded up; at least 256)
#   --readonly          NVDIMM read-only: memory-backend-file readonly=on, nvdimm unarmed=on, and
#                       mkimage.readonly=1 (the guest mounts read-only and writes nothing)
#   --write             the guest writes /guest-wrote.txt          (= --append mkimage.write=1)
#   --fs TYPE           filesystem type the guest mounts          (= --append mkimage.fs=TYPE)
#   --pool NAME         ZFS pool the guest imports                (= --append mkimage.pool=NAME)
#   --append "ARGS"     extra kernel command line (mkimage.* options: see guest-init.sh)
#   --keep-log FILE     save the console log to FILE (it is always kept when the report is missing)
#   --accel auto|kvm|tcg  (default auto: kvm when /dev/kvm is usable, else tcg; or $MKIMAGE_GUEST_ACCEL)
#   --smp N             guest CPUs (default 1)
#   --cache DIR         guest cache dir (default as build-guest.sh)
#   --mkimage           take the NVDIMM options (-machine, -m, -object, -device) from
#                       `mkimage qemu-args --json` (the repo's bin/mkimage.js, built): the guest then
#                       proves the product's own QEMU line; it refuses images a guest would reject
#
# Exit status: 0 report printed; 3 the guest printed no report (timeout, crash: the console log
# path is printed on stderr); 2 bad usage; 1 other failure (e.g. the guest could not be built).
# Never leaves a qemu process behind: it is killed on timeout, on exit, SIGINT, SIGTERM, SIGHUP,
# and (pdeathsig) when this script itself is killed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2; }
die() { printf 'boot.sh: %s\n' "$1" >&2; exit "${2:-1}"; }
# shellcheck source=qemu/lib.sh
source "$here/lib.sh"

image='' timeout=${MKIMAGE_GUEST_TIMEOUT:-240} mem='' readonly=0 append='' keep_log=''
accel=${MKIMAGE_GUEST_ACCEL:-auto} smp=1 cache='' use_mkimage=0
guest_args=()
while (($#)); do
  case $1 in
    --timeout) timeout=${2:?}; shift ;;
    --mem) mem=${2:?}; shift ;;
    --readonly) readonly=1 ;;
    --write) guest_args+=(mkimage.write=1) ;;
    --fs) guest_args+=("mkimage.fs=${2:?}"); shift ;;
    --pool) guest_args+=("mkimage.pool=${2:?}"); shift ;;
    --append) append="$append ${2?}"; shift ;;
    --keep-log) keep_log=${2:?}; shift ;;
    --accel) accel=${2:?}; shift ;;
    --smp) smp=${2:?}; shift ;;
    --cache) cache=${2:?}; shift ;;
    --mkimage) use_mkimage=1 ;;
    -h | --help) usage ;;
    -*) printf 'boot.sh: unknown option %s\n' "$1" >&2; usage ;;
    *) [[ -z $image ]] || usage; image=$1 ;;
  esac
  shift
done
[[ -n $image ]] || usage
[[ -f $image ]] || die "no such image file: $image" 2
[[ $timeout =~ ^[0-9]+$ && $smp =~ ^[0-9]+$ ]] || die "--timeout and --smp take whole numbers" 2
[[ -z $mem || $mem =~ ^[0-9]+$ ]] || die "--mem takes MiB as a whole number" 2

# The guest (cached after the first build).
cache=$("$here/build-guest.sh" ${cache:+"$cache"}) || die "building the guest failed"
[[ -s $cache/vmlinuz && -s $cache/initrd.img ]] || die "no guest in $cache"
# The uncompressed PVH kernel boots ~4 s faster under TCG; MKIMAGE_GUEST_PVH=0 uses the bzImage.
kernel=$cache/vmlinuz
[[ ${MKIMAGE_GUEST_PVH:-1} != 0 && -s $cache/vmlinux ]] && kernel=$cache/vmlinux

size=$(stat -L -c %s "$image")
((size > 0)) || die "empty image: $image" 2
mib=$(((size + 1048575) / 1048576))
# RAM mode keeps 64 B of struct page per 4 KiB page of the NVDIMM in guest RAM: size / 64.
[[ -n $mem ]] || mem=$((256 + (size / 64 + 1048575) / 1048576))

accel=$(pick_accel "$accel") || die "--accel takes auto, kvm or tcg" 2
accel_args=(-accel "$accel")
# (no -cpu host: some nested KVM hosts refuse its MSRs; the default CPU model boots everywhere)

ro_backend='' ro_dimm=''
if ((readonly)); then
  ro_backend=',readonly=on'
  ro_dimm=',unarmed=on'
  guest_args+=(mkimage.readonly=1)
fi

kargs=(console=ttyS0 panic=-1 quiet "${guest_args[@]}")
cmdline="${kargs[*]}$append"

found=0 log=''
# shellcheck disable=SC2317 # called by trap
cleanup() {
  stop_qemu
  if ((found)); then
    [[ -n $keep_log ]] && printf 'boot.sh: console log: %s\n' "$log" >&2
    [[ -n $keep_log ]] || rm -f "$log"
  elif [[ -n ${log:-} ]]; then
    # Say why, in one line, then where the whole story is.
    local why
    why=$(grep -a -E '^qemu-system|Kernel panic|Out of memory' "$log" | tail -n1 | tr -d '\r' || true)
    [[ -n $why ]] && printf 'boot.sh: %s\n' "$why" >&2
    printf 'boot.sh: the guest printed no report; console log: %s\n' "$log" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [[ -n $keep_log ]]; then log=$keep_log; else log=$(mktemp "${TMPDIR:-/tmp}/mkimage-guest.XXXXXX.log"); fi
: >"$log"

# shellcheck disable=SC2054 # the commas are QEMU's
nvdimm=(-machine pc,nvdimm=on
  -m "${mem}M,slots=2,maxmem=$((mem + mib))M"
  -object "memory-backend-file,id=mem1,share=on,mem-path=$image,size=$size$ro_backend"
  -device "nvdimm,id=nvdimm1,memdev=mem1$ro_dimm")
if ((use_mkimage)); then
  ro_flag=()
  ((readonly)) && ro_flag=(--readonly)
  json=$(node "$here/../bin/mkimage.js" qemu-args --json --mem "${mem}M" "${ro_flag[@]}" "$image") ||
    die "mkimage qemu-args refused $image (see above)" 1
  mapfile -t nvdimm < <(node -e 'for (const a of JSON.parse(process.argv[1]).args) console.log(a)' "$json")
fi
# shellcheck disable=SC2054 # the commas are QEMU's
qemu=(qemu-system-x86_64
  -nodefaults -no-user-config -display none -no-reboot
  -serial stdio -monitor none
  "${accel_args[@]}" -smp "$smp"
  "${nvdimm[@]}"
  -kernel "$kernel" -initrd "$cache/initrd.img"
  -append "$cmdline")
# pdeathsig: qemu dies with this script even if it is SIGKILLed (no trap runs then).
pdeath=()
setpriv --help 2>/dev/null | grep -q pdeathsig && pdeath=(setpriv --pdeathsig KILL --)

printf '# %s\n' "${qemu[*]}" >>"$log"
start=${EPOCHREALTIME//[.,]/}
"${pdeath[@]}" "${qemu[@]}" </dev/null >>"$log" 2>&1 &
qpid=$!

# The report is complete once the guest's end marker follows it (a line read while the serial
# output is still arriving could be cut anywhere, even after a '}').
read_report() {
  grep -a -q '^MKIMAGE-GUEST-END' "$log" || return 1
  report=$(grep -a -m1 '^MKIMAGE-GUEST {' "$log" | tr -d '\r') || return 1
  report=${report#MKIMAGE-GUEST }
}
# Wait for the report, for qemu to exit (the guest powers off), or for the timeout.
report='' found_at=''
deadline=$((start + timeout * 1000000))
while :; do
  now=${EPOCHREALTIME//[.,]/}
  [[ -z $found_at ]] && read_report && found_at=$now
  kill -0 "$qpid" 2>/dev/null || break
  # Report complete: give the guest 10 s to power off by itself, then stop it.
  [[ -n $found_at ]] && ((now - found_at > 10000000)) && break
  ((now > deadline)) && break
  sleep 0.1
done
end=${found_at:-${EPOCHREALTIME//[.,]/}}
stop_qemu
[[ -n $found_at ]] || read_report || report=''

[[ -n $report ]] || exit 3 # cleanup says why and where the log is
found=1
secs=$(printf '%d.%02d' $(((end - start) / 1000000)) $((((end - start) % 1000000) / 10000)))
printf '%s,"bootSeconds":%s,"accel":"%s"}\n' "${report%\}}" "$secs" "$accel"
exit 0
