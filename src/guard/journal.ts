/**
 * The journal of a job in flight: what it has made so far that is not meant to outlive it, as
 * data, so that when the job is killed (SIGKILL, power cut of the process but not of the host)
 * the next mkimage command can find it and take it back (jobs/recover.ts).
 *
 *   JOURNAL_DIR/<pid>-<starttime>-<n>.json    (JOURNAL_DIR = /run/mkimage/jobs; $MKIMAGE_JOURNAL_DIR)
 *   {
 *     "version": 1, "pid": 1234, "startTime": "98765",   process start time: /proc/PID/stat field 22
 *     "command": "mkimage create ...", "since": ISO time,
 *     "image": { "path", "dev", "ino" },                  the image the job works on, when it exists
 *     "target": "/abs/path.img",                          create: the path being made
 *     "pools": ["tank"],                                  pool names it imports or builds
 *     "steps": [ { "id": 1, "what": "temporary file ...", "record": { "kind": "file", ... } } ]
 *   }
 *
 * A job is alive when /proc/PID/stat exists and its field 22 is the recorded start time: a PID
 * reused by another process is not mistaken for the job. /run is a tmpfs: after a reboot the
 * journals are gone, and so are the loop devices, imports and mounts they describe.
 *
 * Written with write + rename (never half a journal), synchronously: a step is on record before
 * the call that makes it is started. Tiny files on a tmpfs: microseconds.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const JOURNAL_VERSION = 1;

/** What an undo step takes back, as data recovery can act on without the closure. */
export type UndoRecord =
  /** A file this job made (a temporary image): removed. */
  | { kind: 'file'; path: string }
  /**
   * Loop devices of `file` (by inode, or "(deleted)" name), at `offsetBytes` when given, except
   * those in `before` (devices that were there before the job): detached.
   */
  | { kind: 'loop'; file: string; offsetBytes?: number; before?: string[] }
  /**
   * A pool imported (or built) from a loop device of `file`: exported (`how: 'export'`) or
   * destroyed (a pool built in a temporary image). Only when it is imported from that file.
   */
  | { kind: 'pool'; name: string; guid?: string; file: string; how: 'export' | 'destroy' }
  /** A directory this job made: removed when empty (`recursive`: with the links in it). */
  | { kind: 'dir'; path: string; recursive?: boolean }
  /** New entries of `path` (mountpoint directories below an altroot): removed when empty. */
  | { kind: 'dir-entries'; path: string; before: string[] }
  /** A mount this job made: unmounted. */
  | { kind: 'mount'; path: string }
  /** An image this job attached for its own use (layer commands): detached again. */
  | { kind: 'attached'; file: string; dev: number; ino: number; pool: string; guid: string };

export interface JournalStep {
  id: number;
  what: string;
  record: UndoRecord;
}

export interface JournalImage {
  path: string;
  dev: number;
  ino: number;
}

export interface JournalData {
  version: number;
  pid: number;
  startTime: string;
  command: string;
  since: string;
  image?: JournalImage;
  target?: string;
  pools?: string[];
  steps: JournalStep[];
}

/** What a job tells its journal about itself (all optional). */
export interface JournalScope {
  image?: JournalImage;
  target?: string;
  pools?: string[];
  command?: string;
}

export function journalDir(): string {
  return process.env.MKIMAGE_JOURNAL_DIR ?? '/run/mkimage/jobs';
}

/** Field 22 (starttime, clock ticks after boot) of /proc/PID/stat; the command may hold spaces and ")". */
export function parseStartTime(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // Fields after the command start at field 3 (state): field 22 is index 19 of the rest.
  const rest = stat.slice(close + 2).split(' ');
  return rest[19];
}

export function processStartTime(pid: number): string | undefined {
  try {
    return parseStartTime(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** True when the process that wrote the journal still runs (same PID and the same start time). */
export function isAlive(j: Pick<JournalData, 'pid' | 'startTime'>): boolean {
  return processStartTime(j.pid) === j.startTime;
}

let sequence = 0;
let myStart: string | undefined;

/** One job's journal file. Nothing is written until the first step with a record. */
export class Journal {
  readonly file: string;
  private data: JournalData;
  private written = false;
  /** Set when the journal cannot be written (an ordinary user without /run/mkimage): jobs run on. */
  disabled = false;

  constructor(scope: JournalScope = {}) {
    myStart ??= processStartTime(process.pid) ?? '0';
    this.file = join(journalDir(), `${process.pid}-${myStart}-${++sequence}.json`);
    this.data = {
      version: JOURNAL_VERSION,
      pid: process.pid,
      startTime: myStart,
      command: scope.command ?? ['mkimage', ...process.argv.slice(2)].join(' '),
      since: new Date().toISOString(),
      image: scope.image,
      target: scope.target,
      pools: scope.pools,
      steps: [],
    };
  }

  /** Adds to what the journal says the job works on (a pool name learnt later). */
  scope(s: JournalScope): void {
    if (s.image) this.data.image = s.image;
    if (s.target) this.data.target = s.target;
    if (s.pools) this.data.pools = [...new Set([...(this.data.pools ?? []), ...s.pools])];
    if (this.written) this.write();
  }

  add(step: JournalStep): void {
    this.data.steps.push(step);
    this.write();
  }

  remove(id: number): void {
    const before = this.data.steps.length;
    this.data.steps = this.data.steps.filter((s) => s.id !== id);
    if (this.data.steps.length !== before) this.data.steps.length ? this.write() : this.close();
  }

  /** Nothing left to take back: the file goes (and the jobs directory when it is empty). */
  close(): void {
    this.data.steps = [];
    if (!this.written) return;
    this.written = false;
    unlinkIfThere(this.file);
    removeEmptyJournalDir();
  }

  private write(): void {
    if (this.disabled) return;
    const tmp = `${this.file}.new`;
    for (let attempt = 0; ; attempt++) {
      try {
        mkdirSync(journalDir(), { recursive: true, mode: 0o755 });
        writeFileSync(tmp, JSON.stringify(this.data));
        renameSync(tmp, this.file);
        this.written = true;
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Another job removed the empty directory between our mkdir and write: again.
        if (code === 'ENOENT' && attempt < 5) continue;
        if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
          this.disabled = true;
          return;
        }
        throw e;
      }
    }
  }
}

/** Removes the jobs directory and /run/mkimage itself when nothing is in them. */
/** unlink(2), a missing file being fine (rmSync's force loads a module of its own: ~1 ms). */
function unlinkIfThere(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export function removeEmptyJournalDir(): void {
  const dir = journalDir();
  try {
    rmdirSync(dir);
    if (!process.env.MKIMAGE_JOURNAL_DIR) rmdirSync(join(dir, '..'));
  } catch {
    /* not empty, or gone: fine */
  }
}

export interface FoundJournal {
  file: string;
  data: JournalData;
}

/** Every journal in the directory (unreadable or half-written ones skipped). */
export function readJournals(): FoundJournal[] {
  const dir = journalDir();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: FoundJournal[] = [];
  for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
    try {
      const data = JSON.parse(readFileSync(join(dir, n), 'utf8')) as JournalData;
      if (data.version === JOURNAL_VERSION && Array.isArray(data.steps)) out.push({ file: join(dir, n), data });
    } catch {
      /* a journal removed meanwhile */
    }
  }
  return out;
}
