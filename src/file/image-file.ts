/**
 * File operations on the image: a temporary file next to the target, sized without writing
 * (ftruncate: sparse, constant time), header bytes written at their offsets, renamed into place
 * at the end. Nothing here knows about partitions or filesystems.
 *
 * The calls on metadata and the few KiB of headers are synchronous (the functions still return
 * promises): each is one system call of microseconds, and through node:fs/promises each would be a
 * thread-pool round trip, the first of them loading that module (~4 ms of every create and
 * inspect; bench/WHY.md, round 3). What can take long stays asynchronous: fsync, and copying a
 * whole filesystem file.
 */
import { closeSync, constants, fsync, ftruncateSync, linkSync, lstatSync, openSync, promises as fs, readSync, renameSync, statSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { randomHex } from './random.js';
import { basename, dirname, join } from 'node:path';

/** A temporary name in the target's directory: rename(2) into place is then atomic. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.mkimage-${process.pid}-${randomHex(4)}.tmp`);
}

/** Creates `path` exclusively (never replaces anything) with `sizeBytes` of holes. */
export async function createSparseFile(path: string, sizeBytes: number): Promise<void> {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    ftruncateSync(fd, sizeBytes);
  } finally {
    closeSync(fd);
  }
}

/** fsync(2) on the thread pool (it may take seconds), through the callback API. */
function fsyncFd(fd: number): Promise<void> {
  return new Promise((done, fail) => fsync(fd, (e) => (e ? fail(e) : done())));
}

export interface OffsetWrite {
  offsetBytes: number;
  data: Uint8Array;
}

/** Writes each buffer at its offset (pwrite), then fsyncs when asked. */
export async function writeAt(path: string, writes: readonly OffsetWrite[], sync = false): Promise<void> {
  const fd = openSync(path, constants.O_RDWR);
  try {
    for (const w of writes) {
      let done = 0;
      while (done < w.data.length) done += writeSync(fd, w.data, done, w.data.length - done, w.offsetBytes + done);
    }
    if (sync) await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies the whole of `source` into `path` at `offsetBytes` (a filesystem built in a file of its
 * own, into the partition). All-zero blocks are skipped: the target there is fresh (holes or
 * unwritten extents, which read as zeroes), so a sparse image stays sparse.
 */
export async function copyFileInto(source: string, path: string, offsetBytes: number): Promise<number> {
  const src = await fs.open(source, constants.O_RDONLY);
  const dst = await fs.open(path, constants.O_RDWR);
  const chunk = Buffer.alloc(1024 * 1024);
  const zero = Buffer.alloc(4096);
  let pos = 0;
  try {
    for (;;) {
      const { bytesRead } = await src.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break;
      // Runs of non-zero 4 KiB blocks, one pwrite each.
      let at = 0;
      while (at < bytesRead) {
        const isZero = (i: number) => chunk.subarray(i, Math.min(i + zero.length, bytesRead)).equals(zero.subarray(0, Math.min(zero.length, bytesRead - i)));
        while (at < bytesRead && isZero(at)) at += zero.length;
        let end = at;
        while (end < bytesRead && !isZero(end)) end = Math.min(end + zero.length, bytesRead);
        let done = at;
        while (done < end) done += (await dst.write(chunk, done, end - done, offsetBytes + pos + done)).bytesWritten;
        at = end;
      }
      pos += bytesRead;
    }
    return pos;
  } finally {
    await src.close();
    await dst.close();
  }
}

/** Reads `lengthBytes` at `offsetBytes`; short at the end of the file. */
export async function readAt(path: string, offsetBytes: number, lengthBytes: number): Promise<Buffer> {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const buf = Buffer.alloc(lengthBytes);
    let got = 0;
    while (got < lengthBytes) {
      const n = readSync(fd, buf, got, lengthBytes - got, offsetBytes + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

export async function fsyncFile(path: string): Promise<void> {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Free bytes for an unprivileged writer on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Bytes the file really occupies on disk (st_blocks x 512). */
export async function allocatedBytes(path: string): Promise<number> {
  return statSync(path).blocks * 512;
}

export async function exists(path: string): Promise<boolean> {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

/** Removes `path` if it is there; never throws for a missing file. */
export async function removeIfExists(path: string): Promise<void> {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Moves the finished image into place. Without `replace`, link(2) + unlink: fails with EEXIST
 * rather than replacing a file that appeared meanwhile. With `replace`, rename(2).
 */
export async function publish(tempPath: string, target: string, replace: boolean): Promise<void> {
  if (replace) {
    renameSync(tempPath, target);
    return;
  }
  linkSync(tempPath, target);
  unlinkSync(tempPath);
}

/**
 * The bytes of `path` from `start` for `length` bytes (to the end by default), in 1 MiB chunks
 * read synchronously. A layer blob is read by one consumer that processes every chunk at once:
 * a thread-pool round trip per chunk (createReadStream) costs a scheduler wake-up each, which on
 * a loaded machine made reading a 170 MB rootfs tar take seconds of idle time.
 */
export async function* readFileChunks(path: string, start = 0, length = Infinity): AsyncGenerator<Buffer> {
  yield* readFileChunksSync(path, start, length);
}

const FILE_CHUNK_BYTES = 1024 * 1024;

/**
 * readFileChunks for a synchronous consumer. With `reuse`, every chunk is read into the same
 * 1 MiB buffer, so a chunk is valid only until the next is taken: a fresh 1 MiB buffer per read
 * is a fresh mapping whose pages fault in one by one (a 170 MB tar: 0.35 s of page faults,
 * against 0.01 s into one buffer).
 */
export function* readFileChunksSync(path: string, start = 0, length = Infinity, reuse = false): Generator<Buffer> {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    let pos = start;
    let left = length;
    const shared = reuse ? Buffer.allocUnsafe(Math.min(FILE_CHUNK_BYTES, left)) : undefined;
    while (left > 0) {
      const buf = shared ?? Buffer.allocUnsafe(Math.min(FILE_CHUNK_BYTES, left));
      const n = readSync(fd, buf, 0, Math.min(buf.length, left), pos);
      if (n === 0) {
        if (Number.isFinite(length)) throw Object.assign(new Error(`${path}: unexpected end of file at byte ${pos}`), { code: 'EIO' });
        return;
      }
      pos += n;
      left -= n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}
