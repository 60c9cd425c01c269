/**
 * Hostile headers for the fuzz tests (test/unit/jobs/inspect-fuzz.test.ts, and attach in
 * test/system/faults-fuzz.test.ts): valid images described as byte regions, and seeded mutations of
 * them. Everything is reproducible from the seed: a failure names the seed, the iteration and the
 * mutation.
 *
 * Mutations: bit flips and random bytes in the regions readers look at (MBR, GPT header and entry
 * arrays, PFN block, filesystem superblocks, ZFS labels); known fields set to extremes (0, max,
 * sign bits, 2^32, 2^53, sizes off by one); the file truncated or extended; and, half the time,
 * the checksums (PFN fletcher64, GPT CRC32s, ZFS label SHA-256) recomputed so that the mutation
 * gets past the checksum and reaches the rules behind it.
 */
import { promises as fs } from 'node:fs';
import { buildHeader } from '../../../src/layout/header.js';
import { crc32 } from '../../../src/layout/gpt.js';
import { pfnChecksum } from '../../../src/layout/pfn.js';
import { planLayout, type FsType, type Memmap, type TableType } from '../../../src/layout/plan.js';
import { labelByteOrder, sealVdevPhys, VDEV_PHYS_BYTES, vdevPhysOffsets } from '../../../src/layout/zfs-label.js';

// -------------------------------------------------------------------------------------------------
// A seeded PRNG (mulberry32): same seed, same mutations, on every machine.

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** [0, 2^32) */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** [0, n) */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// -------------------------------------------------------------------------------------------------
// Valid images as regions

export interface Region {
  offset: number;
  data: Buffer;
  /** What lives there; mutations weigh regions by kind. */
  kind: 'head' | 'gpt-backup' | 'fs' | 'zfs-label';
  /** ZFS label: the vdev_phys offset within the vdev (the checksum verifier). */
  vdevOffset?: number;
}

export interface Field {
  name: string;
  offset: number;
  width: 1 | 2 | 4 | 8;
  be?: boolean;
}

export interface BaseImage {
  name: string;
  size: number;
  regions: Region[];
  fields: Field[];
  dataOff: number;
  partitionOffset: number;
  partitionSize: number;
  table: TableType;
}

const PFN = 4096;

function pfnFields(): Field[] {
  return [
    { name: 'pfn.signature[0]', offset: PFN, width: 1 },
    { name: 'pfn.flags', offset: PFN + 0x30, width: 4 },
    { name: 'pfn.versionMajor', offset: PFN + 0x34, width: 2 },
    { name: 'pfn.versionMinor', offset: PFN + 0x36, width: 2 },
    { name: 'pfn.dataOff', offset: PFN + 0x38, width: 8 },
    { name: 'pfn.npfns', offset: PFN + 0x40, width: 8 },
    { name: 'pfn.mode', offset: PFN + 0x48, width: 4 },
    { name: 'pfn.startPad', offset: PFN + 0x4c, width: 4 },
    { name: 'pfn.endTrunc', offset: PFN + 0x50, width: 4 },
    { name: 'pfn.align', offset: PFN + 0x54, width: 4 },
    { name: 'pfn.pageSize', offset: PFN + 0x58, width: 4 },
    { name: 'pfn.pageStructSize', offset: PFN + 0x5c, width: 2 },
  ];
}

function mbrFields(): Field[] {
  const out: Field[] = [
    { name: 'mbr.diskSignature', offset: 440, width: 4 },
    { name: 'mbr.bootSignature', offset: 510, width: 2 },
  ];
  for (let i = 0; i < 4; i++) {
    const e = 446 + 16 * i;
    out.push(
      { name: `mbr.p${i}.status`, offset: e, width: 1 },
      { name: `mbr.p${i}.type`, offset: e + 4, width: 1 },
      { name: `mbr.p${i}.startLba`, offset: e + 8, width: 4 },
      { name: `mbr.p${i}.sectorCount`, offset: e + 12, width: 4 },
    );
  }
  return out;
}

function gptHeaderFields(at: number, what: string): Field[] {
  return [
    { name: `${what}.signature[0]`, offset: at, width: 1 },
    { name: `${what}.revision`, offset: at + 8, width: 4 },
    { name: `${what}.headerSize`, offset: at + 12, width: 4 },
    { name: `${what}.myLba`, offset: at + 24, width: 8 },
    { name: `${what}.alternateLba`, offset: at + 32, width: 8 },
    { name: `${what}.firstUsableLba`, offset: at + 40, width: 8 },
    { name: `${what}.lastUsableLba`, offset: at + 48, width: 8 },
    { name: `${what}.partitionEntryLba`, offset: at + 72, width: 8 },
    { name: `${what}.numberOfPartitionEntries`, offset: at + 80, width: 4 },
    { name: `${what}.sizeOfPartitionEntry`, offset: at + 84, width: 4 },
  ];
}

function gptEntryFields(at: number, what: string): Field[] {
  return [
    { name: `${what}[0].type[0]`, offset: at, width: 1 },
    { name: `${what}[0].startingLba`, offset: at + 32, width: 8 },
    { name: `${what}[0].endingLba`, offset: at + 40, width: 8 },
    { name: `${what}[1].type[0]`, offset: at + 128, width: 1 },
    { name: `${what}[1].startingLba`, offset: at + 128 + 32, width: 8 },
  ];
}

/** A minimal ext4 superblock (what mkimage's detectFs reads) at +1024 of the partition. */
function ext4Superblock(fsBytes: number): Buffer {
  const b = Buffer.alloc(4096);
  const sb = 1024;
  b.writeUInt32LE(Math.floor(fsBytes / 4096) % 2 ** 32, sb + 0x04);
  b.writeUInt32LE(2, sb + 0x18); // 4 KiB blocks
  b.writeUInt16LE(0xef53, sb + 0x38);
  Buffer.from('0b3c6f1e8d2a4c5e9f7a1b2c3d4e5f60', 'hex').copy(b, sb + 0x68);
  b.write('fuzz', sb + 0x78, 'latin1');
  return b;
}

/** A minimal xfs superblock (big-endian) at the partition start. */
function xfsSuperblock(fsBytes: number): Buffer {
  const b = Buffer.alloc(4096);
  b.write('XFSB', 0, 'latin1');
  b.writeUInt32BE(4096, 4);
  b.writeBigUInt64BE(BigInt(Math.floor(fsBytes / 4096)), 8);
  Buffer.from('6825d385276f438e88f97d72ac2451a3', 'hex').copy(b, 32);
  b.write('fuzzxfs', 108, 'latin1');
  return b;
}

export interface BaseSpec {
  name: string;
  size: number;
  fs: FsType;
  table?: TableType;
  memmap?: Memmap;
  /** Label 0's vdev_phys of a real pool (the fixture), for fs zfs. */
  zfsLabel?: Buffer;
}

const IDS = {
  pfnUuid: '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60',
  diskSignature: 0x1234abcd,
  diskGuid: '6825d385-276f-438e-88f9-7d72ac2451a3',
  partitionGuid: '1a9ed3d2-b503-446d-a691-ea519ca6ccfe',
  partitionName: 'fuzz',
};

/** A valid image built in memory from mkimage's own layout code (no tools). */
export function baseImage(spec: BaseSpec): BaseImage {
  const plan = planLayout({ sizeBytes: spec.size, fs: spec.fs, table: spec.table, memmap: spec.memmap });
  const head = Buffer.alloc(24 * 1024);
  const regions: Region[] = [{ offset: 0, data: head, kind: 'head' }];
  const tailAt = plan.table === 'gpt' ? plan.sizeBytes - 33 * 512 : undefined;
  const tail = tailAt === undefined ? undefined : Buffer.alloc(33 * 512);
  for (const w of buildHeader(plan, IDS)) {
    if (w.offsetBytes + w.data.length <= head.length) w.data.copy(head, w.offsetBytes);
    else if (tail && tailAt !== undefined && w.offsetBytes >= tailAt) w.data.copy(tail, w.offsetBytes - tailAt);
    else throw new Error(`${w.what} at ${w.offsetBytes} is outside the regions`);
  }
  if (tail && tailAt !== undefined) regions.push({ offset: tailAt, data: tail, kind: 'gpt-backup' });
  const part = plan.partition.offsetBytes;
  if (spec.fs === 'ext4') regions.push({ offset: part, data: ext4Superblock(plan.fsSizeBytes), kind: 'fs' });
  if (spec.fs === 'xfs') regions.push({ offset: part, data: xfsSuperblock(plan.fsSizeBytes), kind: 'fs' });
  if (spec.fs === 'zfs' && spec.zfsLabel) {
    const order = labelByteOrder(spec.zfsLabel) ?? 'le';
    for (const vdevOffset of vdevPhysOffsets(plan.partition.sizeBytes)) {
      regions.push({ offset: part + vdevOffset, data: sealVdevPhys(spec.zfsLabel, vdevOffset, order), kind: 'zfs-label', vdevOffset });
    }
  }
  const fields = [...pfnFields(), ...mbrFields()];
  if (plan.table === 'gpt') {
    const total = plan.sizeBytes / 512;
    fields.push(...gptHeaderFields(512, 'gpt'), ...gptEntryFields(16 * 512, 'gpt.entries'));
    fields.push(...gptHeaderFields((total - 1) * 512, 'gptBackup'), ...gptEntryFields((total - 33) * 512, 'gptBackup.entries'));
  }
  if (spec.fs === 'ext4') {
    fields.push(
      { name: 'ext4.s_blocks_count_lo', offset: part + 1024 + 0x04, width: 4 },
      { name: 'ext4.s_log_block_size', offset: part + 1024 + 0x18, width: 4 },
      { name: 'ext4.s_magic', offset: part + 1024 + 0x38, width: 2 },
      { name: 'ext4.s_blocks_count_hi', offset: part + 1024 + 0x150, width: 4 },
    );
  }
  if (spec.fs === 'xfs') {
    fields.push({ name: 'xfs.sb_blocksize', offset: part + 4, width: 4, be: true }, { name: 'xfs.sb_dblocks', offset: part + 8, width: 8, be: true });
  }
  return { name: spec.name, size: plan.sizeBytes, regions, fields, dataOff: plan.pfn.dataOffBytes, partitionOffset: part, partitionSize: plan.partition.sizeBytes, table: plan.table };
}

/** A base from a real image on disk: the same regions, read from the file. */
export async function baseFromFile(name: string, path: string, like: BaseImage): Promise<BaseImage> {
  const fh = await fs.open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const regions: Region[] = [];
    for (const r of like.regions) {
      const data = Buffer.alloc(r.data.length);
      await fh.read(data, 0, data.length, r.offset);
      regions.push({ ...r, data });
    }
    return { ...like, name, size, regions };
  } finally {
    await fh.close();
  }
}

// -------------------------------------------------------------------------------------------------
// Mutations

export interface Mutation {
  /** Whole regions with their mutated content (only the regions that changed). */
  regions: Region[];
  size: number;
  /** What was done, for the failure message. */
  steps: string[];
}

function extremes(width: number, base: BaseImage, rng: Rng): bigint[] {
  const max = (1n << BigInt(8 * width)) - 1n;
  const sizeish = [base.size, base.size / 512, base.size / 512 - 1, base.dataOff, base.dataOff - 1, base.dataOff + 4096, base.partitionSize / 4096, 2 ** 32, 2 ** 53, 2 ** 53 + 2].map((n) => BigInt(Math.max(0, Math.floor(n))));
  const values = [0n, 1n, 2n, max, max - 1n, max >> 1n, (max >> 1n) + 1n, ...sizeish, 1n << 63n, BigInt(rng.u32())];
  return values.map((v) => v & max);
}

function writeField(region: Region, f: Field, value: bigint): void {
  const at = f.offset - region.offset;
  for (let i = 0; i < f.width; i++) {
    const byte = Number((value >> BigInt(8 * i)) & 0xffn);
    region.data[f.be ? at + f.width - 1 - i : at + i] = byte;
  }
}

function regionOf(regions: Region[], offset: number, width: number): Region | undefined {
  return regions.find((r) => offset >= r.offset && offset + width <= r.offset + r.data.length);
}

/** Recomputes the checksums a reader verifies, over the mutated bytes (each with probability p). */
function fixChecksums(base: BaseImage, regions: Region[], changed: Set<Region>, rng: Rng, steps: string[]): void {
  const head = regions.find((r) => r.kind === 'head')!;
  if (changed.has(head) && rng.chance(0.5)) {
    const block = head.data.subarray(PFN, PFN + 4096);
    block.writeBigUInt64LE(pfnChecksum(Buffer.from(block)), 0xff8);
    steps.push('pfn checksum fixed');
  }
  if (base.table !== 'gpt') return;
  const fixGpt = (r: Region, headerAt: number, entriesAt: number | undefined, what: string) => {
    const h = r.data.subarray(headerAt, headerAt + 512);
    if (entriesAt !== undefined) {
      const n = h.readUInt32LE(80);
      const size = h.readUInt32LE(84);
      const len = Math.min(n * size, r.data.length - entriesAt);
      if (len > 0 && Number.isSafeInteger(len)) h.writeUInt32LE(crc32(r.data.subarray(entriesAt, entriesAt + len)), 88);
    }
    const hs = Math.min(Math.max(h.readUInt32LE(12), 0), 512);
    h.writeUInt32LE(0, 16);
    h.writeUInt32LE(crc32(h.subarray(0, hs)), 16);
    steps.push(`${what} crc fixed`);
  };
  if (changed.has(head) && rng.chance(0.5)) fixGpt(head, 512, 16 * 512, 'gpt');
  const tail = regions.find((r) => r.kind === 'gpt-backup');
  if (tail && changed.has(tail) && rng.chance(0.5)) fixGpt(tail, tail.data.length - 512, 0, 'gptBackup');
}

function fixLabels(regions: Region[], changed: Set<Region>, rng: Rng, steps: string[]): void {
  for (const r of regions) {
    if (r.kind !== 'zfs-label' || !changed.has(r) || !rng.chance(0.5)) continue;
    if (r.data.length !== VDEV_PHYS_BYTES || r.vdevOffset === undefined) continue;
    r.data = sealVdevPhys(r.data, r.vdevOffset, labelByteOrder(r.data) ?? 'le');
    steps.push(`zfs label @${r.vdevOffset} resealed`);
  }
}

/** One to three random mutations of `base`. */
export function mutate(base: BaseImage, rng: Rng): Mutation {
  const regions = base.regions.map((r) => ({ ...r, data: Buffer.from(r.data) }));
  const changed = new Set<Region>();
  const steps: string[] = [];
  let size = base.size;
  const weighted = regions.flatMap((r) => (r.kind === 'head' ? [r, r, r, r] : r.kind === 'zfs-label' ? [r] : [r, r]));
  const count = 1 + rng.int(3);
  for (let k = 0; k < count; k++) {
    const kind = rng.int(100);
    if (kind < 25) {
      // Bit flips, concentrated where the structures are (first 1 KiB of a region, or anywhere).
      const r = rng.pick(weighted);
      const span = rng.chance(0.6) ? Math.min(1024, r.data.length) : r.data.length;
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips; i++) {
        const at = r.kind === 'head' && rng.chance(0.5) ? PFN + rng.int(128) : rng.int(span);
        r.data[at]! ^= 1 << rng.int(8);
      }
      changed.add(r);
      steps.push(`${flips} bit flips in ${r.kind}@${r.offset}`);
    } else if (kind < 40) {
      const r = rng.pick(weighted);
      const len = 1 + rng.int(16);
      const at = rng.int(Math.max(1, r.data.length - len));
      rng.bytes(len).copy(r.data, at);
      changed.add(r);
      steps.push(`${len} random bytes at ${r.kind}@${r.offset}+${at}`);
    } else if (kind < 85) {
      const f = rng.pick(base.fields);
      const r = regionOf(regions, f.offset, f.width);
      if (!r) continue;
      const v = rng.pick(extremes(f.width, base, rng));
      writeField(r, f, v);
      changed.add(r);
      steps.push(`${f.name} = 0x${v.toString(16)}`);
    } else {
      const sizes = [0, 1, 511, 512, 4095, 4096, 8191, 8192, 8193, 24575, 24576, base.dataOff - 1, base.dataOff, base.dataOff + 4095, base.dataOff + 1024 + 0x100, base.size - 1, base.size - 512, base.size - 33 * 512, Math.floor(base.size / 2), base.size + 1, base.size + 512, base.size * 2, rng.int(base.size)];
      size = Math.max(0, rng.pick(sizes));
      steps.push(`size ${size}`);
    }
  }
  fixChecksums(base, regions, changed, rng, steps);
  fixLabels(regions, changed, rng, steps);
  return { regions: regions.filter((r) => changed.has(r)), size, steps };
}

// -------------------------------------------------------------------------------------------------
// The file the readers see: the base, with one mutation at a time applied and then taken back.

export class WorkImage {
  private applied: Mutation | undefined;
  private fh: fs.FileHandle | undefined;
  constructor(
    readonly path: string,
    readonly base: BaseImage,
  ) {}

  private async write(regions: readonly Region[], size: number): Promise<void> {
    this.fh ??= await fs.open(this.path, 'r+');
    for (const r of regions) await this.fh.write(r.data, 0, r.data.length, r.offset);
    await this.fh.truncate(size);
  }

  /** Writes the base image from scratch. */
  async reset(): Promise<void> {
    await this.close();
    await fs.writeFile(this.path, '');
    await this.write(this.base.regions, this.base.size);
    this.applied = undefined;
  }

  async apply(m: Mutation): Promise<void> {
    await this.write(m.regions, m.size);
    this.applied = m;
  }

  /** Puts back what the last mutation changed (regions cut by a truncation included). */
  async restore(): Promise<void> {
    const m = this.applied;
    if (!m) return;
    const cut = m.size < this.base.size ? this.base.regions.filter((r) => r.offset + r.data.length > m.size) : [];
    const back = this.base.regions.filter((r) => m.regions.some((x) => x.offset === r.offset) || cut.includes(r));
    await this.write(back, this.base.size);
    this.applied = undefined;
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
  }
}
