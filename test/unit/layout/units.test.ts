import { describe, expect, it } from 'vitest';
import { MkimageError, UsageError } from '../../../src/errors.js';
import {
  DAX_ALIGN_BYTES,
  FS_BLOCK_BYTES,
  GiB,
  KiB,
  MiB,
  PFN_INFO_OFFSET_BYTES,
  SECTOR_BYTES,
  TiB,
  alignDown,
  alignUp,
  formatSize,
  isAligned,
  isPowerOfTwo,
  parseSize,
} from '../../../src/layout/units.js';

const PiB = 1024 * TiB;

/** The UsageError parseSize throws for `text` (fails the test when it does not throw one). */
function usageError(text: string): UsageError {
  try {
    parseSize(text);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error(`parseSize(${JSON.stringify(text)}) did not throw`);
}

describe('constants', () => {
  it('are powers of 1024 and the kernel/tool values', () => {
    expect([KiB, MiB, GiB, TiB]).toEqual([1024, 1048576, 1073741824, 1099511627776]);
    expect(SECTOR_BYTES).toBe(512);
    expect(DAX_ALIGN_BYTES).toBe(2097152);
    expect(PFN_INFO_OFFSET_BYTES).toBe(4096);
    expect(FS_BLOCK_BYTES).toBe(4096);
  });
});

describe('parseSize: accepted forms', () => {
  const cases: Array<[string, number]> = [
    ['4096', 4096],
    ['1', 1],
    ['1B', 1],
    ['2K', 2 * KiB],
    ['2k', 2 * KiB],
    ['2KiB', 2 * KiB],
    ['2kib', 2 * KiB],
    ['512M', 512 * MiB],
    ['1000M', 1000 * MiB],
    ['1001m', 1001 * MiB],
    ['20G', 20 * GiB],
    ['20GiB', 20 * GiB],
    ['20gib', 20 * GiB],
    ['1T', TiB],
    ['3TiB', 3 * TiB],
    ['1P', PiB],
    ['7P', 7 * PiB], // 2^52.8: still a safe integer
    ['1.5G', 1.5 * GiB],
    ['0.5M', 512 * KiB],
    ['2.25T', 2.25 * TiB],
    [' 20G ', 20 * GiB],
    ['20 G', 20 * GiB],
    ['007M', 7 * MiB],
  ];
  for (const [text, bytes] of cases) {
    it(`${JSON.stringify(text)} is ${bytes} bytes`, () => {
      expect(parseSize(text)).toBe(bytes);
    });
  }
  it('rounds a decimal that is not a whole number of bytes up to the next byte', () => {
    expect(parseSize('1.1K')).toBe(1127); // 1126.4
    expect(parseSize('0.0001K')).toBe(1); // 0.1024 bytes: positive, so one byte, never zero
  });
});

describe('parseSize: rejected forms (UsageError, exit 2)', () => {
  const notASize = ['', ' ', '--1', '+1G', 'abc', '1X', '1GX', 'G', '1.G', '.5G', '1e3', '0x10', 'Infinity', 'NaN', '1,5G', '1 000', 'max', '20GG', '20Gi'];
  for (const text of notASize) {
    it(`${JSON.stringify(text)} is not a size`, () => {
      const e = usageError(text);
      expect(e.exitStatus).toBe(2);
      expect(e.code).toBe('EUSAGE');
      expect(e.message).toContain(`"${text}" is not a size`);
      expect(e.message).toContain('e.g. 20G');
      expect(e.data).toEqual({ text });
    });
  }
  it('"0", "0G" and "0.0M" are zero, "-1" and "-1G" negative: the minimum named when the caller knows it', () => {
    for (const text of ['0', '0G', '0.0M', '000']) {
      expect(usageError(text).message).toBe(`size "${text}" is zero: it must be larger than zero`);
      expect(() => parseSize(text, '--size', 10 * MiB)).toThrow(`--size "${text}" is zero: the minimum is 10 MiB`);
    }
    for (const text of ['-1', '-1G', '-0.5M']) {
      expect(() => parseSize(text, '--size', 302 * MiB)).toThrow(`--size "${text}" is negative: the minimum is 302 MiB`);
    }
    expect(() => parseSize('-0', '--size', MiB)).toThrow('--size "-0" is zero');
  });
  it('"20GB", "2KB", "1tb" are refused: GB means 10^9 to truncate and disk vendors, mkimage units are binary', () => {
    expect(usageError('20GB').message).toBe('size "20GB": GB is ambiguous (truncate and disk vendors read it as 10^9): mkimage\'s units are powers of 1024, write 20G or 20GiB');
    expect(usageError('2kb').message).toMatch(/KB is ambiguous .*10\^3.*write 2K or 2KiB/);
    expect(usageError('1.5tb').message).toMatch(/TB is ambiguous .*10\^12.*write 1.5T or 1.5TiB/);
    expect(parseSize('20GiB')).toBe(20 * GiB);
  });
  it('"1.5" (a decimal without a unit) is not a whole number of bytes', () => {
    expect(usageError('1.5').message).toMatch(/"1\.5" is not a whole number of bytes/);
    expect(usageError('1.0').exitStatus).toBe(2);
  });
  it('a size beyond 2^53 bytes is too large, never silently rounded', () => {
    expect(usageError('8P').message).toMatch(/"8P" is too large/); // exactly 2^53: not safe
    expect(usageError('99999999999T').message).toBe(
      'size "99999999999T" is too large: 109951162776500488372224 bytes, more than the 9007199254740991 (8 PiB) mkimage computes with',
    ); // exact: 99999999999 * 2^40, no float rounding
    expect(usageError('9.5P').message).toMatch(/ 10696049115004928 bytes/);
    expect(usageError('9007199254740993').message).toMatch(/too large/);
    expect(usageError('1'.repeat(400)).message).toContain(`${'1'.repeat(400)} bytes`); // beyond a double: still exact
    expect(parseSize('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
  });
  it('names what was parsed', () => {
    expect(() => parseSize('abc', '--align')).toThrow(/^--align "abc" is not a size/);
    expect(() => parseSize('1.5', '--align')).toThrow(MkimageError);
  });
});

describe('formatSize', () => {
  const cases: Array<[number, string]> = [
    [0, '0 B'],
    [1, '1 B'],
    [1023, '1023 B'],
    [KiB, '1 KiB'],
    [1536, '1.5 KiB'],
    [2 * MiB, '2 MiB'],
    [1000 * MiB, '1000 MiB'],
    [1002 * MiB, '1002 MiB'],
    [GiB, '1 GiB'],
    [1.5 * GiB, '1.5 GiB'],
    [GiB + 1, '1.0 GiB'],
    [20 * GiB + 4 * MiB, '20.0 GiB'],
    [2 * TiB, '2 TiB'],
    [2 * TiB - 512, '2.0 TiB'], // the MBR limit, 0xffffffff sectors
    [3 * PiB, '3 PiB'],
  ];
  for (const [bytes, text] of cases) {
    it(`${bytes} bytes is ${JSON.stringify(text)}`, () => {
      expect(formatSize(bytes)).toBe(text);
    });
  }
  it('round-trips through parseSize for whole units', () => {
    for (const text of ['4 KiB', '1000 MiB', '20 GiB', '3 TiB', '1 PiB']) {
      expect(formatSize(parseSize(text))).toBe(text);
    }
  });
});

describe('alignment', () => {
  it('alignUp rounds up to a multiple, leaving multiples alone', () => {
    expect(alignUp(0, 2 * MiB)).toBe(0);
    expect(alignUp(1, 2 * MiB)).toBe(2 * MiB);
    expect(alignUp(1000 * MiB, 2 * MiB)).toBe(1000 * MiB);
    expect(alignUp(1001 * MiB, 2 * MiB)).toBe(1002 * MiB);
    expect(alignUp(1000 * MiB, 128 * MiB)).toBe(1024 * MiB);
    expect(alignUp(5 * TiB + 1, 2 * MiB)).toBe(5 * TiB + 2 * MiB); // exact beyond 2^32
  });
  it('alignDown rounds down to a multiple', () => {
    expect(alignDown(4095, 4096)).toBe(0);
    expect(alignDown(1071627776, 4096)).toBe(1071624192);
    expect(alignDown(8192, 4096)).toBe(8192);
  });
  it('isAligned', () => {
    expect(isAligned(2 * MiB, 2 * MiB)).toBe(true);
    expect(isAligned(0, 2 * MiB)).toBe(true);
    expect(isAligned(2 * MiB + 4096, 2 * MiB)).toBe(false);
  });
  it('isPowerOfTwo accepts 1, 2, 4 ... 2^52 and nothing else', () => {
    for (let k = 0; k <= 52; k++) expect(isPowerOfTwo(2 ** k)).toBe(true);
    for (const v of [0, -2, 3, 6, 3 * MiB, 2 * MiB + 1, 2 ** 40 + 1, 0.5, 2 ** 53, Number.NaN, Infinity]) {
      expect(isPowerOfTwo(v)).toBe(false);
    }
  });
});
