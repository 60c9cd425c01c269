/**
 * A real Debian root filesystem for tests: `mmdebstrap --variant=minbase bookworm ROOTFS.tar`
 * (Debian's mmdebstrap; about a minute and ~170 MB, ~8,700 entries), built once and cached at
 * ${MKIMAGE_TEST_CACHE:-<repo>/.cache}/rootfs/bookworm-minbase.tar. Builders take an exclusive
 * flock on <cache>/rootfs.lock, so parallel test runs (and other worktrees sharing the cache)
 * build it once: a waiting one finds the tar made when it gets the lock.
 */
import { execa } from 'execa';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './machine.js';

export function testCacheDir(): string {
  return process.env.MKIMAGE_TEST_CACHE || join(REPO, '.cache');
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

export async function debianRootfsTar(): Promise<string> {
  const cache = testCacheDir();
  const tar = join(cache, 'rootfs/bookworm-minbase.tar');
  if (await exists(tar)) return tar;
  await fs.mkdir(join(cache, 'rootfs'), { recursive: true });
  const lock = join(cache, 'rootfs.lock');
  // Wait for a builder that holds the lock, then look again.
  await execa('flock', ['-x', lock, 'true']);
  if (await exists(tar)) return tar;
  const tmp = join(cache, 'rootfs', `.bookworm-minbase.tar.${process.pid}`);
  try {
    await execa('flock', ['-x', lock, 'mmdebstrap', '--quiet', '--format=tar', '--variant=minbase', 'bookworm', tmp], { timeout: 15 * 60_000 });
    if (!(await exists(tar))) await fs.rename(tmp, tar);
  } finally {
    await fs.rm(tmp, { force: true });
  }
  return tar;
}
