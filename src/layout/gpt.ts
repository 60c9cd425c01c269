/**
 * GUID Partition Table: for images an MBR cannot describe (more than 2^32 sectors, 2 TiB) and for
 * users who want one. Source of truth: UEFI Specification 2.10, section 5.3 (GPT Disk Layout).
 *
 * mkimage's placement keeps the PFN info block (4 KiB..8 KiB) free: the entry array, usually at
 * LBA 2, starts at LBA 16 (8 KiB), which the spec allows (PartitionEntryLBA is any LBA).
 *
 *   LBA 0              protective MBR (one 0xEE entry covering the disk; see mbr.ts)
 *   LBA 1              primary header (92 bytes, rest of the sector zero)
 *   LBA 8..15          PFN info block (not GPT's)
 *   LBA 16..47         primary entry array: 128 entries x 128 bytes
 *   dataoff..          the partition
 *   last-33..last-1    backup entry array
 *   last               backup header
 *
 *   header: off size field                      entry: off size field
 *           0   8    signature "EFI PART"              0   16   partitionTypeGuid (mixed-endian)
 *           8   4    revision 0x00010000               16  16   uniquePartitionGuid
 *           12  4    headerSize 92                     32  8    startingLba
 *           16  4    headerCrc32 (field zeroed)        40  8    endingLba (inclusive)
 *           20  4    reserved                          48  8    attributes
 *           24  8    myLba                             56  72   partitionName (UTF-16LE)
 *           32  8    alternateLba
 *           40  8    firstUsableLba
 *           48  8    lastUsableLba
 *           56  16   diskGuid
 *           72  8    partitionEntryLba
 *           80  4    numberOfPartitionEntries
 *           84  4    sizeOfPartitionEntry 128
 *           88  4    partitionEntryArrayCrc32
 */
import type { Problem } from '../errors.js';
import { blob, defineStruct, u32, u64 } from './struct.js';
import { SECTOR_BYTES } from './units.js';
import { bytesToGuid, guidToBytes } from './uuid.js';
import { crc32 } from './crc32.js';

export const GPT_SIGNATURE = 'EFI PART';
export const GPT_REVISION = 0x00010000;
export const GPT_HEADER_BYTES = 92;
export const GPT_ENTRY_BYTES = 128;
export const GPT_ENTRY_COUNT = 128;
export const GPT_ENTRY_ARRAY_BYTES = GPT_ENTRY_BYTES * GPT_ENTRY_COUNT; // 16 KiB, 32 sectors
export const GPT_ENTRY_ARRAY_SECTORS = GPT_ENTRY_ARRAY_BYTES / SECTOR_BYTES;
/** Primary entry array at 8 KiB: just past the PFN info block. */
export const GPT_PRIMARY_ENTRIES_LBA = 16;

/** "Linux filesystem data" (util-linux's `linux`). */
export const GPT_TYPE_LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
/** "Solaris /usr & Apple ZFS": what OpenZFS's own `zpool create` on a whole disk uses. */
export const GPT_TYPE_ZFS = '6A898CC3-1DD2-11B2-99A6-080020736631';

export interface GptHeader {
  signature: Buffer;
  revision: number;
  headerSize: number;
  headerCrc32: number;
  reserved: number;
  myLba: bigint;
  alternateLba: bigint;
  firstUsableLba: bigint;
  lastUsableLba: bigint;
  diskGuid: Buffer;
  partitionEntryLba: bigint;
  numberOfPartitionEntries: number;
  sizeOfPartitionEntry: number;
  partitionEntryArrayCrc32: number;
}

export interface GptEntry {
  partitionTypeGuid: Buffer;
  uniquePartitionGuid: Buffer;
  startingLba: bigint;
  endingLba: bigint;
  attributes: bigint;
  partitionName: Buffer;
}

export const GPT_HEADER = defineStruct<GptHeader>([
  blob(8, 'signature'),
  u32('revision'),
  u32('headerSize'),
  u32('headerCrc32'),
  u32('reserved'),
  u64('myLba'),
  u64('alternateLba'),
  u64('firstUsableLba'),
  u64('lastUsableLba'),
  blob(16, 'diskGuid'),
  u64('partitionEntryLba'),
  u32('numberOfPartitionEntries'),
  u32('sizeOfPartitionEntry'),
  u32('partitionEntryArrayCrc32'),
]);

export const GPT_ENTRY = defineStruct<GptEntry>([
  blob(16, 'partitionTypeGuid'),
  blob(16, 'uniquePartitionGuid'),
  u64('startingLba'),
  u64('endingLba'),
  u64('attributes'),
  blob(72, 'partitionName'),
]);

const HEADER_CRC_OFFSET = GPT_HEADER.offsetOf('headerCrc32');

/** CRC-32 as UEFI computes it for GPT headers and entry arrays (layout/crc32.ts). */
export { crc32 };

/** The header's CRC32 over its 92 bytes with the CRC field zeroed. */
export function gptHeaderCrc(header: GptHeader): number {
  const b = GPT_HEADER.encode({ ...header, headerCrc32: 0 });
  b.writeUInt32LE(0, HEADER_CRC_OFFSET);
  return crc32(b);
}

export interface GptPartitionSpec {
  typeGuid: string;
  uniqueGuid: string;
  startingLba: number;
  /** Inclusive. */
  endingLba: number;
  name: string;
}

/** Names are at most 36 UTF-16 code units; longer names are trimmed. */
export function encodePartitionName(name: string): Buffer {
  const out = Buffer.alloc(72);
  Buffer.from(name.slice(0, 36), 'utf16le').copy(out);
  return out;
}

export function decodePartitionName(buf: Buffer): string {
  return buf.toString('utf16le').replace(/\0[\s\S]*$/, '');
}

export interface Gpt {
  primary: GptHeader;
  backup: GptHeader;
  /** The whole entry array (128 entries), identical for primary and backup. */
  entries: Buffer;
}

/** Sector numbers of a disk of `totalSectors`: where the backup structures and usable space are. */
export function gptGeometry(totalSectors: number) {
  const lastLba = totalSectors - 1;
  return {
    lastLba,
    backupEntriesLba: lastLba - GPT_ENTRY_ARRAY_SECTORS,
    firstUsableLba: GPT_PRIMARY_ENTRIES_LBA + GPT_ENTRY_ARRAY_SECTORS,
    lastUsableLba: lastLba - GPT_ENTRY_ARRAY_SECTORS - 1,
  };
}

export function makeGpt(totalSectors: number, diskGuid: string, partition: GptPartitionSpec): Gpt {
  const g = gptGeometry(totalSectors);
  const entries = Buffer.alloc(GPT_ENTRY_ARRAY_BYTES);
  GPT_ENTRY.encode({
    partitionTypeGuid: guidToBytes(partition.typeGuid),
    uniquePartitionGuid: guidToBytes(partition.uniqueGuid),
    startingLba: BigInt(partition.startingLba),
    endingLba: BigInt(partition.endingLba),
    attributes: 0n,
    partitionName: encodePartitionName(partition.name),
  }).copy(entries, 0);
  const entriesCrc = crc32(entries);
  const common = {
    signature: Buffer.from(GPT_SIGNATURE, 'latin1'),
    revision: GPT_REVISION,
    headerSize: GPT_HEADER_BYTES,
    headerCrc32: 0,
    reserved: 0,
    firstUsableLba: BigInt(g.firstUsableLba),
    lastUsableLba: BigInt(g.lastUsableLba),
    diskGuid: guidToBytes(diskGuid),
    numberOfPartitionEntries: GPT_ENTRY_COUNT,
    sizeOfPartitionEntry: GPT_ENTRY_BYTES,
    partitionEntryArrayCrc32: entriesCrc,
  };
  const primary: GptHeader = {
    ...common,
    myLba: 1n,
    alternateLba: BigInt(g.lastLba),
    partitionEntryLba: BigInt(GPT_PRIMARY_ENTRIES_LBA),
  };
  const backup: GptHeader = {
    ...common,
    myLba: BigInt(g.lastLba),
    alternateLba: 1n,
    partitionEntryLba: BigInt(g.backupEntriesLba),
  };
  primary.headerCrc32 = gptHeaderCrc(primary);
  backup.headerCrc32 = gptHeaderCrc(backup);
  return { primary, backup, entries };
}

/** A header in its 512-byte sector (the rest zero). */
export function encodeGptHeader(header: GptHeader): Buffer {
  const sector = Buffer.alloc(SECTOR_BYTES);
  GPT_HEADER.encode(header).copy(sector);
  return sector;
}

export function decodeGptHeader(buf: Buffer): GptHeader {
  const h = GPT_HEADER.decode(buf);
  return { ...h, signature: Buffer.from(h.signature), diskGuid: Buffer.from(h.diskGuid) };
}

/** The used entries, each with its slot number in the array (empty slots are skipped). */
export function decodeGptEntries(array: Buffer, count = GPT_ENTRY_COUNT, size = GPT_ENTRY_BYTES): Array<GptEntry & { slot: number }> {
  const out: Array<GptEntry & { slot: number }> = [];
  const typeGuidAt = GPT_ENTRY.offsetOf('partitionTypeGuid');
  for (let i = 0; i < count && (i + 1) * size <= array.length; i++) {
    // An unused entry (type GUID all zero) is skipped before decoding: most of the 128 are.
    if (isZero(array, i * size + typeGuidAt, 16)) continue;
    out.push({ ...GPT_ENTRY.decode(array, i * size), slot: i });
  }
  return out;
}

function isZero(buf: Uint8Array, at: number, length: number): boolean {
  for (let i = at; i < at + length; i++) if (buf[i] !== 0) return false;
  return true;
}

export function describeGptEntry(e: GptEntry) {
  return {
    typeGuid: bytesToGuid(e.partitionTypeGuid),
    uniqueGuid: bytesToGuid(e.uniquePartitionGuid),
    startingLba: Number(e.startingLba),
    endingLba: Number(e.endingLba),
    name: decodePartitionName(e.partitionName),
  };
}

/** Rules both ways: a header and its entry array as a reader (libfdisk, the kernel's efi.c) checks them. */
export function checkGptHeader(h: GptHeader, entries: Buffer | undefined, totalSectors: number, myLba: number): Problem[] {
  const problems: Problem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  if (h.signature.toString('latin1') !== GPT_SIGNATURE) {
    add('signature', `signature is ${JSON.stringify(h.signature.toString('latin1'))}, not "EFI PART"`);
    return problems;
  }
  if (h.headerSize < GPT_HEADER_BYTES || h.headerSize > SECTOR_BYTES) add('headerSize', `header size ${h.headerSize} is outside 92..512`);
  const crc = gptHeaderCrc(h);
  if (h.headerCrc32 !== crc) add('headerCrc32', `header crc32 is 0x${h.headerCrc32.toString(16)}, computed 0x${crc.toString(16)}`);
  if (Number(h.myLba) !== myLba) add('myLba', `my_lba is ${h.myLba}, the header is at LBA ${myLba}`);
  if (h.sizeOfPartitionEntry !== GPT_ENTRY_BYTES) add('sizeOfPartitionEntry', `entry size ${h.sizeOfPartitionEntry}, expected 128`);
  if (h.firstUsableLba > h.lastUsableLba) add('firstUsableLba', `first usable LBA ${h.firstUsableLba} is past last usable ${h.lastUsableLba}`);
  if (h.lastUsableLba >= BigInt(totalSectors)) add('lastUsableLba', `last usable LBA ${h.lastUsableLba} is past the disk's ${totalSectors} sectors`);
  if (entries) {
    const ecrc = crc32(entries.subarray(0, h.numberOfPartitionEntries * h.sizeOfPartitionEntry));
    if (ecrc !== h.partitionEntryArrayCrc32) {
      add('partitionEntryArrayCrc32', `entry array crc32 is 0x${h.partitionEntryArrayCrc32.toString(16)}, computed 0x${ecrc.toString(16)}`);
    }
    for (const e of decodeGptEntries(entries, h.numberOfPartitionEntries, h.sizeOfPartitionEntry)) {
      if (e.startingLba < h.firstUsableLba || e.endingLba > h.lastUsableLba || e.startingLba > e.endingLba) {
        add(`entries[${e.slot}]`, `partition LBAs ${e.startingLba}..${e.endingLba} are outside the usable ${h.firstUsableLba}..${h.lastUsableLba}`);
      }
    }
  }
  return problems;
}
