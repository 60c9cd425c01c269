/**
 * resize: grow an image in place (`mkimage resize IMAGE --size SIZE|+DELTA`). Never shrinks.
 *
 * The image is read back into the plan type create writes from: its headers give the table, the
 * memmap mode, the data offset and every id (MBR disk signature, GPT disk and partition GUIDs,
 * partition name and type, PFN uuid); a new size gives a new plan and new header bytes with the
 * same ids. The partition keeps its start, so the filesystem never moves.
 *
 * Write order. Every state between two steps is an image a host and a guest accept, of the old
 * size or of the new one, and `resize` run again finishes the job from any of them:
 *
 *   1 reserve   (preallocated images) fallocate --keep-size of the new bytes past the end of the
 *               file: blocks reserved, the file's size unchanged. Old image, exactly.
 *   2 grow      ftruncate to the new size (the new bytes read as zeros), then the new backup GPT
 *               at the new end (GPT), fsync. The headers still describe the old size and are
 *               valid: the MBR's partition, the primary GPT and its backup (still at the old end,
 *               where the primary points), the PFN block. Only `inspect` tells: "run resize".
 *   3 headers   the primary GPT header and entries (or the MBR) and the PFN block (npfns), fsync:
 *               the partition and the guest's /dev/pmem0 are the new size. The filesystem is
 *               still the old size inside a larger partition: valid, `inspect` says ok.
 *               Then the old backup GPT, now inside the partition past the filesystem's end, is
 *               zeroed (new bytes are zero) and synced.
 *   4 fs        the filesystem grows into the partition: ext4 with e2fsck -f -p and resize2fs on
 *               a loop device of the partition, with the size in blocks (not on IMG?offset=:
 *               resize2fs then truncates the file, see tools/e2fs.ts); xfs with xfs_growfs on
 *               a temporary mount of a loop device of the partition; a pool by importing it from
 *               a loop device of the new partition and `zpool online -e`. fsync.
 *
 * A signal (SIGINT/SIGTERM) before step 3 takes the file back to its old size; from step 3 on the
 * new headers stay and the job stops at the next step boundary: resize2fs, xfs_growfs and zpool
 * are never killed half-way (they get no abort signal), only what was attached for them (loop
 * device, mount, import) is undone. A kill -9 or a power cut leaves one of the states above (a
 * power cut in step 2 can lose the backup GPT written there: the primary describes the old size
 * and its own backup is intact, so nothing is lost).
 *
 * --memmap pmem images keep their struct pages at the front of the device: the data offset the
 * kernel needs grows with the size. The partition cannot move under the filesystem, so growing is
 * refused past what the image's data offset holds (create --max-size reserves room for later).
 */
import { constants, promises as fs } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidImageError, MkimageError, NoSpaceError, PermissionError, ToolMissingError, UsageError, type Problem } from '../errors.js';
import { freeBytes, fsyncFile, writeAt } from '../file/image-file.js';
import { buildHeader, type HeaderIds, type HeaderWrite } from '../layout/header.js';
import { GPT_ENTRY_ARRAY_SECTORS } from '../layout/gpt.js';
import { planLayout, pmemMaxSizeBytes, type FsType, type LayoutPlan } from '../layout/plan.js';
import { DAX_ALIGN_BYTES, SECTOR_BYTES, alignUp, formatSize } from '../layout/units.js';
import { TOOL_PACKAGES, hasTool, run as defaultRun, type Runner } from '../tools/exec.js';
import { e2fsckPreen, resize2fs } from '../tools/e2fs.js';
import { fallocate } from '../tools/fallocate.js';
import { attachLoop, detachLoop, loopsOfFile } from '../tools/losetup.js';
import { mount, umount } from '../tools/mount.js';
import { xfsGrowfs } from '../tools/xfs-growfs.js';
import { Zfs, detectFlavour, zpoolOnlineExpandArgs } from '../tools/zfs.js';
import { assertNotInUse } from '../guard/in-use.js';
import { withImageLock, type LockOptions } from '../guard/lock.js';
import { recoverDeadJobs } from './recover.js';
import { phaseClock } from './phases.js';
import { checkAborted, withUndo, type Undo } from '../undo.js';
import { readImageHeader, type ImageReport } from './inspect.js';

/** What the user asked for: a size, or a growth (+DELTA) over the file's current size. */
export type ResizeRequest = { sizeBytes: number } | { deltaBytes: number };

export interface ResizeOptions {
  path: string;
  size: ResizeRequest;
  /** true: grow sparse; false: preallocate the new bytes; undefined: as the image was made. */
  sparse?: boolean;
  /** Round the new size up to this (default 2 MiB). */
  alignBytes?: number;
  /** Seconds to wait for another mkimage command on this image (default 60). */
  waitSeconds?: number;
  /** Called once when another command holds the image and this one starts to wait. */
  onWait?: LockOptions['onWait'];
  signal?: AbortSignal;
  onProgress?: (event: { phase: string; message: string }) => void;
  /** Tests: stands between mkimage and its tools. */
  run?: Runner;
}

export interface ResizeResult {
  path: string;
  /** The image's size before (as its headers described it) and now. */
  oldSizeBytes: number;
  sizeBytes: number;
  /** The file's size when the job began (larger than oldSizeBytes after an interrupted resize). */
  fileSizeBytes: number;
  roundedUpBytes: number;
  sparse: boolean;
  fs: FsType;
  table: 'mbr' | 'gpt';
  memmap: 'ram' | 'pmem';
  partition: { offsetBytes: number; oldSizeBytes: number; sizeBytes: number };
  pmemSizeBytes: number;
  /** The filesystem's size before and after (pool: as zpool list says it). */
  filesystem: { type: FsType; oldSizeBytes?: number; sizeBytes?: number; size?: string; grown: boolean };
  /** Steps done by this run: reserve, grow, headers, fs. Nothing at all: the image had the size. */
  steps: string[];
  allocatedBytes: number;
  timings: Record<string, number>;
}

/** Which filesystem resize grows, from what inspect found in the partition. */
function fsOf(report: ImageReport): FsType {
  const t = report.filesystem?.type;
  return t === 'ext4' || t === 'xfs' || t === 'zfs' ? t : 'none';
}

/**
 * The problems resize can mend: the file's size against its headers (a grown file, an interrupted
 * resize). Anything else (a broken PFN block, a GPT with a bad CRC) is not resize's to fix.
 */
function unmendable(problems: Problem[]): Problem[] {
  return problems.filter((p) => p.field !== 'size');
}

/** The ids the image carries: resize writes them back unchanged. */
export function idsOf(report: ImageReport): HeaderIds {
  const part = report.partition!;
  return {
    pfnUuid: report.pfn!.uuid,
    diskSignature: report.table.diskSignature ? Number.parseInt(report.table.diskSignature, 16) : 0,
    diskGuid: report.table.diskGuid ?? '00000000-0000-0000-0000-000000000000',
    partitionGuid: part.uuid ?? '00000000-0000-0000-0000-000000000000',
    partitionName: part.name ?? 'mkimage',
  };
}

export interface ResizePlan {
  /** The size the headers describe now. */
  oldSizeBytes: number;
  fileSizeBytes: number;
  plan: LayoutPlan;
  /** What rounding up to the alignment added to the request. */
  roundedUpBytes: number;
  ids: HeaderIds;
  headerWrites: HeaderWrite[];
  /** GPT: where the old backup (entries and header) lies, to be zeroed once the new one is written. */
  oldBackup?: { offsetBytes: number; lengthBytes: number };
}

/**
 * From an image's report and the request to the new plan and header bytes. Pure. UsageError for a
 * shrink, an impossible size, or a --memmap pmem image whose data offset cannot hold the new size.
 */
export function planResize(report: ImageReport, request: ResizeRequest, alignBytes = DAX_ALIGN_BYTES): ResizePlan {
  const path = report.path;
  const bad = unmendable(report.problems);
  if (bad.length || !report.pfn || !report.partition || report.table.type === 'none') {
    const why = bad.length ? bad.map((p) => `${p.field}: ${p.message}`).join('; ') : !report.pfn ? 'no PFN info block' : 'no partition at the PFN data offset';
    throw new InvalidImageError(`cannot resize ${path}: it is not a valid mkimage image (${why}); mkimage inspect ${path} says more`, { path, problems: bad });
  }
  const fileSizeBytes = report.sizeBytes;
  const oldSizeBytes = report.describedSizeBytes ?? fileSizeBytes;
  const wanted = 'sizeBytes' in request ? request.sizeBytes : fileSizeBytes + request.deltaBytes;
  if ('deltaBytes' in request && (!Number.isSafeInteger(request.deltaBytes) || request.deltaBytes <= 0)) {
    throw new UsageError(`+${request.deltaBytes}: the growth must be a positive size (resize never shrinks)`, { deltaBytes: request.deltaBytes });
  }
  if (!Number.isSafeInteger(wanted) || wanted <= 0) throw new UsageError(`size ${wanted} must be a positive whole number of bytes`, { sizeBytes: wanted });
  const sizeBytes = alignUp(wanted, alignBytes);
  const floor = Math.max(fileSizeBytes, oldSizeBytes);
  if (sizeBytes < floor) {
    throw new UsageError(
      `${path} is ${floor} bytes (${formatSize(floor)}): shrinking to ${sizeBytes} bytes (${formatSize(sizeBytes)}) is not supported; resize only grows (give a size of at least ${floor})`,
      { path, sizeBytes: floor, requestedBytes: sizeBytes },
    );
  }
  const memmap = report.pfn.mode === 'pmem' ? 'pmem' : 'ram';
  const table = report.table.type;
  const fsType = fsOf(report);
  let plan: LayoutPlan;
  try {
    plan = planLayout({ sizeBytes, fs: fsType, memmap, table, imageAlignBytes: alignBytes, dataOffBytes: report.pfn.dataOffBytes });
  } catch (e) {
    if (e instanceof UsageError && memmap === 'pmem' && e.data.neededDataOffBytes !== undefined) {
      const max = pmemMaxSizeBytes(report.pfn.dataOffBytes);
      throw new UsageError(
        `cannot grow ${path} to ${formatSize(sizeBytes)}: it keeps its struct pages on the device (--memmap pmem), and its data offset of ${formatSize(report.pfn.dataOffBytes)} holds them for at most ${formatSize(max)}; the partition cannot move under the filesystem. Make a new image (create --max-size reserves room to grow)`,
        { path, sizeBytes, maxSizeBytes: max, dataOffBytes: report.pfn.dataOffBytes },
      );
    }
    throw e;
  }
  if (plan.partition.offsetBytes !== report.partition.offsetBytes) {
    throw new InvalidImageError(`cannot resize ${path}: its partition starts at ${report.partition.offsetBytes}, not at the data offset`, { path });
  }
  // The partition's type as the image has it (a GUID or an MBR type byte), not as create would choose.
  if (table === 'gpt') plan.partition.gptTypeGuid = report.partition.type;
  else plan.partition.mbrType = Number.parseInt(report.partition.type, 16);
  const ids = idsOf(report);
  const headerWrites = buildHeader(plan, ids);
  let oldBackup: ResizePlan['oldBackup'];
  if (table === 'gpt' && oldSizeBytes < sizeBytes) {
    const lastLba = oldSizeBytes / SECTOR_BYTES - 1;
    oldBackup = { offsetBytes: (lastLba - GPT_ENTRY_ARRAY_SECTORS) * SECTOR_BYTES, lengthBytes: (GPT_ENTRY_ARRAY_SECTORS + 1) * SECTOR_BYTES };
  }
  return { oldSizeBytes, fileSizeBytes, plan, roundedUpBytes: sizeBytes - wanted, ids, headerWrites, oldBackup };
}

/** Preallocated as made: at least 99% of the file's bytes are allocated (fs metadata may free a few). */
function looksPreallocated(report: ImageReport): boolean {
  return report.allocatedBytes >= report.sizeBytes * 0.99;
}

async function preflight(o: ResizeOptions, rp: ResizePlan, fsType: FsType, sparse: boolean, growsFs: boolean): Promise<void> {
  if (growsFs && process.getuid?.() !== 0) {
    throw new PermissionError(
      `growing ${fsType === 'ext4' ? 'an ext4 filesystem runs resize2fs on' : fsType === 'xfs' ? 'an xfs filesystem mounts' : 'a pool imports'} a loop device of the partition, which needs root: run mkimage resize as root (nothing was changed)`,
      { fs: fsType },
    );
  }
  try {
    await fs.access(o.path, constants.W_OK);
  } catch {
    throw new PermissionError(`cannot resize ${o.path}: no write permission on it (nothing was changed)`, { path: o.path });
  }
  const tools = [
    ...(!sparse && rp.plan.sizeBytes > rp.fileSizeBytes ? ['fallocate'] : []),
    ...(growsFs && fsType === 'ext4' ? ['losetup', 'e2fsck', 'resize2fs'] : []),
    ...(growsFs && fsType === 'xfs' ? ['losetup', 'mount', 'umount', 'xfs_growfs'] : []),
    ...(growsFs && fsType === 'zfs' ? ['losetup', 'zpool', 'zfs'] : []),
  ];
  for (const tool of tools) {
    if (!(await hasTool(tool))) {
      throw new ToolMissingError(`${tool} is not installed or not on PATH: install the Debian package ${TOOL_PACKAGES[tool] ?? tool} (nothing was changed)`, { tool, package: TOOL_PACKAGES[tool] });
    }
  }
  if (!sparse) {
    const need = rp.plan.sizeBytes - rp.fileSizeBytes;
    const dir = dirname(resolve(o.path));
    const free = await freeBytes(dir);
    if (need > free) {
      throw new NoSpaceError(
        `not enough space to preallocate ${formatSize(need)} more for ${o.path} in ${dir}: ${formatSize(free)} free (use --sparse to grow it thin; nothing was changed)`,
        { neededBytes: need, freeBytes: free, dir },
      );
    }
  }
}

/** The filesystem's size now, and whether it fills the partition. */
async function fsState(path: string, fsType: FsType, plan: LayoutPlan): Promise<{ sizeBytes?: number; full: boolean }> {
  if (fsType === 'ext4' || fsType === 'xfs') {
    const r = await readImageHeader(path);
    const f = r.filesystem;
    const sizeBytes = f && f.type !== 'zfs' ? f.sizeBytes : undefined;
    return { sizeBytes, full: sizeBytes !== undefined && sizeBytes >= plan.fsSizeBytes };
  }
  // A pool: whether it grew is only known by importing it; growing twice costs an import.
  return { full: fsType === 'none' };
}

async function detachLoopsAt(file: string, offsetBytes: number, before: Set<string>, run: Runner): Promise<void> {
  for (const l of await loopsOfFile(file, run)) if (l.offsetBytes === offsetBytes && !before.has(l.name)) await detachLoop(l.name, run);
}

async function umountIfMounted(dir: string, run: Runner): Promise<void> {
  const [here, parent] = await Promise.all([fs.stat(dir), fs.stat(dirname(dir))]);
  if (here.dev !== parent.dev) await umount(dir, run);
}

/** A loop device of the new partition for the duration of `body`; undone however it ends. */
async function withPartitionLoop(file: string, plan: LayoutPlan, undo: Undo, run: Runner, signal: AbortSignal | undefined, body: (device: string) => Promise<void>): Promise<void> {
  const offset = plan.partition.offsetBytes;
  const before = new Set((await loopsOfFile(file, run)).map((l) => l.name));
  const loopUndo = undo.push(`loop device of ${file} at ${offset}`, () => detachLoopsAt(file, offset, before, run), { kind: 'loop', file, offsetBytes: offset, before: [...before] });
  const device = await attachLoop({ file, offsetBytes: offset, sizeLimitBytes: plan.fsSizeBytes, signal }, run);
  checkAborted(signal, 'loop attach');
  await body(device);
  await undo.settle(loopUndo);
}

async function growExt4(file: string, plan: LayoutPlan, undo: Undo, run: Runner, signal?: AbortSignal): Promise<void> {
  await withPartitionLoop(file, plan, undo, run, signal, async (device) => {
    await e2fsckPreen(device, signal, run);
    checkAborted(signal, 'e2fsck');
    await resize2fs(device, plan.fsSizeBytes, run);
  });
}

async function growXfs(file: string, plan: LayoutPlan, undo: Undo, run: Runner, signal?: AbortSignal): Promise<void> {
  await withPartitionLoop(file, plan, undo, run, signal, async (device) => {
    const dir = await fs.mkdtemp(`${dirname(file)}/.mkimage-mnt-`);
    const dirUndo = undo.push(`mount point ${dir}`, () => fs.rmdir(dir), { kind: 'dir', path: dir });
    const mountUndo = undo.push(`mount ${dir}`, () => umountIfMounted(dir, run), { kind: 'mount', path: dir });
    await mount(device, dir, 'xfs', [], signal, run);
    checkAborted(signal, 'mount');
    await xfsGrowfs(dir, run);
    await undo.settle(mountUndo);
    await undo.settle(dirUndo);
  });
}

/**
 * A pool grows by being imported from a loop device of the new partition (a loop device's size
 * limit cannot change once set: `losetup -c` keeps it) and `zpool online -e` of its vdev. An image
 * attached already is detached first and attached again after, where it was.
 */
async function growPool(file: string, undo: Undo, run: Runner, signal?: AbortSignal): Promise<string | undefined> {
  const { attachImage, detachImage } = await import('./attach.js');
  const flavour = await detectFlavour(run, { signal });
  const attachUndo = undo.push(`pool import from ${file}`, async () => void (await detachImage(file, { run, flavour })));
  const attached = await attachImage(file, { run, flavour, signal });
  const zfs = new Zfs(flavour, run);
  for (const vdev of await zfs.poolVdevs(attached.pool)) await zfs.zpool(zpoolOnlineExpandArgs(attached.pool, vdev));
  const size = (await zfs.zpool(['list', '-H', '-o', 'size', attached.pool])).stdout.trim();
  await undo.settle(attachUndo);
  return size;
}

/** What attach left of the image (an imported pool): detached for the resize, attached again after. */
async function attachedPool(file: string, run: Runner, signal?: AbortSignal): Promise<{ altroot?: string } | undefined> {
  const { statusImages } = await import('./attach.js');
  if (!(await loopsOfFile(file, run)).length) return undefined;
  const st = await statusImages({ run, signal });
  const img = st.images.find((i) => i.file === file && i.pool);
  return img ? { altroot: img.altroot } : undefined;
}

export async function resizeImage(o: ResizeOptions): Promise<ResizeResult> {
  const run = o.run ?? defaultRun;
  const clock = phaseClock(o.signal, o.onProgress);
  const phase = clock.phase;

  let file: string;
  try {
    file = await fs.realpath(o.path);
  } catch (e) {
    throw new InvalidImageError(`cannot open ${o.path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path: o.path }, { cause: e });
  }
  return withImageLock(file, { waitSeconds: o.waitSeconds, onWait: o.onWait, command: `mkimage resize ${o.path}`, signal: o.signal }, async () => {
    // As every job that changes an image: what a killed command left on it first, then nobody
    // else may have it open or mapped (a running guest's memory backend).
    const identity = await fs.stat(file);
    await recoverDeadJobs({ image: { dev: identity.dev, ino: identity.ino }, paths: [file], pools: [] }, { run });
    await assertNotInUse(file, 'resize');
    const report = await readImageHeader(file);
    report.path = o.path;
    const rp = planResize(report, o.size, o.alignBytes);
    const { plan } = rp;
    const fsType = plan.fs;
    const sparse = o.sparse ?? !looksPreallocated(report);
    const oldFs = await fsState(file, fsType, plan);
    const growsFile = plan.sizeBytes > rp.fileSizeBytes;
    const writesHeaders = growsFile || rp.oldSizeBytes !== plan.sizeBytes;
    const growsFs = fsType !== 'none' && (writesHeaders || !oldFs.full);
    await preflight(o, rp, fsType, sparse, growsFs);
    const steps: string[] = [];
    let poolSize: string | undefined;
    const attached = growsFs && fsType === 'zfs' ? await attachedPool(file, run, o.signal) : undefined;
    // resize2fs and xfs_growfs through a second device under a mounted filesystem would corrupt it.
    const loops = attached ? [] : await loopsOfFile(file, run);
    if (loops.length) {
      throw new UsageError(
        `${o.path} is in use: loop device${loops.length > 1 ? 's' : ''} ${loops.map((l) => l.name).join(', ')} show${loops.length > 1 ? '' : 's'} it (a mount, a guest's tool?): unmount and detach ${loops.length > 1 ? 'them' : 'it'} first (losetup -d); nothing was changed`,
        { path: o.path, loopDevices: loops.map((l) => l.name) },
      );
    }

    let headersDone = false;
    try {
      await withUndo(o.signal, async (undo) => {
        if (attached) {
          phase('detach', `detaching ${o.path} to grow its pool`);
          const { detachImage } = await import('./attach.js');
          await detachImage(file, { run });
        }
        if (growsFile) {
          if (!sparse) {
            phase('reserve', `reserving ${formatSize(plan.sizeBytes - rp.fileSizeBytes)} past the end of the file`);
            // Given back if the job stops before the file grows: truncating to the same size frees
            // blocks reserved past the end (ext4, xfs).
            undo.push(`blocks reserved past the end of ${file}`, () => fs.truncate(file, rp.fileSizeBytes));
            await fallocate(file, rp.fileSizeBytes, plan.sizeBytes - rp.fileSizeBytes, o.signal, run, true);
            steps.push('reserve');
          }
          phase('grow', `growing the file to ${formatSize(plan.sizeBytes)}`);
          let headersWritten = false;
          undo.push(`size of ${file}`, async () => {
            if (!headersWritten) await fs.truncate(file, rp.fileSizeBytes);
          });
          const fh = await fs.open(file, constants.O_RDWR);
          try {
            await fh.truncate(plan.sizeBytes);
            await fh.sync();
          } finally {
            await fh.close();
          }
          // The new backup GPT first: the old primary still points at the old one.
          const tail = rp.headerWrites.filter((w) => w.what.startsWith('backup GPT'));
          if (tail.length) await writeAt(file, tail, true);
          steps.push('grow');
          checkAborted(o.signal, 'grow');
          phase('headers', `writing the ${plan.table.toUpperCase()} and the PFN block for ${formatSize(plan.sizeBytes)}`);
          await writeAt(file, rp.headerWrites.filter((w) => !w.what.startsWith('backup GPT')), true);
          headersWritten = true;
          headersDone = true;
          steps.push('headers');
        } else if (writesHeaders) {
          // The file is long enough already (an interrupted resize, a file grown with truncate).
          phase('headers', `writing the ${plan.table.toUpperCase()} and the PFN block for ${formatSize(plan.sizeBytes)}`);
          await writeAt(file, rp.headerWrites.filter((w) => w.what.startsWith('backup GPT')), true);
          await writeAt(file, rp.headerWrites.filter((w) => !w.what.startsWith('backup GPT')), true);
          headersDone = true;
          steps.push('headers');
        }
        if (writesHeaders && rp.oldBackup) await writeAt(file, [{ offsetBytes: rp.oldBackup.offsetBytes, data: Buffer.alloc(rp.oldBackup.lengthBytes) }], true);

        if (growsFs) {
          phase('fs', `growing the ${fsType} ${fsType === 'zfs' ? 'pool' : 'filesystem'} to ${formatSize(plan.fsSizeBytes)}`);
          if (fsType === 'ext4') {
            await growExt4(file, plan, undo, run, o.signal);
          } else if (fsType === 'xfs') {
            await growXfs(file, plan, undo, run, o.signal);
          } else if (fsType === 'zfs') {
            poolSize = await growPool(file, undo, run, o.signal);
          }
          await fsyncFile(file);
          steps.push('fs');
        }
        undo.commit();
      }, { journal: { image: { path: file, dev: identity.dev, ino: identity.ino }, pools: [] } });
    } catch (e) {
      // From the new headers on nothing is taken back: the image is valid at its new size.
      if (headersDone && e instanceof MkimageError) {
        e.message = `${e.message.replace(/: everything made so far was removed$/, '')}; ${o.path} has its new size (${formatSize(plan.sizeBytes)}) and is valid, but its ${fsType === 'zfs' ? 'pool' : 'filesystem'} did not grow: run mkimage resize ${o.path} --size ${plan.sizeBytes} again to finish`;
        e.data.resizedTo = plan.sizeBytes;
      }
      throw e;
    }
    if (attached) {
      phase('attach', `attaching ${o.path} again`);
      const { attachImage } = await import('./attach.js');
      await attachImage(file, { run, mount: attached.altroot, signal: o.signal });
    }
    const newFs = await fsState(file, fsType, plan);
    const st = await fs.stat(file);
    return {
      path: o.path,
      oldSizeBytes: rp.oldSizeBytes,
      sizeBytes: plan.sizeBytes,
      fileSizeBytes: rp.fileSizeBytes,
      roundedUpBytes: rp.roundedUpBytes,
      sparse,
      fs: fsType,
      table: plan.table,
      memmap: plan.memmap,
      partition: { offsetBytes: plan.partition.offsetBytes, oldSizeBytes: report.partition!.sizeBytes, sizeBytes: plan.partition.sizeBytes },
      pmemSizeBytes: plan.pmemSizeBytes,
      filesystem: { type: fsType, oldSizeBytes: oldFs.sizeBytes, sizeBytes: newFs.sizeBytes, size: poolSize, grown: steps.includes('fs') },
      steps,
      allocatedBytes: st.blocks * 512,
      timings: clock.timings(),
    };
  });
}
