/**
 * Packaging a layer: the changes from a lower tree to an upper tree as an OCI layer tar (the
 * calldown "package" operation, and what `runtime commit` and `layers export` write).
 *
 * Entries come in diffTrees order (deterministic); each deleted path becomes an empty regular
 * file `.wh.NAME` (mode 0, owner 0, mtime 0); files with several links that are all in the
 * layer become one file and hard links (type 1) to it; sockets cannot be stored in a tar and are
 * skipped (reported). The sha256 of the uncompressed bytes is the layer's diff_id and its name.
 */
import { createHash } from 'node:crypto';
import { constants, promises as fs, type BigIntStats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LayerError, MkimageError, NoSpaceError } from '../errors.js';
import { tempPathFor } from '../file/image-file.js';
import { diffTrees, type DiffOptions } from './diff.js';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from './apply.js';
import { writeTar, type WriteEntry } from './tar-write.js';

export interface PackageOptions extends DiffOptions {
  /** Called as bytes are produced. */
  onProgress?: (p: { entries: number; bytes: number }) => void;
}

export interface PackageResult {
  /** Hex sha256 of the uncompressed tar: the layer's name in storage/<digest>. */
  digest: string;
  /** The same as an OCI diff_id: "sha256:<hex>". */
  diffId: string;
  /** Bytes of tar written. */
  bytes: number;
  /** Entries written, whiteouts included. */
  entries: number;
  whiteouts: number;
  hardlinks: number;
  /** Paths left out because a tar cannot hold them (sockets). */
  skipped: string[];
}

const S_IFMT = BigInt(constants.S_IFMT);

/** Linux's dev_t split (glibc gnu_dev_major / gnu_dev_minor). */
export function devMajorMinor(rdev: bigint): { major: number; minor: number } {
  return {
    major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    minor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
  };
}

/** Exactly `size` bytes of a file opened without following a symlink; more or fewer is an error. */
export async function* readExactly(path: string, rel: string, size: number): AsyncGenerator<Buffer> {
  const fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const CHUNK = 256 * 1024;
    let pos = 0;
    while (pos < size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
    const extra = await fh.read(Buffer.alloc(1), 0, 1, pos);
    if (pos !== size || extra.bytesRead !== 0) {
      throw new LayerError(`${rel} changed size while it was being packaged (expected ${size} bytes): stop what writes to the tree and retry`, { path: rel, size });
    }
  } finally {
    await fh.close();
  }
}

export interface EntryCounters {
  entries: number;
  whiteouts: number;
  hardlinks: number;
  skipped: string[];
}

async function entryOf(rel: string, st: BigIntStats, upperDir: string, linkTarget: string | undefined): Promise<WriteEntry | 'socket'> {
  const base = {
    path: rel,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: Number(st.mtimeNs / 1_000_000_000n),
  };
  const type = st.mode & S_IFMT;
  const abs = join(upperDir, rel);
  if (linkTarget !== undefined) return { ...base, type: 'hardlink', linkpath: linkTarget };
  if (type === BigInt(constants.S_IFREG)) {
    const size = Number(st.size);
    return { ...base, type: 'file', size, body: () => readExactly(abs, rel, size) };
  }
  if (type === BigInt(constants.S_IFDIR)) return { ...base, type: 'directory' };
  if (type === BigInt(constants.S_IFLNK)) return { ...base, type: 'symlink', linkpath: await fs.readlink(abs) };
  if (type === BigInt(constants.S_IFIFO)) return { ...base, type: 'fifo' };
  if (type === BigInt(constants.S_IFCHR) || type === BigInt(constants.S_IFBLK)) {
    const { major, minor } = devMajorMinor(st.rdev);
    return { ...base, type: type === BigInt(constants.S_IFCHR) ? 'char' : 'block', devmajor: major, devminor: minor };
  }
  if (type === BigInt(constants.S_IFSOCK)) return 'socket';
  throw new LayerError(`${rel}: file type ${type.toString(8)} cannot be stored in a layer`, { path: rel });
}

/** The entries of the layer that turns `lowerDir` into `upperDir`, in archive order. */
export async function* layerEntries(lowerDir: string | null, upperDir: string, counters: EntryCounters, options: DiffOptions = {}): AsyncGenerator<WriteEntry> {
  /** dev:ino of a multiply-linked entry already in the archive -> its archive path. */
  const firstLink = new Map<string, string>();
  for await (const change of diffTrees(lowerDir, upperDir, options)) {
    const name = basename(change.path);
    if (change.kind === 'deleted') {
      const parent = dirname(change.path);
      counters.entries++;
      counters.whiteouts++;
      yield { path: parent === '.' ? `${WHITEOUT_PREFIX}${name}` : `${parent}/${WHITEOUT_PREFIX}${name}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 };
      continue;
    }
    if (name.startsWith(WHITEOUT_PREFIX) || name === OPAQUE_WHITEOUT) {
      throw new LayerError(`${change.path}: a file named "${WHITEOUT_PREFIX}..." cannot be stored in an OCI layer (the name means a deletion)`, { path: change.path });
    }
    const st = change.stat!;
    let linkTarget: string | undefined;
    const isDirectory = (st.mode & S_IFMT) === BigInt(constants.S_IFDIR);
    if (!isDirectory && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      linkTarget = firstLink.get(key);
      if (linkTarget === undefined) firstLink.set(key, change.path);
    }
    const entry = await entryOf(change.path, st, upperDir, linkTarget);
    if (entry === 'socket') {
      counters.skipped.push(change.path);
      continue;
    }
    counters.entries++;
    if (entry.type === 'hardlink') counters.hardlinks++;
    yield entry;
  }
}

/** The archive bytes with their running sha256 and count. */
async function* hashed(source: AsyncIterable<Buffer>, state: { hash: ReturnType<typeof createHash>; bytes: number }, counters: EntryCounters, options: PackageOptions): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    state.hash.update(chunk);
    state.bytes += chunk.length;
    options.onProgress?.({ entries: counters.entries, bytes: state.bytes });
    yield chunk;
  }
}

/**
 * Writes the OCI layer tar that turns `lowerDir` into `upperDir` (lowerDir null: everything in
 * upperDir) to `out`: a path (written to a temporary name beside it, renamed when complete,
 * removed on failure) or a stream. Returns the digest of what was written.
 */
export async function packageLayer(lowerDir: string | null, upperDir: string, out: string | Writable, options: PackageOptions = {}): Promise<PackageResult> {
  const counters: EntryCounters = { entries: 0, whiteouts: 0, hardlinks: 0, skipped: [] };
  const state = { hash: createHash('sha256'), bytes: 0 };
  const chunks = () => hashed(writeTar(layerEntries(lowerDir, upperDir, counters, options)), state, counters, options);
  if (typeof out === 'string') {
    const tmp = tempPathFor(out);
    try {
      const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      try {
        for await (const chunk of chunks()) {
          let done = 0;
          while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done)).bytesWritten;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, out);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw wrap(e, out);
    }
  } else {
    try {
      await pipeline(Readable.from(chunks(), { objectMode: false }), out);
    } catch (e) {
      throw wrap(e, '(stream)');
    }
  }
  const digest = state.hash.digest('hex');
  return { digest, diffId: `sha256:${digest}`, bytes: state.bytes, entries: counters.entries, whiteouts: counters.whiteouts, hardlinks: counters.hardlinks, skipped: counters.skipped };
}

function wrap(e: unknown, out: string): MkimageError {
  if (e instanceof MkimageError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new NoSpaceError(`no space left writing the layer to ${out}`, { out }, { cause: e });
  return new LayerError(`packaging the layer to ${out} failed: ${(e as Error)?.message ?? String(e)}`, { out, errno: code }, { cause: e });
}
