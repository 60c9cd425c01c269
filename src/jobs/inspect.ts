/**
 * inspect: decode an image's headers and judge them as a guest kernel and host tools would.
 * Reads only headers (the first 24 KiB, the GPT backup, a superblock at the data offset): O(1)
 * in the image size. Never trusts a length from the file without bounding it.
 */
import { statSync } from 'node:fs';
import { InvalidImageError, type Problem } from '../errors.js';
import { readAt } from '../file/image-file.js';
import { FS_MAGIC_PROBE_BYTES, detectFs, type DetectedFs } from '../layout/fs-magic.js';
import { GPT_ENTRY_BYTES, checkGptHeader, decodeGptEntries, decodeGptHeader, describeGptEntry } from '../layout/gpt.js';
import { MBR_BYTES, MBR_TYPE_GPT_PROTECTIVE, checkMbr, decodeMbr, formatDiskSignature } from '../layout/mbr.js';
import { PAGE_SIZE, PFN_MODE_PMEM, PFN_SB_BYTES, checkPfnInfo, decodePfnInfo, effectivePfn } from '../layout/pfn.js';
import { PFN_INFO_OFFSET_BYTES, SECTOR_BYTES } from '../layout/units.js';
import { bytesToGuid, bytesToUuid } from '../layout/uuid.js';
import { SOURCE_RECORD_BYTES, SOURCE_RECORD_OFFSET_BYTES, decodeSourceRecord, type SourceRecord } from '../layout/source-record.js';
import { detectZfsLabel, type DetectedZfsLabel } from './zfs-detect.js';
import { run as defaultRun, type Runner } from '../tools/exec.js';
import { loopsOfFile } from '../tools/losetup.js';

/** The bytes read from the start: MBR, GPT header, PFN block, GPT entries at LBA 16..47. */
const HEAD_BYTES = 24 * 1024;
/** A GPT entry array larger than this is refused rather than read (the spec's minimum is 16 KiB). */
const MAX_GPT_ARRAY_BYTES = 1024 * 1024;

export interface ImagePartition {
  index: number;
  offsetBytes: number;
  sizeBytes: number;
  startLba: number;
  sectorCount: number;
  type: string;
  name?: string;
  uuid?: string;
}

export interface PfnReport {
  signature: string;
  uuid: string;
  parentUuid: string;
  versionMajor: number;
  versionMinor: number;
  dataOffBytes: number;
  npfns: number;
  mode: 'ram' | 'pmem' | number;
  alignBytes: number;
  effectiveAlignBytes: number;
  pageSize: number;
  pageStructSize: number;
  startPad: number;
  endTrunc: number;
  checksum: string;
}

export interface ImageReport {
  path: string;
  sizeBytes: number;
  allocatedBytes: number;
  table: { type: 'mbr' | 'gpt' | 'none'; diskSignature?: string; diskGuid?: string };
  partitions: ImagePartition[];
  /** The partition the image's data lives in: the one starting at the PFN block's dataoff. */
  partition?: ImagePartition;
  pfn?: PfnReport;
  filesystem?: DetectedFs | ({ type: 'zfs' } & DetectedZfsLabel);
  /**
   * The image size the headers describe (partition table and PFN block), when they agree with
   * each other; a file of another size was grown or cut without them (problem `size`).
   */
  describedSizeBytes?: number;
  /** Where an image built with --from came from (the source record at byte 1024), if it has one. */
  source?: SourceRecord;
  /** Every rule that fails, with the field that fails it. Empty = a guest gets fsdax /dev/pmem0. */
  problems: Problem[];
  /** No problem at all: host tools and a guest kernel both accept the image. */
  ok: boolean;
  guest: { accepts: boolean; pmemSizeBytes?: number; namespaceMode: 'fsdax' | 'raw' | 'none' };
  /**
   * A ZFS image: its label's state and whether it is attached here (a loop device of the file at
   * the partition's offset). A pool neither exported nor attached here is in use elsewhere (a
   * running guest, another host) or was left by a crash: a problem (`zfs.state`).
   */
  pool?: { state: string; attachedHere: boolean; loopDevices: string[]; hostname?: string; hostid?: string };
}

/**
 * Fields whose rejection makes nd_pfn_validate say "not a PFN device" (-ENODEV, -ENXIO): the kernel
 * then exposes the raw namespace, a /dev/pmem0 of the whole file without DAX (seen in a Debian 6.1
 * guest for a bad signature, checksum and mode). The kernel checks these before the others, so one
 * of them failing decides. The other rules fail the probe (-EOPNOTSUPP,
 * -ENOMEM in PMEM mode): no /dev/pmem0 at all.
 */
const RAW_FALLBACK_FIELDS = ['pfn.signature', 'pfn.checksum', 'pfn.parentUuid', 'pfn.mode'];

function pfnReport(buf: Buffer): PfnReport {
  const sb = decodePfnInfo(buf);
  const eff = effectivePfn(sb);
  return {
    signature: sb.signature.toString('latin1').replace(/\0+$/, ''),
    uuid: bytesToUuid(sb.uuid),
    parentUuid: bytesToUuid(sb.parentUuid),
    versionMajor: sb.versionMajor,
    versionMinor: sb.versionMinor,
    dataOffBytes: Number(sb.dataOff),
    npfns: Number(sb.npfns),
    mode: sb.mode === 1 ? 'ram' : sb.mode === PFN_MODE_PMEM ? 'pmem' : sb.mode,
    alignBytes: sb.align,
    effectiveAlignBytes: eff.align,
    pageSize: sb.pageSize,
    pageStructSize: sb.pageStructSize,
    startPad: sb.startPad,
    endTrunc: sb.endTrunc,
    checksum: `0x${sb.checksum.toString(16).padStart(16, '0')}`,
  };
}

/** Reads and judges the headers. Throws InvalidImageError only when there is nothing to judge. */
export async function readImageHeader(path: string): Promise<ImageReport> {
  let st;
  try {
    st = statSync(path); // synchronous, like the header reads (file/image-file.ts)
  } catch (e) {
    throw new InvalidImageError(`cannot read ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  if (!st.isFile()) throw new InvalidImageError(`${path} is not a regular file`, { path });
  const sizeBytes = st.size;
  if (sizeBytes < PFN_INFO_OFFSET_BYTES + PFN_SB_BYTES) {
    throw new InvalidImageError(`${path} is ${sizeBytes} bytes: too small to hold an MBR and a PFN info block (8 KiB)`, { path, sizeBytes });
  }
  const head = await readAt(path, 0, Math.min(HEAD_BYTES, sizeBytes));
  const problems: Problem[] = [];
  const report: ImageReport = {
    path,
    sizeBytes,
    allocatedBytes: st.blocks * 512,
    table: { type: 'none' },
    partitions: [],
    problems,
    ok: false,
    guest: { accepts: false, namespaceMode: 'none' },
  };
  const totalSectors = Math.floor(sizeBytes / SECTOR_BYTES);
  /** Image sizes the headers imply, when they imply one other than the file's. */
  const described: { what: string; sizeBytes: number }[] = [];

  // Partition table.
  const mbr = decodeMbr(head.subarray(0, MBR_BYTES));
  const mbrProblems = checkMbr(mbr, sizeBytes);
  const isGpt = mbr.bootSignature === 0xaa55 && mbr.partitions.some((p) => p.type === MBR_TYPE_GPT_PROTECTIVE);
  if (isGpt) {
    report.table = { type: 'gpt' };
    const header = decodeGptHeader(head.subarray(SECTOR_BYTES, 2 * SECTOR_BYTES));
    const arrayBytes = header.numberOfPartitionEntries * header.sizeOfPartitionEntry;
    const arrayOffset = Number(header.partitionEntryLba) * SECTOR_BYTES;
    let entries: Buffer | undefined;
    if (header.sizeOfPartitionEntry < GPT_ENTRY_BYTES || arrayBytes > MAX_GPT_ARRAY_BYTES || arrayOffset + arrayBytes > sizeBytes) {
      problems.push({ field: 'gpt.partitionEntryLba', message: `entry array of ${header.numberOfPartitionEntries} x ${header.sizeOfPartitionEntry} bytes at LBA ${header.partitionEntryLba} does not fit the image` });
    } else {
      entries = arrayOffset + arrayBytes <= head.length ? head.subarray(arrayOffset, arrayOffset + arrayBytes) : await readAt(path, arrayOffset, arrayBytes);
    }
    problems.push(...checkGptHeader(header, entries, totalSectors, 1).map((p) => ({ field: `gpt.${p.field}`, message: p.message })));
    // The backup where the primary says it is: at the end of a file that was grown without a
    // resize, that is the old end (and the size check below says what to run).
    const backupLba = header.signature.toString('latin1') === 'EFI PART' && header.alternateLba > 1n && header.alternateLba < BigInt(totalSectors - 1) ? Number(header.alternateLba) : totalSectors - 1;
    if (backupLba !== totalSectors - 1) described.push({ what: 'the GPT', sizeBytes: (backupLba + 1) * SECTOR_BYTES });
    const backup = decodeGptHeader(await readAt(path, backupLba * SECTOR_BYTES, SECTOR_BYTES));
    problems.push(...checkGptHeader(backup, undefined, backupLba + 1, backupLba).map((p) => ({ field: `gptBackup.${p.field}`, message: p.message })));
    if (header.alternateLba > BigInt(totalSectors - 1)) described.push({ what: 'the GPT', sizeBytes: Number(header.alternateLba + 1n) * SECTOR_BYTES });
    // GPT GUIDs are mixed-endian (UEFI 2.10 appendix A), unlike the PFN block's and ext4's uuids.
    report.table.diskGuid = bytesToGuid(header.diskGuid).toLowerCase();
    if (entries) {
      decodeGptEntries(entries, header.numberOfPartitionEntries, header.sizeOfPartitionEntry).forEach((e) => {
        const d = describeGptEntry(e);
        report.partitions.push({
          index: e.slot,
          offsetBytes: d.startingLba * SECTOR_BYTES,
          sizeBytes: (d.endingLba - d.startingLba + 1) * SECTOR_BYTES,
          startLba: d.startingLba,
          sectorCount: d.endingLba - d.startingLba + 1,
          type: d.typeGuid.toLowerCase(),
          name: d.name,
          uuid: d.uniqueGuid.toLowerCase(),
        });
      });
    }
  } else if (mbr.bootSignature === 0xaa55) {
    report.table = { type: 'mbr', diskSignature: formatDiskSignature(mbr.diskSignature) };
    problems.push(...mbrProblems.map((p) => ({ field: `mbr.${p.field}`, message: p.message })));
    mbr.partitions.forEach((p, index) => {
      if (p.type === 0) return;
      report.partitions.push({
        index,
        offsetBytes: p.startLba * SECTOR_BYTES,
        sizeBytes: p.sectorCount * SECTOR_BYTES,
        startLba: p.startLba,
        sectorCount: p.sectorCount,
        type: `0x${p.type.toString(16).padStart(2, '0')}`,
      });
    });
  } else {
    problems.push(...mbrProblems.map((p) => ({ field: `mbr.${p.field}`, message: p.message })));
  }

  // PFN info block: the guest's view.
  const pfnBuf = head.subarray(PFN_INFO_OFFSET_BYTES, PFN_INFO_OFFSET_BYTES + PFN_SB_BYTES);
  const pfnProblems = checkPfnInfo(decodePfnInfo(pfnBuf), { sizeBytes }).map((p) => ({ field: `pfn.${p.field}`, message: p.message }));
  problems.push(...pfnProblems);
  const rawSig = pfnBuf.toString('latin1', 0, 16);
  if (rawSig.startsWith('NVDIMM_')) report.pfn = pfnReport(pfnBuf);
  const accepts = pfnProblems.length === 0;
  const dataOff = report.pfn?.dataOffBytes;
  report.guest = accepts
    ? { accepts: true, pmemSizeBytes: sizeBytes - dataOff! - effectivePfn(decodePfnInfo(pfnBuf)).endTrunc, namespaceMode: 'fsdax' }
    : { accepts: false, namespaceMode: pfnProblems.some((p) => RAW_FALLBACK_FIELDS.includes(p.field)) ? 'raw' : 'none' };

  // Host and guest must agree on where the data is.
  if (dataOff !== undefined && accepts) {
    report.partition = report.partitions.find((p) => p.offsetBytes === dataOff);
    if (!report.partition && report.table.type !== 'none') {
      problems.push({ field: 'partition', message: `no partition starts at the PFN block's dataoff ${dataOff}: host tools and the guest disagree on where the filesystem is` });
    }
  } else {
    report.partition = report.partitions[0];
  }

  // The file's size against what the headers describe: a file grown with truncate (or a resize
  // interrupted before its headers were written) keeps a partition and a PFN block of the old size.
  const sb = decodePfnInfo(pfnBuf);
  if (accepts && sb.npfns > 0n) {
    const pfnEnd = Number(sb.dataOff) + Number(sb.npfns) * PAGE_SIZE + effectivePfn(sb).endTrunc;
    if (pfnEnd !== sizeBytes) described.push({ what: 'the PFN block', sizeBytes: pfnEnd });
  }
  // The host's partition must be the guest's /dev/pmem0 (the PFN block cuts only end_trunc).
  if (report.partition && accepts && report.table.type === 'mbr' && report.partition.sizeBytes !== report.guest.pmemSizeBytes) {
    described.push({ what: 'the MBR', sizeBytes: report.partition.offsetBytes + report.partition.sizeBytes + effectivePfn(sb).endTrunc });
  }
  if (described.length) {
    const sizes = [...new Set(described.map((d) => d.sizeBytes))];
    const whats = [...new Set(described.map((d) => d.what))].join(' and ');
    const quoted = /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
    if (sizes.length === 1) report.describedSizeBytes = sizes[0];
    const d = sizes.length === 1 ? sizes[0]! : Math.max(...sizes);
    problems.push(
      d < sizeBytes
        ? { field: 'size', message: `the file is ${sizeBytes} bytes but ${whats} describe${whats.includes(' and ') ? '' : 's'} an image of ${sizes.join(' / ')} bytes (grown without rewriting its headers, or a resize was interrupted): run mkimage resize ${quoted} --size ${sizeBytes}` }
        : { field: 'size', message: `the file is ${sizeBytes} bytes, shorter than the ${d} bytes ${whats} describe${whats.includes(' and ') ? '' : 's'}: it was cut short and what lay past ${sizeBytes} is gone (restore it from a copy, or run mkimage resize ${quoted} --size ${d} to give it back its length, the lost bytes as zeros)` },
    );
  }

  // The source record (--from), in the head already read.
  if (head.length >= SOURCE_RECORD_OFFSET_BYTES + SOURCE_RECORD_BYTES) {
    const rec = decodeSourceRecord(head.subarray(SOURCE_RECORD_OFFSET_BYTES, SOURCE_RECORD_OFFSET_BYTES + SOURCE_RECORD_BYTES));
    if (rec.present) {
      report.source = rec.record;
      problems.push(...rec.problems);
    }
  }

  // What lives in the partition (bounded reads).
  const at = report.partition?.offsetBytes ?? dataOff;
  if (at !== undefined && at < sizeBytes) {
    const detected = detectFs(await readAt(path, at, FS_MAGIC_PROBE_BYTES));
    if (detected) report.filesystem = detected;
    else {
      const z = await detectZfsLabel(path, at, report.partition?.sizeBytes ?? sizeBytes - at);
      if (z) report.filesystem = { type: 'zfs', ...z };
    }
  }
  report.ok = problems.length === 0;
  return report;
}

/**
 * The source record of an image built with --from (undefined for other images): one 3 KiB read.
 * Throws InvalidImageError when the record is there but damaged.
 */
export async function readSourceRecord(path: string): Promise<SourceRecord | undefined> {
  const rec = decodeSourceRecord(await readAt(path, SOURCE_RECORD_OFFSET_BYTES, SOURCE_RECORD_BYTES).then((b) => (b.length < SOURCE_RECORD_BYTES ? Buffer.concat([b, Buffer.alloc(SOURCE_RECORD_BYTES - b.length)]) : b)));
  if (!rec.present) return undefined;
  if (rec.problems.length) throw new InvalidImageError(`${path}: the source record at byte ${SOURCE_RECORD_OFFSET_BYTES} is damaged: ${rec.problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, { path, problems: rec.problems });
  return rec.record;
}

/**
 * The inspect job: the report; its `ok` says whether host tools and a guest accept the image. For a
 * ZFS image also the pool's state: one not cleanly exported and not attached here is a problem.
 */
export async function inspectImage(path: string, run: Runner = defaultRun): Promise<ImageReport> {
  const report = await readImageHeader(path);
  const fsFound = report.filesystem;
  if (fsFound?.type !== 'zfs' || !report.partition) return report;
  const z = fsFound as DetectedZfsLabel & { type: 'zfs' };
  let loops: string[] = [];
  if (z.state !== 'exported') {
    const offset = report.partition.offsetBytes;
    loops = (await loopsOfFile(path, run).catch(() => [])).filter((l) => l.offsetBytes === offset).map((l) => l.name);
  }
  report.pool = { state: z.state, attachedHere: loops.length > 0, loopDevices: loops };
  if (z.hostname !== undefined) report.pool.hostname = z.hostname;
  if (z.hostid !== undefined) report.pool.hostid = z.hostid;
  if (z.state !== 'exported' && !loops.length) {
    const host = `${z.hostname ? `host ${z.hostname}` : 'an unknown host'}${z.hostid ? `, hostid ${z.hostid}` : ''}`;
    report.problems.push({
      field: 'zfs.state',
      message: `pool ${z.pool} is ${z.state}, not exported, and not attached here (last imported by ${host}): in use by another system (a running guest, another host, a copy of an attached image) or left by a crash; mkimage attach refuses it without --force`,
    });
    report.ok = false;
  }
  return report;
}
