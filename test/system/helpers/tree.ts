/**
 * Reads a directory tree (a mounted filesystem, an extracted rootfs) into plain records for
 * comparison, with nothing of mkimage's code: lstat for types, modes, owners, sizes, mtimes and
 * device numbers, sha256 of contents, readlink, and `getfattr -R` (attr) for extended attributes.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { ReadEntry } from './oci-fixture.js';

function typeOf(st: import('node:fs').Stats): ReadEntry['type'] {
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'file';
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(path)) hash.update(c as Buffer);
  return hash.digest('hex');
}

/** getfattr's escaped path ("\\012" octal escapes) back to the name. */
function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length + 1 && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Every xattr under `root`: absolute path -> name -> hex value. */
export async function readXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const r = await execa('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { reject: false });
  const out = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of String(r.stdout).split('\n')) {
    if (line.startsWith('# file: ')) {
      current = {};
      out.set(unescapeGetfattr(line.slice(8)), current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const v = line.slice(eq + 1);
      current[line.slice(0, eq)] = v.startsWith('0x') ? v.slice(2) : Buffer.from(v.replace(/^"|"$/g, '')).toString('hex');
    }
  }
  return out;
}

export interface ReadTreeOptions {
  /** Top-level names left out (lost+found, .mkimage). */
  skip?: string[];
  /** Leave directory mtimes out (trees whose directories were touched after extraction). */
  dirMtimes?: boolean;
}

/** The tree under `root`: relative path -> entry; and hard link groups (paths sharing an inode). */
export async function readTree(root: string, o: ReadTreeOptions = {}): Promise<{ entries: Record<string, ReadEntry>; links: string[][] }> {
  const entries: Record<string, ReadEntry> = {};
  const byInode = new Map<number, string[]>();
  const xattrs = await readXattrs(root);
  const visit = async (rel: string): Promise<void> => {
    const abs = rel ? join(root, rel) : root;
    const names = (await fs.readdir(abs)).sort();
    for (const name of names) {
      const childRel = rel ? `${rel}/${name}` : name;
      if (!rel && o.skip?.includes(name)) continue;
      const path = join(root, childRel);
      const st = await fs.lstat(path);
      const type = typeOf(st);
      const e: ReadEntry = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (type !== 'directory' || o.dirMtimes !== false) e.mtime = Math.floor(st.mtimeMs / 1000);
      if (type === 'file') {
        e.size = st.size;
        e.sha256 = await sha256File(path);
        if (st.nlink > 1) byInode.set(st.ino, [...(byInode.get(st.ino) ?? []), childRel]);
      }
      if (type === 'symlink') e.target = await fs.readlink(path);
      if (type === 'char' || type === 'block') e.rdev = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
      const x = xattrs.get(path);
      if (x && Object.keys(x).length) e.xattrs = x;
      entries[childRel] = e;
      if (type === 'directory') await visit(childRel);
    }
  };
  await visit('');
  return { entries, links: [...byInode.values()].filter((g) => g.length > 1) };
}
