/**
 * The bookkeeping every ZFS system test file shares: the zfs-fuse daemon for the file (started
 * when none runs, stopped only if started here), a fresh temporary directory and pool names per
 * test, and after each test the check that it left nothing behind: its pools (exported here, so
 * that one failure does not cascade into the next test), loop devices and mounts under its dir.
 *
 *   const bed = zfsTestBed({ poolPrefix: 'mkt', dirPrefix: 'mkimage-zfs-' });
 *   let dir: string;
 *   beforeEach(() => (dir = bed.dir()));
 *   it('...', async () => { const pool = bed.poolName(); ... });
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { cleanDir, sh, tempDir } from './machine.js';
import { ensureZfsDaemon, type ZfsDaemon } from './zfs-daemon.js';

export interface ZfsTestBed {
  /** This test's temporary directory (made before each test). */
  dir(): string;
  /** A pool name of this file's prefix and 6 random hex digits, checked after the test. */
  poolName(): string;
}

/** The pools imported on this host now. */
export async function importedPools(): Promise<string[]> {
  return (await sh('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n').filter(Boolean);
}

export function zfsTestBed(o: { poolPrefix: string; dirPrefix: string }): ZfsTestBed {
  let daemon: ZfsDaemon | undefined;
  let dir = '';
  let pools: string[] = [];
  beforeAll(async () => {
    daemon = await ensureZfsDaemon();
  });
  afterAll(async () => {
    await daemon?.stop();
  });
  beforeEach(async () => {
    dir = await tempDir(o.dirPrefix);
    pools = [];
  });
  afterEach(async () => {
    const leftPools = (await importedPools()).filter((p) => pools.includes(p));
    for (const p of leftPools) await sh('zpool', ['export', '-f', p]);
    const left = await cleanDir(dir);
    expect({ pools: leftPools, ...left }).toEqual({ pools: [], loops: [], mounts: [] });
  });
  return {
    dir: () => dir,
    poolName() {
      const p = `${o.poolPrefix}${randomBytes(3).toString('hex')}`;
      pools.push(p);
      return p;
    },
  };
}
