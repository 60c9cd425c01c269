/**
 * The ZFS part of `create --fs zfs`: on the loop device of the partition, a pool the guest imports
 * with `zpool import -d /dev/pmem0 POOL`, its dataset tree, optionally files, then a clean export.
 *
 *   plan (pure: names, layout, options)  -> flavour (which ZFS, is it up)  -> name free?
 *   -> private altroot (mounts live there while building, never at the host's /<pool>)
 *   -> zpool create (cachefile=none: the build host never remembers the pool; OpenZFS: ashift=12,
 *      a compatibility set, a temporary in-core name so the real name may be in use on the host)
 *   -> datasets, parents first, and snapshots -> populate -> zpool export -> altroot removed.
 *
 * Every step that makes something pushes its inverse on the caller's Undo first: a failure or a
 * signal anywhere leaves no imported pool and no mount (the caller detaches the loop device and
 * removes the file). The pool is always exported at the end: an exported pool imports on any host,
 * whatever its hostid.
 */
import { promises as fs } from 'node:fs';
import { randomHex } from '../file/random.js';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PoolError, UsageError, type ToolFailedError } from '../errors.js';
import { removeEmptyTree } from '../file/empty-dirs.js';
import { detectZfsLabel, type DetectedZfsLabel } from './zfs-detect.js';
import { run as defaultRun, type Runner } from '../tools/exec.js';
import { copyTree } from '../tools/mount.js';
import {
  Zfs,
  capabilitiesOf,
  checkDatasetPath,
  checkOptionsForFlavour,
  checkPoolName,
  MAX_NAME_BYTES,
  checkSnapshotName,
  detectFlavour,
  parseProperty,
  poolFormat,
  zfsCreateArgs,
  zfsSnapshotArgs,
  zpoolCreateArgs,
  zfsHost,
  type PoolInfo,
  type Property,
  type ZfsFlavour,
} from '../tools/zfs.js';
import { checkAborted, type Undo } from '../undo.js';

export const DATASET_LAYOUTS = ['calldown', 'dlite', 'none'] as const;
export type DatasetLayout = (typeof DATASET_LAYOUTS)[number];

/**
 * The trees: calldown (issue 3 of calldown: layers extracted as clones of storage/empty@extracted,
 * containers cloned into runtime/) and dlite's proposal (seed 000).
 */
export const LAYOUT_TREES: Readonly<Record<DatasetLayout, { datasets: readonly string[]; snapshots: readonly string[] }>> = {
  calldown: { datasets: ['storage', 'storage/empty', 'runtime'], snapshots: ['storage/empty@extracted'] },
  dlite: { datasets: ['dhyve', 'images', 'containers'], snapshots: [] },
  none: { datasets: [], snapshots: [] },
};

export interface PoolRequest {
  pool: string;
  layout?: DatasetLayout;
  /** --dataset: paths below the pool, nested allowed ("images/base"); parents are created. */
  datasets?: readonly string[];
  /** --zpool-option KEY=VALUE. */
  zpoolOptions?: readonly string[];
  /** --zfs-option KEY=VALUE: set on the root dataset, inherited by the tree. */
  zfsOptions?: readonly string[];
  /** OpenZFS compatibility set, "legacy", "off" or "vN"; undefined = the default (openzfs-2.1-linux). */
  compatibility?: string;
  /** Copied into the pool's root (and the datasets mounted below it). */
  populateDir?: string;
}

export interface BuildPoolOptions extends PoolRequest {
  /** The loop device of the partition (the pool's one vdev). */
  device: string;
  /** The file behind `device` (the temporary image): what the journal names the pool's device by. */
  file?: string;
  signal?: AbortSignal;
  /** Tests: a Runner standing between mkimage and zpool/zfs. */
  run?: Runner;
  /** Skip detection when the caller knows the flavour already. */
  flavour?: ZfsFlavour;
  /**
   * The caller found the name free just before (preflightPool): no second `zpool list`. A name
   * taken since is still refused, by zpool create itself, with the same PoolError.
   */
  nameCheckedFree?: boolean;
  /** Reads the vdev's label after the export (tests: what a fake ZFS wrote). Default: from the device. */
  readLabel?: (device: string) => Promise<DetectedZfsLabel | undefined>;
}

export interface BuildPoolResult {
  pool: string;
  /** The pool guid (decimal, as zpool prints it: a 64-bit number). */
  guid: string;
  flavour: ZfsFlavour;
  /** Every filesystem in the pool, root first, in `zfs list` order (each one's zfs create succeeded). */
  datasets: string[];
  snapshots: string[];
  /** The on-disk format chosen: "compatibility openzfs-2.1-linux", "pool version 23 (zfs-fuse)". */
  format: string;
}

export interface PoolPlan {
  pool: string;
  layout: DatasetLayout;
  /** Relative paths, parents before children, no duplicates. */
  datasets: string[];
  /** Relative "path@name". */
  snapshots: string[];
  zpoolOptions: Property[];
  zfsOptions: Property[];
  compatibility?: string;
  populateDir?: string;
}

/** Pure: every name and option checked, the tree in creation order. Throws UsageError (exit 2). */
/**
 * The longest name the calldown layout makes after create: a layer's snapshot,
 * POOL/storage/<sha256 in hex>@extracted (layers/store/names.ts; its temporary .tmp-<12 hex> names and
 * chain ids are no longer). A pool name that leaves it over ZFS's limit passes every check at
 * create and fails at the first `layers import` with a raw zfs error: refused up front instead.
 */
export function longestLayerName(pool: string): string {
  return `${pool}/storage/${'0'.repeat(64)}@extracted`;
}

export function planPool(r: PoolRequest): PoolPlan {
  checkPoolName(r.pool);
  const layout = r.layout ?? 'calldown';
  if (!(DATASET_LAYOUTS as readonly string[]).includes(layout)) {
    throw new UsageError(`--layout ${layout} is not one of ${DATASET_LAYOUTS.join(', ')}`, { layout });
  }
  if (layout === 'calldown') {
    const longest = Buffer.byteLength(longestLayerName(r.pool));
    if (longest > MAX_NAME_BYTES) {
      const most = MAX_NAME_BYTES - (longest - Buffer.byteLength(r.pool));
      throw new UsageError(
        `--pool ${r.pool.length > 24 ? `${r.pool.slice(0, 20)}...` : r.pool} (${Buffer.byteLength(r.pool)} bytes) is too long for --layout calldown: its layers are named POOL/storage/<64 hex digits>@extracted, ${longest} bytes, over ZFS's ${MAX_NAME_BYTES}: choose a pool name of at most ${most} bytes (or --layout dlite or none)`,
        { pool: r.pool, longestNameBytes: longest, maxPoolBytes: most },
      );
    }
  }
  const tree = LAYOUT_TREES[layout];
  const datasets: string[] = [];
  const add = (path: string) => {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (!datasets.includes(p)) datasets.push(p);
    }
  };
  for (const d of tree.datasets) add(d);
  for (const d of r.datasets ?? []) {
    checkDatasetPath(d, r.pool);
    add(d);
  }
  for (const s of tree.snapshots) checkSnapshotName(s.split('@')[1]!);
  const zpoolOptions = (r.zpoolOptions ?? []).map((t) => parseProperty(t, '--zpool-option'));
  const zfsOptions = (r.zfsOptions ?? []).map((t) => parseProperty(t, '--zfs-option'));
  for (const list of [zpoolOptions, zfsOptions]) {
    const seen = new Set<string>();
    for (const [k] of list) {
      if (seen.has(k)) throw new UsageError(`${list === zpoolOptions ? '--zpool-option' : '--zfs-option'} ${k} is given twice`, { option: k });
      seen.add(k);
    }
  }
  const mp = zfsOptions.find(([k]) => k === 'mountpoint')?.[1];
  if (mp !== undefined && mp !== 'none' && mp !== 'legacy' && !mp.startsWith('/')) {
    throw new UsageError(`--zfs-option mountpoint=${mp} must be an absolute path, none or legacy`, { mountpoint: mp });
  }
  if (r.populateDir && (mp === 'none' || mp === 'legacy')) {
    throw new UsageError(`--populate needs the pool's root mounted while building: it cannot be used with --zfs-option mountpoint=${mp}`, { mountpoint: mp });
  }
  return {
    pool: r.pool,
    layout,
    datasets,
    snapshots: [...tree.snapshots],
    zpoolOptions,
    zfsOptions,
    compatibility: r.compatibility,
    populateDir: r.populateDir,
  };
}

/**
 * What can be known before the image file is written: the plan, which ZFS runs (and that it
 * answers), that it has the options asked for, and (zfs-fuse, which cannot build under a temporary
 * name) that the pool name is free here.
 */
export async function preflightPool(r: PoolRequest, run: Runner = defaultRun, signal?: AbortSignal): Promise<{ plan: PoolPlan; flavour: ZfsFlavour; format: string }> {
  const plan = planPool(r);
  // One `zpool list`: ZFS answers, and which pools are imported (the flavour comes from the cache).
  const { flavour, pools } = await zfsHost(run, { signal });
  checkOptionsForFlavour(flavour, plan.zpoolOptions, plan.zfsOptions);
  const format = poolFormat(flavour, plan.compatibility, plan.zpoolOptions);
  if (!capabilitiesOf(flavour).tempName) assertNameFree(flavour, pools, plan.pool);
  return { plan, flavour, format: format.description };
}

/** Without a temporary in-core name (zfs-fuse) the real name must be free on this host. */
function assertNameFree(flavour: ZfsFlavour, pools: readonly PoolInfo[], pool: string): void {
  const taken = pools.find((p) => p.name === pool);
  if (taken) throw nameTaken(flavour, pool, taken.guid);
}

function nameTaken(flavour: ZfsFlavour, pool: string, guid?: string): PoolError {
  return new PoolError(
    `a pool named ${pool} is already imported on this host${guid ? ` (guid ${guid})` : ''} and ${flavour.description} cannot build a pool under a temporary name: export it (zpool export ${pool}) or choose another --pool`,
    { pool, guid },
  );
}

/** Compares dataset names as `zfs list` orders them: depth-first, children by name. */
export function datasetOrder(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  return x.length - y.length;
}

/** True when `vdevs` (zpool status paths) include `device` (same path, or same /dev name). */
export function vdevsInclude(vdevs: readonly string[], device: string): boolean {
  return vdevs.some((v) => v === device || basename(v) === basename(device));
}

/** Destroys `name` only if it is imported from `device`: never someone else's pool of that name. */
async function destroyIfOurs(zfs: Zfs, name: string, device: string): Promise<void> {
  if (!(await zfs.findPool(name))) return;
  if (!vdevsInclude(await zfs.poolVdevs(name), device)) return;
  try {
    await zfs.destroyPool(name);
  } catch (e) {
    // An export killed by the signal may still have finished meanwhile: gone is gone.
    if (await zfs.findPool(name)) throw e;
  }
}

/** Mount points at or below `dir` (from /proc/self/mounts). */
async function mountsBelow(dir: string): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/**
 * Removes the build directory and the empty mountpoint directories in it. zfs-fuse unmounts
 * through FUSE: a mount can outlive `zpool destroy`/`export` by a moment, so wait for it (never
 * removing anything that is not an empty directory).
 */
export async function removeBuildDir(dir: string, attempts = 30, pauseMs = 100): Promise<void> {
  for (let i = 0; ; i++) {
    if (await removeEmptyTree(dir)) return;
    const mounts = await mountsBelow(dir);
    if (!mounts.length || i >= attempts) {
      throw new PoolError(
        mounts.length ? `${dir} still has ${mounts.join(', ')} mounted: unmount it (zfs unmount -a / zpool export)` : `${dir} is not empty: files were written below a mountpoint while nothing was mounted there; left as it is`,
        { dir, mounts },
      );
    }
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

export async function buildPool(o: BuildPoolOptions, undo: Undo): Promise<BuildPoolResult> {
  const run = o.run ?? defaultRun;
  const signal = o.signal;
  const plan = planPool(o);
  const flavour = o.flavour ?? (await detectFlavour(run, { signal }));
  checkOptionsForFlavour(flavour, plan.zpoolOptions, plan.zfsOptions);
  const format = poolFormat(flavour, plan.compatibility, plan.zpoolOptions);
  const zfs = new Zfs(flavour, run, signal);

  // The in-core name while building: a private one where the flavour can (OpenZFS -t), so a pool
  // of the same name imported on this host is no obstacle; else the real one, which must be free.
  let inCore = plan.pool;
  if (zfs.caps.tempName) inCore = `mkimage_build_${randomHex(4)}`;
  else if (!o.nameCheckedFree) assertNameFree(flavour, await zfs.listPools(), plan.pool);
  checkAborted(signal, 'zpool create');

  const altroot = await fs.mkdtemp(join(tmpdir(), 'mkimage-zpool-'));
  const altrootUndo = undo.push(`pool build directory ${altroot}`, () => removeBuildDir(altroot), { kind: 'dir', path: altroot });
  // Pushed before `zpool create` runs: a create that fails after making the pool (zfs-fuse exits 1
  // when it cannot mount) or is killed by a signal still has its pool destroyed.
  const cleanup = zfs.forCleanup();
  const poolUndo = undo.push(`pool ${plan.pool}`, () => destroyIfOurs(cleanup, inCore, o.device), o.file ? { kind: 'pool', name: inCore, file: o.file, how: 'destroy' } : undefined);
  try {
    await zfs.zpool(
      zpoolCreateArgs(flavour, {
        pool: plan.pool,
        device: o.device,
        altroot,
        tempName: inCore === plan.pool ? undefined : inCore,
        poolOptions: [...format.options, ...plan.zpoolOptions],
        fsOptions: plan.zfsOptions,
      }),
    );
  } catch (e) {
    // Imported since the check (or never checked): the same error the check gives.
    if (inCore === plan.pool && /pool already exists/.test(String((e as ToolFailedError)?.data?.stderr ?? ''))) throw nameTaken(flavour, plan.pool);
    throw e;
  }
  // Only the leaves, each with -p: `zfs create -p tank/storage/empty` makes tank/storage too (no
  // dataset of the plan has options of its own), one process instead of one per level.
  for (const d of plan.datasets.filter((x) => !plan.datasets.some((y) => y.startsWith(`${x}/`)))) {
    checkAborted(signal, `zfs create ${plan.pool}/${d}`);
    await zfs.zfs(zfsCreateArgs(`${inCore}/${d}`, [], d.includes('/')));
  }
  for (const s of plan.snapshots) {
    checkAborted(signal, `zfs snapshot ${plan.pool}/${s}`);
    await zfs.zfs(zfsSnapshotArgs(`${inCore}/${s}`));
  }

  if (plan.populateDir) {
    checkAborted(signal, 'populate');
    const root = (await zfs.listDatasets(inCore, 'filesystem')).find((d) => d.name === inCore);
    if (!root?.mountpoint || !root.mounted) {
      throw new PoolError(`cannot populate pool ${plan.pool}: its root dataset is not mounted while building`, { pool: plan.pool });
    }
    await copyTree(plan.populateDir, root.mountpoint, signal, run);
  }

  checkAborted(signal, 'zpool export');
  await zfs.exportPool(inCore);
  // Exported: the destroy step has nothing left to do (no `zpool list` to learn what export said);
  // the build directory goes now.
  undo.forget(poolUndo);
  await undo.settle(altrootUndo);
  // What a guest will import: the exported pool's label on the vdev, read back (instead of a
  // `zpool list` while it was imported: one zfs command less, ~0.1 s on zfs-fuse).
  const label = await (o.readLabel ?? ((device) => detectZfsLabel(device, 0)))(o.device);
  if (!label || label.pool !== plan.pool || label.state !== 'exported') {
    throw new PoolError(
      `zpool create ${plan.pool} and zpool export reported success, but the device's label ${label ? `names pool ${label.pool} in state ${label.state}` : 'is not a valid ZFS label'}`,
      { pool: plan.pool, label },
    );
  }

  return {
    pool: plan.pool,
    guid: label.guid,
    flavour,
    datasets: [plan.pool, ...plan.datasets.map((d) => `${plan.pool}/${d}`)].sort(datasetOrder),
    snapshots: plan.snapshots.map((sn) => `${plan.pool}/${sn}`).sort(datasetOrder),
    format: format.description,
  };
}
