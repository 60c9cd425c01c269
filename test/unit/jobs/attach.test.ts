/**
 * attach and detach against a fake ZFS and a fake losetup (test/unit/helpers/fake-zfs.ts) and real
 * image files: a real header (planLayout + buildHeader) with the fixture's ZFS label in the
 * partition (pool "fixture"). Only what test/system/zfs.test.ts cannot show on zfs-fuse: OpenZFS's
 * argument shapes, a same-named pool on another device, a pool last used by another host, a mount
 * failure after the import, a losetup killed mid-way, a failure after the import, owners checked
 * before anything runs. The ordinary attach/detach/destroy/status runs are proved there, on the
 * real tools.
 */
import { lstat, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidImageError, PoolError, ToolFailedError, UsageError } from '../../../src/errors.js';
import type { Runner } from '../../../src/tools/exec.js';
import { attachImage, checkOwnerExists, detachImage } from '../../../src/jobs/attach.js';
import { makeIds } from '../../../src/jobs/create.js';
import { createSparseFile, writeAt } from '../../../src/file/image-file.js';
import { buildHeader } from '../../../src/layout/header.js';
import { planLayout } from '../../../src/layout/plan.js';
import { MiB } from '../../../src/layout/units.js';
import { FUSE, FakeZfs, OPENZFS } from '../helpers/fake-zfs.js';

const LABEL = gunzipSync(readFileSync(join(import.meta.dirname, '../../fixtures/zfs-label0-vdev-phys.bin.gz')));
const GUID = '15296604384597250630';
const PLAN = planLayout({ sizeBytes: 128 * MiB, fs: 'zfs' });

let dir: string;
let img: string;
let runtimeDir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-attach-'));
  runtimeDir = join(dir, 'run');
  img = join(dir, 'pool.img');
  await createSparseFile(img, PLAN.sizeBytes);
  await writeAt(img, [...buildHeader(PLAN, makeIds({ seed: '1' })), { offsetBytes: PLAN.partition.offsetBytes + 16 * 1024, data: LABEL }]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function machine(flavour = FUSE) {
  const fake = new FakeZfs(flavour);
  fake.addExportedPool('fixture', GUID, '/fixture', ['storage']);
  return { fake, o: { run: fake.runner, flavour, runtimeDir } };
}

describe('attachImage', () => {

  it('OpenZFS: import -d names the loop device itself; --mount DIR is the altroot', async () => {
    const { fake, o } = machine(OPENZFS);
    const mnt = join(dir, 'mnt');
    const r = await attachImage(img, { ...o, mount: mnt });
    expect(fake.calls).toContain(`zpool import -d /dev/loop0 -o cachefile=none -R ${mnt} fixture`);
    expect((await stat(mnt)).isDirectory()).toBe(true);
    expect(r.mountpoints[0]).toEqual({ dataset: 'fixture', mountpoint: `${mnt}/fixture` });
    await expect(lstat(join(runtimeDir, 'vdev'))).rejects.toThrow(/ENOENT/);
  });

  // Attaching twice at the same place (alreadyAttached) is proved on zfs-fuse by test/system/zfs.test.ts.
  it('attached already at another --mount: refused, detach it first', async () => {
    const { fake, o } = machine();
    await attachImage(img, o);
    const n = fake.calls.length;
    const e = await attachImage(img, { ...o, mount: join(dir, 'elsewhere') }).catch((x) => x);
    expect(e).toBeInstanceOf(PoolError);
    expect(e.message).toContain('detach it first');
    expect(fake.calls.slice(n).filter((c) => /losetup --find|zpool import/.test(c))).toEqual([]);
    expect(fake.loops.size).toBe(1);
  });

  it('refuses an image whose pool name is imported from another device, changing nothing', async () => {
    const { fake, o } = machine();
    fake.addForeignPool('fixture', '/dev/sdb1');
    const e = await attachImage(img, o).catch((x) => x);
    expect(e).toBeInstanceOf(PoolError);
    expect(e.message).toBe(
      `cannot attach ${img}: a pool named fixture is already imported on this host from /dev/sdb1 (guid 1000); nothing was changed: export that pool first (zpool export fixture)`,
    );
    expect(fake.calls.filter((c) => /losetup --find|zpool import|zpool export/.test(c))).toEqual([]);
    expect(fake.loops.size).toBe(0);
  });

  it('a pool not cleanly exported needs --force; without it nothing is left', async () => {
    const { fake, o } = machine();
    fake.exported.get('fixture')!.hostid = 'deadbeef';
    const e = await attachImage(img, o).catch((x) => x);
    expect(e).toBeInstanceOf(PoolError);
    expect(e.message).toBe(`pool fixture in ${img} was not cleanly exported (last used by host vm, hostid 007f0100): if no other system is using the image, attach with --force`);
    expect(fake.loops.size).toBe(0);
    await expect(lstat(join(runtimeDir, 'vdev/loop0'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(join(runtimeDir, 'pools'))).rejects.toThrow(/ENOENT/);
    const r = await attachImage(img, { ...o, force: true });
    expect(fake.calls.filter((c) => c.startsWith('zpool import')).pop()).toMatch(/ -f fixture$/);
    expect(r.pool).toBe('fixture');
  });

  it('an import that fails after importing (a dataset cannot be mounted) is exported again', async () => {
    const { fake, o } = machine();
    fake.mountFailure = "cannot mount '/x/fixture': directory is not empty";
    const e = await attachImage(img, o).catch((x) => x);
    expect(e.message).toContain('directory is not empty');
    expect(fake.calls).toContain('zpool export fixture');
    expect(fake.pools.size).toBe(0);
    expect(fake.loops.size).toBe(0);
    await expect(lstat(join(runtimeDir, 'vdev/loop0'))).rejects.toThrow(/ENOENT/);
  });

  it('a losetup killed after it attached the device, before it said which: the new device is detached, others are kept', async () => {
    const { fake, o } = machine();
    // A device of the same file and offset that attach does not use (another size limit), and
    // one of another file: both were there before and stay.
    fake.loops.set('/dev/loop0', { file: img, offset: 2 * MiB, sizelimit: 4096 });
    fake.loops.set('/dev/loop1', { file: '/srv/other.img', offset: 2 * MiB, sizelimit: PLAN.partition.sizeBytes });
    const killed: Runner = async (file, args, options) => {
      const r = await fake.runner(file, args, options);
      if (file === 'losetup' && args[0] === '--find') {
        throw new ToolFailedError(`losetup ${args.join(' ')} was killed by SIGTERM`, { command: [file, ...args], exitCode: null, signal: 'SIGTERM', stderr: '' });
      }
      return r;
    };
    const e = await attachImage(img, { ...o, run: killed }).catch((x) => x);
    expect(e).toBeInstanceOf(ToolFailedError);
    expect(fake.calls).toContain('losetup --detach /dev/loop2');
    expect([...fake.loops.keys()].sort()).toEqual(['/dev/loop0', '/dev/loop1']);
  });

  it('a failure after the import (chown): exported, detached, and the runtime directories it made are gone', async () => {
    for (const flavour of [FUSE, OPENZFS]) {
      const { fake, o } = machine(flavour);
      fake.failOn(/^chown /, "chown: invalid user: 'nosuchuser'");
      const e = await attachImage(img, { ...o, owner: 'nobody' }).catch((x) => x);
      expect(e.message).toContain('invalid user');
      expect(fake.pools.size + fake.loops.size).toBe(0);
      await expect(lstat(runtimeDir)).rejects.toThrow(/ENOENT/);
    }
    // A runtime directory that was there before stays, with what is in it.
    const { fake, o } = machine();
    await mkdir(join(runtimeDir, 'vdev/loop7'), { recursive: true });
    fake.failOn(/^chown /);
    await expect(attachImage(img, { ...o, owner: 'nobody' })).rejects.toThrow();
    expect((await stat(join(runtimeDir, 'vdev/loop7'))).isDirectory()).toBe(true);
    await expect(lstat(join(runtimeDir, 'vdev/loop0'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(join(runtimeDir, 'pools'))).rejects.toThrow(/ENOENT/);
  });

  it('--owner names a user and group that exist here, checked before anything runs; numeric ids are taken as given', async () => {
    for (const [owner, message] of [
      ['nosuchuser', '--owner nosuchuser: there is no user nosuchuser on this host (getent passwd nosuchuser finds none)'],
      ['nobody:nosuchgroup', '--owner nobody:nosuchgroup: there is no group nosuchgroup on this host (getent group nosuchgroup finds none)'],
    ] as const) {
      const { fake, o } = machine();
      const e = await attachImage(img, { ...o, owner }).catch((x) => x);
      expect(e).toBeInstanceOf(UsageError);
      expect(e.message).toBe(message);
      expect(fake.calls.every((c) => c.startsWith('getent '))).toBe(true);
      await expect(lstat(runtimeDir)).rejects.toThrow(/ENOENT/);
    }
    const { fake, o } = machine();
    await attachImage(img, { ...o, owner: '12345:54321' });
    expect(fake.calls.filter((c) => c.startsWith('getent '))).toEqual([]);
    expect(fake.chowned).toEqual([`-R -- 12345:54321 ${runtimeDir}/pools/fixture/fixture`]);
    // What create --mount --owner calls before it makes anything.
    await expect(checkOwnerExists('nosuchuser', fake.runner)).rejects.toBeInstanceOf(UsageError);
    await expect(checkOwnerExists('chris:staff', fake.runner)).resolves.toBeUndefined();
    await expect(checkOwnerExists('-R', fake.runner)).rejects.toBeInstanceOf(UsageError);
  });

  it('refuses a file that is no mkimage image, and an image without a pool', async () => {
    const { o } = machine();
    const junk = join(dir, 'junk');
    await writeFile(junk, Buffer.alloc(64 * 1024));
    await expect(attachImage(junk, o)).rejects.toBeInstanceOf(InvalidImageError);
    const plain = join(dir, 'plain.img');
    await createSparseFile(plain, PLAN.sizeBytes);
    await writeAt(plain, buildHeader(PLAN, makeIds({ seed: '2' })));
    const e = await attachImage(plain, o).catch((x) => x);
    expect(e).toBeInstanceOf(InvalidImageError);
    expect(e.message).toContain('holds no ZFS pool');
    await expect(attachImage(join(dir, 'missing.img'), o)).rejects.toThrow(/no such file/);
  });
});

describe('detachImage', () => {

  it('detach never exports a same-named pool imported from elsewhere', async () => {
    const { fake, o } = machine();
    fake.addForeignPool('fixture', '/dev/sdb1');
    fake.loops.set('/dev/loop5', { file: img, offset: 2 * MiB, sizelimit: PLAN.partition.sizeBytes });
    const r = await detachImage(img, o);
    expect(r).toMatchObject({ exported: false, loopDevices: ['/dev/loop5'] });
    expect(fake.pools.has('fixture')).toBe(true);
  });
});
