/**
 * The image header: every byte mkimage itself writes, as (offset, bytes) pairs computed from the
 * layout plan. Pure: the file layer writes them, the tests compare them with known bytes.
 *
 *   MBR table: MBR at 0 (one partition, type 0x83 or 0xBF), PFN block at 4 KiB.
 *   GPT table: protective MBR at 0, GPT header at LBA 1, entries at LBA 16, PFN block at 4 KiB,
 *              backup entries and header at the end of the image.
 */
import { checkGptHeader, encodeGptHeader, gptGeometry, makeGpt } from './gpt.js';
import { MBR_MAX_SECTORS, MBR_TYPE_GPT_PROTECTIVE, checkMbr, encodeMbr, makeMbr, makePartitionEntry } from './mbr.js';
import { checkPfnInfo, encodePfnInfo, makePfnInfo } from './pfn.js';
import type { LayoutPlan } from './plan.js';
import { SECTOR_BYTES } from './units.js';
import { uuidToBytes } from './uuid.js';
import { StructError, type Problem } from '../errors.js';

/** The identities written into the header: from --uuid/--seed or random. */
export interface HeaderIds {
  /** PFN block uuid (RFC 4122 string). */
  pfnUuid: string;
  /** MBR disk signature (u32). */
  diskSignature: number;
  /** GPT disk GUID and partition GUID. */
  diskGuid: string;
  partitionGuid: string;
  /** GPT partition name. */
  partitionName: string;
}

export interface HeaderWrite {
  offsetBytes: number;
  data: Buffer;
  what: string;
}

function assertNoProblems(what: string, problems: Problem[]): void {
  if (problems.length) {
    throw new StructError(`refusing to write an invalid ${what}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, { problems });
  }
}

export function buildHeader(plan: LayoutPlan, ids: HeaderIds): HeaderWrite[] {
  const writes: HeaderWrite[] = [];
  const totalSectors = plan.sizeBytes / SECTOR_BYTES;
  const p = plan.partition;
  if (plan.table === 'mbr') {
    const mbr = makeMbr(ids.diskSignature, makePartitionEntry(p.mbrType, p.startLba, p.sectorCount));
    assertNoProblems('MBR', checkMbr(mbr, plan.sizeBytes));
    writes.push({ offsetBytes: 0, data: encodeMbr(mbr), what: 'MBR' });
  } else {
    const protective = makeMbr(0, makePartitionEntry(MBR_TYPE_GPT_PROTECTIVE, 1, Math.min(totalSectors - 1, MBR_MAX_SECTORS)));
    writes.push({ offsetBytes: 0, data: encodeMbr(protective), what: 'protective MBR' });
    const gpt = makeGpt(totalSectors, ids.diskGuid, {
      typeGuid: p.gptTypeGuid,
      uniqueGuid: ids.partitionGuid,
      startingLba: p.startLba,
      endingLba: p.endLba,
      name: ids.partitionName,
    });
    const g = gptGeometry(totalSectors);
    assertNoProblems('GPT header', checkGptHeader(gpt.primary, gpt.entries, totalSectors, 1));
    writes.push({ offsetBytes: SECTOR_BYTES, data: encodeGptHeader(gpt.primary), what: 'GPT header' });
    writes.push({ offsetBytes: Number(gpt.primary.partitionEntryLba) * SECTOR_BYTES, data: gpt.entries, what: 'GPT entries' });
    writes.push({ offsetBytes: g.backupEntriesLba * SECTOR_BYTES, data: gpt.entries, what: 'backup GPT entries' });
    writes.push({ offsetBytes: g.lastLba * SECTOR_BYTES, data: encodeGptHeader(gpt.backup), what: 'backup GPT header' });
  }
  const pfn = makePfnInfo({
    uuid: uuidToBytes(ids.pfnUuid),
    dataOffBytes: plan.pfn.dataOffBytes,
    namespaceSizeBytes: plan.sizeBytes,
    mode: plan.pfn.mode as 1 | 2,
    alignBytes: plan.pfn.alignBytes,
    endTruncBytes: plan.pfn.endTruncBytes,
  });
  assertNoProblems('PFN info block', checkPfnInfo(pfn, { sizeBytes: plan.sizeBytes }));
  writes.push({ offsetBytes: plan.pfn.offsetBytes, data: encodePfnInfo(pfn), what: 'PFN info block' });
  return writes;
}
