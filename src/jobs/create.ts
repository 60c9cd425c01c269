/**
 * create: the whole job of making an image.
 *
 *   options -> plan (pure) -> checks (target, root, tools, space: before anything is written)
 *   -> temp file in the target directory -> size (truncate) -> reserve (fallocate)
 *   -> header bytes -> filesystem (mkfs.ext4 at an offset of the file; mkfs.xfs and zpool on a
 *   loop device of the partition) -> fsync -> rename into place.
 *
 * A failure or a signal at any step unwinds everything done so far (Undo): the target path holds
 * the complete image or is untouched, and no loop device, pool or mount is left.
 */
import { accessSync, constants as fsConstants, lstatSync, promises as fs, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BusyError, MkimageError, NoSpaceError, PermissionError, TargetExistsError, ToolFailedError, ToolMissingError, UsageError, toolFailedWith } from '../errors.js';
import {
  allocatedBytes,
  copyFileInto,
  createSparseFile,
  freeBytes,
  fsyncFile,
  publish,
  removeIfExists,
  tempPathFor,
  writeAt,
} from '../file/image-file.js';
import { buildHeader, type HeaderIds } from '../layout/header.js';
import { formatDiskSignature } from '../layout/mbr.js';
import { FS_TYPES, imageBytesForPartition, minimumImageBytes, planLayout, type FsType, type LayoutPlan, type Memmap, type TableType } from '../layout/plan.js';
import { pmemDataOffBytes } from '../layout/pfn.js';
import { DAX_ALIGN_BYTES, MiB, alignDown, alignUp, formatSize } from '../layout/units.js';
import { deriveU32, isUuid, makeUuid } from '../layout/uuid.js';
import { randomBytes } from '../file/random.js';
import { TOOL_PACKAGES, hasTool, run as defaultRun } from '../tools/exec.js';
import { fallocate } from '../tools/fallocate.js';
import { attachLoop, detachLoop, loopsOfFile } from '../tools/losetup.js';
import { checkLabel, mkfsErofs, mkfsExt4, mkfsXfs } from '../tools/mkfs.js';
import { encodeSourceRecord, SOURCE_RECORD_OFFSET_BYTES } from '../layout/source-record.js';
import { startFakeroot, type FakerootSession } from '../tools/fakeroot.js';
import type { FromOptions, PreparedFrom } from './from.js';
import { copyTree, mount, umount } from '../tools/mount.js';
import { phaseClock } from './phases.js';
import { checkAborted, withUndo, type Undo } from '../undo.js';
import { assertNotInUse } from '../guard/in-use.js';
import { lockImage, type LockOptions } from '../guard/lock.js';
import { recoverDeadJobs } from './recover.js';
import type { AttachedImage } from './attach.js';
import type { ImportResult } from './layers.js';
import type { ImportEvent } from '../layers/store.js';
import type { BuildPoolResult, PoolRequest } from './zfs-pool.js';
import type { ZfsFlavour } from '../tools/zfs.js';

export interface CreateOptions {
  path: string;
  /**
   * Bytes (rounded up to the alignment); 'max': as large as the target filesystem's free space;
   * 'auto' (with `from`): the smallest that holds the content with headroom (jobs/from.ts).
   */
  size: number | 'max' | 'auto';
  fs?: FsType;
  /** Thin image: no fallocate. Default: preallocated. */
  sparse?: boolean;
  memmap?: Memmap;
  table?: TableType;
  /** Image size alignment (default 2 MiB; kata uses 128 MiB). */
  alignBytes?: number;
  /**
   * --memmap pmem: the size the image may later grow to (resize): the data offset is made large
   * enough for that size's struct pages, so the partition never has to move.
   */
  maxSizeBytes?: number;
  label?: string;
  /** The uuid of the PFN block and of the filesystem. */
  uuid?: string;
  /** Derive every uuid and signature from this seed (reproducible builds). */
  seed?: string;
  /** Pins filesystem timestamps (the SOURCE_DATE_EPOCH convention). */
  sourceDateEpoch?: number;
  /** Copy this directory's tree into the new filesystem. */
  populateDir?: string;
  /** Flatten a container image into the filesystem (ext4, erofs, xfs): `mkimage --from`. */
  from?: FromOptions;
  /** Replace an existing file at `path`. */
  force?: boolean;
  /** --fs zfs: the pool and its tree; `mount` leaves the image attached with the pool imported there. */
  zfs?: Omit<PoolRequest, 'populateDir'> & { mount?: string; owner?: string };
  /**
   * --fs zfs: container images or layer tars to import into the new pool once it is built, in
   * order (as `mkimage layers import`: OCI layout directories, docker save archives, layer tars).
   * They are read and checked before anything is written; an import that fails removes the new
   * image, so the caller gets the filled image or nothing.
   */
  import?: readonly string[];
  /** Progress of the import, layer by layer. */
  onImportEvent?: (event: ImportEvent) => void;
  signal?: AbortSignal;
  onProgress?: (event: { phase: string; message: string }) => void;
  /** Seconds to wait for another command holding the target's lock (default 60; 0: fail at once). */
  waitSeconds?: number;
  onWait?: LockOptions['onWait'];
}

export interface CreateResult {
  path: string;
  requestedBytes: number;
  sizeBytes: number;
  roundedUpBytes: number;
  alignBytes: number;
  allocatedBytes: number;
  sparse: boolean;
  fs: FsType;
  memmap: Memmap;
  table: TableType;
  layout: {
    pfnOffsetBytes: number;
    dataOffBytes: number;
    partitionOffsetBytes: number;
    partitionSizeBytes: number;
    partitionStartLba: number;
    partitionSectorCount: number;
    fsSizeBytes: number;
    pmemSizeBytes: number;
  };
  /**
   * The ids written, in the form inspect reports them: uuids and GUIDs lowercase, the MBR disk
   * signature as 0x and 8 hex digits (as sfdisk prints it).
   */
  ids: Omit<HeaderIds, 'diskSignature'> & { fsUuid: string; diskSignature: string };
  /** --fs zfs: the pool built (always exported at the end of the build), and where it is mounted with --mount. */
  zfs?: Omit<BuildPoolResult, 'flavour'> & { flavour: string; attached?: AttachedImage };
  /** With `import`: what was imported (the zfs datasets and allocatedBytes above count it). */
  imported?: ImportResult;
  /** --from: what was flattened, and how the filesystem was corrected. */
  from?: {
    layers: number;
    reference?: string;
    manifestDigest?: string;
    configDigest?: string;
    diffIds: string[];
    entries: number;
    contentBytes: number;
    /** Whether --size auto chose the size. */
    autoSize: boolean;
    /** Inode corrections (debugfs commands for ext4). */
    fixes: number;
  };
  /** Milliseconds per phase. */
  timings: Record<string, number>;
}

/** Free space kept back by --size max for a preallocated image (filesystem metadata, extents). */
const MAX_SIZE_RESERVE_BYTES = 64 * MiB;

export function makeIds(o: Pick<CreateOptions, 'seed' | 'uuid' | 'label'>): HeaderIds & { fsUuid: string; hashSeed: string } {
  if (o.uuid !== undefined && !isUuid(o.uuid)) {
    throw new UsageError(`--uuid "${o.uuid}" is not a uuid: expected 8-4-4-4-12 hex digits`, { uuid: o.uuid });
  }
  const seed = o.seed;
  const pfnUuid = o.uuid ?? makeUuid(seed, 'pfn', randomBytes);
  return {
    pfnUuid,
    fsUuid: o.uuid ?? makeUuid(seed, 'fs', randomBytes),
    hashSeed: makeUuid(seed, 'ext4-hash-seed', randomBytes),
    diskSignature: seed === undefined ? randomDiskSignature() : deriveU32(seed, 'mbr-disk-signature'),
    diskGuid: makeUuid(seed, 'gpt-disk', randomBytes),
    partitionGuid: makeUuid(seed, 'gpt-partition', randomBytes),
    partitionName: o.label ?? 'mkimage',
  };
}

/**
 * Starts fallocate over the whole file (see the call in createImage). The promise never rejects:
 * it gives fallocate's error (NoSpaceError for a full disk) or undefined. It is always waited for,
 * also when formatting failed (fallocate takes milliseconds; a signal stops it with the job).
 */
function preallocate(temp: string, sizeBytes: number, dir: string, signal: AbortSignal | undefined): Promise<unknown> {
  return fallocate(temp, 0, sizeBytes, signal).then(
    () => undefined,
    async (e) => {
      if (!isNoSpace(e)) return e;
      const free = await freeBytes(dir);
      return new NoSpaceError(
        `no space for a preallocated ${formatSize(sizeBytes)} image in ${dir}: ${formatSize(sizeBytes)} needed, ${formatSize(free)} free after the attempt (use --sparse or a smaller --size)`,
        { neededBytes: sizeBytes, freeBytes: free },
        { cause: e },
      );
    },
  );
}

/** A random MBR disk signature, never 0 (which Windows and some tools read as "none"). */
function randomDiskSignature(): number {
  for (;;) {
    const v = randomBytes(4).readUInt32LE(0);
    if (v !== 0) return v;
  }
}

/** Resolves 'max' and plans; throws UsageError for impossible requests. */
export async function planCreate(o: CreateOptions): Promise<LayoutPlan> {
  const fsType = o.fs ?? 'ext4';
  if (!(FS_TYPES as readonly string[]).includes(fsType)) {
    throw new UsageError(`--fs ${fsType} is not one of ${FS_TYPES.join(', ')}`, { fs: fsType });
  }
  let sizeBytes: number;
  if (o.size === 'auto') {
    if (!o.from) throw new UsageError('--size auto needs --from: the size is chosen from the content of the image');
    // A placeholder until the content is known (createImage plans again).
    sizeBytes = minimumImageBytes(fsType, o.memmap, o.table, o.alignBytes ?? DAX_ALIGN_BYTES);
  } else if (o.size === 'max') {
    const dir = dirname(resolve(o.path));
    const free = await freeBytes(dir);
    const align = o.alignBytes ?? DAX_ALIGN_BYTES;
    const reserve = o.sparse ? 0 : MAX_SIZE_RESERVE_BYTES;
    sizeBytes = alignDown(Math.max(0, free - reserve), align);
    const min = minimumImageBytes(fsType, o.memmap, o.table, align);
    if (sizeBytes < min) {
      const kept = reserve ? `; ${formatSize(reserve)} of it kept back for a preallocated image's filesystem metadata leaves ${formatSize(sizeBytes)}` : `, ${formatSize(sizeBytes)} in whole ${formatSize(align)}`;
      throw new NoSpaceError(`--size max: ${dir} has ${formatSize(free)} free${kept}, less than the ${formatSize(min)} an image with --fs ${fsType} needs${reserve ? ' (--sparse keeps nothing back)' : ''}`, {
        freeBytes: free,
        reservedBytes: reserve,
        sizeBytes,
        minimumBytes: min,
      });
    }
  } else {
    sizeBytes = o.size;
  }
  let dataOffBytes: number | undefined;
  if (o.maxSizeBytes !== undefined) {
    if (o.memmap !== 'pmem') {
      throw new UsageError('--max-size only applies to --memmap pmem (a RAM-mode image grows to any size with mkimage resize)', { maxSizeBytes: o.maxSizeBytes });
    }
    const max = alignUp(o.maxSizeBytes, o.alignBytes ?? DAX_ALIGN_BYTES);
    if (!Number.isSafeInteger(max) || max < sizeBytes) {
      throw new UsageError(`--max-size ${o.maxSizeBytes} is smaller than the image's ${sizeBytes} bytes`, { maxSizeBytes: o.maxSizeBytes, sizeBytes });
    }
    dataOffBytes = Math.max(DAX_ALIGN_BYTES, pmemDataOffBytes(max, DAX_ALIGN_BYTES));
  }
  return planLayout({ sizeBytes, fs: fsType, memmap: o.memmap, table: o.table, imageAlignBytes: o.alignBytes, dataOffBytes });
}

/**
 * Everything that can be checked before a byte is written. Returns what it learnt on the way:
 * which ZFS runs here, so that building the pool does not ask again (three processes).
 */
/** What `path` names (a dangling symlink: the link itself); undefined when nothing or unreadable. */
function statOrLstat(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false }) ?? lstatSync(path, { throwIfNoEntry: false });
  } catch {
    try {
      return lstatSync(path, { throwIfNoEntry: false });
    } catch {
      return undefined;
    }
  }
}

async function preflight(o: CreateOptions, plan: LayoutPlan): Promise<{ zfsFlavour?: ZfsFlavour }> {
  let zfsFlavour: ZfsFlavour | undefined;
  const target = resolve(o.path);
  const dir = dirname(target);
  // Synchronous checks: a thread-pool round trip each would cost more than the calls (file/image-file.ts).
  const dirStat = statSync(dir, { throwIfNoEntry: false });
  if (!dirStat?.isDirectory()) throw new UsageError(`cannot create ${o.path}: directory ${dir} does not exist`, { dir });
  const st = statOrLstat(target);
  if (st?.isDirectory()) throw new UsageError(`${o.path} is a directory: give the path of the image file to create`, { path: o.path });
  if (st && !st.isFile() && !st.isSymbolicLink()) {
    // Never replaced, whatever --force says: a device node, FIFO or socket is not an old image.
    const kind = fileKind(st);
    throw new UsageError(`${o.path} is a ${kind}, not a regular file: mkimage replaces only regular files; it was left untouched (remove it yourself, or give another path)`, { path: o.path, kind });
  }
  if (st && !o.force) throw new TargetExistsError(o.path);
  if (o.label) {
    if (plan.fs === 'ext4' || plan.fs === 'xfs') checkLabel(plan.fs, o.label);
    else if (plan.fs === 'none') throw new UsageError('--label needs a filesystem: --fs ext4 or xfs (the GPT partition name uses it too)');
  }
  if (o.from) {
    if (plan.fs === 'none' || plan.fs === 'zfs') throw new UsageError(`--from needs --fs ext4, erofs or xfs (for a pool, use --fs zfs --import SOURCE)`, { fs: plan.fs });
    if (o.populateDir) throw new UsageError('--from and --populate exclude each other: the filesystem holds the container image');
  }
  if (plan.fs === 'erofs' && !o.from && !o.populateDir) throw new UsageError('--fs erofs is read-only and built from its content: give --from SOURCE or --populate DIR');
  if (plan.fs === 'erofs' && o.label) throw new UsageError('--label: mkfs.erofs 1.5 writes no volume label; leave it out for --fs erofs');
  if (o.populateDir) {
    if (plan.fs === 'none') throw new UsageError('--populate needs a filesystem: --fs ext4, xfs, erofs or zfs');
    const p = statSync(o.populateDir, { throwIfNoEntry: false });
    if (!p?.isDirectory()) throw new UsageError(`--populate ${o.populateDir} is not a directory`, { populateDir: o.populateDir });
  }
  if (plan.fs === 'zfs' && !o.zfs) throw new UsageError('--fs zfs needs --pool NAME: the name the guest imports (zpool import -d /dev/pmem0 NAME)');
  if (plan.fs !== 'zfs' && o.zfs) throw new UsageError(`pool options only apply to --fs zfs, not --fs ${plan.fs}`);
  const needsLoop = plan.fs === 'xfs' || plan.fs === 'zfs';
  if (needsLoop && process.getuid?.() !== 0) {
    throw new PermissionError(`--fs ${plan.fs} formats a loop device of the partition, which needs root: run mkimage as root (e.g. with sudo)`, { fs: plan.fs });
  }
  try {
    accessSync(dir, fsConstants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS') throw new PermissionError(`cannot create ${o.path}: ${dir} is on a read-only file system (nothing was written): choose another directory, or remount it read-write`, { dir, code });
    throw new PermissionError(`cannot create ${o.path}: no write permission in ${dir} (nothing was written)`, { dir, code });
  }
  const tools = [
    ...(o.sparse ? [] : ['fallocate']),
    ...(plan.fs === 'ext4' ? ['mkfs.ext4'] : []),
    ...(plan.fs === 'ext4' && o.from ? ['debugfs'] : []),
    ...(plan.fs === 'ext4' && o.from && process.getuid?.() !== 0 ? ['faked-sysv'] : []),
    ...(plan.fs === 'erofs' ? ['mkfs.erofs'] : []),
    ...(plan.fs === 'erofs' && o.from && process.getuid?.() !== 0 ? ['faked-sysv'] : []),
    ...((plan.fs === 'erofs' || plan.fs === 'xfs') && o.from ? ['mknod', 'chown', 'chmod', 'setfattr'] : []),
    ...(plan.fs === 'xfs' ? ['mkfs.xfs', 'losetup'] : []),
    ...(plan.fs === 'xfs' && o.populateDir ? ['mount', 'umount', 'cp'] : []),
    ...(plan.fs === 'zfs' ? ['losetup', 'zpool', 'zfs'] : []),
    ...(plan.fs === 'zfs' && o.populateDir ? ['cp'] : []),
  ];
  for (const tool of tools) {
    if (!(await hasTool(tool))) {
      throw new ToolMissingError(`${tool} is not installed or not on PATH: install the Debian package ${TOOL_PACKAGES[tool] ?? tool} (nothing was created)`, { tool, package: TOOL_PACKAGES[tool] });
    }
  }
  if (plan.fs === 'zfs' && o.zfs) {
    // Names, options, which ZFS runs and that it answers, the pool name free: all before writing.
    const { preflightPool } = await import('./zfs-pool.js');
    const { flavour } = await preflightPool({ ...o.zfs, populateDir: o.populateDir }, undefined, o.signal);
    if (o.zfs.owner !== undefined) {
      const { checkOwnerExists } = await import('./attach.js');
      await checkOwnerExists(o.zfs.owner, undefined, o.signal);
    }
    zfsFlavour = flavour;
  }
  if (!o.sparse && o.size !== 'auto') {
    const free = await freeBytes(dir);
    const replacing = st?.isFile() ? st.blocks * 512 : 0;
    if (free + replacing < plan.sizeBytes) {
      throw new NoSpaceError(
        `not enough space for a preallocated ${formatSize(plan.sizeBytes)} image in ${dir}: ${formatSize(plan.sizeBytes)} needed, ${formatSize(free)} free (use --sparse for a thin image, or a smaller --size)`,
        { neededBytes: plan.sizeBytes, freeBytes: free, dir },
      );
    }
  }
  return { zfsFlavour };
}

/** What a non-regular file is, in words. */
function fileKind(st: Stats): string {
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isFIFO()) return 'FIFO (named pipe)';
  if (st.isSocket()) return 'socket';
  if (st.isDirectory()) return 'directory';
  return 'special file';
}

/**
 * Under the target's lock, before anything else: what dead jobs left on this target, its file or
 * the pool name is taken back (jobs/recover.ts). An IMAGE to be replaced (--force) must not be in
 * use by another process (a running guest) nor attached: BusyError, the file untouched.
 */
async function beforeWriting(o: CreateOptions, target: string): Promise<void> {
  const st = statSync(target, { throwIfNoEntry: false });
  await recoverDeadJobs({ paths: [target], image: st && { dev: st.dev, ino: st.ino }, pools: o.zfs ? [o.zfs.pool] : [] });
  if (!st?.isFile() || !o.force) return; // preflight says what is wrong with it
  await assertNotInUse(target, 'replace');
  if (!(await hasTool('losetup'))) return;
  const loops = await loopsOfFile(target).catch(() => []);
  if (loops.length) {
    throw new BusyError(
      `cannot replace ${o.path}: it is attached (${loops.map((l) => l.name).join(', ')}); detach it first (mkimage detach ${o.path}), then create it again; it was left untouched`,
      { path: o.path, loopDevices: loops.map((l) => l.name) },
    );
  }
}

/**
 * What the file system said, in the error family: the job's undo has already run, so the message
 * can say that nothing was left. Errors that are MkimageErrors already pass through.
 */
function fileError(e: unknown, path: string, sizeBytes: number): unknown {
  const where = dirname(resolve(path));
  if (isNoSpace(e)) {
    const tool = String(e.data.tool ?? 'a tool');
    if (tool === 'cp') {
      // cp copies --populate's tree into the image's mounted filesystem: that one is full (a full
      // host would show as I/O errors of the loop device, not ENOSPC).
      return new NoSpaceError(`the --populate tree does not fit in the image's filesystem (cp: No space left on device); nothing was left behind: give a larger --size`, { path, tool, stderr: e.data.stderr }, { cause: e });
    }
    // mkfs writing metadata, or mkfs.ext4 -d writing --populate's files, into a sparse image file.
    return new NoSpaceError(`no space left in ${where} while ${tool} wrote into ${path}; nothing was left behind: free some space, or make the image preallocated (without --sparse) so its space is reserved up front`, { path, tool, stderr: e.data.stderr }, { cause: e });
  }
  if (e instanceof MkimageError) return e;
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new NoSpaceError(`no space left in ${where} while writing ${path} (${err.code}); nothing was left behind: free some space or choose a smaller --size`, { path, code: err.code }, { cause: e });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new PermissionError(`cannot write in ${where} (${err.code}${err.code === 'EROFS' ? ': read-only file system' : ''}): choose a directory you can write to, or run as its owner`, { path, code: err.code }, { cause: e });
    case 'EEXIST':
      return new TargetExistsError(path);
    case 'EFBIG':
      return new UsageError(`the file system holding ${where} cannot hold a file of ${formatSize(sizeBytes)} (EFBIG): use a smaller --size or another file system`, { path, sizeBytes });
    default:
      return e;
  }
}

function isNoSpace(e: unknown): e is ToolFailedError {
  return toolFailedWith(e, /No space left|ENOSPC/i);
}

/**
 * Undo steps recorded before the step they undo runs. A tool stopped by a signal after it did its
 * work (losetup attached, mount mounted) but before it exited cleanly reports failure, and the
 * device or mount would outlive the job if only its success recorded the undo. So the undo goes
 * first and checks what is there: every loop device of the temporary file is this job's; a mount
 * point is one when it lies on another device than its parent.
 */
async function detachLoopsOf(file: string): Promise<void> {
  for (const d of await loopsOfFile(file)) await detachLoop(d.name);
}

async function umountIfMounted(dir: string): Promise<void> {
  const [here, parent] = await Promise.all([fs.stat(dir), fs.stat(dirname(dir))]);
  if (here.dev !== parent.dev) await umount(dir);
}

async function formatPartition(o: CreateOptions, plan: LayoutPlan, temp: string, ids: ReturnType<typeof makeIds>, undo: Undo, phase: (name: string, message: string) => void, zfsFlavour?: ZfsFlavour, built?: FromBuild): Promise<BuildPoolResult | undefined> {
  const signal = o.signal;
  if (built?.erofsFile || (plan.fs === 'erofs' && o.populateDir)) {
    let file = built?.erofsFile;
    if (!file) {
      // --populate: mkfs.erofs straight from the directory, into a file next to the image.
      file = `${temp}.erofs`;
      undo.push(`erofs file ${file}`, () => removeIfExists(file!), { kind: 'file', path: file });
      phase('mkfs', `mkfs.erofs from ${o.populateDir}`);
      await mkfsErofs({ output: file, sourceDir: o.populateDir!, uuid: ids.fsUuid, sourceDateEpoch: o.sourceDateEpoch, signal });
      const bytes = (await fs.stat(file)).size;
      if (bytes > plan.fsSizeBytes) throw new NoSpaceError(`the erofs filesystem built from ${o.populateDir} is ${formatSize(bytes)}, more than the ${formatSize(plan.fsSizeBytes)} partition: give --size ${formatSize(imageBytesForPartition(bytes, 'erofs', plan.memmap, plan.table, plan.imageAlignBytes))} or more`, { fsBytes: plan.fsSizeBytes, neededFsBytes: bytes });
    }
    phase('copy', `erofs into the partition at ${formatSize(plan.partition.offsetBytes)}`);
    await copyFileInto(file, temp, plan.partition.offsetBytes);
    return undefined;
  }
  if (plan.fs === 'zfs' && o.zfs) {
    phase('loop', 'attaching the partition');
    const loopUndo = undo.push(`loop devices of ${temp}`, () => detachLoopsOf(temp), { kind: 'loop', file: temp });
    const device = await attachLoop({ file: temp, offsetBytes: plan.partition.offsetBytes, sizeLimitBytes: plan.partition.sizeBytes, signal });
    phase('zpool', `zpool ${o.zfs.pool} on ${device}`);
    const { buildPool } = await import('./zfs-pool.js');
    const pool = await buildPool({ ...o.zfs, device, file: temp, populateDir: o.populateDir, signal, flavour: zfsFlavour, nameCheckedFree: zfsFlavour !== undefined }, undo);
    await undo.settle(loopUndo, () => detachLoop(device));
    return pool;
  }
  if (plan.fs === 'ext4') {
    phase('mkfs', `mkfs.ext4 ${formatSize(plan.fsSizeBytes)}${o.populateDir ? ` from ${o.populateDir}` : ''}`);
    const populateDir = built ? built.prepared.stageDir : o.populateDir;
    // --from as an ordinary user: mke2fs sees the staged files as root's (fakeroot's unknown-is-root).
    let session: FakerootSession | undefined;
    let sessionUndo: number | undefined;
    if (built && process.getuid?.() !== 0) {
      session = await startFakeroot(signal);
      sessionUndo = undo.push(`faked daemon ${session.pid}`, () => session!.stop());
    }
    try {
      await mkfsExt4({
        target: temp,
        offsetBytes: plan.partition.offsetBytes,
        sizeBytes: plan.fsSizeBytes,
        uuid: ids.fsUuid,
        hashSeed: ids.hashSeed,
        label: o.label,
        populateDir,
        sourceDateEpoch: o.sourceDateEpoch,
        signal,
      }, session?.run);
      if (sessionUndo !== undefined) await undo.settle(sessionUndo);
    } catch (e) {
      // The estimate said it fits, mke2fs says otherwise: the content needs more than estimated.
      if (built && e instanceof ToolFailedError && /allocate|No space|too many|Could not/i.test(String(e.data.stderr ?? e.message))) {
        const need = built.from.ext4BytesFor(built.prepared.walk, true);
        throw built.from.tooSmall('ext4', plan.fsSizeBytes, need, imageBytesForPartition(need, 'ext4', plan.memmap, plan.table, plan.imageAlignBytes));
      }
      throw e;
    }
    if (built) {
      checkAborted(signal, 'mkfs');
      phase('fixup', 'debugfs: owners, modes, devices, xattrs');
      built.fixes = await built.from.fixExt4(temp, plan.partition.offsetBytes, built.prepared.walk, built.prepared.workDir, signal, session ? { uid: 0, gid: 0 } : undefined);
    }
  } else if (plan.fs === 'xfs') {
    phase('loop', 'attaching the partition');
    const loopUndo = undo.push(`loop devices of ${temp}`, () => detachLoopsOf(temp), { kind: 'loop', file: temp });
    const device = await attachLoop({ file: temp, offsetBytes: plan.partition.offsetBytes, sizeLimitBytes: plan.fsSizeBytes, signal });
    checkAborted(signal, 'loop attach');
    phase('mkfs', `mkfs.xfs ${formatSize(plan.fsSizeBytes)} on ${device}`);
    await mkfsXfs({ device, uuid: ids.fsUuid, label: o.label, signal });
    const populateDir = built ? built.prepared.stageDir : o.populateDir;
    if (populateDir) {
      checkAborted(signal, 'mkfs');
      phase('populate', `copying ${populateDir}`);
      const dir = await fs.mkdtemp(`${dirname(temp)}/.mkimage-mnt-`);
      const dirUndo = undo.push(`mount point ${dir}`, () => fs.rmdir(dir), { kind: 'dir', path: dir });
      const mountUndo = undo.push(`mount ${dir}`, () => umountIfMounted(dir), { kind: 'mount', path: dir });
      await mount(device, dir, 'xfs', [], signal);
      await copyTree(populateDir, dir, signal);
      await undo.settle(mountUndo);
      await undo.settle(dirUndo);
    }
    await undo.settle(loopUndo, () => detachLoop(device));
  }
}

interface FromBuild {
  /** jobs/from.ts, loaded only for --from: it brings the layer readers, node:crypto and node:zlib. */
  from: typeof import('./from.js');
  prepared: PreparedFrom;
  plan: LayoutPlan;
  /** erofs: the filesystem built in a file of its own, copied into the partition. */
  erofsFile?: string;
  fixes: number;
}

/**
 * --from up to the filesystem: stage the layers, correct the tree for erofs and xfs and build the
 * erofs file, then the final plan (--size auto: from the content; a given size: checked against it).
 */
async function buildFrom(o: CreateOptions, provisional: LayoutPlan, target: string, ids: ReturnType<typeof makeIds>, undo: Undo, phase: (name: string, message: string) => void): Promise<FromBuild> {
  const asRoot = process.getuid?.() === 0;
  const from = await import('./from.js');
  const { ext4BytesFor, ext4Holds, fixHostTree, tooSmall } = from;
  const prepared = await from.prepareFrom(o.from!, target, undo, o.signal, (m) => o.onProgress?.({ phase: 'layers', message: m }));
  const fsType = provisional.fs;
  const align = provisional.imageAlignBytes;
  const planFor = (sizeBytes: number) => planLayout({ sizeBytes, fs: fsType, memmap: provisional.memmap, table: provisional.table, imageAlignBytes: align });
  const out: FromBuild = { from, prepared, plan: provisional, fixes: 0 };
  if (fsType === 'erofs' || fsType === 'xfs') {
    phase('fixup', `owners, modes, devices and xattrs of the staged tree${asRoot ? '' : ' (fakeroot)'}`);
    let session: FakerootSession | undefined;
    let sessionUndo: number | undefined;
    if (!asRoot) {
      session = await startFakeroot(o.signal);
      sessionUndo = undo.push(`faked daemon ${session.pid}`, () => session!.stop());
    }
    const run = session?.run ?? defaultRun;
    await fixHostTree(prepared.stageDir, prepared.walk, run, prepared.workDir, o.signal);
    if (fsType === 'erofs') {
      phase('mkfs', 'mkfs.erofs');
      out.erofsFile = join(prepared.workDir, 'fs.erofs');
      await mkfsErofs({ output: out.erofsFile, sourceDir: prepared.stageDir, uuid: ids.fsUuid, sourceDateEpoch: o.sourceDateEpoch, signal: o.signal }, run);
      if (sessionUndo !== undefined) await undo.settle(sessionUndo);
      const bytes = (await fs.stat(out.erofsFile)).size;
      const auto = imageBytesForPartition(bytes, 'erofs', provisional.memmap, provisional.table, align);
      if (o.size === 'auto') out.plan = planFor(auto);
      else if (provisional.fsSizeBytes < bytes) throw tooSmall('erofs', provisional.fsSizeBytes, bytes, auto);
    }
  }
  if (fsType === 'ext4' || fsType === 'xfs') {
    // xfs: its own metadata is larger than ext4's; its 300 MiB minimum covers small trees.
    const needAuto = ext4BytesFor(prepared.walk, true);
    const auto = imageBytesForPartition(needAuto, fsType, provisional.memmap, provisional.table, align);
    if (o.size === 'auto') out.plan = planFor(auto);
    else if (!ext4Holds(provisional.fsSizeBytes, prepared.walk)) throw tooSmall(fsType, provisional.fsSizeBytes, ext4BytesFor(prepared.walk, false), auto);
  }
  if (!o.sparse) {
    const dir = dirname(target);
    const free = await freeBytes(dir);
    if (free < out.plan.sizeBytes) {
      throw new NoSpaceError(`not enough space for a preallocated ${formatSize(out.plan.sizeBytes)} image in ${dir}: ${formatSize(free)} free after staging the content (use --sparse, or free some space)`, { neededBytes: out.plan.sizeBytes, freeBytes: free, dir });
    }
  }
  return out;
}

export async function createImage(o: CreateOptions): Promise<CreateResult> {
  const clock = phaseClock(o.signal, o.onProgress);
  const phase = clock.phase;

  let plan = await planCreate(o);
  const ids = makeIds(o);
  const target = resolve(o.path);
  // The lock of the target (its file when it exists, else its path) for the whole run: two
  // creates of one path, or a create --force and an attach of the image, never overlap.
  const lock = await lockImage(target, { waitSeconds: o.waitSeconds, onWait: o.onWait, signal: o.signal });
  try {
    await beforeWriting(o, target);
    const { zfsFlavour } = await preflight(o, plan);
    if (o.import?.length) {
      if (plan.fs !== 'zfs') throw new UsageError('--import needs --fs zfs: layers live in the pool', { import: o.import });
      // Read and checked (manifests, blobs) before anything is written: a bad source leaves nothing.
      const { readSources } = await import('../layers/source.js');
      await readSources(o.import);
    }
    const sparse = o.sparse ?? false;

    let pool: BuildPoolResult | undefined;
    let built: FromBuild | undefined;
    try {
      await withUndo(o.signal, async (undo) => {
        if (o.from) {
          phase('layers', `flattening ${o.from.sources.join(' ')}`);
          built = await buildFrom(o, plan, target, ids, undo, phase);
          plan = built.plan;
        }
        const headerWrites = buildHeader(plan, ids);
        if (built) headerWrites.push({ offsetBytes: SOURCE_RECORD_OFFSET_BYTES, data: encodeSourceRecord(built.prepared.record), what: 'source record' });
        const temp = tempPathFor(target);
        phase('allocate', `${sparse ? 'sparse' : 'preallocated'} ${formatSize(plan.sizeBytes)} file`);
        // Recorded first: the file exists as soon as open(2) returns, and sizing it can still fail.
        undo.push(`temporary file ${temp}`, () => removeIfExists(temp), { kind: 'file', path: temp });
        await createSparseFile(temp, plan.sizeBytes);
        // Preallocation runs beside the header and the filesystem (one process less on the
        // critical path; bench/WHY.md round 3): fallocate(2) turns holes into unwritten extents
        // and never touches blocks already written, so the finished file is the same as when it
        // runs first. It is waited for before publishing, and stopped if formatting fails.
        const allocation = sparse ? undefined : preallocate(temp, plan.sizeBytes, dirname(target), o.signal);
        try {
          phase('header', 'writing MBR/GPT and PFN info block');
          await writeAt(temp, headerWrites.map((w) => ({ offsetBytes: w.offsetBytes, data: w.data })));
          pool = await formatPartition(o, plan, temp, ids, undo, phase, zfsFlavour, built);
        } catch (e) {
          // A full disk makes mkfs fail too: the allocation's NoSpaceError says why.
          const allocated = await allocation;
          throw allocated instanceof NoSpaceError ? allocated : e;
        }
        if (allocation) {
          phase('allocate', `waiting for the preallocation of ${formatSize(plan.sizeBytes)}`);
          const failed = await allocation;
          if (failed) throw failed;
        }
        if (built) await undo.settle(built.prepared.cleanup);
        phase('publish', `renaming into place as ${o.path}`);
        await fsyncFile(temp);
        checkAborted(o.signal, 'publish');
        await publish(temp, target, o.force ?? false);
        undo.commit();
      }, { journal: { target, pools: o.zfs ? [o.zfs.pool] : [] } });
    } catch (e) {
      throw fileError(e, o.path, plan.sizeBytes);
    }
    let attached: AttachedImage | undefined;
    if (o.zfs?.mount !== undefined) {
      // The pool is imported again from the final path (a loop device records the path it was
      // attached with): the image is complete and in place whatever happens now.
      try {
        phase('attach', `importing ${o.zfs.pool} at ${o.zfs.mount}`);
        const { attachImage } = await import('./attach.js');
        attached = await attachImage(target, { mount: o.zfs.mount, owner: o.zfs.owner, signal: o.signal });
      } catch (e) {
        if (e instanceof MkimageError) e.message = `${o.path} was created and is complete, but attaching it failed: ${e.message} (retry with: mkimage attach ${o.path} --mount ${o.zfs.mount})`;
        throw e;
      }
    }
    let imported: ImportResult | undefined;
    if (o.import?.length && pool) {
      phase('import', `importing ${o.import.length} source${o.import.length === 1 ? '' : 's'} into ${pool.pool}`);
      const { importLayers } = await import('./layers.js');
      try {
        imported = await importLayers(target, o.import, { signal: o.signal, mount: o.zfs?.mount, onEvent: o.onImportEvent, waitSeconds: o.waitSeconds, onWait: o.onWait });
      } catch (e) {
        const { destroyImage } = await import('./attach.js');
        await destroyImage(target, { yes: true }).catch(() => undefined);
        throw e;
      }
      // The datasets the import made belong in the summary (each layer, and its @extracted).
      const fresh = imported.images.flatMap((i) => i.layers).filter((l) => l.status === 'extracted');
      pool = {
        ...pool,
        datasets: [...new Set([...pool.datasets, ...fresh.map((l) => l.dataset)])],
        snapshots: [...new Set([...pool.snapshots, ...fresh.map((l) => `${l.dataset}@extracted`)])],
      };
    }

    return {
      path: o.path,
      requestedBytes: plan.requestedBytes,
      sizeBytes: plan.sizeBytes,
      roundedUpBytes: plan.roundedUpBytes,
      alignBytes: plan.imageAlignBytes,
      allocatedBytes: await allocatedBytes(target),
      sparse,
      fs: plan.fs,
      memmap: plan.memmap,
      table: plan.table,
      layout: {
        pfnOffsetBytes: plan.pfn.offsetBytes,
        dataOffBytes: plan.pfn.dataOffBytes,
        partitionOffsetBytes: plan.partition.offsetBytes,
        partitionSizeBytes: plan.partition.sizeBytes,
        partitionStartLba: plan.partition.startLba,
        partitionSectorCount: plan.partition.sectorCount,
        fsSizeBytes: plan.fsSizeBytes,
        pmemSizeBytes: plan.pmemSizeBytes,
      },
      ids: {
        pfnUuid: ids.pfnUuid,
        fsUuid: ids.fsUuid,
        diskSignature: formatDiskSignature(ids.diskSignature),
        diskGuid: ids.diskGuid.toLowerCase(),
        partitionGuid: ids.partitionGuid.toLowerCase(),
        partitionName: ids.partitionName,
      },
      zfs: pool && { ...pool, flavour: pool.flavour.description, attached },
      imported,
      from: built && {
        layers: built.prepared.layers,
        ...(built.prepared.source.reference ? { reference: built.prepared.source.reference } : {}),
        ...(built.prepared.source.manifestDigest ? { manifestDigest: built.prepared.source.manifestDigest } : {}),
        ...(built.prepared.source.configDigest ? { configDigest: built.prepared.source.configDigest } : {}),
        diffIds: built.prepared.source.diffIds,
        entries: built.prepared.walk.entries.length,
        contentBytes: built.prepared.walk.bytes,
        autoSize: o.size === 'auto',
        fixes: built.fixes,
      },
      timings: clock.timings(),
    };
  } finally {
    await lock.release();
  }
}
