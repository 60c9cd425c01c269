/**
 * The Linux NVDIMM PFN info block, `struct nd_pfn_sb`: 4096 bytes at namespace offset 4 KiB.
 * Source of truth: linux drivers/nvdimm/pfn.h (the struct), pfn_devs.c (nd_pfn_validate,
 * nd_pfn_init, __nvdimm_setup_pfn), core.c (nd_fletcher64, nd_sb_checksum). All little-endian.
 *
 *   off    size  field             mkimage writes                kernel rule when reading
 *   0x000  16    signature         "NVDIMM_PFN_INFO\0" (fsdax)    all 16 bytes match, else not a pfn
 *   0x010  16    uuid              random or --uuid/--seed        adopted on probe
 *   0x020  16    parent_uuid       zero                           == namespace uuid (zero: label-less)
 *   0x030  4     flags             0
 *   0x034  2     version_major     1                              not checked
 *   0x036  2     version_minor     4                              <1 start_pad/end_trunc = 0, <2 align = 0,
 *                                                                 <4 page_size/page_struct_size assumed
 *   0x038  8     dataoff           partition start                < size, 4 KiB aligned, multiple of align
 *   0x040  8     npfns             (size - dataoff) / 4096        RAM: stored only; PMEM: recomputed
 *   0x048  4     mode              1 RAM, 2 PMEM                  must be 1 or 2
 *   0x04C  4     start_pad         0                              (deprecated)
 *   0x050  4     end_trunc         0 (GPT: 2 MiB, its backup)      size - end_trunc 2 MiB aligned
 *   0x054  4     align             2 MiB                          <= size; 0 means 1 << ilog2(dataoff)
 *   0x058  4     page_size         4096                           PMEM: rejected if > PAGE_SIZE
 *   0x05C  2     page_struct_size  64                             PMEM: rejected if < sizeof(struct page)
 *   0x05E  3994  padding           zero
 *   0xFF8  8     checksum          nd_fletcher64                  must match
 */
import type { Problem } from '../errors.js';
import { blob, defineStruct, u16, u32, u64 } from './struct.js';
import { DAX_ALIGN_BYTES, KiB, isAligned, isPowerOfTwo } from './units.js';

export const PFN_SIG = 'NVDIMM_PFN_INFO\0';
export const DAX_SIG = 'NVDIMM_DAX_INFO\0';
export const PFN_MODE_RAM = 1;
export const PFN_MODE_PMEM = 2;
/** x86-64 PAGE_SIZE. */
export const PAGE_SIZE = 4 * KiB;
/** sizeof(struct page) on x86-64 kernels; pfn.h MAX_STRUCT_PAGE_SIZE is 64 too. */
export const STRUCT_PAGE_SIZE = 64;
/** info_block_reserve(): the first 8 KiB of the namespace (label space + this block) hold no pages. */
export const INFO_BLOCK_RESERVE_BYTES = 8 * KiB;
/** Alignments nd_supported_alignment() accepts on x86-64: PAGE_SIZE, PMD, PUD. */
export const SUPPORTED_ALIGNMENTS = [4 * KiB, 2 * 1024 * KiB, 1024 * 1024 * KiB] as const;

export interface NdPfnSb {
  signature: Buffer;
  uuid: Buffer;
  parentUuid: Buffer;
  flags: number;
  versionMajor: number;
  versionMinor: number;
  dataOff: bigint;
  npfns: bigint;
  mode: number;
  startPad: number;
  endTrunc: number;
  align: number;
  pageSize: number;
  pageStructSize: number;
  padding: Buffer;
  checksum: bigint;
}

export const ND_PFN_SB = defineStruct<NdPfnSb>([
  blob(16, 'signature'),
  blob(16, 'uuid'),
  blob(16, 'parentUuid'),
  u32('flags'),
  u16('versionMajor'),
  u16('versionMinor'),
  u64('dataOff'),
  u64('npfns'),
  u32('mode'),
  u32('startPad'),
  u32('endTrunc'),
  u32('align'),
  u32('pageSize'),
  u16('pageStructSize'),
  blob(3994, 'padding'),
  u64('checksum'),
]);

export const PFN_SB_BYTES = ND_PFN_SB.span; // 4096
const CHECKSUM_OFFSET = ND_PFN_SB.offsetOf('checksum');
const U64_MASK = (1n << 64n) - 1n;

/**
 * nd_fletcher64 over the little-endian u32 words of `block`, as nd_sb_checksum computes it: the
 * caller zeroes the checksum field first. lo is a u32 sum; hi (u64 in the kernel) stays below
 * 2^44 for a 4 KiB block, so plain numbers are exact and BigInt is needed only to combine them.
 */
export function fletcher64(block: Uint8Array): bigint {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i + 4 <= block.byteLength; i += 4) {
    lo = (lo + view.getUint32(i, true)) >>> 0;
    hi += lo;
  }
  return ((BigInt(hi) << 32n) | BigInt(lo)) & U64_MASK;
}

/** The checksum the kernel expects for `block` (its checksum field treated as zero). */
export function pfnChecksum(block: Buffer): bigint {
  const copy = Buffer.from(block.subarray(0, PFN_SB_BYTES));
  copy.fill(0, CHECKSUM_OFFSET, CHECKSUM_OFFSET + 8);
  return fletcher64(copy);
}

export interface PfnInfoOptions {
  /** 16 bytes, RFC 4122 order. */
  uuid: Buffer;
  dataOffBytes: number;
  namespaceSizeBytes: number;
  mode?: typeof PFN_MODE_RAM | typeof PFN_MODE_PMEM;
  alignBytes?: number;
  /** The end of the namespace left out of /dev/pmem0 (a multiple of 2 MiB; default 0). */
  endTruncBytes?: number;
  signature?: typeof PFN_SIG | typeof DAX_SIG;
}

/** The block mkimage writes: version 1.4, as the kernel's own nd_pfn_init writes it. */
export function makePfnInfo(o: PfnInfoOptions): NdPfnSb {
  const sb: NdPfnSb = {
    signature: Buffer.from(o.signature ?? PFN_SIG, 'latin1'),
    uuid: Buffer.from(o.uuid),
    parentUuid: Buffer.alloc(16),
    flags: 0,
    versionMajor: 1,
    versionMinor: 4,
    dataOff: BigInt(o.dataOffBytes),
    npfns: BigInt(Math.floor((o.namespaceSizeBytes - o.dataOffBytes - (o.endTruncBytes ?? 0)) / PAGE_SIZE)),
    mode: o.mode ?? PFN_MODE_RAM,
    startPad: 0,
    endTrunc: o.endTruncBytes ?? 0,
    align: o.alignBytes ?? DAX_ALIGN_BYTES,
    pageSize: PAGE_SIZE,
    pageStructSize: STRUCT_PAGE_SIZE,
    padding: Buffer.alloc(3994),
    checksum: 0n,
  };
  sb.checksum = pfnChecksum(ND_PFN_SB.encode(sb));
  return sb;
}

/** Encodes `sb` as it stands (checksum included: use makePfnInfo or withChecksum to set it). */
export function encodePfnInfo(sb: NdPfnSb): Buffer {
  return ND_PFN_SB.encode(sb);
}

export function withChecksum(sb: NdPfnSb): NdPfnSb {
  return { ...sb, checksum: pfnChecksum(ND_PFN_SB.encode(sb)) };
}

/** Decodes 4096 bytes. Never throws for content: use checkPfnInfo to judge it. */
export function decodePfnInfo(buf: Buffer): NdPfnSb {
  const sb = ND_PFN_SB.decode(buf);
  // buffer-layout's blobs are views into `buf`: copy them so the result owns its bytes.
  return {
    ...sb,
    signature: Buffer.from(sb.signature),
    uuid: Buffer.from(sb.uuid),
    parentUuid: Buffer.from(sb.parentUuid),
    padding: Buffer.from(sb.padding),
  };
}

/** The namespace the block is read in: what the guest kernel compares it with. */
export interface NamespaceContext {
  /** The whole namespace: the image file's size (QEMU's nvdimm size= equals the file size). */
  sizeBytes: number;
  /** The namespace uuid; zero for QEMU's label-less NVDIMM. */
  uuid?: Buffer;
}

/** The values nd_pfn_validate works with after applying the version rules. */
export interface EffectivePfn {
  align: number;
  startPad: number;
  endTrunc: number;
  pageSize: number;
  pageStructSize: number;
}

/** Applies the version_minor rules of nd_pfn_validate: fields older readers did not have. */
export function effectivePfn(sb: NdPfnSb): EffectivePfn {
  const v = sb.versionMinor;
  const dataOff = Number(sb.dataOff);
  let align = v < 2 ? 0 : sb.align;
  // align 0 means 1 << ilog2(dataoff): the largest power of two not above dataoff.
  if (align === 0) align = dataOff > 0 ? 2 ** Math.floor(Math.log2(dataOff)) : 0;
  return {
    align,
    startPad: v < 1 ? 0 : sb.startPad,
    endTrunc: v < 1 ? 0 : sb.endTrunc,
    pageSize: v < 4 ? PAGE_SIZE : sb.pageSize,
    pageStructSize: v < 4 ? STRUCT_PAGE_SIZE : sb.pageStructSize,
  };
}

/**
 * The smallest dataoff for PMEM mode: the info block reserve plus a struct page for every 4 KiB
 * page of the namespace, rounded up to the alignment (a 1 GiB image: 18 MiB). With less, the
 * guest's memmap allocation from the device fails (-ENOMEM) and no /dev/pmem0 appears.
 */
export function pmemDataOffBytes(namespaceSizeBytes: number, alignBytes = DAX_ALIGN_BYTES): number {
  const need = INFO_BLOCK_RESERVE_BYTES + STRUCT_PAGE_SIZE * Math.ceil(namespaceSizeBytes / PAGE_SIZE);
  return Math.ceil(need / alignBytes) * alignBytes;
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/**
 * Every rule the guest kernel applies to the block (nd_pfn_validate and __nvdimm_setup_pfn), in
 * the kernel's order. An empty list means a guest gets an fsdax /dev/pmem0 of size - dataoff.
 * The same function judges a block before mkimage writes it and after inspect reads it.
 */
export function checkPfnInfo(sb: NdPfnSb, ns: NamespaceContext): Problem[] {
  const problems: Problem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  const sig = sb.signature.toString('latin1');
  if (sig !== PFN_SIG && sig !== DAX_SIG) {
    add('signature', `signature is ${JSON.stringify(sig)}, not "NVDIMM_PFN_INFO\\0": the guest sees a raw namespace`);
    return problems;
  }
  const expected = pfnChecksum(encodePfnInfo(sb));
  if (sb.checksum !== expected) {
    add('checksum', `checksum is ${hex(sb.checksum)}, the block's fletcher64 is ${hex(expected)}`);
    return problems;
  }
  const nsUuid = ns.uuid ?? Buffer.alloc(16);
  if (!sb.parentUuid.equals(nsUuid)) {
    add('parentUuid', `parent_uuid is ${sb.parentUuid.toString('hex')}, must equal the namespace uuid ${nsUuid.toString('hex')} (zero for a label-less QEMU NVDIMM)`);
  }
  if (sb.mode !== PFN_MODE_RAM && sb.mode !== PFN_MODE_PMEM) {
    add('mode', `mode is ${sb.mode}, must be 1 (RAM) or 2 (PMEM)`);
  }
  const eff = effectivePfn(sb);
  const dataOff = Number(sb.dataOff);
  if (sb.mode === PFN_MODE_PMEM && eff.pageSize > PAGE_SIZE) {
    add('pageSize', `page_size is ${eff.pageSize}, larger than the guest's PAGE_SIZE ${PAGE_SIZE} (PMEM mode)`);
  }
  if (sb.mode === PFN_MODE_PMEM && eff.pageStructSize < STRUCT_PAGE_SIZE) {
    add('pageStructSize', `page_struct_size is ${eff.pageStructSize}, smaller than sizeof(struct page) ${STRUCT_PAGE_SIZE} (PMEM mode)`);
  }
  if (sig === DAX_SIG && !(SUPPORTED_ALIGNMENTS as readonly number[]).includes(eff.align)) {
    add('align', `align is ${hex(eff.align)}, not an alignment the kernel supports for devdax (4 KiB, 2 MiB, 1 GiB)`);
  }
  if (eff.align > ns.sizeBytes) {
    add('align', `align ${hex(eff.align)} exceeds the namespace size ${hex(ns.sizeBytes)}`);
  }
  if (dataOff >= ns.sizeBytes) {
    add('dataOff', `dataoff ${hex(dataOff)} is not below the namespace size ${hex(ns.sizeBytes)}`);
  }
  if ((eff.align && !isAligned(dataOff + eff.startPad, eff.align)) || !isAligned(dataOff, PAGE_SIZE)) {
    add('dataOff', `dataoff ${hex(dataOff)} is not a multiple of align ${hex(eff.align)} and of ${PAGE_SIZE} ("bad offset: dax disabled")`);
  }
  if (eff.align && !isPowerOfTwo(eff.align)) {
    add('align', `align ${hex(eff.align)} is not a power of two`);
  }
  if (!isAligned(eff.startPad, DAX_ALIGN_BYTES)) {
    add('startPad', `start_pad ${hex(eff.startPad)} leaves the start misaligned to 2 MiB ("resource start misaligned")`);
  }
  if (!isAligned(ns.sizeBytes - eff.endTrunc, DAX_ALIGN_BYTES)) {
    add('endTrunc', `namespace size ${hex(ns.sizeBytes)} minus end_trunc ${hex(eff.endTrunc)} is not a multiple of 2 MiB ("resource end misaligned")`);
  }
  if (dataOff < INFO_BLOCK_RESERVE_BYTES) {
    add('dataOff', `dataoff ${hex(dataOff)} is below the ${INFO_BLOCK_RESERVE_BYTES}-byte info block reserve`);
  }
  if (sb.mode === PFN_MODE_PMEM) {
    const need = pmemDataOffBytes(ns.sizeBytes, eff.align || DAX_ALIGN_BYTES);
    if (dataOff < need) {
      add('dataOff', `dataoff ${hex(dataOff)} is too small for PMEM mode: struct pages for ${ns.sizeBytes / PAGE_SIZE} pages need ${hex(need)} (use --memmap pmem, which sizes it, or RAM mode)`);
    }
  }
  return onePerField(problems);
}

/** One problem per field: a field that breaks several rules gets one problem naming them all. */
function onePerField(problems: Problem[]): Problem[] {
  const out: Problem[] = [];
  for (const p of problems) {
    const same = out.find((q) => q.field === p.field);
    if (same) same.message += `; ${p.message}`;
    else out.push({ ...p });
  }
  return out;
}
