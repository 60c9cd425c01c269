/**
 * flock(1) from util-linux on a descriptor this process holds. Node has no flock(2); a child
 * given our descriptor as its fd 3 locks the open file description we share with it, and the lock
 * stays ours after the child exits. The kernel drops it when this process closes the descriptor
 * or dies in any way (SIGKILL, power cut: nothing stale is ever left to clean).
 */
import { run as defaultRun, type Runner } from './exec.js';

/** flock's exit status when the lock is held elsewhere (--conflict-exit-code), told apart from failures. */
const CONFLICT_EXIT = 75;

export function flockArgs(waitSeconds: number): string[] {
  const wait = waitSeconds <= 0 ? ['--nonblock'] : ['--wait', String(waitSeconds)];
  return ['--exclusive', ...wait, '--conflict-exit-code', String(CONFLICT_EXIT), '3'];
}

/**
 * Takes an exclusive lock on `fd`, waiting up to `waitSeconds` (0: not at all). True when taken,
 * false when another holder kept it the whole time. An abort kills the waiting flock.
 */
export async function flockFd(fd: number, waitSeconds: number, signal?: AbortSignal, run: Runner = defaultRun): Promise<boolean> {
  const r = await run('flock', flockArgs(waitSeconds), { fd3: fd, signal, okExitCodes: [0, CONFLICT_EXIT] });
  return r.exitCode === 0;
}
