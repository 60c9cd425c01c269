/**
 * ZFS images against the real tools: zfs-fuse (started here if its daemon is not running),
 * losetup, mount. Run as root. Every test uses its own temp dir and pool names starting with
 * "mkt" plus a random suffix, and checks afterwards that no loop device, mount, pool or runtime
 * directory of it is left (other pools on the host, e.g. other test files', are never touched).
 */
import { execa } from 'execa';
import { lstat, mkdir, readFile, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { removeEmptyTree } from '../../src/file/empty-dirs.js';
import { createSparseFile, readAt, removeIfExists, writeAt } from '../../src/file/image-file.js';
import { makeIds } from '../../src/jobs/create.js';
import { readImageHeader } from '../../src/jobs/inspect.js';
import { withUndo } from '../../src/undo.js';
import { detectZfsLabel } from '../../src/jobs/zfs-detect.js';
import { buildPool, type PoolRequest } from '../../src/jobs/zfs-pool.js';
import { buildHeader } from '../../src/layout/header.js';
import { planLayout } from '../../src/layout/plan.js';
import { MiB } from '../../src/layout/units.js';
import { VDEV_PHYS_BYTES, sealVdevPhys, vdevPhysOffsets } from '../../src/layout/zfs-label.js';
import { run, type Runner } from '../../src/tools/exec.js';
import { attachLoop, detachLoop } from '../../src/tools/losetup.js';
import { cli, sh } from './helpers/machine.js';
import { importedPools, zfsTestBed } from './helpers/zfs-test-bed.js';

const bed = zfsTestBed({ poolPrefix: 'mkt', dirPrefix: 'mkimage-zfs-' });
const poolName = bed.poolName;
let dir: string;
beforeEach(() => {
  dir = bed.dir();
});

const SIZE = 128 * MiB;

/**
 * An image the way create --fs zfs makes it, from the library: header, loop device of the
 * partition, buildPool, loop detached; the file is removed on failure. `runner` stands between
 * buildPool and zpool/zfs (fault injection).
 */
async function buildImage(path: string, req: PoolRequest, runner: Runner = run) {
  const plan = planLayout({ sizeBytes: SIZE, fs: 'zfs' });
  return withUndo(undefined, async (undo) => {
    await createSparseFile(path, plan.sizeBytes);
    undo.push(`file ${path}`, () => removeIfExists(path));
    await writeAt(path, buildHeader(plan, makeIds({})));
    const device = await attachLoop({ file: path, offsetBytes: plan.partition.offsetBytes, sizeLimitBytes: plan.partition.sizeBytes });
    const loopUndo = undo.push(`loop ${device}`, () => detachLoop(device));
    const result = await buildPool({ device, ...req, run: runner }, undo);
    await undo.settle(loopUndo);
    undo.commit();
    return result;
  });
}

/** The tree as `zfs list` shows it while attached (names below the pool, snapshots included). */
async function tree(pool: string): Promise<string[]> {
  const r = await sh('zfs', ['list', '-H', '-o', 'name', '-t', 'filesystem,snapshot', '-r', pool]);
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean).map((n) => n.slice(pool.length)).sort();
}

async function json(args: string[], env?: Record<string, string>) {
  const r = await cli([...args, '--json'], { env });
  expect(r.stderr, r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout);
}

describe('create --fs zfs (CLI)', () => {
  it.each([
    ['calldown', [], ['', '/runtime', '/storage', '/storage/empty', '/storage/empty@extracted']],
    ['dlite', [], ['', '/containers', '/dhyve', '/images']],
    ['none', ['--dataset', 'images/base/v1', '--dataset', 'x'], ['', '/images', '/images/base', '/images/base/v1', '/x']],
  ])('--layout %s %j: the tree zfs list shows, an exported pool, nothing attached', async (layout, extra, expected) => {
    const img = join(dir, `${layout}.img`);
    const pool = poolName();
    const res = await json(['create', '--size', '128M', '--fs', 'zfs', '--pool', pool, '--layout', layout, ...extra, img]);
    expect(res.fs).toBe('zfs');
    expect(await importedPools()).not.toContain(pool);
    const label = await detectZfsLabel(img, 2 * MiB, SIZE - 2 * MiB);
    expect(label).toMatchObject({ pool, state: 'exported', version: 23 });
    const a = await json(['attach', img, '--mount', join(dir, 'mnt')]);
    expect(a.pool).toBe(pool);
    expect(await tree(pool)).toEqual(expected);
    await json(['detach', img]);
  });

  it('a bad --dataset is refused before anything is made (exit 2, no file, no pool)', async () => {
    const img = join(dir, 'bad.img');
    const pool = poolName();
    const r = await cli(['create', '--size', '128M', '--fs', 'zfs', '--pool', pool, '--dataset', 'ok', '--dataset', 'a/../etc', img]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe(`mkimage: --dataset "a/../etc" contains '..'`);
    await expect(lstat(img)).rejects.toThrow(/ENOENT/);
    expect((await readdir(dir)).filter((f) => f.includes('bad.img'))).toEqual([]);
  });
});

describe('buildPool on real zfs-fuse (the library, as create uses it)', () => {
  it('a failure half-way through the dataset tree leaves no pool, loop device, mount or file', async () => {
    const img = join(dir, 'half.img');
    const pool = poolName();
    const seen: string[] = [];
    // Runs every command for real; `zfs create POOL/boom` goes to zfs with a name it refuses, so
    // the failure is zfs's own, after the pool and the first datasets exist.
    const faulty: Runner = (file, args, options) => {
      seen.push([file, ...args].join(' '));
      const bad = file === 'zfs' && args[0] === 'create' && args[args.length - 1] === `${pool}/boom`;
      return run(file, bad ? [...args.slice(0, -1), `${pool}/bo%om`] : args, options);
    };
    const e = await buildImage(img, { pool, layout: 'calldown', datasets: ['one', 'two/deep', 'boom', 'after'] }, faulty).catch((x) => x);
    expect(e.code).toBe('ETOOLFAILED');
    expect(e.message).toContain('invalid character % in name');
    expect(seen).toContain(`zfs create -p ${pool}/two/deep`); // leaves only, parents by -p
    expect(seen).not.toContain(`zfs create ${pool}/after`);
    expect(seen).toContain(`zpool destroy -f ${pool}`);
    expect(await importedPools()).not.toContain(pool);
    await expect(lstat(img)).rejects.toThrow(/ENOENT/);
    // The private altroot the build mounted under is gone too.
    const altroot = /-R (\S+)/.exec(seen.find((c) => c.startsWith('zpool create'))!)![1]!;
    await expect(lstat(altroot)).rejects.toThrow(/ENOENT/);
  });

  it('--populate copies a tree into the pool; the label carries name and guid', async () => {
    const img = join(dir, 'pop.img');
    const seed = join(dir, 'seed');
    await mkdir(join(seed, 'images'), { recursive: true });
    await writeFile(join(seed, 'hello.txt'), 'hello\n');
    await writeFile(join(seed, 'images', 'in-dataset.txt'), 'in a dataset\n');
    const pool = poolName();
    const r = await buildImage(img, { pool, layout: 'dlite', populateDir: seed });
    expect(r.datasets).toEqual([pool, `${pool}/containers`, `${pool}/dhyve`, `${pool}/images`]);
    expect(await detectZfsLabel(img, 2 * MiB, SIZE - 2 * MiB)).toMatchObject({ pool, guid: r.guid, state: 'exported' });
    const mnt = join(dir, 'mnt');
    await json(['attach', img, '--mount', mnt]);
    expect(await readFile(join(mnt, pool, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(join(mnt, pool, 'images', 'in-dataset.txt'), 'utf8')).toBe('in a dataset\n');
    const df = await sh('zfs', ['list', '-H', '-o', 'name,mounted', `${pool}/images`]);
    expect(df.stdout.trim()).toBe(`${pool}/images\tyes`);
    await json(['detach', img]);
  });

  it('inspect reports the pool (name and guid from the label)', async () => {
    const img = join(dir, 'inspect.img');
    const pool = poolName();
    const r = await buildImage(img, { pool, layout: 'none' });
    const report = await readImageHeader(img);
    expect(report.filesystem).toMatchObject({ type: 'zfs', pool, guid: r.guid, state: 'exported' });
  });
});

describe('the image after create: attach, detach, destroy, status (CLI)', () => {
  it('create --mount --owner, write a file, detach (a reboot), attach again and read it back', async () => {
    const img = join(dir, 'life.img');
    const pool = poolName();
    const mnt = join(dir, 'mnt');
    const created = await json(['create', '--size', '128M', '--sparse', '--fs', 'zfs', '--pool', pool, '--mount', mnt, '--owner', 'nobody:nogroup', img]);
    const a = created.zfs.attached;
    expect(a).toMatchObject({ file: img, pool, health: 'ONLINE', altroot: mnt, alreadyAttached: false, flavour: 'zfs-fuse 0.7.0 (pool version 23)' });
    expect(a.loopDevice).toMatch(/^\/dev\/loop\d+$/);
    expect(a.mountpoints.map((m: { dataset: string }) => m.dataset)).toEqual([pool, `${pool}/runtime`, `${pool}/storage`, `${pool}/storage/empty`]);
    const owner = await stat(join(mnt, pool, 'storage'));
    const nobody = await sh('id', ['-u', 'nobody']);
    expect(owner.uid).toBe(Number(nobody.stdout.trim()));

    await writeFile(join(mnt, pool, 'storage', 'kept.txt'), 'survives detach\n');
    // The clean-up of empty directories never reaches into a mounted pool (storage/empty is an
    // empty, mounted dataset).
    expect(await removeEmptyTree(mnt)).toBe(false);
    expect(await readdir(join(mnt, pool, 'storage'))).toEqual(expect.arrayContaining(['empty', 'kept.txt']));
    expect((await sh('zfs', ['list', '-H', '-o', 'mounted', `${pool}/storage/empty`])).stdout.trim()).toBe('yes');
    const again = await json(['attach', img, '--mount', mnt]);
    expect(again.alreadyAttached).toBe(true);
    expect(again.loopDevice).toBe(a.loopDevice);

    const st = await json(['status']);
    expect(st.images.filter((i: { file: string }) => i.file === img)).toEqual([
      expect.objectContaining({ file: img, loopDevice: a.loopDevice, pool, health: 'ONLINE', altroot: mnt }),
    ]);

    const d = await json(['detach', img]);
    expect(d).toEqual({ file: img, pool, exported: true, loopDevices: [a.loopDevice], wasAttached: true });
    // What a reboot leaves: no loop device, no pool, no mount; the mount directory is empty again.
    expect(await importedPools()).not.toContain(pool);
    expect((await sh('losetup', ['-a'])).stdout).not.toContain(img);
    expect(await readdir(mnt)).toEqual([]);
    expect((await json(['detach', img])).wasAttached).toBe(false);

    const b = await json(['attach', img, '--mount', mnt]);
    expect(b.alreadyAttached).toBe(false);
    expect(await readFile(join(mnt, pool, 'storage', 'kept.txt'), 'utf8')).toBe('survives detach\n');
    await json(['detach', img]);
  });

  it('without --mount the datasets appear under /run/mkimage/pools/<pool>, removed on detach', async () => {
    const img = join(dir, 'default.img');
    const pool = poolName();
    await buildImage(img, { pool, layout: 'none' });
    const a = await json(['attach', img]);
    expect(a.mountpoints).toEqual([{ dataset: pool, mountpoint: `/run/mkimage/pools/${pool}/${pool}` }]);
    expect(await readlink(`/run/mkimage/vdev/${a.loopDevice.slice(5)}/${a.loopDevice.slice(5)}`)).toBe(a.loopDevice);
    await json(['detach', img]);
    await expect(lstat(`/run/mkimage/pools/${pool}`)).rejects.toThrow(/ENOENT/);
    await expect(lstat(`/run/mkimage/vdev/${a.loopDevice.slice(5)}`)).rejects.toThrow(/ENOENT/);
  });

  it('refuses an image whose pool name is imported from another image, changing nothing', async () => {
    const pool = poolName();
    const first = join(dir, 'first.img');
    const second = join(dir, 'second.img');
    await buildImage(first, { pool, layout: 'none' });
    await buildImage(second, { pool, layout: 'none' });
    const a = await json(['attach', first, '--mount', join(dir, 'm1')]);
    const loopsBefore = (await sh('losetup', ['-a'])).stdout;
    const r = await cli(['attach', second, '--mount', join(dir, 'm2')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^mkimage: cannot attach ${second}: a pool named ${pool} is already imported on this host from \\S*${a.loopDevice.slice(5)} \\(guid \\d+\\); nothing was changed: export that pool first`));
    expect((await sh('losetup', ['-a'])).stdout).toBe(loopsBefore);
    await expect(lstat(join(dir, 'm2'))).rejects.toThrow(/ENOENT/);
    await json(['detach', first]);
    // The second one attaches once the name is free.
    expect((await json(['attach', second, '--mount', join(dir, 'm2')])).pool).toBe(pool);
    await json(['detach', second]);
  });

  it('a pool not cleanly exported by another host needs --force; without it nothing is left', async () => {
    const img = join(dir, 'orig.img');
    const copy = join(dir, 'copy.img');
    const pool = poolName();
    await buildImage(img, { pool, layout: 'none' });
    await json(['attach', img]);
    // Copies taken while attached: their labels say "active", as after a crash or a reboot.
    const crashed = join(dir, 'crashed.img');
    await sh('cp', ['--sparse=always', img, crashed]);
    await sh('cp', ['--sparse=always', img, copy]);
    await json(['detach', img]);
    const partSize = SIZE - 2 * MiB;
    // Last used by this host: ZFS would import it without -f (what a reboot or a crash while
    // attached leaves, or a copy of an attached image), but mkimage cannot tell a crash from a
    // guest or a copy using it: refused unless --force (issue 9).
    expect(await detectZfsLabel(crashed, 2 * MiB, partSize)).toMatchObject({ pool, state: 'active' });
    const host = (await sh('hostname', [])).stdout.trim();
    const c = await cli(['attach', crashed]);
    expect(c.exitCode).toBe(1);
    expect(c.stderr).toMatch(new RegExp(`^mkimage: cannot attach ${crashed}: pool ${pool} was not cleanly exported: its label says active, last imported by host ${host}, hostid [0-9a-f]{8}: .*attach with --force; nothing was changed$`));
    expect((await json(['attach', crashed, '--force'])).health).toBe('ONLINE');
    await json(['detach', crashed]);
    // Another host's hostid in them, as if that host had crashed with the pool imported (each
    // label's checksum made right again).
    for (const off of vdevPhysOffsets(partSize)) {
      const b = Buffer.from(await readAt(copy, 2 * MiB + off, VDEV_PHYS_BYTES));
      const at = b.indexOf(Buffer.from('hostid\0\0', 'latin1')) + 16;
      b.writeBigUInt64BE(0x0badc0den, at);
      await writeAt(copy, [{ offsetBytes: 2 * MiB + off, data: sealVdevPhys(b, off) }]);
    }
    expect(await detectZfsLabel(copy, 2 * MiB, partSize)).toMatchObject({ pool, state: 'active', hostid: '0badc0de' });

    const r = await cli(['attach', copy]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      `mkimage: cannot attach ${copy}: pool ${pool} was not cleanly exported: its label says active, last imported by host ${host}, hostid 0badc0de: the pool is in use by another system (a running guest, another host, a copy of an attached image) or its last user crashed before exporting it; if nothing else uses the image, attach with --force; nothing was changed`,
    );
    expect(await importedPools()).not.toContain(pool);
    expect((await sh('losetup', ['-a'])).stdout).not.toContain(copy);

    const f = await json(['attach', copy, '--force']);
    expect(f.health).toBe('ONLINE');
    await json(['detach', copy]);
  });

  it('--owner with a user that does not exist: refused before anything is done (exit 2, no loop device, no runtime directory)', async () => {
    const img = join(dir, 'owner.img');
    const pool = poolName();
    await buildImage(img, { pool, layout: 'none' });
    const runBefore = await lstat('/run/mkimage').then(() => true, () => false);
    const r = await cli(['attach', img, '--owner', 'nosuchuser']);
    expect(r.stderr).toBe('mkimage: --owner nosuchuser: there is no user nosuchuser on this host (getent passwd nosuchuser finds none)');
    expect(r.exitCode).toBe(2);
    expect(await importedPools()).not.toContain(pool);
    expect((await sh('losetup', ['-a'])).stdout).not.toContain(img);
    await expect(lstat(`/run/mkimage/pools/${pool}`)).rejects.toThrow(/ENOENT/);
    if (!runBefore) await expect(lstat('/run/mkimage')).rejects.toThrow(/ENOENT/);
  });

  it('destroy --yes: pool destroyed, loop device detached, file removed', async () => {
    const img = join(dir, 'gone.img');
    const pool = poolName();
    await buildImage(img, { pool, layout: 'none' });
    await json(['attach', img]);
    const no = await cli(['destroy', img]);
    expect(no.exitCode).toBe(2);
    expect(no.stderr).toContain('pass --yes');
    const r = await json(['destroy', img, '--yes']);
    expect(r).toMatchObject({ pool, poolDestroyed: true, removed: true });
    await expect(lstat(img)).rejects.toThrow(/ENOENT/);
    expect(await importedPools()).not.toContain(pool);
  });

  it('destroy refuses an ext4 image (exit 1), leaving the file as it was', async () => {
    const img = join(dir, 'plain.img');
    expect((await cli(['create', '--size', '16M', '--sparse', '-q', img])).exitCode).toBe(0);
    const before = await readFile(img);
    const r = await cli(['destroy', img, '--yes']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^mkimage: ${img} holds no ZFS pool: .* it was left untouched$`));
    expect((await readFile(img)).equals(before)).toBe(true);
  });

  it('zpool and zfs missing: errors name the packages, nothing is made', async () => {
    const img = join(dir, 'nozfs.img');
    const pool = poolName();
    await buildImage(img, { pool, layout: 'none' });
    // A PATH with everything of /usr/sbin and /usr/bin but zpool, zfs and zfs-fuse.
    const bin = join(dir, 'bin');
    await mkdir(bin);
    for (const d of ['/usr/sbin', '/usr/bin']) {
      for (const f of await readdir(d)) {
        if (['zpool', 'zfs', 'zfs-fuse', 'zdb'].includes(f)) continue;
        await symlink(join(d, f), join(bin, f)).catch(() => undefined);
      }
    }
    const env = { PATH: bin };
    const r = await cli(['attach', img], { env });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('mkimage: zfs is not installed or not on PATH: install the Debian package zfsutils-linux (OpenZFS) or zfs-fuse');
    expect((await sh('losetup', ['-a'])).stdout).not.toContain(img);
    const c = await cli(['create', '--size', '128M', '--fs', 'zfs', '--pool', poolName(), join(dir, 'new.img')], { env });
    expect(c.exitCode).toBe(1);
    expect(c.stderr).toContain('zfsutils-linux (OpenZFS) or zfs-fuse');
    await expect(lstat(join(dir, 'new.img'))).rejects.toThrow(/ENOENT/);
  });

  it('the zfs-fuse daemon not running: a PoolError that says how to start it, nothing made', async () => {
    const img = join(dir, 'nodaemon.img');
    const pool = poolName();
    await buildImage(img, { pool, layout: 'none' });
    // A mount namespace where /run/zfs (the daemon's socket) is an empty tmpfs: the daemon the
    // other tests use keeps running.
    const r = await execa('unshare', ['-m', '--', 'sh', '-c', 'mount -t tmpfs none /run/zfs && exec node "$0" attach "$1"', join(import.meta.dirname, '../../bin/mkimage.js'), img], {
      reject: false,
    });
    expect(r.exitCode).toBe(1);
    expect(String(r.stderr)).toBe('mkimage: the zfs-fuse daemon is not running, so zpool and zfs cannot work: start it with: zfs-fuse (as root), then try again');
    expect((await sh('losetup', ['-a'])).stdout).not.toContain(img);
  });
});
