/**
 * The life of a ZFS image after `create`: attach (after a reboot, or any time), detach, destroy,
 * status. Nothing is remembered anywhere but in the image itself, so a reboot changes nothing:
 *
 *   image file --(its own MBR/GPT + PFN block)--> partition offset and size
 *              --(ZFS label in the partition)---> pool name and guid
 *   loop device found or made by (real path of the file, offset): `losetup --find`, any number
 *   `zpool import -d <that device only> -o cachefile=none -R <altroot> POOL`: no cache file on the
 *   host, the import scans nothing but this image.
 *
 * Where the datasets appear: the pool is imported with altroot = --mount DIR (default
 * /run/mkimage/pools/<pool>), so a dataset with mountpoint /tank/storage (what the guest sees)
 * is mounted at DIR/tank/storage on the host. The image itself is never changed to suit the host.
 *
 * zfs-fuse's `zpool import -d` takes a directory: mkimage makes /run/mkimage/vdev/loopN holding one
 * link to the loop device (kept while attached, so ZFS can reopen it).
 *
 * attach undoes everything it did when any step fails (loop device, import, directories), and
 * refuses before doing anything when the pool's name is in use here by another device.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidImageError, PermissionError, PoolError, ToolMissingError, UsageError, toolFailedWith, toolStderr } from '../errors.js';
import { assertNotInUse, joinDev } from '../guard/in-use.js';
import { withImageLock, type LockOptions } from '../guard/lock.js';
import { listLeftovers, recoverDeadJobs, type Leftover, type RecoveredJob } from './recover.js';
import { removeEmptyParents, removeEmptyTree } from '../file/empty-dirs.js';
import { run as defaultRun, type Runner } from '../tools/exec.js';
import { attachLoop, detachLoop, listLoops, loopsOfFile, type LoopDevice } from '../tools/losetup.js';
import { Zfs, checkPoolName, detectFlavour, parseGet, retryBusy, zfsGetArgs, zfsMountArgs, zpoolImportArgs, type DatasetInfo, type PoolInfo, type ZfsFlavour } from '../tools/zfs.js';
import { readImageHeader } from './inspect.js';
import { checkAborted, withUndo } from '../undo.js';
import { detectZfsLabel, type DetectedZfsLabel } from './zfs-detect.js';
import { formatSize } from '../layout/units.js';


export interface LifecycleOptions {
  signal?: AbortSignal;
  /** Tests: stands between mkimage and zpool/zfs/losetup/chown. */
  run?: Runner;
  flavour?: ZfsFlavour;
  /** Tests: instead of /run/mkimage (the vdev link directories and default altroots live there). */
  runtimeDir?: string;
  /** Seconds to wait for another command holding the image's lock (default 60; 0: fail at once). */
  waitSeconds?: number;
  /** Called once when the image is held by another command and this one starts waiting. */
  onWait?: LockOptions['onWait'];
}

/** The lock options of a job's options. */
function lockOptions(o: { waitSeconds?: number; onWait?: LockOptions['onWait']; signal?: AbortSignal }): LockOptions {
  return { waitSeconds: o.waitSeconds, onWait: o.onWait, signal: o.signal };
}

/** What recovery and the journal know an image by. */
async function identity(file: string): Promise<{ path: string; dev: number; ino: number }> {
  const st = await fs.stat(file);
  return { path: file, dev: st.dev, ino: st.ino };
}

/** Takes back what dead mkimage jobs left on this image or its pool name (journals, jobs/recover.ts). */
async function recoverFor(info: ImageZfsInfo, o: LifecycleOptions, flavour?: ZfsFlavour): Promise<void> {
  const id = await identity(info.file);
  await recoverDeadJobs({ image: id, paths: [info.file], pools: info.label ? [info.label.pool] : [] }, { run: o.run, flavour, runtimeDir: o.runtimeDir });
}

export interface AttachOptions extends LifecycleOptions {
  /** The pool's altroot: datasets appear below it (DIR/<pool>/...). Created if missing. */
  mount?: string;
  /** USER[:GROUP]: `chown -R` of the mounted datasets. */
  owner?: string;
  /** Import a pool that was not cleanly exported (last used by a host that did not export it). */
  force?: boolean;
  /**
   * `mount` is only the altroot to import with: an image attached already is taken wherever its
   * datasets are (the layer commands). Without it, an image attached elsewhere is refused.
   */
  mountIfDetached?: boolean;
}

export interface MountedDataset {
  dataset: string;
  mountpoint: string;
}

export interface AttachedImage {
  /** The image's real path. */
  file: string;
  loopDevice: string;
  pool: string;
  guid: string;
  health: string;
  altroot?: string;
  mountpoints: MountedDataset[];
  /** True when the image was attached already and nothing was done. */
  alreadyAttached: boolean;
  flavour: string;
}

/** The partition and pool of an image, from its own bytes. */
export interface ImageZfsInfo {
  file: string;
  partition: { offsetBytes: number; sizeBytes: number };
  label: DetectedZfsLabel | undefined;
}

/** Reads the image's headers and ZFS label. InvalidImageError when it is not an mkimage image. */
export async function readImageZfs(path: string): Promise<ImageZfsInfo> {
  let file: string;
  try {
    file = await fs.realpath(path);
  } catch (e) {
    throw new InvalidImageError(`cannot open ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path }, { cause: e });
  }
  const header = await readImageHeader(file);
  const part = header.partition;
  if (!part || !header.pfn) {
    throw new InvalidImageError(`${path} is not an mkimage image: ${!header.pfn ? 'no PFN info block at 4 KiB' : 'no partition at the PFN data offset'}`, { path });
  }
  // inspect reads the label already when it finds no other filesystem there.
  const fsFound = header.filesystem;
  const label = fsFound?.type === 'zfs' ? (fsFound as DetectedZfsLabel) : fsFound ? undefined : await detectZfsLabel(file, part.offsetBytes, part.sizeBytes);
  return { file, partition: { offsetBytes: part.offsetBytes, sizeBytes: part.sizeBytes }, label };
}

/** InvalidImageError unless the image's partition holds a ZFS label. */
function requireZfs(info: ImageZfsInfo, path: string, after = ''): DetectedZfsLabel {
  if (!info.label) {
    throw new InvalidImageError(
      `${path} holds no ZFS pool: no valid ZFS label in its partition at ${formatSize(info.partition.offsetBytes)} (attach, detach and destroy are for images made with --fs zfs)${after}`,
      { path, partitionOffsetBytes: info.partition.offsetBytes },
    );
  }
  return info.label;
}

function requireLabel(info: ImageZfsInfo, path: string): DetectedZfsLabel {
  const label = requireZfs(info, path);
  // The name comes from the image itself: a hostile image chooses it. Held to the same rules as
  // --pool before it reaches losetup, zpool or a path ("-f...", "../", shell characters).
  try {
    checkPoolName(label.pool, 'the pool name in the image\'s ZFS label');
  } catch (e) {
    throw new InvalidImageError(`${path}: ${(e as Error).message}; refusing to attach it`, { path, pool: label.pool }, { cause: e });
  }
  if (label.state === 'destroyed') {
    throw new PoolError(`pool ${label.pool} in ${path} was destroyed (zpool destroy): there is nothing to attach`, { path, pool: label.pool });
  }
  return label;
}

/** USER, USER:GROUP, numeric ids: what chown takes, nothing it could read as an option. */
export function checkOwner(owner: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?(:[A-Za-z0-9_][A-Za-z0-9_.-]*\$?)?$/.test(owner)) {
    throw new UsageError(`--owner ${JSON.stringify(owner)} is not USER or USER:GROUP (names or numeric ids)`, { owner });
  }
}

/**
 * --owner checked in full before anything runs (chown would only fail after the import): its
 * form (checkOwner), and that its user and group exist here (`getent passwd`, `getent group`).
 * Numeric ids are taken as given, as chown takes them. UsageError when one is unknown.
 */
export async function checkOwnerExists(owner: string, run: Runner = defaultRun, signal?: AbortSignal): Promise<void> {
  checkOwner(owner);
  const [user, group] = owner.split(':');
  const wanted: [string, string | undefined, string][] = [
    ['passwd', user, 'user'],
    ['group', group, 'group'],
  ];
  for (const [db, name, what] of wanted) {
    if (name === undefined || /^\d+$/.test(name)) continue;
    let found;
    try {
      found = await run('getent', [db, name], { signal, okExitCodes: [0, 2] }); // 2: no such key
    } catch (e) {
      if (e instanceof ToolMissingError) return; // no getent: chown says it later
      throw e;
    }
    if (found.exitCode === 2) {
      throw new UsageError(`--owner ${owner}: there is no ${what} ${name} on this host (getent ${db} ${name} finds none)`, { owner, [what]: name });
    }
  }
}

/** The loop devices showing exactly this image's partition. */
function loopsOf(loops: LoopDevice[], info: ImageZfsInfo): LoopDevice[] {
  return loops.filter((l) => l.backFile === info.file && l.offsetBytes === info.partition.offsetBytes);
}

/** Which of `loops` an imported pool uses (zpool status paths: /dev/loopN, or a link named loopN). */
async function poolLoop(zfs: Zfs, pool: string, loops: LoopDevice[]): Promise<LoopDevice | undefined> {
  const vdevs = await zfs.poolVdevs(pool);
  return loops.find((l) => vdevs.some((v) => basename(v) === basename(l.name)));
}

async function mountedDatasets(zfs: Zfs, pool: string): Promise<MountedDataset[]> {
  const all: DatasetInfo[] = await zfs.listDatasets(pool, 'filesystem');
  return all.filter((d) => d.mounted && d.mountpoint).map((d) => ({ dataset: d.name, mountpoint: d.mountpoint! }));
}

/** The mountpoints that are not below another one in the list (what chown -R needs). */
function topMountpoints(m: MountedDataset[]): string[] {
  const paths = [...new Set(m.map((d) => d.mountpoint))].sort();
  return paths.filter((p) => !paths.some((q) => q !== p && (q === '/' || p.startsWith(`${q}/`))));
}

function importRefusal(e: unknown, label: DetectedZfsLabel, path: string): PoolError | undefined {
  if (toolFailedWith(e, /in use from (another|other) system|last accessed by another system|potentially active|use '-f'/i)) {
    const stderr = toolStderr(e);
    return new PoolError(
      `pool ${label.pool} in ${path} was not cleanly exported (last used by host ${label.hostname ?? '?'}, hostid ${label.hostid ?? '?'}): if no other system is using the image, attach with --force`,
      { pool: label.pool, hostname: label.hostname, hostid: label.hostid, stderr },
      { cause: e },
    );
  }
  return undefined;
}

/**
 * mkdir -p. Another image's detach removes mkimage's runtime directories when they are empty (it
 * holds that image's lock, not ours): one removed between our levels is made again.
 */
async function mkdirp(dir: string): Promise<string | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fs.mkdir(dir, { recursive: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw e;
    }
  }
}

/**
 * Attaches the image, holding its lock for the whole run (guard/lock.ts); before anything: what
 * dead jobs left on it is taken back (jobs/recover.ts), another process using the file (a QEMU
 * guest) is refused unless `force`, and so is a pool whose label was not cleanly exported.
 */
export async function attachImage(path: string, o: AttachOptions = {}): Promise<AttachedImage> {
  if (o.owner !== undefined) await checkOwnerExists(o.owner, o.run ?? defaultRun, o.signal);
  await readImageZfs(path); // a missing or foreign file is refused before waiting for a lock
  return withImageLock(path, lockOptions(o), () => attachLocked(path, o));
}

/** Why a pool label that is not "exported" is refused, in words: in use elsewhere, or a crash. */
export function labelStateRefusal(path: string, label: DetectedZfsLabel): PoolError {
  const host = `${label.hostname ? `host ${label.hostname}` : 'an unknown host'}${label.hostid ? `, hostid ${label.hostid}` : ''}`;
  const why =
    label.state === 'active' || label.state === 'potentially-active'
      ? `its label says ${label.state}, last imported by ${host}: the pool is in use by another system (a running guest, another host, a copy of an attached image) or its last user crashed before exporting it`
      : `its label says ${label.state} (last used by ${host}), not exported`;
  return new PoolError(
    `cannot attach ${path}: pool ${label.pool} was not cleanly exported: ${why}; if nothing else uses the image, attach with --force; nothing was changed`,
    { path, pool: label.pool, state: label.state, hostname: label.hostname, hostid: label.hostid },
  );
}

async function attachLocked(path: string, o: AttachOptions): Promise<AttachedImage> {
  const run = o.run ?? defaultRun;
  const signal = o.signal;
  const runtime = o.runtimeDir ?? '/run/mkimage';
  let info = await readImageZfs(path);
  const altroot = o.mount !== undefined ? resolve(o.mount) : join(runtime, 'pools', requireLabel(info, path).pool);
  if (o.mount !== undefined) {
    const st = await fs.stat(altroot).catch(() => undefined);
    if (st && !st.isDirectory()) throw new UsageError(`--mount ${o.mount} exists and is not a directory`, { mount: o.mount });
  }
  const flavour = o.flavour ?? (await detectFlavour(run, { signal }));
  const zfs = new Zfs(flavour, run, signal);
  const cleanup = zfs.forCleanup();
  if (!o.force) await assertNotInUse(info.file, 'attach', { override: '--force' });
  await recoverFor(info, o, flavour);
  // Recovery may have exported the pool (its label changed): read it again.
  info = await readImageZfs(path);
  const label = requireLabel(info, path);

  // What is there already: our loop devices, and any pool with this name or guid.
  const loops = loopsOf(await listLoops(run), info);
  const pools = await zfs.listPools();
  const byName = pools.find((p) => p.name === label.pool);
  const byGuid = pools.find((p) => p.guid === label.guid);
  for (const p of [byName, byGuid]) {
    if (!p) continue;
    const ours = await poolLoop(zfs, p.name, loops);
    if (ours && p.guid === label.guid) {
      // Attached already: nothing to do, unless asked to mount it elsewhere.
      if (o.mount !== undefined && p.altroot !== altroot && !o.mountIfDetached) {
        throw new PoolError(`${path} is attached already with its datasets under ${p.altroot ?? '/'}: detach it first to mount it under ${altroot}`, { path, altroot: p.altroot });
      }
      // A half-finished attach (killed between the import and the mounts): complete it.
      await mountMissing(zfs, p.name);
      return status(zfs, info, ours, p, true);
    }
    // zfs-fuse shows devices under /dev without the /dev/.
    const vdevs = (await zfs.poolVdevs(p.name).catch(() => [] as string[])).map((v) => (v.includes('/') ? v : `/dev/${v}`));
    const where = vdevs.length ? vdevs.join(', ') : 'another device';
    throw new PoolError(
      p.name === label.pool
        ? `cannot attach ${path}: a pool named ${label.pool} is already imported on this host from ${where} (guid ${p.guid}); nothing was changed: export that pool first (zpool export ${label.pool})`
        : `cannot attach ${path}: its pool ${label.pool} (guid ${label.guid}) is already imported as ${p.name} from ${where} (a copy of this image?); nothing was changed`,
      { path, pool: label.pool, guid: label.guid, importedAs: p.name, from: vdevs },
    );
  }

  if (label.state !== 'exported' && !o.force) throw labelStateRefusal(path, label);

  const id = await identity(info.file);
  return withUndo(signal, async (undo) => {
    // The loop device: one showing exactly the partition, or a new one.
    let loop = loops.find((l) => l.sizeLimitBytes === info.partition.sizeBytes);
    if (!loop) {
      // Recorded before losetup runs: one killed (Ctrl-C) after attaching but before printing the
      // name leaves a device nobody knows. Undone: every device of the file at the partition's
      // offset that was not there before.
      const offset = info.partition.offsetBytes;
      const before = new Set((await loopsOfFile(info.file, run)).map((l) => l.name));
      undo.push(
        `loop device of ${info.file} at ${offset}`,
        async () => {
          for (const l of await loopsOfFile(info.file, run)) if (l.offsetBytes === offset && !before.has(l.name)) await detachLoop(l.name, run);
        },
        { kind: 'loop', file: info.file, offsetBytes: offset, before: [...before] },
      );
      const name = await attachLoop({ file: info.file, offsetBytes: offset, sizeLimitBytes: info.partition.sizeBytes, signal }, run);
      loop = { name, backFile: info.file, offsetBytes: offset, sizeLimitBytes: info.partition.sizeBytes, readOnly: false };
    }
    checkAborted(signal, 'loop attach');

    // What `zpool import -d` scans: the device (OpenZFS 0.8+) or a directory with a link to it.
    let search = loop.name;
    if (!zfs.caps.importDevice) {
      const dir = join(runtime, 'vdev', basename(loop.name));
      search = dir;
      await fs.rm(dir, { recursive: true, force: true });
      // The first directory made (/run/mkimage itself, or .../vdev): removed again when empty.
      const made = await mkdirp(dir);
      undo.push(
        `directory ${dir}`,
        async () => {
          await fs.rm(dir, { recursive: true, force: true });
          if (made && made !== dir) await removeEmptyParents(dirname(dir), dirname(made));
        },
        { kind: 'dir', path: dir, recursive: true },
      );
      await fs.symlink(loop.name, join(dir, basename(loop.name))).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        await mkdirp(dir); // removed by another image's detach meanwhile (it was still empty)
        await fs.symlink(loop.name, join(dir, basename(loop.name)));
      });
    }

    const made = await mkdirp(altroot);
    if (made) undo.push(`directory ${made}`, async () => void (await removeEmptyTree(made)), { kind: 'dir', path: made });
    // The mountpoint directories ZFS will make below an altroot that was there already.
    const before = new Set(await fs.readdir(altroot));
    undo.push(
      `mountpoint directories under ${altroot}`,
      async () => {
        for (const entry of await fs.readdir(altroot).catch(() => [] as string[])) {
          if (!before.has(entry)) await removeEmptyTree(join(altroot, entry));
        }
      },
      { kind: 'dir-entries', path: altroot, before: [...before] },
    );
    // Pushed before the import runs: zfs-fuse exits 1 when a dataset cannot be mounted, with the
    // pool imported all the same.
    const device = loop;
    undo.push(
      `import of pool ${label.pool}`,
      async () => {
        const p = await cleanup.findPool(label.pool);
        if (p && p.guid === label.guid && (await poolLoop(cleanup, p.name, [device]))) await cleanup.exportPool(label.pool);
      },
      { kind: 'pool', name: label.pool, guid: label.guid, file: info.file, how: 'export' },
    );
    try {
      await zfs.zpool(zpoolImportArgs(flavour, { pool: label.pool, search, altroot, force: o.force }));
    } catch (e) {
      throw importRefusal(e, label, path) ?? e;
    }
    const imported = await zfs.findPool(label.pool);
    if (!imported || imported.guid !== label.guid) {
      throw new PoolError(`zpool import ${label.pool} reported success but the pool with guid ${label.guid} is not imported`, { pool: label.pool, guid: label.guid });
    }
    checkAborted(signal, 'zpool import');

    if (o.owner !== undefined) {
      const tops = topMountpoints(await mountedDatasets(zfs, label.pool));
      if (tops.length) await run('chown', ['-R', '--', o.owner, ...tops], { signal });
    }
    const result = await status(zfs, info, device, imported, false);
    undo.commit();
    return result;
  }, { journal: { image: id, pools: [label.pool] } });
}

/**
 * Mounts the datasets of an imported pool that should be mounted and are not (canmount=on, a
 * mountpoint path): what a killed attach left between `zpool import` and its mounts.
 */
async function mountMissing(zfs: Zfs, pool: string): Promise<void> {
  const all = await zfs.listDatasets(pool, 'filesystem');
  const missing = all.filter((d) => !d.mounted && d.mountpoint?.startsWith('/'));
  if (!missing.length) return;
  const props = parseGet((await zfs.zfs(zfsGetArgs(['canmount'], missing.map((d) => d.name)))).stdout);
  for (const d of missing) {
    if (props.get(d.name)?.canmount !== 'on') continue;
    await retryBusy(() => zfs.zfs(zfsMountArgs(d.name)));
  }
}

async function status(zfs: Zfs, info: ImageZfsInfo, loop: LoopDevice, pool: PoolInfo, alreadyAttached: boolean): Promise<AttachedImage> {
  return {
    file: info.file,
    loopDevice: loop.name,
    pool: pool.name,
    guid: pool.guid,
    health: pool.health,
    altroot: pool.altroot,
    mountpoints: await mountedDatasets(zfs, pool.name),
    alreadyAttached,
    flavour: zfs.flavour.description,
  };
}

export interface DetachResult {
  file: string;
  pool?: string;
  /** The pool was imported from this image and is exported now. */
  exported: boolean;
  loopDevices: string[];
  /** Nothing of this image was attached. */
  wasAttached: boolean;
}

/** Exports or destroys an imported pool, then removes the mountpoint directories ZFS made. */
async function teardownPool(zfs: Zfs, p: PoolInfo, runtime: string, how: 'export' | 'destroy'): Promise<void> {
  const mounts = await mountedDatasets(zfs, p.name);
  try {
    if (how === 'export') await zfs.exportPool(p.name);
    else await zfs.destroyPool(p.name);
  } catch (e) {
    if (toolFailedWith(e, /busy/i)) {
      const stderr = toolStderr(e);
      const top = topMountpoints(mounts)[0];
      throw new PoolError(
        `cannot ${how} pool ${p.name}: it is busy (a process has files open${top ? ` under ${top}: fuser -vm ${top} shows which` : ''}): close them and try again; nothing was detached`,
        { pool: p.name, stderr },
        { cause: e },
      );
    }
    throw e;
  }
  // The directories ZFS made for the mountpoints, deepest first, and their parents up to the
  // altroot (empty ones only; the altroot itself only when it is mkimage's default).
  const stop = p.altroot ?? '/';
  for (const m of [...mounts].sort((a, b) => b.mountpoint.length - a.mountpoint.length)) {
    await removeEmptyParents(m.mountpoint, stop);
  }
  if (p.altroot?.startsWith(`${runtime}/pools/`)) await removeEmptyTree(p.altroot);
}

/** Detaches the loop devices and their vdev link directories; mkimage's runtime directories when empty. */
async function detachLoops(loops: readonly LoopDevice[], runtime: string, run: Runner): Promise<void> {
  for (const l of loops) {
    await detachLoop(l.name, run);
    await fs.rm(join(runtime, 'vdev', basename(l.name)), { recursive: true, force: true });
  }
  for (const d of [join(runtime, 'vdev'), join(runtime, 'pools'), runtime]) await fs.rmdir(d).catch(() => undefined);
}

/** Tears down what attach made, in reverse: mounts and import (zpool export), directories, loop devices. */
async function teardown(
  zfs: Zfs,
  info: ImageZfsInfo,
  runtime: string,
  run: Runner,
  how: 'export' | 'destroy',
): Promise<{ pool?: string; done: boolean; loopDevices: string[] }> {
  const loops = loopsOf(await listLoops(run), info);
  const label = info.label;
  let done = false;
  let pool: string | undefined;
  if (label) {
    const p = await zfs.findPool(label.pool);
    if (p && p.guid === label.guid && (await poolLoop(zfs, p.name, loops))) {
      await teardownPool(zfs, p, runtime, how);
      done = true;
      pool = p.name;
    }
  }
  await detachLoops(loops, runtime, run);
  return { pool, done, loopDevices: loops.map((l) => l.name) };
}

export async function detachImage(path: string, o: LifecycleOptions = {}): Promise<DetachResult> {
  await readImageZfs(path);
  return withImageLock(path, lockOptions(o), async () => {
    const run = o.run ?? defaultRun;
    const info = await readImageZfs(path);
    const runtime = o.runtimeDir ?? '/run/mkimage';
    await recoverFor(info, o, o.flavour);
    const loops = loopsOf(await listLoops(run), info);
    if (!loops.length) return { file: info.file, pool: info.label?.pool, exported: false, loopDevices: [], wasAttached: false };
    const flavour = o.flavour ?? (await detectFlavour(run, { signal: o.signal }));
    const zfs = new Zfs(flavour, run).forCleanup();
    const t = await teardown(zfs, info, runtime, run, 'export');
    return { file: info.file, pool: t.pool ?? info.label?.pool, exported: t.done, loopDevices: t.loopDevices, wasAttached: true };
  });
}

export interface DestroyResult {
  file: string;
  pool?: string;
  /** The pool was imported from this image and is destroyed now (zpool destroy). */
  poolDestroyed: boolean;
  loopDevices: string[];
  removed: boolean;
}

/**
 * Pool destroyed (when attached), loop devices detached, file removed. Needs `yes`. Never acts
 * on an image another process has open or mapped (a running guest): BusyError, whatever `yes`.
 */
export async function destroyImage(path: string, o: LifecycleOptions & { yes?: boolean } = {}): Promise<DestroyResult> {
  if (!o.yes) throw new UsageError(`destroy deletes ${path} and the pool in it for good: pass --yes to confirm`, { path });
  // An ext4 or xfs image is no business of destroy's, whatever --yes says.
  requireZfs(await readImageZfs(path), path, '; it was left untouched');
  return withImageLock(path, lockOptions(o), async () => {
    const run = o.run ?? defaultRun;
    const info = await readImageZfs(path);
    requireZfs(info, path, '; it was left untouched');
    await assertNotInUse(info.file, 'destroy');
    await recoverFor(info, o, o.flavour);
    const runtime = o.runtimeDir ?? '/run/mkimage';
    const loops = loopsOf(await listLoops(run), info);
    let t: { pool?: string; done: boolean; loopDevices: string[] } = { done: false, loopDevices: [] };
    if (loops.length) {
      const flavour = o.flavour ?? (await detectFlavour(run, { signal: o.signal }));
      t = await teardown(new Zfs(flavour, run).forCleanup(), info, runtime, run, 'destroy');
    }
    await fs.rm(info.file);
    return { file: info.file, pool: info.label?.pool, poolDestroyed: t.done, loopDevices: t.loopDevices, removed: true };
  });
}

/** An imported pool on loop devices of one file: what `--pool NAME` acts on. */
interface PoolAttachment {
  zfs: Zfs;
  pool: PoolInfo;
  loops: LoopDevice[];
  /** The backing file as the loop device names it: its path now, or "PATH (deleted)". */
  file: string;
  deleted: boolean;
  identity?: { dev: number; ino: number };
}

async function poolAttachment(name: string, o: LifecycleOptions): Promise<PoolAttachment> {
  const run = o.run ?? defaultRun;
  checkPoolName(name);
  const flavour = o.flavour ?? (await detectFlavour(run, { signal: o.signal }));
  const zfs = new Zfs(flavour, run).forCleanup();
  const pool = await zfs.findPool(name);
  if (!pool) throw new PoolError(`no pool named ${name} is imported on this host: nothing to do`, { pool: name });
  const vdevs = (await zfs.poolVdevs(name)).map((v) => basename(v));
  const loops = (await listLoops(run)).filter((l) => vdevs.includes(basename(l.name)));
  if (!loops.length || new Set(loops.map((l) => l.backFile)).size !== 1) {
    throw new PoolError(
      `pool ${name} is not imported from the loop device of one image file (its devices: ${vdevs.join(', ') || 'none'}): it is not an mkimage attachment; use zpool export ${name}`,
      { pool: name, vdevs },
    );
  }
  const l = loops[0]!;
  const deleted = l.backFile.endsWith(' (deleted)');
  const identity = l.backIno !== undefined && l.backMajor !== undefined ? { dev: joinDev(l.backMajor, l.backMinor ?? 0), ino: l.backIno } : undefined;
  return { zfs, pool, loops, file: l.backFile, deleted, identity };
}

/**
 * `detach --pool NAME`: exports a pool imported from an image's loop device and detaches it,
 * also when the image was moved or deleted meanwhile (its loop device shows "(deleted)").
 */
export async function detachPool(name: string, o: LifecycleOptions = {}): Promise<DetachResult> {
  const a = await poolAttachment(name, o);
  return withImageLock(a.file, { ...lockOptions(o), identity: a.identity }, async () => {
    const run = o.run ?? defaultRun;
    const runtime = o.runtimeDir ?? '/run/mkimage';
    const b = await poolAttachment(name, o);
    await teardownPool(b.zfs, b.pool, runtime, 'export');
    await detachLoops(b.loops, runtime, run);
    return { file: b.file, pool: name, exported: true, loopDevices: b.loops.map((l) => l.name), wasAttached: true };
  });
}

/**
 * `destroy --pool NAME --yes`: destroys a pool imported from an image's loop device, detaches it,
 * and removes the image file if it is still there (moved: at its new path; deleted: nothing).
 */
export async function destroyPoolByName(name: string, o: LifecycleOptions & { yes?: boolean } = {}): Promise<DestroyResult> {
  if (!o.yes) throw new UsageError(`destroy --pool ${name} destroys the pool and its image for good: pass --yes to confirm`, { pool: name });
  const a = await poolAttachment(name, o);
  return withImageLock(a.file, { ...lockOptions(o), identity: a.identity }, async () => {
    const run = o.run ?? defaultRun;
    const runtime = o.runtimeDir ?? '/run/mkimage';
    const b = await poolAttachment(name, o);
    const st = b.deleted ? undefined : await fs.stat(b.file).catch(() => undefined);
    const present = !!st && st.isFile() && (!b.identity || (st.dev === b.identity.dev && st.ino === b.identity.ino));
    if (present) await assertNotInUse(b.file, 'destroy');
    await teardownPool(b.zfs, b.pool, runtime, 'destroy');
    await detachLoops(b.loops, runtime, run);
    if (present) await fs.rm(b.file);
    return { file: b.file, pool: name, poolDestroyed: true, loopDevices: b.loops.map((l) => l.name), removed: present };
  });
}

export interface ImageStatus {
  /** The image's path now (a renamed image: its new name), or "PATH (deleted)". */
  file: string;
  /** The file was deleted (or moved to another filesystem) while attached: free it with detach --pool. */
  deleted?: boolean;
  loopDevice: string;
  offsetBytes: number;
  sizeLimitBytes: number;
  pool?: string;
  guid?: string;
  health?: string;
  altroot?: string;
  mountpoints: MountedDataset[];
}

export interface StatusReport {
  /**
   * Which ZFS answered, in create's form: `flavour` is "zfs-fuse 0.7.0 (pool version 23)" or
   * "openzfs 2.1.5"; when ZFS could not be asked (daemon down, no module) `flavour` is absent and
   * `error` says why, and the images' pools are unknown (not "none").
   */
  zfs: { flavour?: string; error?: string };
  images: ImageStatus[];
  /** What killed mkimage jobs left (their journals): removed by `status --clean` or the next command on it. */
  leftovers: Leftover[];
  /** With `clean`: what was removed (a step that failed is listed with its error and kept). */
  cleaned?: RecoveredJob[];
}

/**
 * The images attached on this host: every loop device showing the partition of an mkimage image,
 * and every loop device of a deleted file that a pool is imported from (an image deleted or moved
 * to another filesystem while attached). `clean`: first take back what dead jobs left.
 */
export async function statusImages(o: LifecycleOptions & { clean?: boolean } = {}): Promise<StatusReport> {
  const run = o.run ?? defaultRun;
  const cleaned = o.clean ? await cleanLeftovers(o) : undefined;
  const images: ImageStatus[] = [];
  const deleted: LoopDevice[] = [];
  for (const l of await listLoops(run)) {
    if (!l.backFile) continue;
    if (l.backFile.endsWith(' (deleted)')) {
      deleted.push(l);
      continue;
    }
    const header = await readImageHeader(l.backFile).catch(() => undefined);
    if (!header?.pfn || header.partition?.offsetBytes !== l.offsetBytes) continue;
    images.push({ file: l.backFile, loopDevice: l.name, offsetBytes: l.offsetBytes, sizeLimitBytes: l.sizeLimitBytes, mountpoints: [] });
  }
  const zfsState: StatusReport['zfs'] = {};
  try {
    const flavour = o.flavour ?? (await detectFlavour(run, { signal: o.signal }));
    zfsState.flavour = flavour.description;
    const zfs = new Zfs(flavour, run, o.signal);
    for (const p of await zfs.listPools()) {
      const vdevs = (await zfs.poolVdevs(p.name).catch(() => [] as string[])).map((v) => basename(v));
      let img = images.find((i) => vdevs.includes(basename(i.loopDevice)));
      if (!img) {
        const gone = deleted.find((l) => vdevs.includes(basename(l.name)));
        if (!gone) continue;
        img = { file: gone.backFile, deleted: true, loopDevice: gone.name, offsetBytes: gone.offsetBytes, sizeLimitBytes: gone.sizeLimitBytes, mountpoints: [] };
        images.push(img);
      }
      Object.assign(img, { pool: p.name, guid: p.guid, health: p.health, altroot: p.altroot, mountpoints: await mountedDatasets(zfs, p.name).catch(() => []) });
    }
  } catch (e) {
    // As an ordinary user ZFS cannot be asked at all: say it needs root rather than list every
    // image as having no pool (its pool may well be imported).
    if (e instanceof PermissionError) throw e;
    zfsState.error = (e as Error).message;
  }
  return { zfs: zfsState, images, leftovers: listLeftovers(), ...(cleaned ? { cleaned } : {}) };
}

/**
 * `status --clean`: what every dead job left, taken back, each under the lock of the image (or
 * target path) it worked on, so that no live command meets it half-removed.
 */
export async function cleanLeftovers(o: LifecycleOptions = {}): Promise<RecoveredJob[]> {
  const out: RecoveredJob[] = [];
  for (const left of listLeftovers()) {
    const path = left.image ?? left.target;
    const scope = { paths: [left.image, left.target].filter((x): x is string => !!x), pools: left.pools };
    const recover = () => recoverDeadJobs(left.image || left.target ? scope : 'all', { run: o.run, flavour: o.flavour, runtimeDir: o.runtimeDir });
    out.push(...(path ? await withImageLock(path, lockOptions(o), recover) : await recover()));
  }
  return out;
}
