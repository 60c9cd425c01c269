/**
 * planResize: from an image's header report and a request to the new plan and header bytes (pure;
 * the images here are headers written into sparse temp files, read back by readImageHeader).
 */
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseResizeSize } from '../../../src/cli/resize.js';
import { UsageError, InvalidImageError } from '../../../src/errors.js';
import { createSparseFile, writeAt } from '../../../src/file/image-file.js';
import { buildHeader, type HeaderIds } from '../../../src/layout/header.js';
import { planLayout, type TableType } from '../../../src/layout/plan.js';
import { MiB } from '../../../src/layout/units.js';
import { readImageHeader } from '../../../src/jobs/inspect.js';
import { planResize } from '../../../src/jobs/resize.js';

const IDS: HeaderIds = {
  pfnUuid: '38b9c4a2-1d2e-4f60-8a7b-9c0d1e2f3a4b',
  diskSignature: 0x566a7661,
  diskGuid: '01234567-89AB-CDEF-0123-456789ABCDEF',
  partitionGuid: 'FEDCBA98-7654-4321-8FED-CBA987654321',
  partitionName: 'data',
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-resize-unit-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function image(sizeBytes: number, table: TableType, memmap: 'ram' | 'pmem' = 'ram'): Promise<string> {
  const path = join(dir, `${table}-${sizeBytes}.img`);
  await createSparseFile(path, sizeBytes);
  await writeAt(path, buildHeader(planLayout({ sizeBytes, fs: 'none', table, memmap }), IDS));
  return path;
}

describe('planResize', () => {
  it.each(['mbr', 'gpt'] as const)('%s: the new header is the one create builds at the new size, with the same ids and partition type', async (table) => {
    const path = await image(64 * MiB, table);
    const rp = planResize(await readImageHeader(path), { deltaBytes: 36 * MiB });
    expect(rp.plan.sizeBytes).toBe(100 * MiB);
    expect(rp.oldSizeBytes).toBe(64 * MiB);
    // What each table carries: the MBR its disk signature, the GPT its GUIDs and partition name.
    if (table === 'mbr') expect(rp.ids).toMatchObject({ pfnUuid: IDS.pfnUuid, diskSignature: IDS.diskSignature });
    else expect(rp.ids).toMatchObject({ pfnUuid: IDS.pfnUuid, diskGuid: IDS.diskGuid.toLowerCase(), partitionGuid: IDS.partitionGuid.toLowerCase(), partitionName: IDS.partitionName }); // inspect reports GUIDs lowercase
    const fresh = buildHeader(planLayout({ sizeBytes: 100 * MiB, fs: 'none', table }), IDS);
    expect(rp.headerWrites.map((w) => [w.offsetBytes, w.data.toString('hex')])).toEqual(fresh.map((w) => [w.offsetBytes, w.data.toString('hex')]));
    // GPT: the old backup (entries and header, 33 sectors before the old end) is to be zeroed.
    expect(rp.oldBackup).toEqual(table === 'gpt' ? { offsetBytes: 64 * MiB - 33 * 512, lengthBytes: 33 * 512 } : undefined);
  });

  it('rounds up to the alignment and says by how much', async () => {
    const rp = planResize(await readImageHeader(await image(64 * MiB, 'mbr')), { sizeBytes: 65 * MiB });
    expect(rp.plan.sizeBytes).toBe(66 * MiB);
    expect(rp.roundedUpBytes).toBe(MiB);
  });

  it('refuses to shrink, with the numbers', async () => {
    const report = await readImageHeader(await image(64 * MiB, 'mbr'));
    expect(() => planResize(report, { sizeBytes: 32 * MiB })).toThrow(UsageError);
    expect(() => planResize(report, { sizeBytes: 32 * MiB })).toThrow(/67108864 bytes \(64 MiB\): shrinking to 33554432 bytes/);
    expect(() => planResize(report, { deltaBytes: 0 })).toThrow(/positive/);
  });

  it('a file longer than its headers (interrupted resize) is planned from the headers, at least the file size', async () => {
    const path = await image(64 * MiB, 'gpt');
    await truncate(path, 96 * MiB);
    const report = await readImageHeader(path);
    expect(report.problems.map((p) => p.field)).toEqual(['size']);
    expect(report.describedSizeBytes).toBe(64 * MiB);
    const rp = planResize(report, { sizeBytes: 96 * MiB });
    expect(rp).toMatchObject({ oldSizeBytes: 64 * MiB, fileSizeBytes: 96 * MiB });
    expect(rp.oldBackup?.offsetBytes).toBe(64 * MiB - 33 * 512);
    expect(() => planResize(report, { sizeBytes: 80 * MiB })).toThrow(/100663296 bytes/);
  });

  it('refuses an image with other problems than its size', async () => {
    const path = await image(64 * MiB, 'mbr');
    await writeAt(path, [{ offsetBytes: 4096, data: Buffer.from('NOT_A_PFN_BLOCK!') }]);
    await expect(readImageHeader(path).then((r) => planResize(r, { sizeBytes: 128 * MiB }))).rejects.toThrow(InvalidImageError);
  });

  it('--memmap pmem: grows only as far as the data offset holds struct pages', async () => {
    const report = await readImageHeader(await image(200 * MiB, 'mbr', 'pmem'));
    expect(report.pfn?.dataOffBytes).toBe(4 * MiB);
    expect(planResize(report, { sizeBytes: 254 * MiB }).plan.pfn.dataOffBytes).toBe(4 * MiB);
    expect(() => planResize(report, { sizeBytes: 256 * MiB })).toThrow(/at most 254 MiB/);
  });
});

describe('parseResizeSize', () => {
  it('SIZE, +DELTA, and a minus refused', () => {
    expect(parseResizeSize('1G')).toEqual({ sizeBytes: 1024 * MiB });
    expect(parseResizeSize('+512M')).toEqual({ deltaBytes: 512 * MiB });
    expect(() => parseResizeSize('-1G')).toThrow(/only grows/);
  });
});
