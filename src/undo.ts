/**
 * Undo: what a job has done so far, to be taken back in reverse order if it fails or is
 * interrupted. Every step that creates something (a temp file, a loop device, an imported pool, a
 * mount) pushes its inverse right after it succeeds; on success the job calls `commit()` for the
 * steps that must stay, or `unwind()` for the ones that were only needed while building.
 *
 * With a journal (`new Undo({ journal })`, `withUndo(signal, body, { journal })`), every step pushed
 * with a record (what it takes back, as data: guard/journal.ts) is written to
 * /run/mkimage/jobs before the call that makes it runs, and dropped when settled, committed or
 * unwound: a job killed by SIGKILL leaves the journal, and the next command takes back what it
 * lists (jobs/recover.ts). Steps without a record are taken back only by this process.
 */
import { InterruptedError, MkimageError } from './errors.js';
import { Journal, type JournalScope, type UndoRecord } from './guard/journal.js';

export type { UndoRecord } from './guard/journal.js';

interface UndoStep {
  id: number;
  what: string;
  run: () => Promise<void>;
  record?: UndoRecord;
}

export interface UndoOptions {
  /**
   * Keep a journal of the steps that carry a record (guard/journal.ts), so that what a killed
   * job leaves is found and taken back by the next command (jobs/recover.ts). The scope says
   * what the job works on: the image, the target path, pool names.
   */
  journal?: JournalScope;
}

export class Undo {
  private steps: UndoStep[] = [];
  private nextId = 1;
  private journal?: Journal;
  /** Errors from undo steps that themselves failed (reported, never thrown over the first error). */
  readonly failures: { what: string; error: unknown }[] = [];

  constructor(o: UndoOptions = {}) {
    if (o.journal) this.journal = new Journal(o.journal);
  }

  /**
   * Records the inverse of a step just done (or about to be done); the returned id lets `settle`
   * run it early. `record` describes it as data for the journal: a step without one is taken back
   * only by this process.
   */
  push(what: string, run: () => Promise<void>, record?: UndoRecord): number {
    const id = this.nextId++;
    this.steps.push({ id, what, run, record });
    if (record) this.journal?.add({ id, what, record });
    return id;
  }

  /** Adds to what the journal says this job works on (a pool name or an image known later). */
  scope(s: JournalScope): void {
    this.journal?.scope(s);
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
    this.journal?.remove(id);
  }

  /** Forgets one step without running it: what it would take back is gone already (an exported pool). */
  forget(id: number): void {
    this.steps = this.steps.filter((s) => s.id !== id);
  }

  /** Forget every step: what was done stays done. */
  commit(): void {
    this.steps = [];
    this.journal?.close();
  }

  /** The job ended on its own: the journal goes, the remaining steps stay with the caller. */
  release(): void {
    this.journal?.close();
  }

  /** Runs every step, newest first; keeps going when one fails. */
  async unwind(): Promise<void> {
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await step.run();
      } catch (error) {
        this.failures.push({ what: step.what, error });
        continue;
      }
      this.journal?.remove(step.id);
    }
    // A step that failed stays in the journal: the next command (or status --clean) tries again.
    if (!this.failures.length) this.journal?.close();
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
export async function withUndo<T>(signal: AbortSignal | undefined, body: (undo: Undo) => Promise<T>, options: UndoOptions = {}): Promise<T> {
  const undo = new Undo(options);
  try {
    const result = await body(undo);
    // Steps neither committed nor settled are meant to stay: the journal has nothing to recover.
    undo.release();
    return result;
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
