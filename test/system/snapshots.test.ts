/**
 * snapshot / snapshots / send / receive against zfs-fuse: round trips between two images (full,
 * then incremental) with the files compared; truncated and corrupt streams leave the target as
 * it was; streams through a pipe (-o - | -i -); images left as found (detached).
 */
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { BIN, cli, cliJson, loopsUnder, sh } from './helpers/machine.js';
import { zfsTestBed } from './helpers/zfs-test-bed.js';

const bed = zfsTestBed({ poolPrefix: 'mks', dirPrefix: 'mkimage-snap-' });
const poolName = bed.poolName;
let dir: string;
beforeEach(() => {
  dir = bed.dir();
});

async function ok(args: string[]) {
  const r = await cli(args);
  expect(r.exitCode, r.stderr).toBe(0);
  return r;
}
const json = (args: string[]) => cliJson(args);

/** A ZFS image with datasets data and data/sub (dlite-free layout), detached. */
async function image(name: string): Promise<{ img: string; pool: string }> {
  const pool = poolName();
  const img = join(dir, name);
  await ok(['--size', '128M', '--sparse', '--fs', 'zfs', '--pool', pool, '--layout', 'none', '--dataset', 'data/sub', img]);
  return { img, pool };
}

/** Runs `fn` with the image attached under DIR/mnt-<pool>; the root dataset at DIR/mnt-<pool>/<pool>. */
async function withFiles<T>(img: string, pool: string, fn: (root: string) => Promise<T>): Promise<T> {
  const mnt = join(dir, `mnt-${pool}`);
  await ok(['attach', img, '--mount', mnt]);
  try {
    return await fn(join(mnt, pool));
  } finally {
    await ok(['detach', img]);
  }
}

async function snapNames(img: string): Promise<string[]> {
  return (await json(['snapshots', img])).snapshots.map((s: { name: string }) => s.name);
}

describe('snapshot, send, receive', () => {
  it('a missing image: one line naming it, exit 1, for every pool command (not an internal error)', async () => {
    const missing = join(dir, 'missing.img');
    for (const args of [['snapshot', missing, 's1'], ['snapshots', missing], ['send', missing, 'p@s1', '-o', join(dir, 'x.zs')]]) {
      const r = await cli(args);
      expect(r.exitCode, args.join(' ')).toBe(1);
      expect(r.stderr).toBe(`mkimage: cannot open ${missing}: no such file`);
    }
  });
  it('round trip between two images, full then incremental, files compared; images left detached', async () => {
    const a = await image('a.img');
    const b = await image('b.img');
    await withFiles(a.img, a.pool, async (root) => {
      await writeFile(join(root, 'data', 'f'), 'one\n');
      await writeFile(join(root, 'data', 'sub', 'g'), randomBytes(200_000));
    });
    const snap = await json(['snapshot', a.img, 's1', '--dataset', 'data']);
    expect(snap.snapshots).toEqual([`${a.pool}/data@s1`, `${a.pool}/data/sub@s1`]);
    const only = await json(['snapshot', a.img, 'top', '--dataset', 'data', '--no-recursive']);
    expect(only.snapshots).toEqual([`${a.pool}/data@top`]);
    const dup = await cli(['snapshot', a.img, 's1', '--dataset', 'data']);
    expect(dup.exitCode).toBe(2);
    expect(dup.stderr).toContain('exists already');

    const full = join(dir, 'full.zs');
    const sent = await json(['send', a.img, 'data@s1', '-o', full]);
    expect(sent.bytes).toBe((await stat(full)).size);
    const r1 = await json(['receive', b.img, 'copy', '-i', full]);
    expect(r1).toMatchObject({ dataset: `${b.pool}/copy`, incremental: false });
    expect(r1.snapshots.sort()).toEqual([`${b.pool}/copy/sub@s1`, `${b.pool}/copy@s1`]);

    await withFiles(a.img, a.pool, async (root) => {
      await writeFile(join(root, 'data', 'f'), 'two\n');
      await mkdir(join(root, 'data', 'sub', 'new'));
      await writeFile(join(root, 'data', 'sub', 'new', 'h'), 'h\n');
    });
    await ok(['snapshot', a.img, 's2', '--dataset', 'data']);
    const inc = join(dir, 'inc.zs');
    const sentInc = await json(['send', a.img, 'data@s2', '--from', 's1', '-o', inc]);
    expect(sentInc.from).toBe(`${a.pool}/data@s1`);
    const r2 = await json(['receive', b.img, 'copy', '-i', inc]);
    expect(r2).toMatchObject({ dataset: `${b.pool}/copy`, incremental: true, stream: { fromSnap: 's1' } });

    const want = await withFiles(a.img, a.pool, async (root) => ({
      f: await readFile(join(root, 'data', 'f')),
      g: await readFile(join(root, 'data', 'sub', 'g')),
      h: await readFile(join(root, 'data', 'sub', 'new', 'h')),
    }));
    const got = await withFiles(b.img, b.pool, async (root) => ({
      f: await readFile(join(root, 'copy', 'f')),
      g: await readFile(join(root, 'copy', 'sub', 'g')),
      h: await readFile(join(root, 'copy', 'sub', 'new', 'h')),
    }));
    expect(got.f.equals(want.f) && got.g.equals(want.g) && got.h.equals(want.h)).toBe(true);
    expect(got.f.toString()).toBe('two\n');
    // Left as found: nothing attached.
    expect(await loopsUnder(dir)).toEqual([]);
  });

  it('a truncated or corrupt stream changes nothing (full and incremental); a non-stream is refused before attaching', async () => {
    const a = await image('a.img');
    const b = await image('b.img');
    await withFiles(a.img, a.pool, async (root) => writeFile(join(root, 'data', 'sub', 'g'), randomBytes(300_000)));
    await ok(['snapshot', a.img, 's1', '--dataset', 'data']);
    const full = join(dir, 'full.zs');
    await ok(['send', a.img, 'data@s1', '-o', full]);
    const bytes = await readFile(full);

    const before = await snapNames(b.img);
    const cut = join(dir, 'cut.zs');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
    const t = await cli(['receive', b.img, 'copy', '-i', cut]);
    expect(t.exitCode).toBe(1);
    expect(t.stderr).toMatch(/truncated or corrupt.*the target is unchanged/);
    expect(await snapNames(b.img)).toEqual(before);
    const ds = await withFiles(b.img, b.pool, async () => (await sh('zfs', ['list', '-H', '-r', '-o', 'name', b.pool])).stdout.split('\n').filter(Boolean));
    expect(ds.sort()).toEqual([b.pool, `${b.pool}/data`, `${b.pool}/data/sub`].sort());

    // The full stream, then a cut incremental one: the target keeps its state and snapshots.
    await ok(['receive', b.img, 'copy', '-i', full]);
    await withFiles(a.img, a.pool, async (root) => {
      await writeFile(join(root, 'data', 'f2'), 'x');
      await writeFile(join(root, 'data', 'sub', 'g'), randomBytes(300_000));
    });
    await ok(['snapshot', a.img, 's2', '--dataset', 'data']);
    const inc = join(dir, 'inc.zs');
    await ok(['send', a.img, 'data@s2', '--from', 's1', '-o', inc]);
    const ib = await readFile(inc);
    const afterFull = await snapNames(b.img);
    for (const [name, data] of [
      ['inc-cut.zs', ib.subarray(0, Math.floor(ib.length * 0.8))],
      ['inc-bad.zs', Buffer.concat([ib.subarray(0, ib.length - 2000), Buffer.alloc(1000, 0xa5), ib.subarray(ib.length - 1000)])],
    ] as const) {
      await writeFile(join(dir, name), data);
      const r = await cli(['receive', b.img, 'copy', '-i', join(dir, name)]);
      expect(r.exitCode, name).not.toBe(0);
      expect(await snapNames(b.img), name).toEqual(afterFull);
      const files = await withFiles(b.img, b.pool, async (root) => (await sh('find', [join(root, 'copy'), '-type', 'f'])).stdout.split('\n').filter(Boolean).length);
      expect(files, name).toBe(1); // copy/sub/g only, no f2
    }

    await writeFile(join(dir, 'junk.zs'), randomBytes(4096));
    const j = await cli(['receive', b.img, 'x', '-i', join(dir, 'junk.zs')]);
    expect(j.exitCode).toBe(2);
    expect(j.stderr).toContain('is not a ZFS send stream');
  });

  it('-o - | -i -: a pipe between two images; -o - refuses a terminal-less misuse (--json)', async () => {
    const a = await image('a.img');
    const b = await image('b.img');
    await ok(['snapshot', a.img, 's1']);
    // As a user types it; pipefail: the sender's status counts too.
    const q = (x: string) => `'${x}'`;
    const r = await execa('bash', ['-o', 'pipefail', '-c', `node ${q(BIN)} send ${q(a.img)} data@s1 -o - | node ${q(BIN)} receive ${q(b.img)} piped -i - --json`], { reject: false, stdin: 'ignore' });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(JSON.parse(String(r.stdout)).snapshots.sort()).toEqual([`${b.pool}/piped/sub@s1`, `${b.pool}/piped@s1`]);
    const both = await cli(['send', a.img, 'data@s1', '-o', '-', '--json']);
    expect(both.exitCode).toBe(2);
    const missing = await cli(['send', a.img, 'data@nope', '-o', join(dir, 'x.zs')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('has no snapshot');
  });
});
