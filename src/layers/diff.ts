/**
 * The changes between two directory trees, as moby's "naive" diff finds them (pkg/archive
 * changes.go): what `zfs diff` would say, for filesystems (zfs-fuse) that have no `zfs diff`.
 *
 * Both trees are walked together, depth first, each directory's names sorted, so the order is the
 * same on every run. An entry present in both is modified when its type, mode, uid, gid or device
 * number differ, or, for anything but a directory, its size, mtime (to the nanosecond) or link
 * count (a hard link made or removed), or its symlink target. When all of that is equal but the
 * inode number or ctime differs, the two files may still differ (a tool rewrote the file and put
 * its mtime back: dpkg, tar, cp -p), so their bytes are compared. Between a ZFS snapshot and a
 * clone of it an untouched file keeps both its inode number and ctime, so no bytes are read for
 * it; between two copies, every file whose metadata matches is read.
 *
 * A directory is not compared by size or mtime (moby issue 9874); but when anything below it
 * changed, it is reported as modified, before its children, so that a layer restores its
 * permissions and mtime. Deletions come first in each directory; a deleted directory is one
 * deletion, its children are not listed. The root itself is never reported.
 */
import { constants, promises as fs, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { LayerError } from '../errors.js';
import { checkAborted } from '../undo.js';

export type ChangeKind = 'added' | 'modified' | 'deleted';

/** How many lstat calls run ahead of the walk in one directory. */
const STAT_AHEAD = 32;

export interface Change {
  kind: ChangeKind;
  /** Relative path, '/'-separated. */
  path: string;
  /** The upper tree's lstat, for added and modified entries. */
  stat?: BigIntStats;
}

export interface DiffOptions {
  signal?: AbortSignal;
}

function byName(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function readdirSorted(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir);
  return names.sort(byName);
}

async function lstatOrNull(path: string): Promise<BigIntStats | null> {
  try {
    return await fs.lstat(path, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

const S_IFMT = BigInt(constants.S_IFMT);
const S_IFDIR = BigInt(constants.S_IFDIR);
const S_IFREG = BigInt(constants.S_IFREG);
const S_IFLNK = BigInt(constants.S_IFLNK);

export function isDir(st: BigIntStats): boolean {
  return (st.mode & S_IFMT) === S_IFDIR;
}

/** True when two regular files hold the same bytes. */
export async function sameContent(a: string, b: string, size: bigint): Promise<boolean> {
  const CHUNK = 256 * 1024;
  const fa = await fs.open(a, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const fb = await fs.open(b, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const ba = Buffer.alloc(CHUNK);
      const bb = Buffer.alloc(CHUNK);
      let pos = 0;
      for (;;) {
        const [ra, rb] = await Promise.all([fa.read(ba, 0, CHUNK, pos), fb.read(bb, 0, CHUNK, pos)]);
        if (ra.bytesRead !== rb.bytesRead) return false;
        if (ra.bytesRead === 0) return BigInt(pos) === size;
        if (ba.compare(bb, 0, rb.bytesRead, 0, ra.bytesRead) !== 0) return false;
        pos += ra.bytesRead;
      }
    } finally {
      await fb.close();
    }
  } finally {
    await fa.close();
  }
}

/** Whether the entry at `lowerPath` (stat `l`) differs from the one at `upperPath` (stat `u`). */
export async function entryChanged(lowerPath: string, l: BigIntStats, upperPath: string, u: BigIntStats): Promise<boolean> {
  if (l.mode !== u.mode || l.uid !== u.uid || l.gid !== u.gid || l.rdev !== u.rdev) return true;
  const type = u.mode & S_IFMT;
  if (type === S_IFDIR) return false;
  if (l.size !== u.size || l.mtimeNs !== u.mtimeNs || l.nlink !== u.nlink) return true;
  if (type === S_IFLNK) return (await fs.readlink(lowerPath)) !== (await fs.readlink(upperPath));
  if (type === S_IFREG && (l.ino !== u.ino || l.ctimeNs !== u.ctimeNs)) return !(await sameContent(lowerPath, upperPath, u.size));
  return false;
}

interface Pending {
  path: string;
  stat: BigIntStats;
  reported: boolean;
}

/**
 * Yields the changes that turn `lowerDir` into `upperDir` (lowerDir null: an empty tree, so
 * everything is added). See the module comment for the rules and the order.
 */
export async function* diffTrees(lowerDir: string | null, upperDir: string, options: DiffOptions = {}): AsyncGenerator<Change> {
  const pending: Pending[] = [];

  /** Reports the not-yet-reported directories above a change, outermost first. */
  function* flush(): Generator<Change> {
    for (const p of pending) {
      if (p.reported) continue;
      p.reported = true;
      yield { kind: 'modified', path: p.path, stat: p.stat };
    }
  }

  async function* walk(rel: string, lowerExists: boolean): AsyncGenerator<Change> {
    checkAborted(options.signal, 'tree comparison');
    const upperAbs = rel ? join(upperDir, rel) : upperDir;
    const lowerAbs = lowerDir === null ? null : rel ? join(lowerDir, rel) : lowerDir;
    const upperNames = await readdirSorted(upperAbs);
    const lowerNames = lowerExists && lowerAbs !== null ? await readdirSorted(lowerAbs) : [];
    const inUpper = new Set(upperNames);
    const inLower = new Set(lowerNames);
    const child = (name: string) => (rel ? `${rel}/${name}` : name);

    for (const name of lowerNames) {
      if (inUpper.has(name)) continue;
      yield* flush();
      yield { kind: 'deleted', path: child(name) };
    }
    // lstat runs ahead of the loop (STAT_AHEAD at a time): on FUSE (zfs-fuse) each call is a
    // round trip to the daemon, and the daemon answers several at once. Order is unchanged.
    const stats: Promise<[BigIntStats, BigIntStats | null]>[] = [];
    const statAhead = (i: number) => {
      for (let k = stats.length; k < Math.min(upperNames.length, i + STAT_AHEAD); k++) {
        const name = upperNames[k]!;
        const p = Promise.all([fs.lstat(join(upperAbs, name), { bigint: true }), inLower.has(name) ? lstatOrNull(join(lowerAbs!, name)) : Promise.resolve(null)]);
        p.catch(() => undefined); // awaited below; never an unhandled rejection if the walk stops first
        stats.push(p);
      }
    };
    for (const [i, name] of upperNames.entries()) {
      const path = child(name);
      statAhead(i);
      const [u, l] = await stats[i]!;
      delete stats[i];
      let reported = false;
      if (l === null) {
        yield* flush();
        yield { kind: 'added', path, stat: u };
        reported = true;
      } else if (await entryChanged(join(lowerAbs!, name), l, join(upperDir, path), u)) {
        yield* flush();
        yield { kind: 'modified', path, stat: u };
        reported = true;
      }
      if (isDir(u)) {
        pending.push({ path, stat: u, reported });
        yield* walk(path, l !== null && isDir(l));
        pending.pop();
      }
    }
  }

  const top = await fs.lstat(upperDir, { bigint: true });
  if (!isDir(top)) throw new LayerError(`${upperDir} is not a directory: trees are compared from their root directories`, { upperDir });
  let lowerIsDir = false;
  if (lowerDir !== null) {
    const lt = await fs.lstat(lowerDir, { bigint: true });
    if (!isDir(lt)) throw new LayerError(`${lowerDir} is not a directory: trees are compared from their root directories`, { lowerDir });
    lowerIsDir = true;
  }
  yield* walk('', lowerIsDir);
}
