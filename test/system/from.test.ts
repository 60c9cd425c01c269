/**
 * `mkimage --from`: an OCI image built in the test (helpers/oci-fixture.ts: every kind of entry)
 * flattened into ext4 and erofs as root and as an ordinary user (setpriv to 65534), and into xfs
 * as root; the filesystem is mounted read-only and read back with lstat/readlink/getfattr, never
 * with mkimage's code, and compared with the tree an OCI runtime makes of the layers plus exactly
 * what --from adds (helpers/from-additions.ts: /.mkimage/{config.json,init}, /proc, /sys). Then bad
 * input: each a clear error and nothing at IMAGE. About 40 s.
 */
import { execa } from 'execa';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, cleanDir, cli, sh, tempDir } from './helpers/machine.js';
import { EXPECTED_LINKS, T, expectedTree, writeFixture, type ReadEntry } from './helpers/oci-fixture.js';
import { readTree } from './helpers/tree.js';
import { fromAdditions } from './helpers/from-additions.js';
import { writeTar } from '../../src/layers/tar-write.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
  await chmod(dir, 0o777);
});
afterEach(async () => {
  const left = await cleanDir(dir);
  expect(left).toEqual({ loops: [], mounts: [] });
});

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

/** The CLI as root, or as uid/gid 65534 without groups. */
async function mkimage(args: string[], asUser: boolean) {
  const r = asUser ? await execa('setpriv', [...NOBODY, 'node', BIN, ...args], { reject: false, stdin: 'ignore' }) : await cli(args);
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Mounts the image's partition read-only, runs `body` on the mount point, unmounts. */
async function withMounted<T>(img: string, fs: string, offsetBytes: number, body: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = join(dir, `mnt-${fs}`);
  await mkdir(mnt, { recursive: true });
  const opts = ['ro', 'loop', `offset=${offsetBytes}`, ...(fs === 'ext4' ? ['noload'] : []), ...(fs === 'xfs' ? ['norecovery'] : [])];
  const m = await sh('mount', ['-t', fs, '-o', opts.join(','), img, mnt]);
  expect(m.exitCode, m.stderr).toBe(0);
  try {
    return await body(mnt);
  } finally {
    await sh('umount', [mnt]);
  }
}

/** What is left in `dir` besides the named entries: no image, no temp file, no staging dir. */
async function leftovers(keep: string[]): Promise<string[]> {
  return (await readdir(dir)).filter((n) => !keep.includes(n));
}

const cases: { fs: 'ext4' | 'erofs' | 'xfs'; user: boolean }[] = [
  { fs: 'ext4', user: false },
  { fs: 'ext4', user: true },
  { fs: 'erofs', user: false },
  { fs: 'erofs', user: true },
  { fs: 'xfs', user: false },
];

describe('create --from: the filesystem holds exactly the OCI-merged tree', () => {
  for (const c of cases) {
    it(`${c.fs} as ${c.user ? 'an ordinary user (uid 65534)' : 'root'}`, async () => {
      const f = await writeFixture(join(dir, 'oci'));
      const img = join(dir, 'disk.img');
      const builtFrom = Date.now();
      const r = await mkimage(['--from', f.dir, '--size', 'auto', '--fs', c.fs, '--sparse', '--json', img], c.user);
      const builtTo = Date.now();
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      const res = JSON.parse(r.stdout);
      expect(res.from).toMatchObject({ layers: 3, reference: 'docker.io/library/fixture:1', manifestDigest: f.manifestDigest, configDigest: f.configDigest, autoSize: true });
      expect(res.from.diffIds).toHaveLength(3);
      if (c.fs === 'xfs') expect(res.sizeBytes).toBe(302 * 1024 * 1024);
      else expect(res.sizeBytes).toBeLessThanOrEqual(c.fs === 'erofs' ? 4 * 1024 * 1024 : 40 * 1024 * 1024);
      expect(await leftovers(['oci', 'disk.img'])).toEqual([]);
      if (c.user) expect((await stat(img)).uid).toBe(65534);

      const off = res.layout.partitionOffsetBytes as number;
      await withMounted(img, c.fs, off, async (mnt) => {
        // The layers' tree, plus exactly what --from adds: /.mkimage/{config.json,init} and the
        // mount points the fixture lacks (it has /dev, /run, /tmp; not /proc, /sys).
        const got = await readTree(mnt, { skip: ['lost+found'] });
        const added = await fromAdditions({ missing: ['proc', 'sys'], config: await readFile(join(mnt, '.mkimage/config.json')), builtFrom, builtTo });
        expect(got.entries).toEqual({ ...expectedTree(f), ...added });
        expect(got.links).toEqual(EXPECTED_LINKS);
        // The recorded config: /.mkimage/config.json, 0444 root-owned.
        const st = await stat(join(mnt, '.mkimage/config.json'));
        expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o444, 0, 0]);
        const config = JSON.parse(await readFile(join(mnt, '.mkimage/config.json'), 'utf8'));
        expect(config).toEqual({
          schemaVersion: 1,
          source: { reference: 'docker.io/library/fixture:1', manifestDigest: f.manifestDigest, configDigest: f.configDigest, diffIds: res.from.diffIds },
          config: { Entrypoint: ['/usr/bin/newer'], Cmd: ['--flag'], Env: ['PATH=/usr/bin:/bin', 'A=b'], WorkingDir: '/home/user', User: '1000:1000' },
        });
      });
      if (c.fs === 'ext4') {
        const fsck = await sh('e2fsck', ['-fn', `${img}?offset=${off}`]);
        expect(fsck.exitCode, fsck.stdout).toBe(0);
      }
      if (c.fs === 'erofs') {
        const x = join(dir, 'extract');
        const part = join(dir, 'part.erofs');
        await sh('dd', [`if=${img}`, `of=${part}`, `bs=${off}`, 'skip=1', 'status=none']);
        const fsck = await sh('fsck.erofs', [`--extract=${x}`, part]);
        expect(fsck.exitCode, fsck.stderr).toBe(0);
        expect(await readFile(join(x, 'usr/bin/newer'), 'utf8')).toBe('#!/bin/sh\necho top layer\n');
        await rm(x, { recursive: true, force: true });
        await rm(part);
      }
      // inspect shows where the image came from, from the header alone.
      const ins = await cli(['inspect', '--json', img]);
      expect(ins.exitCode, ins.stdout).toBe(0);
      const report = JSON.parse(ins.stdout);
      expect(report.source).toEqual({ reference: 'docker.io/library/fixture:1', manifestDigest: f.manifestDigest, configDigest: f.configDigest, hasGuestConfig: true });
      expect(report.filesystem.type).toBe(c.fs);
      const text = await cli(['inspect', img]);
      expect(text.stdout).toContain(`source: docker.io/library/fixture:1 ${f.manifestDigest}, config ${f.configDigest}, boots /.mkimage/init`);
      // ... and so the kernel command line boots through the init, with no flag.
      const line = await cli(['qemu-args', '--cmdline', img]);
      expect(line.stdout).toBe(`root=/dev/pmem0 rootfstype=${c.fs} rootflags=dax ${c.fs === 'erofs' ? 'ro' : 'rw'} init=/.mkimage/init`);
    });
  }

  it('--ref chooses one image of a layout holding two; without it the error lists them', async () => {
    const f = await writeFixture(join(dir, 'oci'), { secondImage: 'base' });
    const img = join(dir, 'disk.img');
    const none = await cli(['--from', f.dir, '--size', 'auto', '--json', img]);
    expect(none.exitCode).toBe(2);
    expect(JSON.parse(none.stdout).error.message).toMatch(/the sources hold 2 images: choose one with --ref NAME or --ref sha256:DIGEST \(docker\.io\/library\/fixture:1 sha256:.*; base sha256:/);
    const byName = await cli(['--from', f.dir, '--ref', 'base', '--size', 'auto', '--sparse', '--json', img]);
    expect(byName.exitCode, byName.stdout).toBe(0);
    expect(JSON.parse(byName.stdout).from).toMatchObject({ layers: 1, reference: 'base', manifestDigest: f.secondDigest });
    await rm(img);
    const byDigest = await cli(['--from', f.dir, '--ref', f.manifestDigest.slice(0, 19), '--size', 'auto', '--sparse', '--json', img]);
    expect(byDigest.exitCode, byDigest.stdout).toBe(0);
    expect(JSON.parse(byDigest.stdout).from).toMatchObject({ layers: 3, reference: 'docker.io/library/fixture:1', manifestDigest: f.manifestDigest });
    const wrong = await cli(['--from', f.dir, '--ref', 'nope', '--size', 'auto', '--json', join(dir, 'other.img')]);
    expect(wrong.exitCode).toBe(2);
    expect(JSON.parse(wrong.stdout).error.message).toMatch(/--ref nope matches no image of .*: the sources hold docker\.io\/library\/fixture:1/);
  });
});

describe('create --from interrupted', () => {
  it('SIGINT while staging (as an ordinary user, erofs): exit 130, no image, no staging directory, no faked daemon left', async () => {
    // A layer large enough to be interrupted in the middle: 3000 files.
    const list = Array.from({ length: 3000 }, (_, i) => ({ path: `d${i % 30}/f${i}`, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: T, size: 4096, body: async function* () { yield Buffer.alloc(4096, i & 0xff); } }));
    const parts: Buffer[] = [];
    for await (const c of writeTar(list)) parts.push(c);
    await writeFile(join(dir, 'layer.tar'), Buffer.concat(parts));
    const img = join(dir, 'disk.img');
    const child = execa('setpriv', [...NOBODY, 'node', BIN, '--from', join(dir, 'layer.tar'), '--size', 'auto', '--fs', 'erofs', img], { reject: false, stdin: 'ignore' });
    // Kill once the staging directory exists.
    for (let i = 0; i < 200 && !(await readdir(dir)).some((n) => n.startsWith('.mkimage-from-')); i++) await new Promise((r) => setTimeout(r, 25));
    child.kill('SIGINT');
    const r = await child;
    expect([r.exitCode, r.exitCode === 0 ? 'finished before the signal' : '']).toEqual([130, '']);
    expect(await leftovers(['layer.tar'])).toEqual([]);
    const faked = await sh('pgrep', ['-u', '65534', '-x', 'faked-sysv']);
    expect(faked.stdout).toBe('');
  });
});

describe('create --from refuses bad input: a clear error, nothing at IMAGE', () => {
  async function refused(args: string[], code: string, message: RegExp, keep: string[]) {
    const img = join(dir, 'disk.img');
    const r = await cli([...args, '--json', img]);
    expect(r.exitCode, r.stdout + r.stderr).not.toBe(0);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
    expect(await leftovers(keep)).toEqual([]);
  }

  it('a corrupt blob', async () => {
    const f = await writeFixture(join(dir, 'oci'), { corruptLayer: 1 });
    await refused(['--from', f.dir, '--size', 'auto'], 'ELAYER', /stored layer has digest sha256:[0-9a-f]{64}, the manifest says sha256:[0-9a-f]{64}: the image is corrupt/, ['oci']);
  });

  it('a missing blob', async () => {
    const f = await writeFixture(join(dir, 'oci'), { missingLayer: 2 });
    await refused(['--from', f.dir, '--size', 'auto'], 'ELAYER', /image docker\.io\/library\/fixture:1: layer 2 blob sha256:[0-9a-f]{64} is missing/, ['oci']);
  });

  it('a diff_id that does not match the uncompressed layer', async () => {
    const f = await writeFixture(join(dir, 'oci'), { wrongDiffId: 0 });
    await refused(['--from', f.dir, '--size', 'auto'], 'ELAYER', /uncompressed layer has diff_id sha256:[0-9a-f]{64}, the image config says sha256:[0-9a-f]{64}: the image is corrupt/, ['oci']);
  });

  it('hostile paths: ../ and a symlink climbing out of the root', async () => {
    const f = await writeFixture(join(dir, 'oci'), { hostile: [{ path: '../../etc/evil', type: 'file' }] });
    await refused(['--from', f.dir, '--size', 'auto'], 'ELAYER', /layer entry "\.\.\/\.\.\/etc\/evil" refused \(parent-reference\)/, ['oci']);
    await rm(join(dir, 'oci'), { recursive: true });
    const g = await writeFixture(join(dir, 'oci'), { hostile: [{ path: 'up', type: 'symlink', linkpath: '../../..' }, { path: 'up/evil', type: 'file' }] });
    await refused(['--from', g.dir, '--size', 'auto', '--fs', 'erofs'], 'ELAYER', /layer entry "up\/evil" refused \(symlink-escape\)/, ['oci']);
  });

  it('a --size too small for the content says the size needed (ext4 and erofs)', async () => {
    const parts: Buffer[] = [];
    const big = Buffer.alloc(12 * 1024 * 1024, 0x5a);
    for await (const c of writeTar([{ path: 'big', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: T, size: big.length, body: async function* () { yield big; } }])) parts.push(c);
    await writeFile(join(dir, 'layer.tar'), Buffer.concat(parts));
    const tar = join(dir, 'layer.tar');
    // The content: the 12 MiB file and the guest init (~690 KiB) every --from image holds.
    await refused(['--from', tar, '--size', '12M'], 'ENOSPC', /the ext4 filesystem of 10 MiB cannot hold the content of the sources: it needs at least \d+ MiB; give --size \d+ MiB or more \(what --size auto chooses\)/, ['layer.tar']);
    await refused(['--from', tar, '--size', '8M', '--fs', 'erofs'], 'ENOSPC', /the erofs filesystem of 6 MiB cannot hold the content of the sources: it needs at least 12\.7 MiB; give --size 16 MiB or more/, ['layer.tar']);
    // What the messages say is enough is enough.
    const small = await cli(['--from', tar, '--size', '12M', '--json', join(dir, 'x.img')]);
    const needed = /give --size (\d+) MiB/.exec(JSON.parse(small.stdout).error.message)![1]!;
    const ok = await cli(['--from', tar, '--size', `${needed}M`, '--json', join(dir, 'disk.img')]);
    expect(ok.exitCode, ok.stdout).toBe(0);
    const okErofs = await cli(['--from', tar, '--size', '16M', '--fs', 'erofs', '--json', join(dir, 'disk2.img')]);
    expect(okErofs.exitCode, okErofs.stdout).toBe(0);
  });
});

export type { ReadEntry };
