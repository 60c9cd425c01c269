/**
 * How long a command waits for another one on the same image unless told (--wait SECONDS). A
 * module of its own so that the CLI's option declarations name it without loading the lock
 * (guard/lock.ts) for commands that never lock: inspect, qemu-args, --help.
 */
export const DEFAULT_LOCK_WAIT_SECONDS = 60;
