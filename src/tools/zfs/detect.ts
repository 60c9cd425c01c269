/** Which ZFS this host runs (`detectFlavour`), from the per-boot cache or by asking the tools. */
import { run as defaultRun, hasTool, type Runner } from '../exec.js';
import { FLAVOUR_CACHE, flavourKey, readFlavourCache, writeFlavourCache } from './flavour-cache.js';
import { SPA_VERSION_FEATURES, ZFS_FUSE_POOL_VERSION, describeFlavour, parsePoolVersion, parseZfsVersion, upstreamVersion, type ZfsFlavour } from './flavour.js';
import type { PoolInfo } from './parse.js';
import { Zfs, unreachableError } from './runner.js';

/**
 * Which ZFS this host runs, and a check that it answers (zfs-fuse: the daemon runs; OpenZFS: the
 * module is loaded). ToolMissingError names both packages when zpool/zfs are not installed.
 */
export async function detectFlavour(run: Runner = defaultRun, options: FlavourOptions = {}): Promise<ZfsFlavour> {
  const flavour = await learnFlavour(run, options);
  // Reachable? (zfs-fuse: the daemon; OpenZFS: /dev/zfs.)
  try {
    await run('zpool', ['list', '-H', '-o', 'name'], { signal: options.signal });
  } catch (e) {
    throw unreachableError(e) ?? e;
  }
  return flavour;
}

/**
 * Which ZFS runs and the pools imported here, in one `zpool list` after the flavour is known (from
 * the cache, normally): the list is also the check that ZFS answers.
 */
export async function zfsHost(run: Runner = defaultRun, options: FlavourOptions = {}): Promise<{ flavour: ZfsFlavour; pools: PoolInfo[] }> {
  const flavour = await learnFlavour(run, options);
  const zfs = new Zfs(flavour, run, options.signal);
  return { flavour, pools: await zfs.listPools() };
}

export interface FlavourOptions {
  signal?: AbortSignal;
  toolExists?: (file: string) => Promise<boolean>;
  /**
   * Where the answer is kept for the rest of the boot. Default: FLAVOUR_CACHE when `run` is the
   * real runner (a fake's answers describe no host), none otherwise; null: no cache.
   */
  cacheFile?: string | null;
}

async function learnFlavour(run: Runner, options: FlavourOptions): Promise<ZfsFlavour> {
  const file = options.cacheFile === undefined ? (run === defaultRun ? FLAVOUR_CACHE : null) : options.cacheFile;
  const key = file ? flavourKey() : undefined;
  const cached = file && key ? readFlavourCache(file, key) : undefined;
  if (cached) return cached;
  const flavour = await probeFlavour(run, options);
  if (file && key) writeFlavourCache(file, key, flavour);
  return flavour;
}

/** Asks the tools which ZFS this is (three processes); no check that it answers. */
async function probeFlavour(run: Runner, options: FlavourOptions): Promise<ZfsFlavour> {
  const { signal, toolExists = hasTool } = options;
  const version = await run('zfs', ['version'], { signal, okExitCodes: [0, 1, 2] });
  const openzfsVersion = version.exitCode === 0 ? parseZfsVersion(version.stdout) : undefined;
  if (openzfsVersion) {
    return { kind: 'openzfs', version: openzfsVersion, poolVersion: SPA_VERSION_FEATURES, description: describeFlavour('openzfs', openzfsVersion, SPA_VERSION_FEATURES) };
  }
  // No `zfs version`: zfs-fuse, or OpenZFS (ZFS on Linux) older than 0.8.
  let upgrade;
  try {
    upgrade = await run('zpool', ['upgrade', '-v'], { signal });
  } catch (e) {
    throw unreachableError(e) ?? e;
  }
  const poolVersion = parsePoolVersion(upgrade.stdout) ?? ZFS_FUSE_POOL_VERSION;
  if (await toolExists('zfs-fuse')) {
    const pkg = await run('dpkg-query', ['-W', '-f', '${Version}', 'zfs-fuse'], { signal, okExitCodes: [0, 1] }).catch(() => undefined);
    const v = (pkg?.exitCode === 0 && upstreamVersion(pkg.stdout)) || 'unknown';
    return { kind: 'zfs-fuse', version: v, poolVersion, description: describeFlavour('zfs-fuse', v, poolVersion) };
  }
  return { kind: 'openzfs', version: 'unknown (older than 0.8)', poolVersion, description: describeFlavour('openzfs', 'older than 0.8', poolVersion) };
}
