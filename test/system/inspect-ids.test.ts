/**
 * Every id `inspect` reports, against what sfdisk (--json) and blkid say for the same image, and
 * against what `create --json` says it wrote: MBR disk signature, GPT disk GUID and partition
 * GUID, the filesystem uuid. The PFN block's uuid no host tool shows (a guest's ndctl does:
 * test/guest/nvdimm.test.ts), so here it is compared with create's only.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanDir, cliJson, sh, tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

const json = (args: string[]) => cliJson(args);

/** blkid's low-level probe of the file at `offset`: KEY=value pairs. */
async function blkid(file: string, offset = 0): Promise<Record<string, string>> {
  const r = await sh('blkid', ['-p', '-o', 'export', '-O', String(offset), file]);
  expect(r.exitCode, r.stderr).toBe(0);
  return Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

for (const fs of ['ext4', 'xfs'] as const) {
  for (const table of ['mbr', 'gpt'] as const) {
    it(`${fs} on ${table.toUpperCase()}: inspect, create, sfdisk and blkid name the same ids`, async () => {
      const img = join(dir, 'disk.img');
      const created = await json(['create', '--size', fs === 'xfs' ? '320M' : '64M', '--sparse', '--fs', fs, '--table', table, '--seed', `ids-${fs}-${table}`, img]);
      const report = await json(['inspect', img]);
      const pt = JSON.parse((await sh('sfdisk', ['--json', img])).stdout).partitiontable;
      const whole = await blkid(img);
      const part = await blkid(img, report.partition.offsetBytes);

      if (table === 'mbr') {
        expect(report.table.diskSignature).toBe(pt.id); // sfdisk: 0x and 8 hex digits
        expect(report.table.diskSignature).toBe(created.ids.diskSignature);
        expect(`0x${whole.PTUUID}`).toBe(report.table.diskSignature);
        expect(report.table.diskGuid).toBeUndefined();
      } else {
        expect(report.table.diskGuid).toBe(pt.id.toLowerCase());
        expect(report.table.diskGuid).toBe(whole.PTUUID);
        expect(report.table.diskGuid).toBe(created.ids.diskGuid);
        expect(report.partitions[0].uuid).toBe(pt.partitions[0].uuid.toLowerCase());
        expect(report.partitions[0].uuid).toBe(created.ids.partitionGuid);
        expect(report.partitions[0].type).toBe(pt.partitions[0].type.toLowerCase());
        expect(report.partitions[0].name).toBe(pt.partitions[0].name);
      }
      expect(whole.PTTYPE).toBe(table === 'mbr' ? 'dos' : 'gpt');
      expect(report.partitions[0].startLba).toBe(pt.partitions[0].start);
      expect(part.TYPE).toBe(fs);
      expect(report.filesystem).toMatchObject({ type: fs, uuid: part.UUID });
      expect(report.filesystem.uuid).toBe(created.ids.fsUuid);
      expect(report.pfn.uuid).toBe(created.ids.pfnUuid);
    });
  }
}

describe('the GPT disk GUID byte order', () => {
  it('a GUID whose groups read differently in uuid order is reported as sfdisk reports it', async () => {
    const img = join(dir, 'disk.img');
    await json(['create', '--size', '64M', '--sparse', '--table', 'gpt', img]);
    // Write a known disk GUID with sfdisk itself, then ask inspect.
    const r = await sh('sfdisk', ['--disk-id', img, '01234567-89AB-CDEF-0123-456789ABCDEF']);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = await json(['inspect', img]);
    expect(report.table.diskGuid).toBe('01234567-89ab-cdef-0123-456789abcdef');
  });
});
