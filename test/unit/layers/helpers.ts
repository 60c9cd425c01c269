/**
 * Helpers for the layer tests: temporary directories, tars built in memory with the writer, and
 * a canonical listing of a tree (type, mode, owner, size, mtime in whole seconds, content,
 * symlink target, hard-link group) to compare two trees.
 */
import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTar, type WriteEntry } from '../../../src/layers/tar-write.js';

export async function withTmp<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'mkimage-layers-'));
  try {
    return await body(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

/** A tar in memory, `text` as the body of files. */
export interface TestEntry extends Omit<WriteEntry, 'body' | 'mode' | 'uid' | 'gid' | 'mtime'> {
  text?: string;
  bytes?: Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
}

export const T0 = 1_700_000_000;

export function toWriteEntry(e: TestEntry): WriteEntry {
  const data = e.bytes ?? (e.text === undefined ? undefined : Buffer.from(e.text));
  const { text: _t, bytes: _b, ...rest } = e;
  return {
    mode: e.type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    mtime: T0,
    ...rest,
    size: data ? data.length : (e.size ?? 0),
    body: data ? async function* () {
      yield data;
    } : undefined,
  };
}

export async function tarOf(entries: readonly TestEntry[]): Promise<Buffer> {
  return collect(writeTar(entries.map(toWriteEntry)));
}

export async function* chunksOf(buf: Buffer, size = 700): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'other';
  mode: string;
  uid: number;
  gid: number;
  mtime: number;
  size?: number;
  sha?: string;
  text?: string;
  target?: string;
  /** The first path (sorted) sharing this inode, when it has more than one link. */
  linkGroup?: string;
}

/** Every entry below `root` (not the root itself), keyed by relative path. mtimes in whole seconds. */
export async function listTree(root: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const byIno = new Map<string, string>();
  async function walk(rel: string): Promise<void> {
    const names = (await fs.readdir(rel ? join(root, rel) : root)).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(root, path);
      const st = await fs.lstat(abs);
      const fmt = st.mode & constants.S_IFMT;
      const type: TreeEntry['type'] =
        fmt === constants.S_IFREG ? 'file' : fmt === constants.S_IFDIR ? 'dir' : fmt === constants.S_IFLNK ? 'symlink' : fmt === constants.S_IFIFO ? 'fifo' : fmt === constants.S_IFCHR ? 'char' : fmt === constants.S_IFBLK ? 'block' : 'other';
      const e: TreeEntry = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
      if (type === 'symlink') {
        e.target = await fs.readlink(abs);
        delete (e as Partial<TreeEntry>).mtime;
      }
      if (type === 'file') {
        const data = await fs.readFile(abs);
        e.size = data.length;
        if (data.length <= 64) e.text = data.toString();
        else e.sha = createHash('sha256').update(data).digest('hex');
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          if (!byIno.has(key)) byIno.set(key, path);
          e.linkGroup = byIno.get(key);
        }
      }
      out[path] = e;
      if (type === 'dir') await walk(path);
    }
  }
  await walk('');
  return out;
}

/** Files and directories described compactly, created under root with fixed mtimes. */
export async function makeTree(root: string, spec: Record<string, string | { dir: true; mode?: number } | { symlink: string } | { link: string } | { text: string; mode?: number; mtime?: number }>): Promise<void> {
  const dirs: string[] = [];
  for (const [path, v] of Object.entries(spec)) {
    const abs = join(root, path);
    await fs.mkdir(join(abs, '..'), { recursive: true });
    if (typeof v === 'string') {
      await fs.writeFile(abs, v);
      await fs.utimes(abs, T0, T0);
    } else if ('dir' in v) {
      await fs.mkdir(abs, { recursive: true });
      if (v.mode !== undefined) await fs.chmod(abs, v.mode);
      dirs.push(abs);
    } else if ('symlink' in v) {
      await fs.symlink(v.symlink, abs);
    } else if ('link' in v) {
      await fs.link(join(root, v.link), abs);
    } else {
      await fs.writeFile(abs, v.text);
      if (v.mode !== undefined) await fs.chmod(abs, v.mode);
      await fs.utimes(abs, v.mtime ?? T0, v.mtime ?? T0);
    }
  }
  for (const d of dirs) await fs.utimes(d, T0, T0);
}

/** Every directory's mtime set to T0 (after building a tree by hand), root included. */
export async function settleDirTimes(root: string): Promise<void> {
  async function walk(abs: string): Promise<void> {
    for (const ent of await fs.readdir(abs, { withFileTypes: true })) {
      if (ent.isDirectory()) await walk(join(abs, ent.name));
    }
    await fs.utimes(abs, T0, T0);
  }
  await walk(root);
}
