/**
 * What a user reads when a request cannot be met: the real CLI's one line on stderr, its exit
 * status, and nothing left behind. One test per message the user's first runs found wanting.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanDir, cli, sh, tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

/** Runs the CLI expecting a usage error or failure: its status, its line, and no image left. */
async function refused(args: string[], status: number) {
  const r = await cli(args);
  expect(r.exitCode, r.stderr).toBe(status);
  expect(r.stdout).toBe('');
  expect(r.stderr.split('\n')).toHaveLength(1);
  expect(await readdir(dir)).toEqual(expect.not.arrayContaining(['disk.img']));
  return r.stderr;
}

describe('sizes', () => {
  it('0 and -1 name the minimum for the filesystem asked for', async () => {
    const img = join(dir, 'disk.img');
    expect(await refused(['--size', '0', img], 2)).toBe('mkimage: --size "0" is zero: the minimum is 10 MiB');
    expect(await refused(['--size', '-1', '--fs', 'xfs', img], 2)).toBe('mkimage: --size "-1" is negative: the minimum is 302 MiB');
    expect(await refused(['--size', '0G', '--fs', 'zfs', '--pool', 'p', img], 2)).toBe('mkimage: --size "0G" is zero: the minimum is 66 MiB');
  });
  it('a huge size is reported with its exact byte count', async () => {
    expect(await refused(['--size', '99999999999T', join(dir, 'disk.img')], 2)).toBe(
      'mkimage: --size "99999999999T" is too large: 109951162776500488372224 bytes, more than the 9007199254740991 (8 PiB) mkimage computes with',
    );
  });
  it('20GB is refused, naming the binary spelling', async () => {
    expect(await refused(['--size', '20GB', join(dir, 'disk.img')], 2)).toMatch(/GB is ambiguous .* write 20G or 20GiB$/);
  });
  it('--size max on a small filesystem says what was kept back, without contradicting itself', async () => {
    const small = join(dir, 'small');
    await mkdir(small);
    expect((await sh('mount', ['-t', 'tmpfs', '-o', 'size=70m', 'mkimage-msg', small])).exitCode).toBe(0);
    try {
      const r = await cli(['--size', 'max', join(small, 'disk.img')]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe(
        `mkimage: --size max: ${small} has 70 MiB free; 64 MiB of it kept back for a preallocated image's filesystem metadata leaves 6 MiB, less than the 10 MiB an image with --fs ext4 needs (--sparse keeps nothing back)`,
      );
      expect(await readdir(small)).toEqual([]);
      const sparse = await cli(['--size', 'max', '--sparse', '--fs', 'xfs', join(small, 'disk.img')]);
      expect(sparse.exitCode).toBe(1);
      expect(sparse.stderr).toBe(`mkimage: --size max: ${small} has 70 MiB free, 70 MiB in whole 2 MiB, less than the 302 MiB an image with --fs xfs needs`);
    } finally {
      await sh('umount', [small]);
    }
  });
});

/** The CLI as the unprivileged user nobody (65534). */
const asNobody = (args: string[]) => sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', join(import.meta.dirname, '../../bin/mkimage.js'), ...args]);

describe('ZFS commands as an ordinary user', () => {
  it('attach, layers list and status say they need root (not "failed to initialize ZFS library")', async () => {
    await chmod(dir, 0o755);
    const img = join(dir, 'z.img');
    const pool = `mkt${randomBytes(3).toString('hex')}`;
    const made = await cli(['create', '-q', '--size', '128M', '--sparse', '--fs', 'zfs', '--pool', pool, img]);
    expect(made.exitCode, made.stderr).toBe(0);
    await chmod(img, 0o644);
    const needsRoot = "mkimage: zpool and zfs need root here (they talk to the ZFS daemon or /dev/zfs, which are root's): run mkimage as root (e.g. with sudo)";
    for (const args of [['attach', img], ['layers', 'list', img], ['status']]) {
      const r = await asNobody(args);
      expect({ args, exitCode: r.exitCode, stderr: r.stderr, stdout: r.stdout }).toEqual({ args, exitCode: 1, stderr: needsRoot, stdout: '' });
    }
    // And nothing was imported by trying.
    expect((await sh('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n')).not.toContain(pool);
  });
});

describe('layers export -o', () => {
  it('an existing FILE is kept without --force (exit 2), before the image is opened', async () => {
    const out = join(dir, 'layer.tar');
    await writeFile(out, 'precious');
    const r = await cli(['layers', 'export', join(dir, 'any.img'), 'abcdef', '-o', out]);
    expect(r).toMatchObject({ exitCode: 2, stdout: '', stderr: `mkimage: ${out} already exists: pass --force to replace it (it was left untouched)` });
    expect(await readFile(out, 'utf8')).toBe('precious');
  });
  it('-o - with --json is refused: stdout carries the tar (the JSON error still goes to stdout, alone)', async () => {
    const r = await cli(['layers', 'export', join(dir, 'any.img'), 'abcdef', '-o', '-', '--json']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe('mkimage: -o - writes the tar on stdout, which leaves no room for --json: write to a file (-o FILE --json) or drop --json');
    expect(JSON.parse(r.stdout).error.code).toBe('EUSAGE');
  });
});

describe('where the image goes', () => {
  it('a read-only file system is named as such, not as missing write permission', async () => {
    const ro = join(dir, 'ro');
    await mkdir(ro);
    expect((await sh('mount', ['-t', 'tmpfs', '-o', 'size=16m,ro', 'mkimage-ro', ro])).exitCode).toBe(0);
    try {
      const r = await cli(['--size', '64M', '--sparse', join(ro, 'disk.img')]);
      expect(r).toMatchObject({ exitCode: 1, stdout: '' });
      expect(r.stderr).toBe(`mkimage: cannot create ${join(ro, 'disk.img')}: ${ro} is on a read-only file system (nothing was written): choose another directory, or remount it read-write`);
    } finally {
      await sh('umount', [ro]);
    }
  });
  it('ENOSPC inside mkfs (a sparse image populated on a full file system) is a NoSpaceError, and nothing is left', async () => {
    const small = join(dir, 'small');
    const src = join(dir, 'src');
    await mkdir(small);
    await mkdir(src);
    await writeFile(join(src, 'big'), Buffer.alloc(8 * 1024 * 1024, 0x5a));
    expect((await sh('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'mkimage-nospc', small])).exitCode).toBe(0);
    try {
      const img = join(small, 'disk.img');
      const r = await cli(['--size', '64M', '--sparse', '--populate', src, img, '--json']);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe(
        `mkimage: no space left in ${small} while mkfs.ext4 wrote into ${img}; nothing was left behind: free some space, or make the image preallocated (without --sparse) so its space is reserved up front`,
      );
      expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'ENOSPC', data: { tool: 'mkfs.ext4', stderr: expect.stringContaining('No space left on device') } });
      expect(await readdir(small)).toEqual([]);
    } finally {
      await sh('umount', [small]);
    }
  });
});

describe('no empty directories left behind', () => {
  it('a layers command with --mount DIR on a detached image removes the DIR it made, and keeps one that was there', async () => {
    const img = join(dir, 'z.img');
    const pool = `mkt${randomBytes(3).toString('hex')}`;
    const made = await cli(['create', '-q', '--size', '128M', '--sparse', '--fs', 'zfs', '--pool', pool, img]);
    expect(made.exitCode, made.stderr).toBe(0);
    const list = await cli(['layers', 'list', img, '--mount', join(dir, 'new/altroot'), '--json']);
    expect(list.exitCode, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).attachedByJob).toBe(true);
    await expect(lstat(join(dir, 'new'))).rejects.toThrow(/ENOENT/);
    await mkdir(join(dir, 'mine'));
    expect((await cli(['layers', 'list', img, '--mount', join(dir, 'mine')])).exitCode).toBe(0);
    expect(await readdir(join(dir, 'mine'))).toEqual([]);
    expect((await sh('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n')).not.toContain(pool);
  });
});
