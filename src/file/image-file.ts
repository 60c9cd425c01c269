/**
 * File operations on the image: a temporary file next to the target, sized without writing
 * (ftruncate: sparse, constant time), header bytes written at their offsets, renamed into place
 * at the end. Nothing here knows about partitions or filesystems.
 */
import { constants, promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** A temporary name in the target's directory: rename(2) into place is then atomic. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.mkimage-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

/** Creates `path` exclusively (never replaces anything) with `sizeBytes` of holes. */
export async function createSparseFile(path: string, sizeBytes: number): Promise<void> {
  const fh = await fs.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    await fh.truncate(sizeBytes);
  } finally {
    await fh.close();
  }
}

export interface OffsetWrite {
  offsetBytes: number;
  data: Uint8Array;
}

/** Writes each buffer at its offset (pwrite), then fsyncs when asked. */
export async function writeAt(path: string, writes: readonly OffsetWrite[], sync = false): Promise<void> {
  const fh = await fs.open(path, constants.O_RDWR);
  try {
    for (const w of writes) {
      let done = 0;
      while (done < w.data.length) {
        const { bytesWritten } = await fh.write(w.data, done, w.data.length - done, w.offsetBytes + done);
        done += bytesWritten;
      }
    }
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reads `lengthBytes` at `offsetBytes`; short at the end of the file. */
export async function readAt(path: string, offsetBytes: number, lengthBytes: number): Promise<Buffer> {
  const fh = await fs.open(path, constants.O_RDONLY);
  try {
    const buf = Buffer.alloc(lengthBytes);
    const { bytesRead } = await fh.read(buf, 0, lengthBytes, offsetBytes);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export async function fsyncFile(path: string): Promise<void> {
  const fh = await fs.open(path, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Free bytes for an unprivileged writer on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await fs.statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Bytes the file really occupies on disk (st_blocks x 512). */
export async function allocatedBytes(path: string): Promise<number> {
  const s = await fs.stat(path);
  return s.blocks * 512;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Removes `path` if it is there; never throws for a missing file. */
export async function removeIfExists(path: string): Promise<void> {
  await fs.rm(path, { force: true });
}

/**
 * Moves the finished image into place. Without `replace`, link(2) + unlink: fails with EEXIST
 * rather than replacing a file that appeared meanwhile. With `replace`, rename(2).
 */
export async function publish(tempPath: string, target: string, replace: boolean): Promise<void> {
  if (replace) {
    await fs.rename(tempPath, target);
    return;
  }
  await fs.link(tempPath, target);
  await fs.unlink(tempPath);
}
