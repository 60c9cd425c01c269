/**
 * fallocate(1) from util-linux: Node has no fallocate(2). Allocating unwritten extents is
 * constant-time in practice on ext4/xfs/btrfs (a 1 TiB file in milliseconds), and it is the
 * only way to reserve the blocks so a guest never meets ENOSPC (pmem-csi's promise).
 */
import { run as defaultRun, type Runner } from './exec.js';

export function fallocateArgs(file: string, offsetBytes: number, lengthBytes: number): string[] {
  return ['--offset', String(offsetBytes), '--length', String(lengthBytes), '--', file];
}

export async function fallocate(file: string, offsetBytes: number, lengthBytes: number, signal?: AbortSignal, run: Runner = defaultRun): Promise<void> {
  await run('fallocate', fallocateArgs(file, offsetBytes, lengthBytes), { signal });
}
