/**
 * e2fsck and resize2fs (e2fsprogs), run on a loop device of the partition.
 *
 * Not on `IMAGE?offset=BYTES`, although both accept it: resize2fs ends by truncating a regular
 * file to the filesystem's size (blocks x block size, ignoring the offset; seen with strace in
 * e2fsprogs 1.47.0: `ftruncate(fd, 102760448)` after growing a filesystem at offset 2 MiB of a
 * 100 MiB file). That cuts the image's last `offset` bytes: the end of the new filesystem, and
 * with a GPT its backup. On a block device nothing is truncated. And without a size argument
 * resize2fs on `IMAGE?offset=` grows to the whole file, past the partition (REFERENCE.md 9): the
 * size is always given, in blocks.
 *
 * resize2fs refuses a filesystem not checked since it was last mounted ("Please run 'e2fsck -f'
 * first"): `e2fsck -f -p` runs before it (preen: fixes only what is safe without a human).
 */
import { ToolFailedError } from '../errors.js';
import { FS_BLOCK_BYTES } from '../layout/units.js';
import { run as defaultRun, type Runner } from './exec.js';

export function e2fsckPreenArgs(device: string): string[] {
  return ['-f', '-p', '--', device];
}

export function resize2fsArgs(device: string, sizeBytes: number): string[] {
  return ['--', device, String(Math.floor(sizeBytes / FS_BLOCK_BYTES))];
}

/**
 * e2fsck -f -p: exit 0 clean, 1 errors corrected; anything else (4: errors left uncorrected,
 * 8: operational error) is a ToolFailedError that says to run e2fsck by hand.
 */
export async function e2fsckPreen(device: string, signal?: AbortSignal, run: Runner = defaultRun): Promise<{ corrected: boolean }> {
  try {
    const r = await run('e2fsck', e2fsckPreenArgs(device), { signal, okExitCodes: [0, 1] });
    return { corrected: r.exitCode === 1 };
  } catch (e) {
    if (e instanceof ToolFailedError && !e.data.canceled && typeof e.data.exitCode === 'number' && e.data.exitCode >= 2) {
      e.message += ' (the ext4 filesystem has errors e2fsck -p does not fix alone: run e2fsck -f on a loop device of the partition and answer its questions, then resize again)';
    }
    throw e;
  }
}

/**
 * Grows the filesystem to `sizeBytes`. Runs without the job's signal on purpose: resize2fs
 * stopped half-way can leave a filesystem e2fsck must repair; a grow takes seconds, and the job
 * stops at its next step instead.
 */
export async function resize2fs(device: string, sizeBytes: number, run: Runner = defaultRun): Promise<void> {
  await run('resize2fs', resize2fsArgs(device, sizeBytes));
}
