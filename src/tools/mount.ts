/** mount(8)/umount(8) and cp(1): used to populate filesystems mkfs cannot fill itself (xfs). */
import { run as defaultRun, type Runner } from './exec.js';

export async function mount(device: string, dir: string, fsType: string, options: string[] = [], signal?: AbortSignal, run: Runner = defaultRun): Promise<void> {
  await run('mount', ['-t', fsType, ...(options.length ? ['-o', options.join(',')] : []), '--', device, dir], { signal });
}

export async function umount(dir: string, run: Runner = defaultRun): Promise<void> {
  await run('umount', ['--', dir]);
}

/** Copies the contents of `srcDir` into `destDir`, keeping modes, owners, times, links, holes. */
export async function copyTree(srcDir: string, destDir: string, signal?: AbortSignal, run: Runner = defaultRun): Promise<void> {
  await run('cp', ['-a', '--sparse=always', '--', `${srcDir.replace(/\/+$/, '')}/.`, destDir], { signal });
}
