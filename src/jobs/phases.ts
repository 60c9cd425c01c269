/**
 * The phases of a job (create, resize): each `phase(name, message)` closes the time of the one
 * before, stops the job if its signal fired (checkAborted), and tells `onProgress`. `timings()`
 * gives milliseconds per phase, to a tenth, for the result's `timings` (--json).
 */
import { checkAborted } from '../undo.js';

export interface PhaseClock {
  phase(name: string, message: string): void;
  /** Milliseconds per phase so far, the current one included. */
  timings(): Record<string, number>;
}

export function phaseClock(signal: AbortSignal | undefined, onProgress?: (event: { phase: string; message: string }) => void): PhaseClock {
  const spent: Record<string, number> = {};
  let t = performance.now();
  let current = 'plan';
  const close = () => {
    const now = performance.now();
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
