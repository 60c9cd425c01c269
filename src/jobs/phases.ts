/**
 * The phases of a job (create, resize): each `phase(name, message)` closes the time of the one
 * before, stops the job if its signal fired (checkAborted), and tells `onProgress`. `timings()`
 * gives milliseconds per phase, to a tenth, for the result's `timings` (--json).
 */
import { checkAborted } from '../undo.js';

/**
 * Milliseconds from a monotonic clock. process.hrtime rather than performance.now(): the first use
 * of the `performance` global loads node:perf_hooks (~2 ms of every create).
 */
function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export interface PhaseClock {
  phase(name: string, message: string): void;
  /** Milliseconds per phase so far, the current one included. */
  timings(): Record<string, number>;
}

export function phaseClock(signal: AbortSignal | undefined, onProgress?: (event: { phase: string; message: string }) => void): PhaseClock {
  const spent: Record<string, number> = {};
  let t = nowMs();
  let current = 'plan';
  const close = () => {
    const now = nowMs();
    spent[current] = (spent[current] ?? 0) + (now - t);
    t = now;
  };
  return {
    phase(name, message) {
      close();
      current = name;
      checkAborted(signal, name);
      onProgress?.({ phase: name, message });
    },
    timings() {
      close();
      return Object.fromEntries(Object.entries(spent).map(([k, v]) => [k, Math.round(v * 10) / 10]));
    },
  };
}
