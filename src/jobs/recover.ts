/**
 * Recovery after a crash: what a killed mkimage (SIGKILL, a process killed in any way) left
 * behind, found from its journal (guard/journal.ts) and taken back by the next command that
 * touches the same image, target path or pool name, or by `mkimage status --clean`.
 *
 *   journal of a dead job (PID gone, or reused by a process with another start time)
 *   -> claimed by renaming it (one recoverer per journal: a rename succeeds once)
 *   -> its steps replayed newest first, each from its record: the pool exported or destroyed
 *      only if it is imported from a loop device of the recorded file; loop devices detached only
 *      if they show that file; directories removed only when empty; files removed by name
 *   -> removed, or (a step failed) left for the next try with the failure noted.
 *
 * A journal whose process is alive is never touched: what a live process owns stays its own.
 */
import { promises as fs, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import { removeEmptyTree } from '../file/empty-dirs.js';
import {
  isAlive,
  journalDir,
  processStartTime,
  readJournals,
  removeEmptyJournalDir,
  type FoundJournal,
  type JournalData,
  type UndoRecord,
} from '../guard/journal.js';
import { run as defaultRun, type Runner } from '../tools/exec.js';
import { detachLoop, listLoops, type LoopDevice } from '../tools/losetup.js';
import { umount } from '../tools/mount.js';
import { Zfs, detectFlavour, type ZfsFlavour } from '../tools/zfs.js';

/** What a command touches: a journal about any of these is recovered before it acts. */
export interface RecoverScope {
  image?: { dev: number; ino: number };
  /** Absolute paths (the image's real path, create's target). */
  paths?: string[];
  pools?: string[];
}

export interface RecoverOptions {
  run?: Runner;
  flavour?: ZfsFlavour;
  /** Tests: instead of /run/mkimage (vdev link directories). */
  runtimeDir?: string;
}

/** A dead job's leftovers, as `status` lists them. */
export interface Leftover {
  journal: string;
  pid: number;
  command: string;
  since: string;
  image?: string;
  target?: string;
  pools: string[];
  steps: { what: string; record: UndoRecord }[];
}

export interface RecoveredJob extends Leftover {
  /** Steps that could not be taken back (the journal stays for the next try). */
  failures: { what: string; error: string }[];
}

const CLAIM = /\.claimed-(\d+)-(\d+)\.json$/;

/** Journals of dead jobs not being recovered by a live process right now. */
function deadJournals(): FoundJournal[] {
  return readJournals().filter((j) => {
    if (isAlive(j.data)) return false;
    const c = CLAIM.exec(j.file);
    return !c || !isAlive({ pid: Number(c[1]), startTime: c[2]! });
  });
}

function relates(d: JournalData, s: RecoverScope | 'all'): boolean {
  if (s === 'all') return true;
  if (s.image && d.image && d.image.dev === s.image.dev && d.image.ino === s.image.ino) return true;
  const paths = new Set(s.paths ?? []);
  if (d.target && paths.has(d.target)) return true;
  if (d.image && paths.has(d.image.path)) return true;
  for (const step of d.steps) if ((step.record.kind === 'file' || step.record.kind === 'attached') && paths.has(step.record.kind === 'file' ? step.record.path : step.record.file)) return true;
  return (d.pools ?? []).some((p) => s.pools?.includes(p));
}

function describe(j: FoundJournal): Leftover {
  const d = j.data;
  return {
    journal: j.file,
    pid: d.pid,
    command: d.command,
    since: d.since,
    image: d.image?.path,
    target: d.target,
    pools: d.pools ?? [],
    steps: d.steps.map((s) => ({ what: s.what, record: s.record })),
  };
}

/** What dead jobs left (for `status`): nothing is changed. */
export function listLeftovers(): Leftover[] {
  return deadJournals().map(describe);
}

/** Loop devices showing `file`: by its name, or "(deleted)" after it was removed. */
function loopsShowing(loops: readonly LoopDevice[], file: string, offsetBytes?: number): LoopDevice[] {
  return loops.filter((l) => (l.backFile === file || l.backFile === `${file} (deleted)`) && (offsetBytes === undefined || l.offsetBytes === offsetBytes));
}

class Replayer {
  private zfsP?: Promise<Zfs>;
  constructor(
    private readonly run: Runner,
    private readonly runtime: string,
    private readonly flavour?: ZfsFlavour,
  ) {}

  private zfs(): Promise<Zfs> {
    this.zfsP ??= (async () => new Zfs(this.flavour ?? (await detectFlavour(this.run)), this.run).forCleanup())();
    return this.zfsP;
  }

  /** The pool `name` (with `guid`, if given) when it is imported from a loop device of `file`. */
  private async poolFrom(name: string, guid: string | undefined, file: string): Promise<boolean> {
    const zfs = await this.zfs();
    const p = await zfs.findPool(name);
    if (!p || (guid !== undefined && p.guid !== guid)) return false;
    const vdevs = (await zfs.poolVdevs(name)).map((v) => basename(v));
    return loopsShowing(await listLoops(this.run), file).some((l) => vdevs.includes(basename(l.name)));
  }

  async replay(r: UndoRecord): Promise<void> {
    switch (r.kind) {
      case 'file':
        await fs.rm(r.path, { force: true });
        return;
      case 'loop': {
        const before = new Set(r.before ?? []);
        for (const l of loopsShowing(await listLoops(this.run), r.file, r.offsetBytes)) {
          if (before.has(l.name)) continue;
          await detachLoop(l.name, this.run);
          await fs.rm(join(this.runtime, 'vdev', basename(l.name)), { recursive: true, force: true });
        }
        return;
      }
      case 'pool': {
        if (!(await this.poolFrom(r.name, r.guid, r.file))) return;
        const zfs = await this.zfs();
        if (r.how === 'destroy') await zfs.destroyPool(r.name);
        else await zfs.exportPool(r.name);
        return;
      }
      case 'dir':
        if (r.recursive) await fs.rm(r.path, { recursive: true, force: true });
        else await removeEmptyTreeWaiting(r.path);
        return;
      case 'dir-entries': {
        const before = new Set(r.before);
        for (const e of await fs.readdir(r.path).catch(() => [] as string[])) if (!before.has(e)) await removeEmptyTree(join(r.path, e));
        return;
      }
      case 'mount': {
        const mounts = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
        if (mounts.split('\n').some((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' ') === r.path)) await umount(r.path, this.run);
        return;
      }
      case 'attached': {
        // The image a layer command attached for itself: its pool exported, its loop devices
        // detached, the default altroot removed when empty.
        if (await this.poolFrom(r.pool, r.guid, r.file)) {
          const zfs = await this.zfs();
          const p = await zfs.findPool(r.pool);
          await zfs.exportPool(r.pool);
          if (p?.altroot?.startsWith(`${this.runtime}/pools/`)) await removeEmptyTreeWaiting(p.altroot);
        }
        await this.replay({ kind: 'loop', file: r.file });
        return;
      }
    }
  }
}

/** zfs-fuse unmounts through FUSE: a directory can stay busy a moment after export. */
async function removeEmptyTreeWaiting(dir: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    if (await removeEmptyTree(dir)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Claims a journal for this process by renaming it; undefined when another process got it first. */
function claim(j: FoundJournal): FoundJournal | undefined {
  const base = basename(j.file).replace(CLAIM, '.json').replace(/\.json$/, '');
  const mine = join(journalDir(), `${base}.claimed-${process.pid}-${processStartTime(process.pid) ?? 0}.json`);
  try {
    renameSync(j.file, mine);
    return { file: mine, data: j.data };
  } catch {
    return undefined;
  }
}

/**
 * Takes back what dead jobs left that relates to `scope` (or everything: 'all'). Returns what was
 * recovered. Never throws for a step that fails: it is reported and kept for the next try.
 */
export async function recoverDeadJobs(scope: RecoverScope | 'all', o: RecoverOptions = {}): Promise<RecoveredJob[]> {
  const found = deadJournals().filter((j) => relates(j.data, scope));
  if (!found.length) return [];
  const replayer = new Replayer(o.run ?? defaultRun, o.runtimeDir ?? '/run/mkimage', o.flavour);
  const out: RecoveredJob[] = [];
  for (const j of found) {
    const mine = claim(j);
    if (!mine) continue;
    const failures: { what: string; error: string }[] = [];
    const steps = [...mine.data.steps].reverse();
    const left: typeof steps = [];
    for (const s of steps) {
      try {
        await replayer.replay(s.record);
      } catch (e) {
        failures.push({ what: s.what, error: (e as Error).message });
        left.unshift(s);
      }
    }
    if (left.length) {
      // Kept for the next try, under its original name (no longer claimed).
      const back = join(journalDir(), basename(mine.file).replace(CLAIM, '.json'));
      await fs.writeFile(back, JSON.stringify({ ...mine.data, steps: left }));
      await fs.rm(mine.file, { force: true });
    } else {
      await fs.rm(mine.file, { force: true });
    }
    out.push({ ...describe(mine), failures });
  }
  removeEmptyJournalDir();
  return out;
}
