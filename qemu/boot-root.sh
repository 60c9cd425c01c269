#!/usr/bin/env bash
# boot-root.sh IMAGE [options] [-- ARGS...]
#
# Boots IMAGE AS THE ROOT filesystem of a stock Debian kernel with an initramfs made by Debian's
# mkinitramfs (qemu/build-initramfs.sh; both cached), the way the README's "From a container image
# to a running guest" shows it: QEMU's device options from `mkimage qemu-args -0 IMAGE` (read with
# mapfile: paths with spaces) and the kernel command line from `mkimage qemu-args --cmdline IMAGE`
# (the repo's bin/mkimage.js, built), which for an image built with --from runs its entrypoint
# through /.mkimage/init with no flag: the guest proves the product's own line. Waits for the guest
# to power off and prints on stdout ONE line of JSON:
#
#   {"exitStatus": N|null, "signal": N|null, "init": ["exit status 0", ...],
#    "output": [...], "poweredOff": true|false, "panic": true|false, "tail": [...],
#    "qemuExit": N|null, "cmdline": "...",
#    "device": "nvdimm"|"virtio-pmem", "bootSeconds": S, "accel": "tcg"|"kvm"}
#
#   init     the lines /.mkimage/init printed, without the "mkimage-init: " prefix
#   exitStatus / signal   from its `exit status N` / `killed by signal N (NAME)` line
#   output   every console line that is not a kernel log line ("[    1.234] ...")
#   poweredOff   the kernel said "reboot: Power down" and QEMU exited by itself
#   panic    the kernel panicked (or the initramfs gave up and rebooted)
#   tail     the console's last 25 lines when no exit-status line came (why), else []
#   qemuExit QEMU's exit status (null when it was stopped at the timeout)
#
# Options:
#   --device nvdimm|virtio-pmem   (default nvdimm)
#   --init PATH         run PATH instead of the entrypoint, with the ARGS after `--`
#   --guest-init        qemu-args --guest-init (an image holding /.mkimage/init without a source record)
#   --no-guest-init     qemu-args --no-guest-init (--init PATH runs as PID 1, not through /.mkimage/init)
#   --readonly          the image read-only (mkimage qemu-args --readonly)
#   --mem MIB           guest RAM (default 512)
#   --append "ARGS"     more kernel arguments (after the console ones, before mkimage's)
#   --timeout SECONDS   give up after this long (default 240, or $MKIMAGE_GUEST_TIMEOUT)
#   --keep-log FILE     save the console log to FILE (always kept when the guest did not power off)
#   --accel auto|kvm|tcg  (default auto, as boot.sh; or $MKIMAGE_GUEST_ACCEL)
#   --cache DIR         guest cache dir (default as build-guest.sh)
#
# Exit status: 0 the guest powered off and the report is printed; 3 it did not (timeout, panic:
# the report is printed all the same and stderr gives the console log path); 2 bad usage; 1 other
# failure (the guest or initramfs could not be built, mkimage refused the image). Never leaves a
# qemu process behind (killed on exit and signals; setpriv --pdeathsig KILL).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2; }
die() { printf 'boot-root.sh: %s\n' "$1" >&2; exit "${2:-1}"; }
# shellcheck source=qemu/lib.sh
source "$here/lib.sh"

image='' device=nvdimm init='' guest_init='' readonly=0 mem=512 append='' keep_log=''
timeout=${MKIMAGE_GUEST_TIMEOUT:-240} accel=${MKIMAGE_GUEST_ACCEL:-auto} cache=''
init_args=()
while (($#)); do
  case $1 in
    --device) device=${2:?}; shift ;;
    --init) init=${2:?}; shift ;;
    --guest-init) guest_init=--guest-init ;;
    --no-guest-init) guest_init=--no-guest-init ;;
    --readonly) readonly=1 ;;
    --mem) mem=${2:?}; shift ;;
    --append) append="$append ${2?}"; shift ;;
    --timeout) timeout=${2:?}; shift ;;
    --keep-log) keep_log=${2:?}; shift ;;
    --accel) accel=${2:?}; shift ;;
    --cache) cache=${2:?}; shift ;;
    --) shift; init_args=("$@"); break ;;
    -h | --help) usage ;;
    -*) printf 'boot-root.sh: unknown option %s\n' "$1" >&2; usage ;;
    *) [[ -z $image ]] || usage; image=$1 ;;
  esac
  shift
done
[[ -n $image ]] || usage
[[ -f $image ]] || die "no such image file: $image" 2
[[ $timeout =~ ^[0-9]+$ && $mem =~ ^[0-9]+$ ]] || die "--timeout and --mem take whole numbers" 2
((${#init_args[@]} == 0)) || [[ -n $init ]] || die "arguments after -- need --init PATH" 2

accel=$(pick_accel "$accel") || die "--accel takes auto, kvm or tcg" 2

initrd=$("$here/build-initramfs.sh" ${cache:+"$cache"}) || die "building the initramfs failed"
cache=$(dirname "$initrd")
kernel=$cache/vmlinuz
[[ ${MKIMAGE_GUEST_PVH:-1} != 0 && -s $cache/vmlinux ]] && kernel=$cache/vmlinux

# The product's own QEMU options and kernel command line, as the README runs them.
mkimage=(node "$here/../bin/mkimage.js")
opts=(--mem "${mem}M" --device "$device")
[[ -n $guest_init ]] && opts+=("$guest_init")
((readonly)) && opts+=(--readonly)
line=(--cmdline)
[[ -n $init ]] && line+=(--init "$init")
((${#init_args[@]} == 0)) || init_args=(-- "${init_args[@]}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkimage-root.XXXXXX")
if ! "${mkimage[@]}" qemu-args -0 "${opts[@]}" "$image" >"$tmp/args" 2>"$tmp/err"; then
  msg=$(cat "$tmp/err"); rm -rf "$tmp"; die "mkimage qemu-args refused $image: $msg" 1
fi
mapfile -d '' dev_args <"$tmp/args"
if ! root_cmdline=$("${mkimage[@]}" qemu-args "${line[@]}" "${opts[@]}" "$image" "${init_args[@]}" 2>"$tmp/err"); then
  msg=$(cat "$tmp/err"); rm -rf "$tmp"; die "mkimage qemu-args --cmdline refused $image: $msg" 1
fi
rm -rf "$tmp"
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail ("IO-APIC +
# timer doesn't work!", a panic at 0.05 s); seen once in ~20 boots at load 11 on 2 cores.
cmdline="console=ttyS0 panic=-1 quiet no_timer_check${append} ${root_cmdline}"

ok=0 log=''
# shellcheck disable=SC2317 # called by trap
cleanup() {
  stop_qemu
  if ((ok)); then
    [[ -n $keep_log ]] || rm -f "$log"
  elif [[ -n $log ]]; then
    printf 'boot-root.sh: the guest did not power off; console log: %s\n' "$log" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [[ -n $keep_log ]]; then log=$keep_log; else log=$(mktemp "${TMPDIR:-/tmp}/mkimage-root.XXXXXX.log"); fi
: >"$log"

# shellcheck disable=SC2054 # the commas are QEMU's
qemu=(qemu-system-x86_64
  -nodefaults -no-user-config -display none -no-reboot
  -serial stdio -monitor none
  -accel "$accel" -smp 1
  "${dev_args[@]}"
  -kernel "$kernel" -initrd "$initrd"
  -append "$cmdline")
pdeath=()
setpriv --help 2>/dev/null | grep -q pdeathsig && pdeath=(setpriv --pdeathsig KILL --)

printf '# %s\n' "${qemu[*]}" >>"$log"
start=${EPOCHREALTIME//[.,]/}
"${pdeath[@]}" "${qemu[@]}" </dev/null >>"$log" 2>&1 &
qpid=$!
deadline=$((start + timeout * 1000000))
while kill -0 "$qpid" 2>/dev/null; do
  ((${EPOCHREALTIME//[.,]/} > deadline)) && break
  sleep 0.2
done
exited=1
kill -0 "$qpid" 2>/dev/null && exited=0
end=${EPOCHREALTIME//[.,]/}
qemu_exit=''
if ((exited)); then
  qemu_exit=0
  wait "$qpid" || qemu_exit=$?
  qpid=''
fi
stop_qemu

secs=$(printf '%d.%02d' $(((end - start) / 1000000)) $((((end - start) % 1000000) / 10000)))
report=$(node - "$log" "$exited" "$secs" "$accel" "$device" "$cmdline" "$qemu_exit" <<'EOF'
const [log, exited, secs, accel, device, cmdline, qemuExit] = process.argv.slice(2);
const text = require('node:fs').readFileSync(log, 'latin1');
// The console is bytes; the guest's output is UTF-8: decode lines as UTF-8.
const lines = Buffer.from(text, 'latin1').toString('utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l && !l.startsWith('# qemu-system'));
const kernelLine = /^\[\s*\d+\.\d+\]/;
const init = lines.filter((l) => l.startsWith('mkimage-init: ')).map((l) => l.slice('mkimage-init: '.length));
let exitStatus = null, signal = null;
for (const l of init) {
  let m = /^exit status (\d+)$/.exec(l);
  if (m) exitStatus = Number(m[1]);
  m = /^killed by signal (\d+) /.exec(l);
  if (m) signal = Number(m[1]);
}
const poweredOff = exited === '1' && /reboot: Power down/.test(text);
const panic = /Kernel panic|reboot: Restarting system/.test(text);
// When the init said nothing about the entrypoint's end, the console's last lines say why.
const tail = exitStatus === null && signal === null ? lines.slice(-25) : [];
console.log(JSON.stringify({ exitStatus, signal, init, output: lines.filter((l) => !kernelLine.test(l)), poweredOff, panic, tail, qemuExit: qemuExit === '' ? null : Number(qemuExit), cmdline, device, bootSeconds: Number(secs), accel }));
EOF
)
printf '%s\n' "$report"
if [[ $report == *'"poweredOff":true'* ]]; then ok=1; exit 0; fi
exit 3
