import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import type { RunOptions, RunResult, Runner } from '../../../src/tools/exec.js';
import { LABEL_MAX_BYTES, checkLabel, ext4Args, ext4Env, mkfsExt4, mkfsXfs, xfsArgs } from '../../../src/tools/mkfs.js';

/** A runner that records what it was asked to run and starts nothing. */
function recorder() {
  const calls: Array<{ file: string; args: readonly string[]; options?: RunOptions }> = [];
  const run: Runner = async (file, args, options) => {
    calls.push({ file, args, options });
    return { command: [file, ...args], exitCode: 0, stdout: '', stderr: '' } satisfies RunResult;
  };
  return { calls, run };
}

const EXT4 = {
  target: 'ext4.img',
  offsetBytes: 2097152,
  sizeBytes: 62914560,
  uuid: '6e5c1a2b-3d4f-4a6b-8c7d-9e0f1a2b3c4d',
  hashSeed: '11111111-2222-4333-8444-555555555555',
};

describe('ext4Args', () => {
  it('gives the size in whole 4 KiB blocks, rounding a partial block down', () => {
    expect(ext4Args({ ...EXT4, sizeBytes: 1071627776 }).at(-1)).toBe('261627'); // a 1 GiB GPT partition
    expect(ext4Args({ ...EXT4, sizeBytes: 4095 }).at(-1)).toBe('0');
  });
  it('adds -d DIR to populate, and leaves -L out without a label', () => {
    const args = ext4Args({ ...EXT4, populateDir: '/src dir' });
    expect(args).not.toContain('-L');
    expect(args.slice(args.indexOf('-d'), args.indexOf('-d') + 2)).toEqual(['-d', '/src dir']);
    expect(args.indexOf('-d')).toBeLessThan(args.indexOf('--'));
    expect(ext4Args({ ...EXT4, label: '' })).not.toContain('-L');
  });
  it('ends the options with -- so a target starting with - is never an option', () => {
    const args = ext4Args({ ...EXT4, target: '-weird.img' });
    expect(args.slice(-3)).toEqual(['--', '-weird.img', '15360']);
  });
  it('writes at the given offset (a block device gets offset=0)', () => {
    expect(ext4Args({ ...EXT4, target: '/dev/loop0', offsetBytes: 0 })[9]).toMatch(/^offset=0,nodiscard,/);
  });
});

describe('ext4Env', () => {
  it('pins mke2fs time to SOURCE_DATE_EPOCH, and sets nothing without it', () => {
    expect(ext4Env(1700000000)).toEqual({ E2FSPROGS_FAKE_TIME: '1700000000' });
    expect(ext4Env(0)).toEqual({ E2FSPROGS_FAKE_TIME: '0' });
    expect(ext4Env(undefined)).toBeUndefined();
  });
});

// That the tools accept these arguments (and write what they say) is shown with the real mkfs.ext4
// and mkfs.xfs in test/system/layout-tools.test.ts; here only the rules the builders apply.
describe('xfsArgs', () => {
  it('leaves -L out without a label, and ends the options with --', () => {
    const args = xfsArgs({ device: '-dev.img', uuid: '7f6d2b3c-4e5a-4b7c-9d8e-0f1a2b3c4d5e' });
    expect(args).not.toContain('-L');
    expect(args.slice(-2)).toEqual(['--', '-dev.img']);
  });
});

describe('checkLabel', () => {
  it('allows 16 bytes for ext4 and 12 for xfs, counted in UTF-8 bytes as the tools count them', () => {
    // mkfs.xfs 6.1.0: -L 123456789012 and -L éééééé (12 bytes) succeed; -L 1234567890123 and
    // -L ééééééé (14 bytes) fail "Invalid value ... for -L option". mke2fs truncates a 17-byte
    // label to 16 with a warning: refusing it is better than changing it.
    expect(LABEL_MAX_BYTES).toEqual({ ext4: 16, xfs: 12 });
    expect(() => checkLabel('ext4', 'x'.repeat(16))).not.toThrow();
    expect(() => checkLabel('ext4', 'é'.repeat(8))).not.toThrow();
    expect(() => checkLabel('xfs', 'x'.repeat(12))).not.toThrow();
    expect(() => checkLabel('xfs', 'é'.repeat(6))).not.toThrow();
    expect(() => checkLabel('xfs', '')).not.toThrow();
  });
  it('refuses one byte more with a usage error (exit 2) naming the limit', () => {
    for (const [fs, label, bytes, max] of [
      ['ext4', 'x'.repeat(17), 17, 16],
      ['ext4', 'é'.repeat(9), 18, 16],
      ['xfs', 'x'.repeat(13), 13, 12],
      ['xfs', 'é'.repeat(7), 14, 12],
    ] as const) {
      let err: unknown;
      try {
        checkLabel(fs, label);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitStatus).toBe(2);
      expect((err as UsageError).message).toBe(`label "${label}" is ${bytes} bytes: ${fs} labels hold at most ${max}`);
    }
  });
});

describe('mkfsExt4 and mkfsXfs (with a recording runner)', () => {
  it('refuse a label that is too long before running anything', async () => {
    const { calls, run } = recorder();
    await expect(mkfsExt4({ ...EXT4, label: 'x'.repeat(17) }, run)).rejects.toBeInstanceOf(UsageError);
    await expect(mkfsXfs({ device: '/dev/loop7', uuid: EXT4.uuid, label: 'x'.repeat(13) }, run)).rejects.toBeInstanceOf(UsageError);
    expect(calls).toEqual([]);
  });
});
