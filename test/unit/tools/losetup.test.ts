import { describe, expect, it } from 'vitest';
import { ToolFailedError } from '../../../src/errors.js';
import type { Runner } from '../../../src/tools/exec.js';
import { attachArgs, attachLoop, detachLoop, listLoops, parseLoopList } from '../../../src/tools/losetup.js';

/**
 * `losetup --json --list --output NAME,BACK-FILE,OFFSET,SIZELIMIT,RO` (util-linux 2.38.1) with two
 * devices on the same file:
 *   truncate -s 64M /tmp/mkt/l.img
 *   losetup --find --show --offset 2097152 --sizelimit 62914560 -- /tmp/mkt/l.img              # /dev/loop0
 *   losetup --find --show --offset 2097152 --sizelimit 62914560 --read-only -- /tmp/mkt/l.img  # /dev/loop1
 */
const TWO_DEVICES = `{
   "loopdevices": [
      {
         "name": "/dev/loop1",
         "back-file": "/tmp/mkt/l.img",
         "offset": 2097152,
         "sizelimit": 62914560,
         "ro": true
      },{
         "name": "/dev/loop0",
         "back-file": "/tmp/mkt/l.img",
         "offset": 2097152,
         "sizelimit": 62914560,
         "ro": false
      }
   ]
}
`;
/** The same after `rm /tmp/mkt/l.img` with /dev/loop0 (read-only) still attached. */
const DELETED = `{
   "loopdevices": [
      {
         "name": "/dev/loop0",
         "back-file": "/tmp/mkt/l.img (deleted)",
         "offset": 2097152,
         "sizelimit": 62914560,
         "ro": true
      }
   ]
}
`;
/** With no loop device attached, 2.38.1 prints an empty list (older versions print nothing). */
const NONE = '{\n   "loopdevices": [\n\n   ]\n}\n';

describe('attachArgs', () => {
  it('attaches the partition alone: --find --show, offset and size limit, then -- FILE', () => {
    // the same arguments made /dev/loop0 above
    expect(attachArgs({ file: '/tmp/mkt/l.img', offsetBytes: 2097152, sizeLimitBytes: 62914560 })).toEqual([
      '--find', '--show', '--offset', '2097152', '--sizelimit', '62914560', '--', '/tmp/mkt/l.img',
    ]);
  });
  it('adds --read-only when asked', () => {
    expect(attachArgs({ file: 'x.img', offsetBytes: 0, sizeLimitBytes: 4096, readOnly: true })).toEqual([
      '--find', '--show', '--offset', '0', '--sizelimit', '4096', '--read-only', '--', 'x.img',
    ]);
  });
  it('writes offsets beyond 2^32 in full', () => {
    const args = attachArgs({ file: 'big.img', offsetBytes: 322 * 1024 * 1024, sizeLimitBytes: 5 * 2 ** 40 });
    expect(args.slice(2, 6)).toEqual(['--offset', '337641472', '--sizelimit', '5497558138880']);
  });
});

describe('parseLoopList', () => {
  it('reads what losetup --json prints', () => {
    expect(parseLoopList(TWO_DEVICES)).toEqual([
      { name: '/dev/loop1', backFile: '/tmp/mkt/l.img', offsetBytes: 2097152, sizeLimitBytes: 62914560, readOnly: true },
      { name: '/dev/loop0', backFile: '/tmp/mkt/l.img', offsetBytes: 2097152, sizeLimitBytes: 62914560, readOnly: false },
    ]);
  });
  it('keeps the "(deleted)" suffix, so a deleted file never matches its old path', () => {
    expect(parseLoopList(DELETED)[0]!.backFile).toBe('/tmp/mkt/l.img (deleted)');
  });
  it('reads an empty list and empty output as no devices', () => {
    expect(parseLoopList(NONE)).toEqual([]);
    expect(parseLoopList('')).toEqual([]);
    expect(parseLoopList('\n')).toEqual([]);
    expect(parseLoopList('{}')).toEqual([]);
  });
  it('reads the string forms older util-linux versions print ("0"/"1", numbers as strings)', () => {
    const old = JSON.stringify({ loopdevices: [{ name: '/dev/loop2', 'back-file': null, offset: '4096', sizelimit: '0', ro: '1' }] });
    expect(parseLoopList(old)).toEqual([{ name: '/dev/loop2', backFile: '', offsetBytes: 4096, sizeLimitBytes: 0, readOnly: true }]);
    const rw = JSON.stringify({ loopdevices: [{ name: '/dev/loop3', ro: '0' }] });
    expect(parseLoopList(rw)[0]).toMatchObject({ readOnly: false, offsetBytes: 0, backFile: '' });
  });
  it('throws on output that is not JSON', () => {
    expect(() => parseLoopList('NAME BACK-FILE')).toThrow(SyntaxError);
  });
});

describe('attach, detach, list (with a recording runner)', () => {
  function recorder(stdout: string) {
    const calls: Array<{ file: string; args: readonly string[] }> = [];
    const run: Runner = async (file, args) => {
      calls.push({ file, args });
      return { command: [file, ...args], exitCode: 0, stdout, stderr: '' };
    };
    return { calls, run };
  }
  it('attachLoop runs losetup with attachArgs and returns the device --show printed', async () => {
    const { calls, run } = recorder('/dev/loop0\n');
    const o = { file: '/tmp/mkt/l.img', offsetBytes: 2097152, sizeLimitBytes: 62914560 };
    expect(await attachLoop(o, run)).toBe('/dev/loop0');
    expect(calls).toEqual([{ file: 'losetup', args: attachArgs(o) }]);
  });
  it('attachLoop without a loop driver says to load it (losetup 2.38 on a host without the loop module)', async () => {
    const stderr = 'losetup: cannot find an unused loop device: No such file or directory\n';
    const run: Runner = async (file, args) => {
      throw new ToolFailedError(`${file} exited with 1`, { command: [file, ...args], exitCode: 1, stderr });
    };
    const e = await attachLoop({ file: '/tmp/mkt/l.img', offsetBytes: 0, sizeLimitBytes: 4096 }, run).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ToolFailedError);
    expect((e as ToolFailedError).message).toBe(
      'losetup found no free loop device for /tmp/mkt/l.img: load the loop driver (modprobe loop, as root), or free a loop device (losetup --list shows them); nothing was attached',
    );
    expect((e as ToolFailedError).data).toMatchObject({ stderr, exitCode: 1, file: '/tmp/mkt/l.img' });
    // Any other failure passes through unchanged.
    const other: Runner = async () => {
      throw new ToolFailedError('losetup exited with 1', { stderr: 'losetup: x.img: failed to set up loop device: Permission denied' });
    };
    await expect(attachLoop({ file: 'x.img', offsetBytes: 0, sizeLimitBytes: 4096 }, other)).rejects.toThrow('losetup exited with 1');
  });
  it('detachLoop detaches that device only', async () => {
    const { calls, run } = recorder('');
    await detachLoop('/dev/loop0', run);
    expect(calls).toEqual([{ file: 'losetup', args: ['--detach', '/dev/loop0'] }]);
  });
  it('listLoops asks for JSON with the columns parseLoopList reads', async () => {
    const { calls, run } = recorder(TWO_DEVICES);
    expect(await listLoops(run)).toHaveLength(2);
    expect(calls[0]!.args).toEqual(['--json', '--list', '--output', 'NAME,BACK-FILE,OFFSET,SIZELIMIT,RO,BACK-INO,BACK-MAJ:MIN']);
  });
  it("parseLoopList reads the backing file's identity: inode and padded major:minor, also once deleted", () => {
    // losetup --json --list --output NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN (util-linux 2.38.1), file removed.
    const json = '{"loopdevices": [{"name": "/dev/loop0", "back-file": "/tmp/i9-probe.img (deleted)", "back-ino": 2146404, "back-maj:min": "     254:0  "}]}';
    expect(parseLoopList(json)[0]).toEqual({ name: '/dev/loop0', backFile: '/tmp/i9-probe.img (deleted)', offsetBytes: 0, sizeLimitBytes: 0, readOnly: false, backIno: 2146404, backMajor: 254, backMinor: 0 });
  });
});
