/**
 * The layout plan: from what the user asked for to every offset and size in the image. Pure: it
 * is decided (and tested) before anything touches the disk, and every later step reads it.
 *
 *   0         512 B     4 KiB      8 KiB                 dataOff (2 MiB, more for --memmap pmem)   size
 *   | MBR     | (GPT hdr, | PFN info | (GPT entries       | partition = the guest's /dev/pmem0        |
 *   |         |  LBA 1)   | block    |  LBA 16..47)      | ext4, xfs or a zpool      (GPT backup) |
 *
 * One partition, starting exactly at the PFN block's dataoff, so the host (MBR/GPT) and the guest
 * (PFN block) agree on where the filesystem is.
 */
import { UsageError } from '../errors.js';
import { GPT_TYPE_LINUX, GPT_TYPE_ZFS } from './gpt.js';
import { MBR_MAX_SECTORS, MBR_TYPE_LINUX, MBR_TYPE_ZFS } from './mbr.js';
import { INFO_BLOCK_RESERVE_BYTES, PAGE_SIZE, PFN_MODE_PMEM, PFN_MODE_RAM, STRUCT_PAGE_SIZE, pmemDataOffBytes } from './pfn.js';
import { DAX_ALIGN_BYTES, FS_BLOCK_BYTES, MiB, PFN_INFO_OFFSET_BYTES, SECTOR_BYTES, alignDown, alignUp, formatSize, isPowerOfTwo } from './units.js';

export const FS_TYPES = ['none', 'ext4', 'xfs', 'zfs', 'erofs'] as const;
export type FsType = (typeof FS_TYPES)[number];
export const MEMMAP_MODES = ['ram', 'pmem'] as const;
export type Memmap = (typeof MEMMAP_MODES)[number];
export const TABLE_TYPES = ['mbr', 'gpt'] as const;
export type TableType = (typeof TABLE_TYPES)[number];

/**
 * The smallest partition each filesystem accepts.
 * ext4: mke2fs makes no journal below 8 MiB with 4 KiB blocks ("Filesystem too small for a journal").
 * xfs: xfsprogs >= 5.19 refuses less than 300 MiB ("Filesystem must be larger than 300MB";
 *      it tests sb_dblocks < MEGABYTES(300): exactly 300 MiB is accepted).
 * zfs: a vdev must be at least SPA_MINDEVSIZE, 64 MiB.
 * erofs: read-only and built to the size of its content (mkfs.erofs FILE DIR): the smallest image
 *      is one 4 KiB block; the partition only has to hold the built filesystem.
 */
export const MIN_PARTITION_BYTES: Readonly<Record<FsType, number>> = {
  none: FS_BLOCK_BYTES,
  ext4: 8 * MiB,
  xfs: 300 * MiB,
  zfs: 64 * MiB,
  erofs: FS_BLOCK_BYTES,
};

/** The default data offset (RAM mode): 2 MiB, the PFN block's alignment. */
export const DEFAULT_DATA_OFF_BYTES = DAX_ALIGN_BYTES;

export interface PlanOptions {
  /** What the user asked for; rounded up to `imageAlignBytes`. */
  sizeBytes: number;
  fs: FsType;
  memmap?: Memmap;
  table?: TableType;
  /** Image size alignment: 2 MiB (kernel minimum) or more (kata uses 128 MiB for memory hot-plug). */
  imageAlignBytes?: number;
  /**
   * A data offset to keep rather than the one the size gives: an existing image's (resize keeps
   * the partition where it is), or one sized for a larger image (create --max-size, so that a
   * --memmap pmem image can grow). Refused when smaller than the size needs.
   */
  dataOffBytes?: number;
}

export interface PartitionPlan {
  offsetBytes: number;
  sizeBytes: number;
  startLba: number;
  /** Inclusive. */
  endLba: number;
  sectorCount: number;
  mbrType: number;
  gptTypeGuid: string;
}

export interface LayoutPlan {
  requestedBytes: number;
  sizeBytes: number;
  /** sizeBytes - requestedBytes: what rounding added (reported to the user). */
  roundedUpBytes: number;
  imageAlignBytes: number;
  fs: FsType;
  memmap: Memmap;
  table: TableType;
  /** endTruncBytes: the end of the namespace the guest leaves out (the GPT tail). */
  pfn: { offsetBytes: number; mode: number; alignBytes: number; dataOffBytes: number; endTruncBytes: number };
  partition: PartitionPlan;
  /** The filesystem's size: the partition rounded down to whole 4 KiB blocks. */
  fsSizeBytes: number;
  /** What the guest's /dev/pmem0 will be: size - dataoff - end_trunc (= the partition, 2 MiB aligned). */
  pmemSizeBytes: number;
}

function dataOffFor(sizeBytes: number, memmap: Memmap): number {
  return memmap === 'pmem' ? Math.max(DEFAULT_DATA_OFF_BYTES, pmemDataOffBytes(sizeBytes, DAX_ALIGN_BYTES)) : DEFAULT_DATA_OFF_BYTES;
}

/**
 * The largest image a PMEM-mode data offset holds the struct pages of (pmemDataOffBytes inverted):
 * the 8 KiB info block reserve, then 64 B per 4 KiB page. An image can grow up to this in place.
 */
export function pmemMaxSizeBytes(dataOffBytes: number): number {
  const pages = Math.floor((dataOffBytes - INFO_BLOCK_RESERVE_BYTES) / STRUCT_PAGE_SIZE);
  return alignDown(pages * PAGE_SIZE, DAX_ALIGN_BYTES);
}

/**
 * Bytes the table keeps at the end of the image, outside the partition and outside the guest's
 * /dev/pmem0: a GPT's backup header and entries (16.5 KiB) need a whole 2 MiB, because the PFN
 * block cuts the namespace's end (end_trunc) only in steps of 2 MiB. Without the cut, /dev/pmem0
 * would run over the backup GPT and a ZFS pool, which writes its labels 2 and 3 at the end of its
 * device, would overwrite it as soon as a guest used the pool.
 */
export function tailBytes(table: TableType): number {
  return table === 'gpt' ? DAX_ALIGN_BYTES : 0;
}

/** The smallest image for these options, aligned. */
export function minimumImageBytes(fs: FsType, memmap: Memmap = 'ram', table: TableType = 'mbr', imageAlignBytes = DAX_ALIGN_BYTES): number {
  let size = alignUp(DEFAULT_DATA_OFF_BYTES + MIN_PARTITION_BYTES[fs] + tailBytes(table), imageAlignBytes);
  // PMEM mode's data offset grows with the size: step until the partition fits.
  while (size - dataOffFor(size, memmap) - tailBytes(table) < MIN_PARTITION_BYTES[fs]) size += imageAlignBytes;
  return size;
}

/**
 * The smallest image (aligned) whose partition holds `partitionBytes` and at least the
 * filesystem's minimum: what `--size auto` asks for once the content's size is known.
 */
export function imageBytesForPartition(partitionBytes: number, fs: FsType, memmap: Memmap = 'ram', table: TableType = 'mbr', imageAlignBytes = DAX_ALIGN_BYTES): number {
  let size = Math.max(minimumImageBytes(fs, memmap, table, imageAlignBytes), alignUp(DEFAULT_DATA_OFF_BYTES + partitionBytes + tailBytes(table), imageAlignBytes));
  while (alignDown(size - dataOffFor(size, memmap) - tailBytes(table), FS_BLOCK_BYTES) < partitionBytes) size += imageAlignBytes;
  return size;
}

export function planLayout(o: PlanOptions): LayoutPlan {
  const memmap = o.memmap ?? 'ram';
  const table = o.table ?? 'mbr';
  const imageAlignBytes = o.imageAlignBytes ?? DAX_ALIGN_BYTES;
  if (!isPowerOfTwo(imageAlignBytes) || imageAlignBytes < DAX_ALIGN_BYTES) {
    throw new UsageError(`alignment ${imageAlignBytes} bytes must be a power of two of at least 2 MiB (the kernel's namespace alignment)`, { imageAlignBytes });
  }
  if (!Number.isSafeInteger(o.sizeBytes) || o.sizeBytes <= 0) {
    throw new UsageError(`size ${o.sizeBytes} must be a positive whole number of bytes`, { sizeBytes: o.sizeBytes });
  }
  const sizeBytes = alignUp(o.sizeBytes, imageAlignBytes);
  const minimum = minimumImageBytes(o.fs, memmap, table, imageAlignBytes);
  if (sizeBytes < minimum) {
    throw new UsageError(
      `size ${formatSize(o.sizeBytes)} is too small for ${o.fs === 'none' ? 'an image' : o.fs}${memmap === 'pmem' ? ' with --memmap pmem' : ''}: the minimum is ${formatSize(minimum)} (${formatSize(dataOffFor(minimum, memmap) + tailBytes(table))} of headers + ${formatSize(MIN_PARTITION_BYTES[o.fs])} for the filesystem${dataOffFor(minimum, memmap) + tailBytes(table) + MIN_PARTITION_BYTES[o.fs] < minimum ? `, rounded up to a multiple of ${formatSize(imageAlignBytes)}` : ''})`,
      { requestedBytes: o.sizeBytes, minimumBytes: minimum },
    );
  }
  const neededDataOff = dataOffFor(sizeBytes, memmap);
  const dataOffBytes = o.dataOffBytes ?? neededDataOff;
  if (dataOffBytes < neededDataOff) {
    throw new UsageError(
      `a data offset of ${formatSize(dataOffBytes)} is too small for a ${formatSize(sizeBytes)} image with --memmap pmem: its struct pages need ${formatSize(neededDataOff)} (at most ${formatSize(pmemMaxSizeBytes(dataOffBytes))} fits; an image made with --max-size reserves room to grow)`,
      { sizeBytes, dataOffBytes, neededDataOffBytes: neededDataOff, maxSizeBytes: pmemMaxSizeBytes(dataOffBytes) },
    );
  }
  if (!Number.isSafeInteger(dataOffBytes) || dataOffBytes % DAX_ALIGN_BYTES !== 0 || dataOffBytes + MIN_PARTITION_BYTES[o.fs] + tailBytes(table) > sizeBytes) {
    throw new UsageError(`data offset ${dataOffBytes} must be a multiple of 2 MiB that leaves room for the partition in ${formatSize(sizeBytes)}`, { dataOffBytes, sizeBytes });
  }
  const totalSectors = sizeBytes / SECTOR_BYTES;
  const startLba = dataOffBytes / SECTOR_BYTES;
  const endLba = totalSectors - 1 - tailBytes(table) / SECTOR_BYTES;
  const sectorCount = endLba - startLba + 1;
  if (table === 'mbr' && (sectorCount > MBR_MAX_SECTORS || startLba > MBR_MAX_SECTORS)) {
    throw new UsageError(
      `size ${formatSize(sizeBytes)} is too large for an MBR, which describes at most ${formatSize(MBR_MAX_SECTORS * SECTOR_BYTES)}: use --table gpt`,
      { sizeBytes, maxBytes: MBR_MAX_SECTORS * SECTOR_BYTES },
    );
  }
  const partitionBytes = sectorCount * SECTOR_BYTES;
  return {
    requestedBytes: o.sizeBytes,
    sizeBytes,
    roundedUpBytes: sizeBytes - o.sizeBytes,
    imageAlignBytes,
    fs: o.fs,
    memmap,
    table,
    pfn: {
      offsetBytes: PFN_INFO_OFFSET_BYTES,
      mode: memmap === 'pmem' ? PFN_MODE_PMEM : PFN_MODE_RAM,
      alignBytes: DAX_ALIGN_BYTES,
      dataOffBytes,
      endTruncBytes: tailBytes(table),
    },
    partition: {
      offsetBytes: dataOffBytes,
      sizeBytes: partitionBytes,
      startLba,
      endLba,
      sectorCount,
      mbrType: o.fs === 'zfs' ? MBR_TYPE_ZFS : MBR_TYPE_LINUX,
      gptTypeGuid: o.fs === 'zfs' ? GPT_TYPE_ZFS : GPT_TYPE_LINUX,
    },
    fsSizeBytes: alignDown(partitionBytes, FS_BLOCK_BYTES),
    pmemSizeBytes: sizeBytes - dataOffBytes - tailBytes(table),
  };
}
