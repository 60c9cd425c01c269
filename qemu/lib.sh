# Shared by qemu/boot.sh and qemu/boot-root.sh (sourced, not run): choosing the accelerator and
# stopping the QEMU they started.

# pick_accel auto|kvm|tcg: prints kvm or tcg. /dev/kvm alone proves nothing: inside some VMs it
# exists but a guest hangs on it; real KVM hosts also show the vmx/svm CPU flags.
pick_accel() {
  case $1 in
    auto) if [[ -r /dev/kvm && -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
        echo kvm; else echo tcg; fi ;;
    kvm | tcg) echo "$1" ;;
    *) return 2 ;;
  esac
}

# stop_qemu: the QEMU whose pid is in $qpid gets SIGTERM, 5 s to exit, then SIGKILL; reaped.
qpid=''
stop_qemu() {
  [[ -n $qpid ]] || return 0
  if kill -0 "$qpid" 2>/dev/null; then
    kill -TERM "$qpid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$qpid" 2>/dev/null || true
  fi
  { wait "$qpid" || true; } 2>/dev/null
  qpid=''
}
