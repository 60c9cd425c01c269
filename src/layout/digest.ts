/**
 * SHA-256, through node:crypto loaded on first use. Pure (no I/O); lazy because loading
 * node:crypto costs ~6.5 ms at start-up (bench/WHY.md, round 3) and most runs never hash: only
 * `--seed` builds (derived ids) and ZFS label checks do.
 */
import { createRequire } from 'node:module';

let crypto: typeof import('node:crypto') | undefined;

export function sha256(data: string | Uint8Array): Buffer {
  crypto ??= createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return crypto.createHash('sha256').update(data).digest();
}
