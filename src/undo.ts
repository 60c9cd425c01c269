/**
 * Undo: what a job has done so far, to be taken back in reverse order if it fails or is
 * interrupted. Every step that creates something (a temp file, a loop device, an imported pool, a
 * mount) pushes its inverse right after it succeeds; on success the job calls `commit()` for the
 * steps that must stay, or `unwind()` for the ones that were only needed while building.
 */
import { InterruptedError, MkimageError } from './errors.js';

interface UndoStep {
  id: number;
  what: string;
  run: () => Promise<void>;
}

export class Undo {
  private steps: UndoStep[] = [];
  private nextId = 1;
  /** Errors from undo steps that themselves failed (reported, never thrown over the first error). */
  readonly failures: { what: string; error: unknown }[] = [];

  /** Records the inverse of a step just done; the returned id lets `settle` run it early. */
  push(what: string, run: () => Promise<void>): number {
    const id = this.nextId++;
    this.steps.push({ id, what, run });
    return id;
  }

  /**
   * Runs one recorded step now (a loop device no longer needed) and forgets it once it worked. A
   * step that fails stays recorded, so that unwinding tries it again (a detach killed by Ctrl-C).
   */
  async settle(id: number, instead?: () => Promise<void>): Promise<void> {
    const step = this.steps.find((s) => s.id === id);
    if (!step) return;
    // `instead`: the exact inverse, known by now (detach /dev/loop3), cheaper than the recorded
    // one (find the file's loop devices, then detach); on failure the recorded one stays.
    await (instead ?? step.run)();
    this.steps.splice(this.steps.indexOf(step), 1);
  }

  /** Forgets one step without running it: what it would take back is gone already (an exported pool). */
  forget(id: number): void {
    this.steps = this.steps.filter((s) => s.id !== id);
  }

  /** Forget every step: what was done stays done. */
  commit(): void {
    this.steps = [];
  }

  /** Runs every step, newest first; keeps going when one fails. */
  async unwind(): Promise<void> {
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await step.run();
      } catch (error) {
        this.failures.push({ what: step.what, error });
      }
    }
  }
}

/** Throws InterruptedError when the job's signal has fired (checked between steps). */
export function checkAborted(signal: AbortSignal | undefined, phase: string): void {
  if (signal?.aborted) {
    throw new InterruptedError(`interrupted during ${phase}: everything made so far was removed`, { phase, reason: String(signal.reason ?? '') });
  }
}

/**
 * Runs `body` with an Undo; on any error (or abort) unwinds it and rethrows. An error from a
 * child process killed by the abort becomes InterruptedError. Undo failures are attached to
 * the error's data so nothing left behind goes unreported.
 */
export async function withUndo<T>(signal: AbortSignal | undefined, body: (undo: Undo) => Promise<T>): Promise<T> {
  const undo = new Undo();
  try {
    return await body(undo);
  } catch (error) {
    await undo.unwind();
    let out = error;
    if (signal?.aborted && !(error instanceof InterruptedError)) {
      out = new InterruptedError('interrupted: everything made so far was removed', { reason: String(signal.reason ?? '') }, { cause: error });
    }
    if (undo.failures.length && out instanceof MkimageError) {
      out.data.cleanupFailures = undo.failures.map((f) => ({ what: f.what, error: String((f.error as Error)?.message ?? f.error) }));
      out.message += `; cleanup failed for: ${undo.failures.map((f) => f.what).join(', ')}`;
    }
    throw out;
  }
}
