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

/** The largest byte count mkimage computes with exactly (2^53 - 1, 8 PiB less a byte). */
export const MAX_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * Parse a size: plain bytes or a number with K, M, G, T or P, powers of 1024 (`KiB`, `k` are the
 * same). Decimals are allowed with a unit (`1.5G`). The result must be a whole, positive, safe
 * number of bytes.
 *
 * `20GB` is refused rather than read: coreutils (`truncate -s 20GB`) and disk vendors take GB as
 * 10^9, so reading it as 2^30 would silently give 7% more than half the users meant.
 * `minimumBytes` is named when the size is zero or negative (the caller checks the rest: its own
 * message can say where the minimum comes from).
 */
export function parseSize(text: string, what = 'size', minimumBytes?: number): number {
  const atLeast = minimumBytes === undefined ? 'it must be larger than zero' : `the minimum is ${formatSize(minimumBytes)}`;
  const m = /^\s*(-?)(\d+)(?:\.(\d+))?\s*(?:([kKmMgGtTpP])(?:(i)[bB]|([bB]))?|[bB])?\s*$/.exec(text);
  if (!m) {
    throw new UsageError(
      `${what} "${text}" is not a size: give bytes or a number with K, M, G or T (powers of 1024), e.g. 20G or 512M`,
      { text },
    );
  }
  const [, minus, whole, fraction, unitLetter, binaryI, byteB] = m;
  const unit = (unitLetter ?? '').toUpperCase();
  if (unit && byteB && !binaryI) {
    throw new UsageError(
      `${what} "${text}": ${unit}B is ambiguous (truncate and disk vendors read it as 10^${' KMGTP'.indexOf(unit) * 3}): mkimage's units are powers of 1024, write ${whole}${fraction ? `.${fraction}` : ''}${unit} or ${whole}${fraction ? `.${fraction}` : ''}${unit}iB`,
      { text },
    );
  }
  if (!unit && fraction !== undefined) throw new UsageError(`${what} "${text}" is not a whole number of bytes: a decimal needs a unit, e.g. 1.5G`, { text });
  // Exact arithmetic: a size too large for a Number is reported with its exact byte count.
  const unitBytes = BigInt(UNITS[unit]!);
  const scale = 10n ** BigInt(fraction?.length ?? 0);
  const scaled = BigInt(whole!) * scale + BigInt(fraction || '0');
  const exact = (scaled * unitBytes + scale - 1n) / scale; // rounded up to a whole byte
  if (minus || exact === 0n) {
    throw new UsageError(`${what} "${text}" is ${minus && exact !== 0n ? 'negative' : 'zero'}: ${atLeast}`, { text, minimumBytes });
  }
  if (exact > BigInt(MAX_BYTES)) {
    throw new UsageError(`${what} "${text}" is too large: ${exact} bytes, more than the ${MAX_BYTES} (8 PiB) mkimage computes with`, { text, bytes: exact.toString() });
  }
  return Number(exact);
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
