/**
 * fallocate(1) from util-linux: Node has no fallocate(2). Allocating unwritten extents is
 * constant-time in practice on ext4/xfs/btrfs (a 1 TiB file in milliseconds), and it is the
 * only way to reserve the blocks so a guest never meets ENOSPC (pmem-csi's promise).
 *
 * `keepSize` (FALLOC_FL_KEEP_SIZE, `--keep-size`) reserves blocks past the end of the file without
 * changing its size: resize reserves the new bytes first, then grows the file in one step.
 */
import { run as defaultRun, type Runner } from './exec.js';

export function fallocateArgs(file: string, offsetBytes: number, lengthBytes: number, keepSize = false): string[] {
  return [...(keepSize ? ['--keep-size'] : []), '--offset', String(offsetBytes), '--length', String(lengthBytes), '--', file];
}

export async function fallocate(file: string, offsetBytes: number, lengthBytes: number, signal?: AbortSignal, run: Runner = defaultRun, keepSize = false): Promise<void> {
  await run('fallocate', fallocateArgs(file, offsetBytes, lengthBytes, keepSize), { signal });
}
