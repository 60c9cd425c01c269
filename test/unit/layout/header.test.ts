import { describe, expect, it } from 'vitest';
import { StructError } from '../../../src/errors.js';
import { checkGptHeader, decodeGptEntries, decodeGptHeader, describeGptEntry, GPT_TYPE_LINUX, GPT_TYPE_ZFS } from '../../../src/layout/gpt.js';
import { buildHeader, type HeaderIds, type HeaderWrite } from '../../../src/layout/header.js';
import { checkMbr, decodeMbr } from '../../../src/layout/mbr.js';
import { checkPfnInfo, decodePfnInfo, PFN_MODE_PMEM } from '../../../src/layout/pfn.js';
import { planLayout, type PlanOptions } from '../../../src/layout/plan.js';
import { GiB, MiB, TiB } from '../../../src/layout/units.js';

const IDS: HeaderIds = {
  pfnUuid: '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60',
  diskSignature: 0x12345678,
  diskGuid: '01234567-89AB-CDEF-0123-456789ABCDEF',
  partitionGuid: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  partitionName: 'mkimage',
};
const PFN = { start: 4096, end: 8192 };

const build = (o: PlanOptions) => buildHeader(planLayout(o), IDS);
const byWhat = (writes: HeaderWrite[]) => Object.fromEntries(writes.map((w) => [w.what, w]));
const ranges = (writes: HeaderWrite[]) => writes.map((w) => ({ what: w.what, start: w.offsetBytes, end: w.offsetBytes + w.data.length }));

/** Every write lies inside the image and no two writes share a byte. */
function expectDisjoint(writes: HeaderWrite[], sizeBytes: number) {
  const r = ranges(writes).sort((a, b) => a.start - b.start);
  for (const w of r) {
    expect(w.start).toBeGreaterThanOrEqual(0);
    expect(w.end).toBeLessThanOrEqual(sizeBytes);
  }
  for (let i = 1; i < r.length; i++) expect(r[i]!.start, `${r[i - 1]!.what} / ${r[i]!.what}`).toBeGreaterThanOrEqual(r[i - 1]!.end);
}

describe('MBR image header', () => {
  const writes = build({ sizeBytes: GiB, fs: 'ext4' });

  it('is the MBR at 0 and the PFN block at 4 KiB, nothing else', () => {
    expect(ranges(writes)).toEqual([
      { what: 'MBR', start: 0, end: 512 },
      { what: 'PFN info block', start: 4096, end: 8192 },
    ]);
  });
  it('writes the MBR sfdisk writes for the same disk (see mbr.test.ts for the command)', () => {
    expect(byWhat(writes).MBR!.data.subarray(440).toString('hex')).toBe(
      '78563412' + '0000' + '00410200838a08820010000000f01f00' + '00'.repeat(48) + '55aa',
    );
    expect(checkMbr(decodeMbr(byWhat(writes).MBR!.data), GiB)).toEqual([]);
  });
  it('writes a PFN block the guest accepts, with dataoff = the partition start', () => {
    const sb = decodePfnInfo(byWhat(writes)['PFN info block']!.data);
    expect(checkPfnInfo(sb, { sizeBytes: GiB })).toEqual([]);
    expect(sb.uuid.toString('hex')).toBe('0b3c6f1e8d2a4c5e9f7a1b2c3d4e5f60');
    expect(sb.dataOff).toBe(BigInt(decodeMbr(byWhat(writes).MBR!.data).partitions[0]!.startLba * 512));
    expect(sb.npfns).toBe(BigInt((GiB - 2 * MiB) / 4096));
  });
  it('uses type 0xBF for zfs', () => {
    expect(decodeMbr(byWhat(build({ sizeBytes: GiB, fs: 'zfs' })).MBR!.data).partitions[0]!.type).toBe(0xbf);
  });
  it('in PMEM mode starts the partition and dataoff at 18 MiB for 1 GiB', () => {
    const w = byWhat(build({ sizeBytes: GiB, fs: 'ext4', memmap: 'pmem' }));
    const p = decodeMbr(w.MBR!.data).partitions[0]!;
    expect(p.startLba).toBe(36864);
    expect(p.startLba + p.sectorCount).toBe(GiB / 512);
    const sb = decodePfnInfo(w['PFN info block']!.data);
    expect(sb.mode).toBe(PFN_MODE_PMEM);
    expect(sb.dataOff).toBe(BigInt(18 * MiB));
    expect(checkPfnInfo(sb, { sizeBytes: GiB })).toEqual([]);
  });
  it('at 2 TiB writes the largest MBR entry (as sfdisk does) and stays disjoint', () => {
    const w = build({ sizeBytes: 2 * TiB, fs: 'ext4' });
    expect(byWhat(w).MBR!.data.subarray(446, 462).toString('hex')).toBe('0041020083feffff0010000000f0ffff');
    expectDisjoint(w, 2 * TiB);
  });
});

describe('GPT image header', () => {
  const size = GiB;
  const total = size / 512;
  const writes = build({ sizeBytes: size, fs: 'ext4', table: 'gpt' });
  const w = byWhat(writes);

  it('writes protective MBR, header at LBA 1, entries at LBA 16..47, PFN at 4 KiB, backup entries and header at the end', () => {
    expect(ranges(writes)).toEqual([
      { what: 'protective MBR', start: 0, end: 512 },
      { what: 'GPT header', start: 512, end: 1024 },
      { what: 'GPT entries', start: 16 * 512, end: 48 * 512 },
      { what: 'backup GPT entries', start: (total - 33) * 512, end: (total - 1) * 512 },
      { what: 'backup GPT header', start: (total - 1) * 512, end: size },
      { what: 'PFN info block', start: 4096, end: 8192 },
    ]);
  });
  it('never touches the PFN block (4 KiB..8 KiB) with a table write, nor the partition', () => {
    expectDisjoint(writes, size);
    const plan = planLayout({ sizeBytes: size, fs: 'ext4', table: 'gpt' });
    for (const r of ranges(writes)) {
      if (r.what === 'PFN info block') continue;
      expect(r.end <= PFN.start || r.start >= PFN.end, r.what).toBe(true);
      // outside the partition [startLba, endLba]
      expect(r.end <= plan.partition.offsetBytes || r.start >= (plan.partition.endLba + 1) * 512, r.what).toBe(true);
    }
  });
  it('has a protective MBR: one 0xEE entry from LBA 1 over the rest of the disk', () => {
    const m = decodeMbr(w['protective MBR']!.data);
    expect(m.diskSignature).toBe(0);
    expect(m.partitions[0]).toMatchObject({ status: 0, type: 0xee, startLba: 1, sectorCount: total - 1 });
    expect(m.partitions[0]!.firstChs.toString('hex')).toBe('000200');
    expect(m.partitions.slice(1).every((p) => p.type === 0)).toBe(true);
    expect(m.bootSignature).toBe(0xaa55);
  });
  it('has primary and backup headers that check, each pointing at the other and at its own entries', () => {
    const primary = decodeGptHeader(w['GPT header']!.data);
    const backup = decodeGptHeader(w['backup GPT header']!.data);
    const entries = w['GPT entries']!.data;
    expect(w['backup GPT entries']!.data.equals(entries)).toBe(true);
    expect(checkGptHeader(primary, entries, total, 1)).toEqual([]);
    expect(checkGptHeader(backup, entries, total, total - 1)).toEqual([]);
    expect(primary.alternateLba).toBe(BigInt(total - 1));
    expect(backup.alternateLba).toBe(1n);
    expect(primary.partitionEntryLba * 512n).toBe(BigInt(w['GPT entries']!.offsetBytes));
    expect(backup.partitionEntryLba * 512n).toBe(BigInt(w['backup GPT entries']!.offsetBytes));
    expect(primary.firstUsableLba).toBe(48n);
    expect(primary.lastUsableLba).toBe(BigInt(total - 34));
  });
  it('describes the plan\'s partition with the given GUIDs and name', () => {
    const [e, ...rest] = decodeGptEntries(w['GPT entries']!.data);
    expect(rest).toEqual([]);
    expect(describeGptEntry(e!)).toEqual({ typeGuid: GPT_TYPE_LINUX, uniqueGuid: IDS.partitionGuid, startingLba: 4096, endingLba: total - 4096 - 1, name: 'mkimage' });
  });
  it('uses the ZFS type for zfs', () => {
    const e = decodeGptEntries(byWhat(build({ sizeBytes: size, fs: 'zfs', table: 'gpt' }))['GPT entries']!.data)[0]!;
    expect(describeGptEntry(e).typeGuid).toBe(GPT_TYPE_ZFS);
  });
  it('beyond 2 TiB caps the protective entry at 0xFFFFFFFF sectors with CHS FE FF FF', () => {
    const big = build({ sizeBytes: 3 * TiB, fs: 'ext4', table: 'gpt' });
    const m = byWhat(big)['protective MBR']!.data;
    expect(m.subarray(446, 462).toString('hex')).toBe('00000200eefeffff01000000ffffffff');
    expectDisjoint(big, 3 * TiB);
    const backup = decodeGptHeader(byWhat(big)['backup GPT header']!.data);
    expect(backup.myLba).toBe(BigInt(3 * TiB / 512 - 1));
    expect(byWhat(big)['backup GPT header']!.offsetBytes).toBe(3 * TiB - 512);
  });
});

describe('refusing to write an invalid header', () => {
  it('throws StructError (exit 1) naming the rule when the plan is not one the guest accepts', () => {
    const plan = planLayout({ sizeBytes: GiB, fs: 'ext4' });
    // an image end that is not 2 MiB aligned: the guest refuses ("resource end misaligned")
    const bad = { ...plan, sizeBytes: plan.sizeBytes + 4096 };
    let err: unknown;
    try {
      buildHeader(bad, IDS);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StructError);
    expect((err as StructError).exitStatus).toBe(1);
    expect((err as StructError).message).toMatch(/^refusing to write an invalid PFN info block: endTrunc: /);
  });
  it('throws StructError for a partition past the end of the image', () => {
    const plan = planLayout({ sizeBytes: GiB, fs: 'ext4' });
    const bad = { ...plan, partition: { ...plan.partition, sectorCount: plan.partition.sectorCount + 1 } };
    expect(() => buildHeader(bad, IDS)).toThrow(/^refusing to write an invalid MBR: partitions\[0\]\.sectorCount/);
  });
  it('throws for a uuid that is not one', () => {
    expect(() => buildHeader(planLayout({ sizeBytes: GiB, fs: 'ext4' }), { ...IDS, pfnUuid: 'nope' })).toThrow(/not a uuid/);
  });
});
