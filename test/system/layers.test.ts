/**
 * Container layers in a real pool (zfs-fuse here, OpenZFS on production hosts): import, list,
 * export, runtime create/commit/rm, hostile layers. One image for the whole file (creating a pool
 * takes seconds); every test leaves the image detached, and the end checks that no pool, loop
 * device or mount is left.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InterruptedError, LayerError, ToolFailedError, UsageError } from '../../src/errors.js';
import { run, type Runner } from '../../src/tools/exec.js';
import { attachImage, destroyImage, detachImage } from '../../src/jobs/attach.js';
import { createImage } from '../../src/jobs/create.js';
import { applyLayer } from '../../src/layers/apply.js';
import { commitRuntime, createRuntime, exportLayer, importLayers, listLayers, removeRuntime } from '../../src/jobs/layers.js';
import { readTar } from '../../src/layers/tar-read.js';
import { MiB } from '../../src/layout/units.js';
import { T0, chunksOf, listTree, makeTree, sha256, tarOf, writeOciLayout, type TestEntry } from '../unit/layers/helpers.js';
import { cleanDir, cli, sh, tempDir } from './helpers/machine.js';

let dir: string;
let image: string;
const pool = `lyr${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  dir = await tempDir('mkimage-layers-');
  image = join(dir, 'layers.img');
  await createImage({ path: image, size: 768 * MiB, sparse: true, fs: 'zfs', zfs: { pool } });
});

afterAll(async () => {
  // Whatever a failed test left: the pool exported, loop devices detached.
  await detachImage(image).catch(() => undefined);
  const pools = await sh('zpool', ['list', '-H', '-o', 'name']);
  const left = await cleanDir(dir);
  expect(pools.stdout.split('\n')).not.toContain(pool);
  expect(left).toEqual({ loops: [], mounts: [] });
});

const DEEP = Array.from({ length: 30 }, (_, i) => `d${i}`).join('/');

/**
 * The entries with a directory entry (0755, T0) for every parent that has none, before its
 * children: what Docker's layers hold, so that every directory a layer changes gets its mtime
 * from the layer and two extractions give identical trees.
 */
function withParents(entries: TestEntry[]): TestEntry[] {
  const out: TestEntry[] = [];
  const dirs = new Set(entries.filter((e) => e.type === 'directory').map((e) => e.path));
  for (const e of entries) {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (dirs.has(d)) continue;
      dirs.add(d);
      out.push({ path: d, type: 'directory' });
    }
    out.push(e);
  }
  return out;
}

/** Three layers: files, directories, a whiteout, an opaque directory, hard links, symlinks, modes, a deep tree. */
const L1 = withParents([
  { path: 'etc', type: 'directory' },
  { path: 'etc/passwd', type: 'file', text: 'root:x:0:0\n' },
  { path: 'etc/hostname', type: 'file', text: 'base\n' },
  { path: 'usr/lib/libx.so.1', type: 'file', text: 'ELF1' },
  { path: 'usr/lib/libx.so', type: 'hardlink', linkpath: 'usr/lib/libx.so.1' },
  { path: 'lib', type: 'symlink', linkpath: 'usr/lib' },
  { path: 'opt/app/config', type: 'file', text: 'cfg1' },
  { path: 'opt/app/data/d1', type: 'file', text: 'd1' },
  { path: 'tmp', type: 'directory', mode: 0o1777 },
  { path: `${DEEP}/leaf`, type: 'file', text: 'bottom' },
]);
const L2 = withParents([
  { path: 'etc/.wh.hostname', type: 'file', text: '' },
  { path: 'opt/app', type: 'directory' },
  { path: 'opt/app/.wh..wh..opq', type: 'file', text: '' },
  { path: 'opt/app/new', type: 'file', text: 'new in 2' },
  { path: 'usr/bin/su', type: 'file', text: 'su', mode: 0o4755 },
  { path: 'home/user', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
  { path: 'home/user/.profile', type: 'file', text: 'PS1=$\n', uid: 1000, gid: 1000 },
]);
const L3 = withParents([
  { path: 'usr/lib/libz.so', type: 'file', text: 'Z' },
  { path: 'usr/lib/libx.so.2', type: 'hardlink', linkpath: 'usr/lib/libx.so.1' },
  { path: `${DEEP}/leaf`, type: 'file', text: 'top', mode: 0o600, mtime: T0 + 7 },
]);
const L4 = withParents([{ path: 'srv/other', type: 'file', text: 'only in the second image' }]);

/** Where the image's datasets are while it is attached by the test. */
async function withAttached<T>(body: (mountOf: (dataset: string) => string) => Promise<T>): Promise<T> {
  const a = await attachImage(image);
  try {
    return await body((dataset) => {
      const m = a.mountpoints.find((x) => x.dataset === dataset);
      if (!m) throw new Error(`${dataset} is not mounted (mounted: ${a.mountpoints.map((x) => x.dataset).join(', ')})`);
      return m.mountpoint;
    });
  } finally {
    await detachImage(image);
  }
}

/** The tree the layers give when applied in order to a plain directory. */
async function expectedTree(layers: Buffer[]): Promise<Awaited<ReturnType<typeof listTree>>> {
  const root = join(dir, `expect-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(root);
  try {
    for (const l of layers) await applyLayer(chunksOf(l, 65536), root);
    return await listTree(root);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

let tars: Buffer[];
let digests: string[];

describe('layers import', () => {
  it('a multi-layer OCI image: one dataset per layer, each a clone of the one below; the top is the merged tree', async () => {
    tars = [await tarOf(L1), await tarOf(L2), await tarOf(L3)];
    digests = tars.map((t) => sha256(t).slice(7));
    await writeOciLayout(join(dir, 'oci'), tars, { gzip: true, names: ['example.com/app:1'] });
    const r = await importLayers(image, [join(dir, 'oci')]);
    expect(r).toMatchObject({ extracted: 3, present: 0, attachedByJob: true, pool });
    expect(r.images[0]!.layers.map((l) => l.digest)).toEqual(digests);

    const listed = await listLayers(image);
    const byDigest = Object.fromEntries(listed.layers.map((l) => [l.digest, l]));
    expect(byDigest[digests[0]!]).toMatchObject({ dataset: `${pool}/storage/${digests[0]}`, parent: 'empty', refs: ['example.com/app:1'] });
    expect(byDigest[digests[1]!]).toMatchObject({ parent: digests[0], refs: ['example.com/app:1'] });
    expect(byDigest[digests[2]!]).toMatchObject({ parent: digests[1], refs: ['example.com/app:1'] });
    expect(byDigest[digests[2]!]!.usedBytes).toBeGreaterThan(0);

    const want = await expectedTree(tars);
    await withAttached(async (mountOf) => {
      expect(await listTree(mountOf(`${pool}/storage/${digests[2]}`))).toEqual(want);
      // The middle layer is untouched by the top one.
      const mid = await listTree(mountOf(`${pool}/storage/${digests[1]}`));
      expect(mid[`${DEEP}/leaf`]).toMatchObject({ text: 'bottom' });
      expect(mid['usr/lib/libx.so.2']).toBeUndefined();
    });
    expect(want['usr/bin/su']).toMatchObject({ mode: '4755' });
    expect(want['usr/lib/libx.so.2']!.linkGroup).toBe('usr/lib/libx.so');
    expect(want['etc/hostname']).toBeUndefined();
    expect(Object.keys(want).filter((p) => p.startsWith('opt/app/'))).toEqual(['opt/app/new']);
  });

  it('importing the same image again adds nothing; a second image sharing the base adds only its own layer', async () => {
    const before = (await listLayers(image)).layers.length;
    const again = await importLayers(image, [join(dir, 'oci')]);
    expect(again).toMatchObject({ extracted: 0, present: 3 });
    expect((await listLayers(image)).layers.length).toBe(before);

    const l4 = await tarOf(L4);
    await fs.writeFile(join(dir, 'l1.tar'), tars[0]!);
    await fs.writeFile(join(dir, 'l2.tar'), tars[1]!);
    await fs.writeFile(join(dir, 'l4.tar'), l4);
    const second = await importLayers(image, [join(dir, 'l1.tar'), join(dir, 'l2.tar'), join(dir, 'l4.tar')]);
    expect(second).toMatchObject({ extracted: 1, present: 2 });
    const layers = (await listLayers(image)).layers;
    expect(layers.length).toBe(before + 1);
    expect(layers.find((l) => l.digest === sha256(l4).slice(7))).toMatchObject({ parent: digests[1] });
  });
});

describe('the same layer on another parent', () => {
  it('is stored under its chain id, with its own tree; its digest is still the diff_id', async () => {
    const l4 = await tarOf(L4);
    const r = await importLayers(image, [join(dir, 'l4.tar'), join(dir, 'l1.tar')]);
    // L4 on empty is new; L1 on L4 is new too although L1's digest is present (on empty).
    expect(r).toMatchObject({ extracted: 2, present: 0 });
    // L4 is present on L2 (the second image): at the bottom here it gets the "empty" name.
    const bottom = r.images[0]!.layers[0]!;
    expect(bottom).toMatchObject({ digest: sha256(l4).slice(7), dataset: `${pool}/storage/${createHash('sha256').update(`empty ${sha256(l4)}`).digest('hex')}` });
    const top = r.images[0]!.layers[1]!;
    const chain = createHash('sha256').update(`${sha256(l4)} ${sha256(tars[0]!)}`).digest('hex');
    expect(top).toMatchObject({ digest: digests[0], dataset: `${pool}/storage/${chain}` });
    const listed = await listLayers(image);
    expect(listed.layers.filter((l) => l.digest === digests[0]).map((l) => l.dataset).sort()).toEqual([`${pool}/storage/${chain}`, `${pool}/storage/${digests[0]}`].sort());
    await expect(exportLayer(image, digests[0]!.slice(0, 12), join(dir, 'x.tar'))).rejects.toThrow(/is ambiguous: it matches .*chain id: give that/);
    expect((await exportLayer(image, digests[0]!, join(dir, 'x.tar'))).layer.dataset).toBe(`${pool}/storage/${digests[0]}`);
    expect((await exportLayer(image, chain.slice(0, 10), join(dir, 'x.tar'))).layer.dataset).toBe(`${pool}/storage/${chain}`);
    const want = await expectedTree([l4, tars[0]!]);
    await withAttached(async (mountOf) => {
      expect(await listTree(mountOf(`${pool}/storage/${chain}`))).toEqual(want);
    });
    // Imported again: found by chain id, nothing new.
    expect(await importLayers(image, [join(dir, 'l4.tar'), join(dir, 'l1.tar')])).toMatchObject({ extracted: 0, present: 2 });
  });
});

describe('layers export', () => {
  it('each layer exported and applied in order to an empty directory gives the same tree', async () => {
    const exported: Buffer[] = [];
    for (const d of digests) {
      const out = join(dir, `export-${d.slice(0, 12)}.tar`);
      const r = await exportLayer(image, d, out);
      expect(r.layer.digest).toBe(d);
      exported.push(await fs.readFile(out));
    }
    // Whiteouts for what the layers deleted: layer 2 deleted etc/hostname and opt/app/config, data.
    const names2: string[] = [];
    for await (const e of readTar(chunksOf(exported[1]!))) names2.push(e.path);
    expect(names2).toEqual(expect.arrayContaining(['etc/.wh.hostname', 'opt/app/.wh.config', 'opt/app/.wh.data']));
    expect(await expectedTree(exported)).toEqual(await expectedTree(tars));
  });
});

describe('runtime create, change, commit', () => {
  it('the new layer holds exactly the changes, with whiteouts, and its tar digest is its name', async () => {
    const top = digests[2]!;
    const rt = await createRuntime(image, top, 'web1');
    expect(rt).toMatchObject({ id: 'web1', dataset: `${pool}/runtime/web1`, layer: top });

    await withAttached(async (mountOf) => {
      const root = mountOf(`${pool}/runtime/web1`);
      await fs.writeFile(join(root, 'etc/passwd'), 'root:x:0:0\nweb:x:33:33\n');
      await fs.rm(join(root, 'opt/app'), { recursive: true });
      await fs.rm(join(root, 'usr/lib/libx.so'));
      await makeTree(root, { 'srv/www/index.html': '<h1>hi</h1>' });
      await fs.chmod(join(root, 'tmp'), 0o1770);
    });

    const c = await commitRuntime(image, 'web1');
    expect(c).toMatchObject({ created: true, parent: top, whiteouts: 2 });
    const out = join(dir, 'commit.tar');
    const ex = await exportLayer(image, c.digest, out);
    const bytes = await fs.readFile(out);
    expect(ex.digest).toBe(c.digest);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(c.digest);
    expect(c.dataset).toBe(`${pool}/storage/${c.digest}`);

    const names: string[] = [];
    for await (const e of readTar(chunksOf(bytes))) names.push(e.type === 'hardlink' ? `${e.path} => ${e.linkpath}` : e.path);
    expect(names).toEqual([
      'etc/',
      'etc/passwd',
      'opt/',
      'opt/.wh.app',
      'srv/',
      'srv/www/',
      'srv/www/index.html',
      'tmp/',
      'usr/',
      'usr/lib/',
      'usr/lib/.wh.libx.so',
      // The link count of libx.so.1 and .2 changed: both written, the second as a link to the first.
      'usr/lib/libx.so.1',
      'usr/lib/libx.so.2 => usr/lib/libx.so.1',
    ]);

    const listed = await listLayers(image);
    expect(listed.layers.find((l) => l.digest === c.digest)).toMatchObject({ parent: top, runtimes: ['web1'] });
    expect(listed.runtimes).toEqual([expect.objectContaining({ id: 'web1', layer: c.digest })]);

    // The same changes made in a second runtime of the same layer: the same layer, nothing new.
    await createRuntime(image, top, 'web2');
    await withAttached(async (mountOf) => {
      const root = mountOf(`${pool}/runtime/web2`);
      await applyLayer(chunksOf(bytes), root);
    });
    const same = await commitRuntime(image, 'web2', { remove: true });
    expect(same).toMatchObject({ created: false, digest: c.digest, dataset: c.dataset, runtimeRemoved: true });

    // Committing web1 again with no change: an empty layer (the tar of nothing) on top of it.
    const empty = await commitRuntime(image, 'web1');
    expect(empty).toMatchObject({ created: true, parent: c.digest, entries: 0, digest: sha256(Buffer.alloc(1024)).slice(7) });

    const rm = await removeRuntime(image, 'web1');
    expect(rm.dataset).toBe(`${pool}/runtime/web1`);
    const after = await listLayers(image);
    expect(after.runtimes).toEqual([]);
    expect(after.layers.find((l) => l.digest === c.digest)).toMatchObject({ runtimes: [] });
    // Commit snapshots stay only where a layer was cloned from them (the empty layer's origin).
    const { snaps, origins } = await withAttached(async () => ({
      snaps: (await sh('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', `${pool}/storage`])).stdout.split('\n').filter((n) => n.includes('@mkimage-commit-')),
      origins: (await sh('zfs', ['list', '-H', '-t', 'filesystem', '-o', 'origin', '-r', `${pool}/storage`])).stdout.split('\n'),
    }));
    expect(snaps).toHaveLength(1);
    expect(snaps[0]!.startsWith(`${c.dataset}@`)).toBe(true);
    expect(origins).toContain(snaps[0]);
    expect(after.layers.find((l) => l.digest === empty.digest)).toMatchObject({ parent: c.digest });
    // The committed layer applied over its parent's tree gives the runtime's tree.
    const merged = await expectedTree([...tars, bytes]);
    expect(merged['srv/www/index.html']).toMatchObject({ text: '<h1>hi</h1>' });
    expect(merged['opt/app']).toBeUndefined();
  });
});

describe('read-only commands on an image without a layer store', () => {
  it('layers list reports no layers and export says there is no store; neither writes to the image', async () => {
    const img = join(dir, 'dlite.img');
    const dlitePool = `${pool}f`;
    await createImage({ path: img, size: 128 * MiB, sparse: true, fs: 'zfs', zfs: { pool: dlitePool, layout: 'dlite' } });
    const tree = async () => {
      await attachImage(img);
      try {
        return (await sh('zfs', ['list', '-H', '-o', 'name', '-t', 'filesystem,snapshot', '-r', dlitePool])).stdout;
      } finally {
        await detachImage(img);
      }
    };
    try {
      const before = await tree();
      expect(await listLayers(img)).toMatchObject({ layers: [], runtimes: [], attachedByJob: true });
      const e = await exportLayer(img, 'abcdef', join(dir, 'none.tar')).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(UsageError);
      expect((e as Error).message).toBe(`no layer abcdef in this image: it has no layer store (${dlitePool}/storage does not exist; mkimage layers import makes one)`);
      await expect(fs.access(join(dir, 'none.tar'))).rejects.toThrow();
      const human = await cli(['layers', 'list', img]);
      expect(human.exitCode).toBe(0);
      expect(human.stdout).toMatch(/^LAYER\s+PARENT\s+USED\s+REFERENCES\s+RUNTIMES$/);
      expect(await tree()).toBe(before);
      expect(before).not.toContain('storage');
    } finally {
      await destroyImage(img, { yes: true }).catch(() => undefined);
    }
  });
});

describe('--mount on an image attached already', () => {
  it('is not an obstacle: the commands work on the image where it is mounted, and leave it attached', async () => {
    const a = await attachImage(image);
    try {
      const r = await listLayers(image, { mount: join(dir, 'elsewhere') });
      expect(r).toMatchObject({ attachedByJob: false, pool });
      expect(r.layers.map((l) => l.digest)).toEqual(expect.arrayContaining(digests));
      const cli1 = await cli(['layers', 'list', image, '--mount', join(dir, 'elsewhere'), '--json']);
      expect(cli1.stderr).toBe('');
      expect(cli1.exitCode).toBe(0);
      const still = await attachImage(image);
      expect(still).toMatchObject({ alreadyAttached: true, loopDevice: a.loopDevice, altroot: a.altroot });
      await expect(fs.access(join(dir, 'elsewhere'))).rejects.toThrow();
    } finally {
      await detachImage(image);
    }
  });
});

describe('commit snapshots left behind', () => {
  const commitSnapshots = async () =>
    withAttached(async () => (await sh('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', pool])).stdout.split('\n').filter((n) => n.includes('@mkimage-commit-')).sort());

  it('a zfs snapshot killed after it made the commit snapshot: the snapshot is destroyed; a stale one is removed by the next commit', async () => {
    const before = await commitSnapshots();
    await createRuntime(image, digests[2]!, 'snap1');
    // The snapshot is made, then its zfs is "killed" before mkimage hears it succeeded.
    const killed: Runner = async (file, args, options) => {
      const r = await run(file, args, options);
      if (file === 'zfs' && args[0] === 'snapshot' && String(args[args.length - 1]).includes('@mkimage-commit-')) {
        throw new ToolFailedError(`zfs ${args.join(' ')} was killed by SIGTERM`, { command: [file, ...args], exitCode: null, signal: 'SIGTERM', stderr: '' });
      }
      return r;
    };
    const e = await commitRuntime(image, 'snap1', { run: killed }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ToolFailedError);
    expect(await commitSnapshots()).toEqual(before);

    // One left by a process killed outright (SIGKILL: no undo ran): the next commit removes it.
    await withAttached(async () => {
      expect((await sh('zfs', ['snapshot', `${pool}/runtime/snap1@mkimage-commit-dead`])).exitCode).toBe(0);
    });
    expect(await commitSnapshots()).toEqual([...before, `${pool}/runtime/snap1@mkimage-commit-dead`].sort());
    const c = await commitRuntime(image, 'snap1', { remove: true });
    expect(c).toMatchObject({ created: true, runtimeRemoved: true });
    expect(await commitSnapshots()).toEqual(before);
  });
});

describe('hostile layers', () => {
  const hostile: { name: string; entries: TestEntry[]; rule: string; isRoot?: boolean }[] = [
    { name: 'path traversal', entries: [{ path: 'ok', type: 'file', text: 'x' }, { path: '../../../../../../escape', type: 'file', text: 'x' }], rule: 'parent-reference' },
    {
      name: 'symlink escape then a write through it',
      entries: [
        { path: 'evil', type: 'symlink', linkpath: '../../../../../../../tmp' },
        { path: 'evil/escape', type: 'file', text: 'x' },
      ],
      rule: 'symlink-escape',
    },
    { name: 'hard link to outside', entries: [{ path: 'hl', type: 'hardlink', linkpath: '../../../../etc/passwd' }], rule: 'hardlink-outside' },
    { name: 'a device node as non-root', entries: [{ path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 }], rule: 'device-not-root', isRoot: false },
  ];
  for (const h of hostile) {
    it(`${h.name}: refused, nothing half-made stays, nothing lands outside`, async () => {
      const before = await listLayers(image);
      const file = join(dir, `hostile-${h.rule}.tar`);
      await fs.writeFile(file, await tarOf(h.entries));
      const e = await importLayers(image, [join(dir, 'l1.tar'), file], { isRoot: h.isRoot }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LayerError);
      expect((e as LayerError).data.rule).toBe(h.rule);
      const after = await listLayers(image);
      expect(after.layers.map((l) => l.dataset)).toEqual(before.layers.map((l) => l.dataset));
      const all = await withAttached(async () => (await sh('zfs', ['list', '-H', '-r', '-o', 'name', `${pool}/storage`])).stdout);
      expect(all).not.toContain('.tmp-');
      await expect(fs.access('/tmp/escape')).rejects.toThrow();
      await expect(fs.access(join(dir, 'escape'))).rejects.toThrow();
    });
  }
});

describe('an interrupted import', () => {
  it('stops between entries, destroys the half-made layer and detaches the image', async () => {
    const before = await listLayers(image);
    const big = await tarOf(Array.from({ length: 200 }, (_, i) => ({ path: `big/f${i}`, type: 'file' as const, text: String(i).repeat(40_000) })));
    await fs.writeFile(join(dir, 'big.tar'), big);
    const ac = new AbortController();
    const e = await importLayers(image, [join(dir, 'big.tar')], {
      signal: ac.signal,
      onEvent: (ev) => {
        if (ev.kind === 'layer-bytes' && ev.bytes > 1_000_000) ac.abort('SIGINT');
      },
    }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(InterruptedError);
    const after = await listLayers(image);
    expect(after.layers.map((l) => l.dataset)).toEqual(before.layers.map((l) => l.dataset));
    const all = await withAttached(async () => (await sh('zfs', ['list', '-H', '-r', '-o', 'name', `${pool}/storage`])).stdout);
    expect(all).not.toContain('.tmp-');
    expect((await sh('losetup', ['--list', '--noheadings', '-O', 'BACK-FILE'])).stdout).not.toContain(image);
  });
});

describe('the CLI', () => {
  it('create --import fills a new image in one step; layers list --json shows the layers and the reference', async () => {
    const img = join(dir, 'cli.img');
    const cliPool = `${pool}c`;
    const r = await cli(['--size', '512M', '--sparse', '--fs', 'zfs', '--pool', cliPool, '--import', join(dir, 'oci'), img, '--json']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const made = JSON.parse(r.stdout);
    expect(made.imported).toMatchObject({ extracted: 3, present: 0 });
    // The summary counts what the import made: the tree and one dataset + @extracted per layer.
    const layerDatasets = digests.map((d) => `${cliPool}/storage/${d}`);
    expect(made.zfs.datasets).toEqual(expect.arrayContaining([cliPool, `${cliPool}/storage/empty`, ...layerDatasets]));
    expect(made.zfs.datasets).toHaveLength(4 + 3);
    expect(made.zfs.snapshots).toEqual(expect.arrayContaining(layerDatasets.map((d) => `${d}@extracted`)));
    expect(made.allocatedBytes).toBe((await fs.stat(img)).blocks * 512);
    const list = await cli(['layers', 'list', img, '--json']);
    expect(list.exitCode).toBe(0);
    const layers = JSON.parse(list.stdout).layers as { digest: string; refs: string[] }[];
    expect(layers.map((l) => l.digest)).toEqual(['empty', ...digests]);
    expect(layers[3]!.refs).toEqual(['example.com/app:1']);
    const human = await cli(['layers', 'list', img]);
    expect(human.stdout.split('\n')[0]).toMatch(/^LAYER\s+PARENT\s+USED\s+REFERENCES\s+RUNTIMES$/);
    expect((await cli(['destroy', img, '--yes'])).exitCode).toBe(0);
  });

  it('create --import with a hostile layer fails with exit 1 and leaves no image', async () => {
    const img = join(dir, 'bad.img');
    const r = await cli(['--size', '512M', '--sparse', '--fs', 'zfs', '--pool', `${pool}d`, '--import', join(dir, 'hostile-parent-reference.tar'), img]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^mkimage: layer entry "\.\.\/\.\.\/.*escape" refused \(parent-reference\)/);
    await expect(fs.access(img)).rejects.toThrow();
  });

  it('a missing source is a usage error before anything is made', async () => {
    const img = join(dir, 'none.img');
    const r = await cli(['--size', '512M', '--sparse', '--fs', 'zfs', '--pool', `${pool}e`, '--import', join(dir, 'nope.tar'), img]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/nope\.tar: cannot read the layer source \(ENOENT\)/);
    await expect(fs.access(img)).rejects.toThrow();
  });
});
