/**
 * mkfs.ext4 and mkfs.xfs: the arguments for a DAX-ready filesystem that keeps its preallocation.
 *
 * - 4 KiB blocks: ext4 and xfs support DAX only with blocks equal to the page size.
 * - No discard: on a file mkfs.ext4 punches holes, and on a loop device both discard, which the
 *   loop driver turns into punched holes: a preallocated image would lose its reservation.
 *   ext4 `-E nodiscard`, xfs `-K`.
 * - ext4 `assume_storage_prezeroed=1` (e2fsprogs 1.47): the file is zeroes (holes or unwritten
 *   extents), so mke2fs marks inode tables zeroed (no lazy init zeroing 16 MiB/GiB in the guest
 *   after the first mount) and skips writing zeroes (a sparse image stays small).
 * - xfs `reflink=0`: reflink and DAX exclude each other.
 * - Deterministic: uuids and the ext4 hash seed are always given; E2FSPROGS_FAKE_TIME pins
 *   mke2fs's timestamps when SOURCE_DATE_EPOCH is set.
 */
import { UsageError } from '../errors.js';
import { FS_BLOCK_BYTES } from '../layout/units.js';
import { run as defaultRun, type Runner } from './exec.js';

/** Label limits: ext4 s_volume_name is 16 bytes, xfs sb_fname 12. */
export const LABEL_MAX_BYTES = { ext4: 16, xfs: 12 } as const;

export function checkLabel(fs: 'ext4' | 'xfs', label: string): void {
  const max = LABEL_MAX_BYTES[fs];
  if (Buffer.byteLength(label) > max) {
    throw new UsageError(`label "${label}" is ${Buffer.byteLength(label)} bytes: ${fs} labels hold at most ${max}`, { label, max });
  }
}

export interface Ext4Options {
  /** A regular file (with offsetBytes) or a block device. */
  target: string;
  offsetBytes: number;
  sizeBytes: number;
  uuid: string;
  hashSeed: string;
  label?: string;
  populateDir?: string;
}

export function ext4Args(o: Ext4Options): string[] {
  const extended = [`offset=${o.offsetBytes}`, 'nodiscard', 'assume_storage_prezeroed=1', `hash_seed=${o.hashSeed}`];
  return [
    '-q',
    '-F',
    '-t', 'ext4',
    '-b', String(FS_BLOCK_BYTES),
    '-U', o.uuid,
    '-E', extended.join(','),
    ...(o.label ? ['-L', o.label] : []),
    ...(o.populateDir ? ['-d', o.populateDir] : []),
    '--',
    o.target,
    String(Math.floor(o.sizeBytes / FS_BLOCK_BYTES)),
  ];
}

/** Environment for a reproducible mke2fs run. */
export function ext4Env(sourceDateEpoch?: number): Record<string, string> | undefined {
  return sourceDateEpoch === undefined ? undefined : { E2FSPROGS_FAKE_TIME: String(sourceDateEpoch) };
}

export async function mkfsExt4(o: Ext4Options & { sourceDateEpoch?: number; signal?: AbortSignal }, run: Runner = defaultRun): Promise<void> {
  if (o.label) checkLabel('ext4', o.label);
  await run('mkfs.ext4', ext4Args(o), { env: ext4Env(o.sourceDateEpoch), signal: o.signal });
}

export interface XfsOptions {
  /** A block device (mkfs.xfs cannot write at an offset of a file). */
  device: string;
  uuid: string;
  label?: string;
}

export function xfsArgs(o: XfsOptions): string[] {
  return [
    '-q',
    '-f',
    '-K',
    '-b', `size=${FS_BLOCK_BYTES}`,
    '-m', `reflink=0,uuid=${o.uuid}`,
    ...(o.label ? ['-L', o.label] : []),
    '--',
    o.device,
  ];
}

export async function mkfsXfs(o: XfsOptions & { signal?: AbortSignal }, run: Runner = defaultRun): Promise<void> {
  if (o.label) checkLabel('xfs', o.label);
  await run('mkfs.xfs', xfsArgs(o), { signal: o.signal });
}

export interface ErofsOptions {
  /** The file to write (mkfs.erofs 1.5 writes from offset 0 of a file; it has no --offset). */
  output: string;
  sourceDir: string;
  uuid: string;
}

/**
 * mkfs.erofs 1.5: uncompressed (DAX maps file data directly: compressed files cannot be mapped),
 * 4 KiB blocks (the page size, the only block size 1.5 writes), every file's own mtime
 * (--preserve-mtime; the default replaces newer mtimes by the build time), the uuid given.
 * SOURCE_DATE_EPOCH in the environment fixes the superblock's build time.
 */
export function erofsArgs(o: ErofsOptions): string[] {
  return ['--quiet', '--preserve-mtime', '-U', o.uuid, '--', o.output, o.sourceDir];
}

export async function mkfsErofs(o: ErofsOptions & { sourceDateEpoch?: number; signal?: AbortSignal }, run: Runner = defaultRun): Promise<void> {
  await run('mkfs.erofs', erofsArgs(o), { env: o.sourceDateEpoch === undefined ? undefined : { SOURCE_DATE_EPOCH: String(o.sourceDateEpoch) }, signal: o.signal });
}
