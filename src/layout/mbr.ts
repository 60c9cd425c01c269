/**
 * The master boot record: 512 bytes at offset 0. It is for the host (file(1), fdisk, sfdisk, parted,
 * loop devices); the guest never reads it (its /dev/pmem0 starts at dataoff).
 * Source of truth: the IBM PC MBR as util-linux libfdisk (dos.c, pt-mbr.h) reads it.
 *
 *   off  size  field
 *   0    440   bootCode         zero: the image is not booted through BIOS
 *   440  4     diskSignature    u32 LE, random or from --seed (fdisk's "Disk identifier")
 *   444  2     reserved         zero
 *   446  64    partitions       four 16-byte entries
 *   510  2     bootSignature    0xAA55 (bytes 55 AA)
 *
 *   entry: off size field
 *          0   1    status       0x00, or 0x80 bootable
 *          1   3    firstChs     head, sector | cylinder bits 8-9 << 6, cylinder bits 0-7
 *          4   1    type         0x83 Linux, 0xBF Solaris/ZFS, 0xEE GPT protective, 0 unused
 *          5   3    lastChs
 *          8   4    startLba     u32 LE, first sector
 *          12  4    sectorCount  u32 LE
 */
import type { Problem } from '../errors.js';
import { blob, defineStruct, seq, struct, u16, u32, u8 } from './struct.js';

export const MBR_BYTES = 512;
export const MBR_BOOT_SIGNATURE = 0xaa55;
export const MBR_MAX_SECTORS = 0xffffffff;
export const MBR_TYPE_LINUX = 0x83;
export const MBR_TYPE_ZFS = 0xbf;
export const MBR_TYPE_GPT_PROTECTIVE = 0xee;

/** The geometry fdisk and sfdisk assume for a file: 255 heads, 63 sectors a track. */
const HEADS = 255;
const SECTORS_PER_TRACK = 63;
/** Cylinder 1023, head 254, sector 63: "beyond CHS", what tools write for LBAs past 8 GiB. */
const CHS_MAX = Buffer.from([0xfe, 0xff, 0xff]);

export interface MbrPartitionEntry {
  status: number;
  firstChs: Buffer;
  type: number;
  lastChs: Buffer;
  startLba: number;
  sectorCount: number;
}

export interface Mbr {
  bootCode: Buffer;
  diskSignature: number;
  reserved: number;
  partitions: MbrPartitionEntry[];
  bootSignature: number;
}

const ENTRY_FIELDS = [u8('status'), blob(3, 'firstChs'), u8('type'), blob(3, 'lastChs'), u32('startLba'), u32('sectorCount')];
export const MBR_PARTITION_ENTRY = defineStruct<MbrPartitionEntry>(ENTRY_FIELDS);

export const MBR = defineStruct<Mbr>([
  blob(440, 'bootCode'),
  u32('diskSignature'),
  u16('reserved'),
  seq(struct<MbrPartitionEntry>(ENTRY_FIELDS), 4, 'partitions'),
  u16('bootSignature'),
]);

/** CHS address of `lba` in the 255/63 geometry, or FE FF FF beyond cylinder 1023. */
export function lbaToChs(lba: number): Buffer {
  const cylinder = Math.floor(lba / (HEADS * SECTORS_PER_TRACK));
  if (cylinder > 1023) return Buffer.from(CHS_MAX);
  const head = Math.floor(lba / SECTORS_PER_TRACK) % HEADS;
  const sector = (lba % SECTORS_PER_TRACK) + 1;
  return Buffer.from([head, sector | ((cylinder >> 2) & 0xc0), cylinder & 0xff]);
}

export const EMPTY_ENTRY: MbrPartitionEntry = {
  status: 0,
  firstChs: Buffer.alloc(3),
  type: 0,
  lastChs: Buffer.alloc(3),
  startLba: 0,
  sectorCount: 0,
};

export function makePartitionEntry(type: number, startLba: number, sectorCount: number): MbrPartitionEntry {
  return {
    status: 0,
    firstChs: lbaToChs(startLba),
    type,
    lastChs: lbaToChs(startLba + sectorCount - 1),
    startLba,
    sectorCount,
  };
}

/** An MBR with one partition in slot 1. */
export function makeMbr(diskSignature: number, entry: MbrPartitionEntry): Mbr {
  return {
    bootCode: Buffer.alloc(440),
    diskSignature,
    reserved: 0,
    partitions: [entry, EMPTY_ENTRY, EMPTY_ENTRY, EMPTY_ENTRY],
    bootSignature: MBR_BOOT_SIGNATURE,
  };
}

/** Rules both ways: checked before writing and after reading. */
export function checkMbr(mbr: Mbr, diskSizeBytes?: number): Problem[] {
  const problems: Problem[] = [];
  if (mbr.bootSignature !== MBR_BOOT_SIGNATURE) {
    problems.push({ field: 'bootSignature', message: `boot signature is 0x${mbr.bootSignature.toString(16)}, not 0xaa55: no MBR` });
    return problems;
  }
  const totalSectors = diskSizeBytes === undefined ? undefined : Math.floor(diskSizeBytes / 512);
  const used = mbr.partitions
    .map((p, i) => ({ p, i }))
    .filter(({ p }) => p.type !== 0);
  for (const { p, i } of used) {
    const f = `partitions[${i}]`;
    if (p.status !== 0 && p.status !== 0x80) problems.push({ field: `${f}.status`, message: `status 0x${p.status.toString(16)} is neither 0x00 nor 0x80` });
    if (p.sectorCount === 0) problems.push({ field: `${f}.sectorCount`, message: 'partition has no sectors' });
    if (p.type === MBR_TYPE_GPT_PROTECTIVE) continue; // may cover less or claim 0xffffffff
    if (totalSectors !== undefined && p.startLba + p.sectorCount > totalSectors) {
      problems.push({ field: `${f}.sectorCount`, message: `partition ends at sector ${p.startLba + p.sectorCount}, past the image's ${totalSectors} sectors` });
    }
  }
  for (const a of used) {
    for (const b of used) {
      if (a.i < b.i && a.p.startLba < b.p.startLba + b.p.sectorCount && b.p.startLba < a.p.startLba + a.p.sectorCount) {
        problems.push({ field: `partitions[${b.i}]`, message: `partitions ${a.i + 1} and ${b.i + 1} overlap` });
      }
    }
  }
  return problems;
}

export function encodeMbr(mbr: Mbr): Buffer {
  return MBR.encode(mbr);
}

export function decodeMbr(buf: Buffer): Mbr {
  const m = MBR.decode(buf);
  return {
    ...m,
    bootCode: Buffer.from(m.bootCode),
    partitions: m.partitions.map((p) => ({ ...p, firstChs: Buffer.from(p.firstChs), lastChs: Buffer.from(p.lastChs) })),
  };
}

/** The disk signature as sfdisk prints it (`label-id`): `0x` and 8 lowercase hex digits. */
export function formatDiskSignature(diskSignature: number): string {
  return `0x${diskSignature.toString(16).padStart(8, '0')}`;
}
