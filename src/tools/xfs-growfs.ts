/**
 * xfs_growfs (xfsprogs): grows a MOUNTED xfs filesystem to the size of its device (-d). mkimage
 * mounts a loop device of the new partition on a temporary directory for it (jobs/resize.ts).
 * Runs without the job's signal: the grow is one transaction in the kernel, the job stops after.
 */
import { run as defaultRun, type Runner } from './exec.js';

export function xfsGrowfsArgs(mountpoint: string): string[] {
  return ['-d', '--', mountpoint];
}

export async function xfsGrowfs(mountpoint: string, run: Runner = defaultRun): Promise<void> {
  await run('xfs_growfs', xfsGrowfsArgs(mountpoint));
}
