/**
 * Random bytes for ids (PFN, filesystem and partition uuids, the MBR disk signature) and for
 * temporary names, read from /dev/urandom: the kernel's CSPRNG, the pool getrandom(2) draws from.
 *
 * node:crypto's randomBytes gives the same bytes, but loading node:crypto costs ~6.5 ms on the
 * project's 2-core machine (bench/WHY.md, round 3): more than a create does between its lock and
 * its first write. It stays the fallback where /dev/urandom cannot be opened (a chroot without
 * /dev). Bytes are read 256 at a time and handed out once each.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';

const POOL_BYTES = 256;
let pool: Buffer = Buffer.alloc(0);

function refill(min: number): Buffer {
  const size = Math.max(POOL_BYTES, min);
  const out = Buffer.alloc(size);
  let fd: number | undefined;
  try {
    fd = openSync('/dev/urandom', 'r');
    let got = 0;
    while (got < size) {
      const n = readSync(fd, out, got, size - got, null);
      if (n <= 0) throw new Error('/dev/urandom gave no bytes');
      got += n;
    }
    return out;
  } catch {
    const { randomBytes: fromCrypto } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
    return fromCrypto(size);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** `n` random bytes (a fresh Buffer, never shared). */
export function randomBytes(n: number): Buffer {
  if (pool.length < n) pool = refill(n);
  const out = Buffer.from(pool.subarray(0, n));
  pool.fill(0, 0, n);
  pool = pool.subarray(n);
  return out;
}

/** `n` random bytes as 2n lowercase hex digits (temporary names). */
export function randomHex(n: number): string {
  return randomBytes(n).toString('hex');
}
