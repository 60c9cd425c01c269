/**
 * The calls: zpool/zfs through exec.ts `run` (argument arrays, never a shell), an unreachable ZFS
 * (daemon down, no module, not root) as a PoolError, and zfs-fuse's "busy" answers repeated.
 */
import { PermissionError, PoolError, toolFailedWith, toolStderr } from '../../errors.js';
import { run as defaultRun, type RunOptions, type Runner } from '../exec.js';
import { zfsListArgs, zfsUnmountArgs, zpoolDestroyArgs, zpoolExportArgs, zpoolListArgs, zpoolStatusArgs } from './args.js';
import { capabilitiesOf, type ZfsCapabilities, type ZfsFlavour } from './flavour.js';
import { parseDatasetList, parsePoolList, parseStatusVdevs, type DatasetInfo, type PoolInfo } from './parse.js';

const DAEMON_DOWN = /zfs-fuse daemon is running|connect: (No such file|Connection refused)/;
const MODULE_MISSING = /modules are not loaded|\/dev\/zfs/i;
/** What zpool says to an ordinary user: zfs-fuse's socket and OpenZFS's /dev/zfs are root's. */
const NOT_ROOT = /failed to initialize ZFS library|permission denied/i;

/** The ToolFailedError of a zpool/zfs call that could not reach ZFS at all, as a PoolError. */
export function unreachableError(e: unknown): PoolError | undefined {
  const stderr = toolStderr(e);
  if (process.geteuid?.() !== 0 && toolFailedWith(e, NOT_ROOT)) {
    return new PermissionError('zpool and zfs need root here (they talk to the ZFS daemon or /dev/zfs, which are root\'s): run mkimage as root (e.g. with sudo)', { stderr }, { cause: e });
  }
  if (toolFailedWith(e, DAEMON_DOWN)) {
    return new PoolError('the zfs-fuse daemon is not running, so zpool and zfs cannot work: start it with: zfs-fuse (as root), then try again', { stderr }, { cause: e });
  }
  if (toolFailedWith(e, MODULE_MISSING)) {
    return new PoolError('the OpenZFS kernel module is not loaded: load it with: modprobe zfs (as root), then try again', { stderr }, { cause: e });
  }
  return undefined;
}

/**
 * zfs-fuse answers "pool is busy" / "dataset is busy" for a moment after a mount: try again, for
 * up to ~6.8 s (150 ms, 300 ms, ... between tries). 2.3 s was seen to be too short on a loaded
 * machine (a `receive`'s rename, with QEMU guests booting beside it).
 */
export async function retryBusy<T>(action: () => Promise<T>, attempts = 10, delayMs = 150): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await action();
    } catch (e) {
      if (i >= attempts || !toolFailedWith(e, /\bbusy\b/i)) throw e;
      await new Promise((r) => setTimeout(r, delayMs * i));
    }
  }
}

/** zpool/zfs through `run`; an unreachable ZFS (daemon down, no module) becomes a PoolError. */
export class Zfs {
  readonly caps: ZfsCapabilities;
  constructor(
    readonly flavour: ZfsFlavour,
    private readonly runner: Runner = defaultRun,
    private readonly signal?: AbortSignal,
    /** First pause before repeating a "busy" export/destroy/unmount (then 2x, 3x, ...). */
    private readonly busyDelayMs = 150,
  ) {
    this.caps = capabilitiesOf(flavour);
  }

  /** The same, without the job's signal: for undo steps, which must run after an abort too. */
  forCleanup(): Zfs {
    return new Zfs(this.flavour, this.runner, undefined, this.busyDelayMs);
  }

  private async call(file: 'zpool' | 'zfs', args: readonly string[], options: RunOptions = {}) {
    try {
      return await this.runner(file, args, { signal: this.signal, ...options });
    } catch (e) {
      throw unreachableError(e) ?? e;
    }
  }

  zpool(args: readonly string[], options?: RunOptions) {
    return this.call('zpool', args, options);
  }

  zfs(args: readonly string[], options?: RunOptions) {
    return this.call('zfs', args, options);
  }

  async listPools(): Promise<PoolInfo[]> {
    return parsePoolList((await this.zpool(zpoolListArgs(this.flavour))).stdout);
  }

  async findPool(name: string): Promise<PoolInfo | undefined> {
    return (await this.listPools()).find((p) => p.name === name);
  }

  /** Leaf vdev paths of an imported pool. */
  async poolVdevs(pool: string): Promise<string[]> {
    return parseStatusVdevs((await this.zpool(zpoolStatusArgs(this.flavour, pool))).stdout);
  }

  async listDatasets(root: string, types?: string): Promise<DatasetInfo[]> {
    return parseDatasetList((await this.zfs(zfsListArgs(this.flavour, root, types))).stdout);
  }

  /** Cleanup paths run without the job's signal: an interrupted job must still be able to undo. */
  async exportPool(pool: string, force = false): Promise<void> {
    await retryBusy(() => this.call('zpool', zpoolExportArgs(pool, force), { signal: undefined }), 6, this.busyDelayMs);
  }

  async destroyPool(pool: string): Promise<void> {
    await retryBusy(() => this.call('zpool', zpoolDestroyArgs(pool), { signal: undefined }), 6, this.busyDelayMs);
  }

  async unmount(dataset: string): Promise<void> {
    await retryBusy(() => this.call('zfs', zfsUnmountArgs(dataset), { signal: undefined }), 6, this.busyDelayMs);
  }
}
