/**
 * Sizes and alignment: the arithmetic every other part of mkimage builds on. Pure, no I/O.
 *
 * Byte counts are JavaScript numbers: exact up to 2^53 bytes (8 PiB), far beyond any image file.
 * Only 64-bit on-disk fields (PFN block, GPT) are BigInt, and only at the encode/decode boundary.
 */
import { UsageError } from '../errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** Logical sector size of an image file (what fdisk, sfdisk and the loop driver assume). */
export const SECTOR_BYTES = 512;

/**
 * Image and data alignment: 2 MiB. Kernels >= 5.7 refuse a namespace whose start or end is not
 * aligned to memremap_compat_align() (2 MiB on x86: "resource end misaligned"), and fsdax huge
 * pages need the filesystem at a 2 MiB boundary (https://nvdimm.wiki.kernel.org/2mib_fs_dax).
 */
export const DAX_ALIGN_BYTES = 2 * MiB;

/** The guest kernel reads the PFN info block at namespace offset 4 KiB (drivers/nvdimm/pfn_devs.c). */
export const PFN_INFO_OFFSET_BYTES = 4 * KiB;

/** The filesystem block size: ext4 and xfs only support DAX with blocks equal to the 4 KiB page. */
export const FS_BLOCK_BYTES = 4 * KiB;

const UNITS: Readonly<Record<string, number>> = { '': 1, K: KiB, M: MiB, G: GiB, T: TiB, P: 1024 * TiB };

/**
 * Parse a size: plain bytes or a number with K, M, G, T or P (powers of 1024; `KiB`, `KB`, `k` are
 * the same). Decimals are allowed with a unit (`1.5G`). The result must be a whole, positive,
 * safe number of bytes.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kKmMgGtTpP])(?:i?[bB])?|[bB])?\s*$/.exec(text);
  if (!m) {
    throw new UsageError(
      `${what} "${text}" is not a size: give bytes or a number with K, M, G or T (powers of 1024), e.g. 20G or 512M`,
      { text },
    );
  }
  const unit = (m[2] ?? '').toUpperCase();
  if (!unit && m[1]!.includes('.')) throw new UsageError(`${what} "${text}" is not a whole number of bytes: a decimal needs a unit, e.g. 1.5G`, { text });
  const bytes = Math.ceil(Number(m[1]) * UNITS[unit]!);
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(`${what} "${text}" is too large (${bytes} bytes)`, { text });
  }
  if (bytes <= 0) {
    throw new UsageError(`${what} "${text}" must be larger than zero`, { text });
  }
  return bytes;
}

/** `20 GiB`, `1000 MiB`, `3 B`; `20.0 GiB` when not a whole number of the largest unit. */
export function formatSize(bytes: number): string {
  const units: [string, number][] = [['PiB', 1024 * TiB], ['TiB', TiB], ['GiB', GiB], ['MiB', MiB], ['KiB', KiB]];
  for (const [name, size] of units) {
    if (bytes >= size) return bytes % size === 0 ? `${bytes / size} ${name}` : `${(bytes / size).toFixed(1)} ${name}`;
  }
  return `${bytes} B`;
}

export function isAligned(value: number, alignment: number): boolean {
  return value % alignment === 0;
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function alignDown(value: number, alignment: number): number {
  return Math.floor(value / alignment) * alignment;
}

export function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}
