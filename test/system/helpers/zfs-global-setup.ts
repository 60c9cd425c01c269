/**
 * For vitest's `globalSetup`: the zfs-fuse daemon up before any test file runs (CI machines start
 * with it stopped, and files that probe for ZFS would otherwise skip), stopped afterwards only if
 * it was started here.
 */
import { ensureZfsDaemon, type ZfsDaemon } from './zfs-daemon.js';

let daemon: ZfsDaemon | undefined;

export async function setup(): Promise<void> {
  if (process.getuid?.() !== 0) return; // zfs-fuse needs root; the tests that need it say so
  daemon = await ensureZfsDaemon().catch(() => undefined);
}

export async function teardown(): Promise<void> {
  await daemon?.stop();
}
