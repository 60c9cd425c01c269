/**
 * Helpers for the layer tests: temporary directories, tars built in memory with the writer, and
 * a canonical listing of a tree (type, mode, owner, size, mtime in whole seconds, content,
 * symlink target, hard-link group) to compare two trees.
 */
import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCompression } from '../../../src/layers/compression.js';
import type { SyncTarSource } from '../../../src/layers/tar-read.js';
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

/**
 * `buf` as openLayer gives an uncompressed file: iterable as chunksOf, and `readSync()` gives
 * `size`-byte chunks copied into ONE reused buffer, each overwritten when the next is taken, so a
 * reader that keeps a view of a chunk past it reads other bytes. Compressed bytes: no readSync.
 */
export function syncSourceOf(buf: Buffer, size = 700): AsyncIterable<Buffer> & SyncTarSource {
  return {
    [Symbol.asyncIterator]: () => chunksOf(buf, size)[Symbol.asyncIterator](),
    readSync: () => {
      if (detectCompression(buf) !== 'none') return undefined;
      const shared = Buffer.alloc(size);
      return (function* () {
        for (let i = 0; i < buf.length; i += size) {
          shared.fill(0xee);
          yield shared.subarray(0, buf.copy(shared, 0, i, i + size));
        }
      })();
    },
  };
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

export const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface OciLayoutOptions {
  /** Store layers gzip-compressed (the usual registry form). */
  gzip?: boolean;
  /** The index.json entries' names: the first gets both the containerd and the OCI annotation. */
  names?: string[];
  /** Wrap the manifest in an image index with a second, foreign platform. */
  platformIndex?: boolean;
  /** Replace this layer's blob by a valid gzip of something else. */
  corruptLayer?: number;
  /** Give this layer a wrong diff_id in the config. */
  wrongDiffId?: number;
  architecture?: string;
}

/**
 * An OCI image layout directory holding `tars` as one image: blobs/sha256/*, a config with the
 * diff_ids, a manifest, index.json (one entry per name, all naming the same manifest).
 */
export async function writeOciLayout(dir: string, tars: readonly Buffer[], o: OciLayoutOptions = {}): Promise<void> {
  const { gzipSync } = await import('node:zlib');
  await fs.mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  const put = async (b: Buffer) => {
    const d = sha256(b);
    await fs.writeFile(join(dir, 'blobs/sha256', d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const arch = o.architecture ?? ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: tars.map((t, i) => (i === o.wrongDiffId ? sha256(Buffer.from('other')) : sha256(t))) } }));
  const layers = [];
  for (const [i, t] of tars.entries()) {
    const blob = o.gzip ? gzipSync(t) : t;
    const d = await put(blob);
    if (i === o.corruptLayer) await fs.writeFile(join(dir, 'blobs/sha256', d.digest.slice(7)), gzipSync(Buffer.from('not the layer')));
    layers.push({ mediaType: `application/vnd.oci.image.layer.v1.tar${o.gzip ? '+gzip' : ''}`, ...d });
  }
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await put(config)) }, layers }));
  let top: Record<string, unknown> = { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...(await put(manifest)) };
  if (o.platformIndex) {
    const other = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from('x')), size: 1, platform: { os: 'linux', architecture: 'mips64' } };
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [other, { ...top, platform: { os: 'linux', architecture: arch } }] }));
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...(await put(idx)) };
  }
  const names = o.names ?? ['docker.io/library/test:1'];
  await fs.writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fs.writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: names.map((n, i) => ({ ...top, annotations: i === 0 ? { 'io.containerd.image.name': n, 'org.opencontainers.image.ref.name': n.split(':').pop() } : { 'org.opencontainers.image.ref.name': n } })),
    }),
  );
}
