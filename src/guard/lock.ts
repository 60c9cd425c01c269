/**
 * The per-image lock: one mkimage command at a time attaches, changes or removes an image.
 *
 *   key        the image file's identity, device + inode (a renamed or hard-linked image is the
 *              same image; a new file at the same path is another one). A path that does not
 *              exist yet (create) is keyed by its absolute name instead.
 *   lock file  LOCK_DIR/<key>.lock (LOCK_DIR = /run/lock/mkimage, world-writable and sticky like
 *              /run/lock itself, so ordinary users' commands exclude root's and the reverse;
 *              $MKIMAGE_LOCK_DIR overrides). It holds the holder's PID and command, for the
 *              message a waiter prints; the lock itself is flock(2) on it (tools/flock.ts).
 *   crash      the kernel releases flock when the holder dies in any way: a killed mkimage never
 *              leaves a lock behind. What it leaves besides is found from its journal (guard/journal.ts)
 *              and taken back by jobs/recover.ts.
 *
 * Acquiring: open (creating) the lock file, flock it (waiting up to `waitSeconds`), then check
 * that the lock file we hold is still the one at its path (a releasing holder unlinks it: a
 * waiter that then wins the lock on the unlinked file tries again) and that the image path still
 * names the file we keyed (replaced while we waited: lock the new one). Nested locks on one image
 * in one process (create --mount calling attach) share the outer lock.
 *
 * The file calls are synchronous: a few system calls of microseconds on /run, where a thread-pool
 * round trip each (node:fs/promises) cost more than the calls (bench/WHY.md, round 3); only the
 * wait for another holder (the flock child) is asynchronous.
 */
import { chmodSync, closeSync, constants as fsConstants, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, realpathSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { BusyError, ToolMissingError } from '../errors.js';
import { TOOL_PACKAGES, hasTool } from '../tools/exec.js';
import { flockFd as flockFdRaw } from '../tools/flock.js';
import { DEFAULT_LOCK_WAIT_SECONDS } from './lock-wait.js';

/** flock(1) missing: said before anything is done, with the package to install. */
async function flockFd(fd: number, waitSeconds: number, signal?: AbortSignal): Promise<boolean> {
  try {
    return await flockFdRaw(fd, waitSeconds, signal);
  } catch (e) {
    if (!(e instanceof ToolMissingError)) throw e;
    throw new ToolMissingError(`${e.message} (mkimage locks the image with it; nothing was created or changed)`, e.data, { cause: e });
  }
}

export { DEFAULT_LOCK_WAIT_SECONDS };

export function lockDir(): string {
  if (process.env.MKIMAGE_LOCK_DIR) return process.env.MKIMAGE_LOCK_DIR;
  return existsSync('/run/lock') ? '/run/lock/mkimage' : join(tmpdir(), 'mkimage-locks');
}

export interface LockOptions {
  /** Seconds to wait while another command holds the image (default 60; 0: fail at once). */
  waitSeconds?: number;
  /** What this command is, for a waiter's message (default: this process's argv). */
  command?: string;
  signal?: AbortSignal;
  /** Called once, when the image is held by another command and this one starts to wait. */
  onWait?: (holder: LockHolder | undefined, waitSeconds: number) => void;
  /**
   * Lock the file with this identity (stat's dev and ino) instead of what `path` names: an image
   * deleted or moved while attached, known by its loop device's backing inode. `path` is then
   * only for messages.
   */
  identity?: { dev: number; ino: number };
}

/** Who holds an image's lock, as its lock file says. */
export interface LockHolder {
  pid: number;
  command: string;
  /** ISO time the lock was taken. */
  since: string;
}

export interface ImageLock {
  /** The lock's key: `i-DEV-INO` for an existing file, `p-HASH` for a path to be created. */
  readonly key: string;
  /** The image path as given. */
  readonly path: string;
  release(): Promise<void>;
}

interface Held {
  fd: number;
  file: string;
  count: number;
}

/** Locks this process holds, by key (nesting). */
const held = new Map<string, Held>();

function keyOf(path: string, st: Stats | undefined, dirReal?: string): string {
  if (st) return `i-${st.dev}-${st.ino}`;
  return `p-${fnv1a64Hex(dirReal ? join(dirReal, basename(path)) : resolve(path))}`;
}

/**
 * FNV-1a, 64 bits, of the UTF-8 bytes, as 16 hex digits: a file name for a path. Not secret and
 * not sha256 (node:crypto costs ~6.5 ms to load, bench/WHY.md round 3): two paths with one name
 * would only take turns, and any local user can hold any lock file anyway.
 */
export function fnv1a64Hex(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, '0');
}

/**
 * The key of what `path` names now. A path that does not exist yet is keyed by its directory's
 * real path and its name: two spellings of one target (through a symlinked directory, `a/../b`)
 * are one key, so two creates of it take turns.
 */
function keyNowOf(path: string): string {
  const st = statOrUndefined(path);
  if (st) return keyOf(path, st);
  let dirReal: string | undefined;
  try {
    dirReal = realpathSync(dirname(resolve(path)));
  } catch {
    dirReal = undefined;
  }
  return keyOf(path, undefined, dirReal);
}

function statOrUndefined(path: string): Stats | undefined {
  return statSync(path, { throwIfNoEntry: false });
}

function ensureLockDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o1777 });
    const st = statSync(dir);
    // mkdir's mode passes through the umask; the first creator makes it usable by everyone.
    if ((st.mode & 0o1777) !== 0o1777 && st.uid === process.getuid?.()) chmodSync(dir, 0o1777);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

function openLockFile(file: string): number {
  const flags = fsConstants.O_CREAT | fsConstants.O_NOFOLLOW;
  try {
    const fd = openSync(file, flags | fsConstants.O_RDWR, 0o666);
    const st = fstatSync(fd);
    if ((st.mode & 0o666) !== 0o666 && st.uid === process.getuid?.()) {
      try {
        chmodSync(file, 0o666);
      } catch {
        /* others then open it read-only, which locks as well */
      }
    }
    return fd;
  } catch (e) {
    // Another user's lock file we may not write: a read-only descriptor locks as well.
    if ((e as NodeJS.ErrnoException).code === 'EACCES') return openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    throw e;
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The holder recorded in an image's lock file, if any (the file may be stale: check the PID). */
export async function readLockHolder(path: string): Promise<LockHolder | undefined> {
  return parseHolder(readText(join(lockDir(), `${keyNowOf(path)}.lock`)));
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h.pid === 'number' && typeof h.command === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

function describeHolder(h: LockHolder | undefined): string {
  return h ? `PID ${h.pid} (${h.command}), holding it since ${h.since}` : 'another command';
}

/**
 * Takes the image's lock, waiting up to `waitSeconds` for another command to finish; throws
 * BusyError (EBUSY) naming the holder when it does not. Release it with `release()`.
 */
export async function lockImage(path: string, o: LockOptions = {}): Promise<ImageLock> {
  const waitSeconds = o.waitSeconds ?? DEFAULT_LOCK_WAIT_SECONDS;
  const deadline = Date.now() + waitSeconds * 1000;
  // Checked before a lock file is made: a missing flock must not leave an empty one behind.
  if (!(await hasTool('flock'))) {
    throw new ToolMissingError(`flock is not installed or not on PATH: install the Debian package ${TOOL_PACKAGES.flock} (mkimage locks the image with it; nothing was created or changed)`, { tool: 'flock', package: TOOL_PACKAGES.flock });
  }
  const dir = lockDir();
  ensureLockDir(dir);
  let told = false;
  const keyNow = () => (o.identity ? `i-${o.identity.dev}-${o.identity.ino}` : keyNowOf(path));
  for (;;) {
    const key = keyNow();
    const nested = held.get(key);
    if (nested) {
      nested.count++;
      return handleFor(key, path);
    }
    const file = join(dir, `${key}.lock`);
    const fd = openLockFile(file);
    let ok = false;
    try {
      let got = await flockFd(fd, 0, o.signal);
      if (!got) {
        const holder = parseHolder(readText(file));
        const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        if (!told && left > 0) o.onWait?.(holder, left);
        told = true;
        if (left > 0) got = await flockFd(fd, left, o.signal);
        if (!got) {
          const now = parseHolder(readText(file)) ?? holder;
          throw new BusyError(
            `${path} is busy: another mkimage command uses it, ${describeHolder(now)}; waited ${waitSeconds} s (wait longer with --wait SECONDS, or let that command finish)`,
            { path, holder: now, waitSeconds },
          );
        }
      }
      // Still the lock file at its path, and the path still the file we keyed? Else try again.
      const mine = fstatSync(fd);
      const there = statOrUndefined(file);
      if (!there || there.ino !== mine.ino || there.dev !== mine.dev || keyNow() !== key) continue;
      const record: LockHolder = { pid: process.pid, command: o.command ?? process.argv.slice(1).join(' '), since: new Date().toISOString() };
      try {
        ftruncateSync(fd, 0);
        writeSync(fd, JSON.stringify(record), 0);
      } catch {
        /* a read-only descriptor (another user's lock file): waiters are not told who, the lock holds */
      }
      held.set(key, { fd, file, count: 1 });
      ok = true;
      return handleFor(key, path);
    } finally {
      if (!ok) closeSync(fd);
    }
  }
}

function handleFor(key: string, path: string): ImageLock {
  let released = false;
  return {
    key,
    path,
    async release() {
      if (released) return;
      released = true;
      const h = held.get(key);
      if (!h || --h.count > 0) return;
      held.delete(key);
      // Unlinked while held, so that no lock file outlives its use; a waiter holding the old
      // file notices it is no longer at its path and opens the new one.
      try {
        const mine = fstatSync(h.fd);
        const there = statOrUndefined(h.file);
        if (there && mine.ino === there.ino && mine.dev === there.dev) unlinkSync(h.file);
      } catch {
        /* gone already, or not ours to remove: closing below releases the lock all the same */
      }
      closeSync(h.fd);
    },
  };
}

/** Runs `fn` holding the image's lock; releases it however `fn` ends. */
export async function withImageLock<T>(path: string, o: LockOptions, fn: (lock: ImageLock) => Promise<T>): Promise<T> {
  const lock = await lockImage(path, o);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}
