import { describe, expect, it } from 'vitest';
import type { Runner } from '../../../src/tools/exec.js';
import { fallocate, fallocateArgs } from '../../../src/tools/fallocate.js';

describe('fallocateArgs', () => {
  it('reserves [offset, offset + length) of the file, options ended by --', () => {
    // `fallocate --offset 2097152 --length 4096 -- fa.img` (util-linux 2.38.1) on a new file:
    // exit 0, size 2101248, 4096 bytes allocated (du -B1)
    expect(fallocateArgs('fa.img', 2097152, 4096)).toEqual(['--offset', '2097152', '--length', '4096', '--', 'fa.img']);
  });
  it('writes lengths beyond 2^32 in full bytes, never in exponent notation', () => {
    expect(fallocateArgs('-x.img', 0, 2 ** 40 - 2 * 2 ** 20)).toEqual(['--offset', '0', '--length', '1099509530624', '--', '-x.img']);
  });
  it('fallocate() runs the fallocate program with those arguments', async () => {
    const calls: Array<[string, readonly string[]]> = [];
    const run: Runner = async (file, args) => {
      calls.push([file, args]);
      return { command: [file, ...args], exitCode: 0, stdout: '', stderr: '' };
    };
    await fallocate('a.img', 4096, 8192, undefined, run);
    expect(calls).toEqual([['fallocate', fallocateArgs('a.img', 4096, 8192)]]);
  });
});
