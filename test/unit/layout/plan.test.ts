import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { GPT_TYPE_LINUX, GPT_TYPE_ZFS } from '../../../src/layout/gpt.js';
import { PFN_MODE_PMEM, PFN_MODE_RAM } from '../../../src/layout/pfn.js';
import { MIN_PARTITION_BYTES, minimumImageBytes, planLayout, type PlanOptions } from '../../../src/layout/plan.js';
import { GiB, KiB, MiB, TiB } from '../../../src/layout/units.js';

/** The UsageError planLayout throws (fails the test when it does not throw one). */
function planError(o: PlanOptions): UsageError {
  try {
    planLayout(o);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).exitStatus).toBe(2);
    return e as UsageError;
  }
  throw new Error(`planLayout(${JSON.stringify(o)}) did not throw`);
}

describe('the default plan: 1 GiB, ext4, MBR, RAM mode', () => {
  it('puts the PFN block at 4 KiB and one partition from 2 MiB to the last sector', () => {
    expect(planLayout({ sizeBytes: GiB, fs: 'ext4' })).toEqual({
      requestedBytes: GiB,
      sizeBytes: GiB,
      roundedUpBytes: 0,
      imageAlignBytes: 2 * MiB,
      fs: 'ext4',
      memmap: 'ram',
      table: 'mbr',
      pfn: { offsetBytes: 4096, mode: PFN_MODE_RAM, alignBytes: 2 * MiB, dataOffBytes: 2 * MiB, endTruncBytes: 0 },
      partition: {
        offsetBytes: 2 * MiB,
        sizeBytes: GiB - 2 * MiB,
        startLba: 4096,
        endLba: 2097151,
        sectorCount: 2093056, // what sfdisk reports for the same disk (mbr.test.ts)
        mbrType: 0x83,
        gptTypeGuid: GPT_TYPE_LINUX,
      },
      fsSizeBytes: GiB - 2 * MiB,
      pmemSizeBytes: GiB - 2 * MiB,
    });
  });
});

describe('rounding the size up to 2 MiB', () => {
  it('leaves 1000M alone (a multiple of 2 MiB)', () => {
    const p = planLayout({ sizeBytes: 1000 * MiB, fs: 'ext4' });
    expect(p.sizeBytes).toBe(1000 * MiB);
    expect(p.roundedUpBytes).toBe(0);
    expect(p.partition.sectorCount).toBe((1000 - 2) * 2048);
  });
  it('rounds 1001M up to 1002M and says by how much', () => {
    const p = planLayout({ sizeBytes: 1001 * MiB, fs: 'ext4' });
    expect(p.requestedBytes).toBe(1001 * MiB);
    expect(p.sizeBytes).toBe(1002 * MiB);
    expect(p.roundedUpBytes).toBe(MiB);
    expect(p.partition.endLba).toBe(1002 * 2048 - 1);
  });
  it('rounds one byte over a multiple up by 2 MiB - 1', () => {
    const p = planLayout({ sizeBytes: GiB + 1, fs: 'ext4' });
    expect(p.sizeBytes).toBe(GiB + 2 * MiB);
    expect(p.roundedUpBytes).toBe(2 * MiB - 1);
  });
  it('rounds 1 byte up to 2 MiB, which is below every minimum: a usage error naming the minimum', () => {
    const e = planError({ sizeBytes: 1, fs: 'ext4' });
    expect(e.message).toBe('size 1 B is too small for ext4: the minimum is 10 MiB (2 MiB of headers + 8 MiB for the filesystem)');
    expect(e.code).toBe('EUSAGE');
    expect(e.data).toEqual({ requestedBytes: 1, minimumBytes: 10 * MiB });
  });
});

describe('minimum sizes per filesystem', () => {
  const cases = [
    { fs: 'none', min: 4 * MiB, name: 'an image', part: '4 KiB' },
    { fs: 'ext4', min: 10 * MiB, name: 'ext4', part: '8 MiB' },
    { fs: 'zfs', min: 66 * MiB, name: 'zfs', part: '64 MiB' },
  ] as const;
  for (const { fs, min, name, part } of cases) {
    it(`${fs}: ${min / MiB} MiB is accepted, ${min / MiB - 2} MiB is a usage error naming ${name} and the minimum`, () => {
      expect(minimumImageBytes(fs)).toBe(min);
      expect(planLayout({ sizeBytes: min, fs }).sizeBytes).toBe(min);
      const e = planError({ sizeBytes: min - 2 * MiB, fs });
      const rounded = fs === 'none' ? ', rounded up to a multiple of 2 MiB' : '';
      expect(e.message).toBe(`size ${min / MiB - 2} MiB is too small for ${name}: the minimum is ${min / MiB} MiB (2 MiB of headers + ${part} for the filesystem${rounded})`);
      expect(e.data).toEqual({ requestedBytes: min - 2 * MiB, minimumBytes: min });
      // anything that rounds up to the minimum is fine
      expect(planLayout({ sizeBytes: min - 2 * MiB + 1, fs }).sizeBytes).toBe(min);
    });
  }
  it('xfs: the error names xfs and its minimum; the partition at the minimum holds MIN_PARTITION_BYTES.xfs', () => {
    const min = minimumImageBytes('xfs');
    expect(min).toBeGreaterThanOrEqual(302 * MiB);
    expect(planLayout({ sizeBytes: min, fs: 'xfs' }).fsSizeBytes).toBeGreaterThanOrEqual(MIN_PARTITION_BYTES.xfs);
    expect(planError({ sizeBytes: 100 * MiB, fs: 'xfs' }).message).toMatch(new RegExp(`^size 100 MiB is too small for xfs: the minimum is ${min / MiB} MiB`));
    expect(() => planLayout({ sizeBytes: min - 2 * MiB, fs: 'xfs' })).toThrow(UsageError);
  });
  it('GPT needs 33 more sectors at the end: ext4 12 MiB, zfs 68 MiB', () => {
    expect(minimumImageBytes('ext4', 'ram', 'gpt')).toBe(12 * MiB);
    expect(minimumImageBytes('zfs', 'ram', 'gpt')).toBe(68 * MiB);
    expect(() => planLayout({ sizeBytes: 10 * MiB, fs: 'ext4', table: 'gpt' })).toThrow(/too small for ext4: the minimum is 12 MiB/);
    expect(planLayout({ sizeBytes: 12 * MiB, fs: 'ext4', table: 'gpt' }).partition.sizeBytes).toBeGreaterThanOrEqual(8 * MiB);
  });
  it('PMEM mode says so in the error', () => {
    expect(planError({ sizeBytes: 4 * MiB, fs: 'ext4', memmap: 'pmem' }).message).toMatch(/^size 4 MiB is too small for ext4 with --memmap pmem: the minimum is 10 MiB/);
  });
});

describe('the xfs minimum is exactly what mkfs.xfs needs', () => {
  // mkfs.xfs (xfsprogs 6.1.0) formats a 300 MiB device and refuses 300 MiB - 4 KiB:
  //   truncate -s 314572800 x.img && mkfs.xfs -q -f -K -b size=4096 -m reflink=0 x.img   # exit 0
  //   truncate -s 314568704 x.img && mkfs.xfs -q -f -K -b size=4096 -m reflink=0 x.img   # "Filesystem must be larger than 300MB."
  // (xfs_mkfs.c: `if (sb_dblocks < MEGABYTES(300, blocklog))`). Regression: MIN_PARTITION_BYTES.xfs
  // was once 300 MiB + 4 KiB, which refused a 302 MiB image.
  it('accepts a 302 MiB xfs image (RAM mode, MBR), 306 MiB with --memmap pmem', () => {
    expect(minimumImageBytes('xfs')).toBe(302 * MiB);
    expect(planLayout({ sizeBytes: 302 * MiB, fs: 'xfs' }).partition.sizeBytes).toBe(300 * MiB);
    expect(minimumImageBytes('xfs', 'pmem')).toBe(306 * MiB);
  });
});

describe('PMEM mode: struct pages on the device', () => {
  it('1 GiB: data offset 18 MiB (8 KiB + 64 B per 4 KiB page, rounded up to 2 MiB), and the partition starts there', () => {
    const p = planLayout({ sizeBytes: GiB, fs: 'ext4', memmap: 'pmem' });
    expect(p.pfn).toEqual({ offsetBytes: 4096, mode: PFN_MODE_PMEM, alignBytes: 2 * MiB, dataOffBytes: 18 * MiB, endTruncBytes: 0 });
    expect(p.partition.offsetBytes).toBe(18 * MiB);
    expect(p.partition.startLba).toBe(36864);
    expect(p.partition.endLba).toBe(2097151);
    expect(p.partition.sectorCount).toBe(2097152 - 36864);
    expect(p.pmemSizeBytes).toBe(GiB - 18 * MiB);
    expect(p.fsSizeBytes).toBe(GiB - 18 * MiB);
  });
  it('grows with the image: 20 GiB needs 322 MiB (8 KiB + 320 MiB of struct pages)', () => {
    expect(planLayout({ sizeBytes: 20 * GiB, fs: 'ext4', memmap: 'pmem' }).pfn.dataOffBytes).toBe(322 * MiB);
  });
  it('never goes below 2 MiB: a 10 MiB image keeps 2 MiB', () => {
    expect(planLayout({ sizeBytes: 10 * MiB, fs: 'ext4', memmap: 'pmem' }).pfn.dataOffBytes).toBe(2 * MiB);
    expect(minimumImageBytes('ext4', 'pmem')).toBe(10 * MiB);
  });
  it('works with GPT too', () => {
    const p = planLayout({ sizeBytes: GiB, fs: 'ext4', memmap: 'pmem', table: 'gpt' });
    expect(p.partition.startLba).toBe(36864);
    expect(p.partition.endLba).toBe(2097152 - 4096 - 1);
  });
});

describe('GPT: the last 2 MiB keep the backup entries and header, outside the partition and /dev/pmem0', () => {
  it('1 GiB: the partition ends 2 MiB before the end; the PFN block cuts the same 2 MiB (end_trunc)', () => {
    const p = planLayout({ sizeBytes: GiB, fs: 'ext4', table: 'gpt' });
    expect(p.table).toBe('gpt');
    expect(p.partition.startLba).toBe(4096);
    expect(p.partition.endLba).toBe(2097152 - 4096 - 1); // sfdisk's last usable LBA (2097118) is beyond
    expect(p.partition.sectorCount).toBe(2088960);
    expect(p.partition.sizeBytes).toBe(GiB - 4 * MiB);
    expect(p.fsSizeBytes).toBe(GiB - 4 * MiB);
    expect(p.pfn.endTruncBytes).toBe(2 * MiB);
    // the guest's /dev/pmem0 is exactly the partition: a pool's end labels never reach the backup GPT
    expect(p.pmemSizeBytes).toBe(p.partition.sizeBytes);
  });
});

describe('the MBR limit: 2^32 sectors', () => {
  it('2 TiB - 2 MiB fits', () => {
    expect(planLayout({ sizeBytes: 2 * TiB - 2 * MiB, fs: 'ext4' }).partition.sectorCount).toBe(2 ** 32 - 8192);
  });
  it('2 TiB exactly fits: count 0xfffff000 ends at LBA 0xffffffff (sfdisk writes the same entry)', () => {
    const p = planLayout({ sizeBytes: 2 * TiB, fs: 'ext4' });
    expect(p.partition.sectorCount).toBe(0xfffff000);
    expect(p.partition.endLba).toBe(0xffffffff);
  });
  it('2 TiB + 2 MiB is a usage error that says to use --table gpt', () => {
    const e = planError({ sizeBytes: 2 * TiB + 1, fs: 'ext4' });
    expect(e.message).toBe('size 2.0 TiB is too large for an MBR, which describes at most 2.0 TiB: use --table gpt');
    expect(e.data).toEqual({ sizeBytes: 2 * TiB + 2 * MiB, maxBytes: 0xffffffff * 512 });
  });
  it('GPT takes 2 TiB + 2 MiB and 1 PiB, LBAs beyond 2^32 exact', () => {
    const p = planLayout({ sizeBytes: 2 * TiB + 2 * MiB, fs: 'ext4', table: 'gpt' });
    expect(p.partition.endLba).toBe(2 ** 32 + 4096 - 4096 - 1);
    const big = planLayout({ sizeBytes: 1024 * TiB, fs: 'zfs', table: 'gpt' });
    expect(big.partition.endLba).toBe(2 ** 41 - 4096 - 1);
  });
});

describe('image alignment option (--align)', () => {
  const align = 128 * MiB;
  it('rounds to 128 MiB: 1000M -> 1024M, 1 GiB stays, 1025M -> 1152M', () => {
    const a = planLayout({ sizeBytes: 1000 * MiB, fs: 'ext4', imageAlignBytes: align });
    expect(a.sizeBytes).toBe(1024 * MiB);
    expect(a.roundedUpBytes).toBe(24 * MiB);
    expect(a.imageAlignBytes).toBe(align);
    expect(planLayout({ sizeBytes: GiB, fs: 'ext4', imageAlignBytes: align }).sizeBytes).toBe(GiB);
    expect(planLayout({ sizeBytes: 1025 * MiB, fs: 'ext4', imageAlignBytes: align }).sizeBytes).toBe(1152 * MiB);
  });
  it('keeps the data offset and PFN alignment at 2 MiB', () => {
    const p = planLayout({ sizeBytes: GiB, fs: 'ext4', imageAlignBytes: align });
    expect(p.pfn.dataOffBytes).toBe(2 * MiB);
    expect(p.pfn.alignBytes).toBe(2 * MiB);
  });
  it('makes the minimum a whole number of alignment units: ext4 128 MiB, xfs 384 MiB', () => {
    expect(minimumImageBytes('ext4', 'ram', 'mbr', align)).toBe(128 * MiB);
    // 1 byte rounds up to 128 MiB, which is enough for ext4
    expect(planLayout({ sizeBytes: 1, fs: 'ext4', imageAlignBytes: align }).sizeBytes).toBe(128 * MiB);
    expect(minimumImageBytes('xfs', 'ram', 'mbr', align)).toBe(384 * MiB);
    expect(planError({ sizeBytes: 200 * MiB, fs: 'xfs', imageAlignBytes: align }).data).toEqual({ requestedBytes: 200 * MiB, minimumBytes: 384 * MiB });
  });
  it('refuses an alignment that is not a power of two of at least 2 MiB', () => {
    for (const bad of [0, -2 * MiB, MiB, 4 * KiB, 3 * MiB, 2 * MiB + 512, 1.5 * GiB]) {
      expect(planError({ sizeBytes: GiB, fs: 'ext4', imageAlignBytes: bad }).message).toMatch(/must be a power of two of at least 2 MiB/);
    }
    expect(planLayout({ sizeBytes: GiB, fs: 'ext4', imageAlignBytes: 4 * MiB }).sizeBytes).toBe(GiB);
  });
});

describe('refused sizes', () => {
  it('zero, negative, fractional, NaN, infinite and unsafe sizes are usage errors', () => {
    for (const bad of [0, -1, -GiB, 1.5, Number.NaN, Infinity, 2 ** 53]) {
      expect(planError({ sizeBytes: bad, fs: 'ext4' }).message).toMatch(/must be a positive whole number of bytes/);
    }
  });
});

describe('partition types', () => {
  it('zfs gets MBR type 0xBF and the ZFS GPT type; ext4, xfs and none get 0x83 and Linux filesystem', () => {
    const z = planLayout({ sizeBytes: GiB, fs: 'zfs' }).partition;
    expect([z.mbrType, z.gptTypeGuid]).toEqual([0xbf, GPT_TYPE_ZFS]);
    for (const fs of ['ext4', 'xfs', 'none'] as const) {
      const p = planLayout({ sizeBytes: GiB, fs }).partition;
      expect([p.mbrType, p.gptTypeGuid]).toEqual([0x83, GPT_TYPE_LINUX]);
    }
  });
});

describe('invariants over sizes, tables and modes', () => {
  const sizes = [10 * MiB, 66 * MiB, 1000 * MiB, 1001 * MiB, GiB, 20 * GiB, 2 * TiB - 2 * MiB];
  for (const table of ['mbr', 'gpt'] as const) {
    for (const memmap of ['ram', 'pmem'] as const) {
      it(`${table}, ${memmap}: partition at dataoff, inside the image, 2 MiB-aligned size`, () => {
        for (const sizeBytes of sizes) {
          if (sizeBytes < minimumImageBytes('ext4', memmap, table)) continue;
          const p = planLayout({ sizeBytes, fs: 'ext4', table, memmap });
          const total = p.sizeBytes / 512;
          expect(p.sizeBytes % (2 * MiB)).toBe(0);
          expect(p.partition.offsetBytes).toBe(p.pfn.dataOffBytes);
          expect(p.partition.startLba * 512).toBe(p.pfn.dataOffBytes);
          expect(p.pfn.dataOffBytes % (2 * MiB)).toBe(0);
          expect(p.partition.sectorCount).toBe(p.partition.endLba - p.partition.startLba + 1);
          expect(p.partition.endLba).toBe(table === 'mbr' ? total - 1 : total - 4096 - 1);
          expect(p.fsSizeBytes % 4096).toBe(0);
          expect(p.fsSizeBytes).toBeGreaterThanOrEqual(MIN_PARTITION_BYTES.ext4);
          expect(p.pmemSizeBytes).toBe(p.sizeBytes - p.pfn.dataOffBytes - p.pfn.endTruncBytes);
          expect(p.pmemSizeBytes).toBe(p.partition.sizeBytes);
        }
      });
    }
  }
});
