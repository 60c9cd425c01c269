import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LayerError } from '../../../src/errors.js';
import { applyLayer } from '../../../src/layers/apply.js';
import { diffTrees, type Change } from '../../../src/layers/diff.js';
import { packageLayer, readExactly } from '../../../src/layers/package.js';
import { readTar } from '../../../src/layers/tar-read.js';
import { run } from '../../../src/tools/exec.js';
import { T0, chunksOf, collect, listTree, makeTree, settleDirTimes, withTmp } from './helpers.js';

const IS_ROOT = process.getuid?.() === 0;

async function changesOf(lower: string | null, upper: string): Promise<string[]> {
  const out: string[] = [];
  for await (const c of diffTrees(lower, upper)) out.push(`${c.kind[0]!.toUpperCase()} ${c.path}`);
  return out;
}

async function tarNames(file: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readTar(chunksOf(await fs.readFile(file), 8192))) out.push(e.type === 'hardlink' ? `${e.path} => ${e.linkpath}` : e.path);
  return out;
}

/** lower, and upper = a copy of lower (cp -a) with every kind of change made to it. */
async function lowerAndUpper(dir: string): Promise<{ lower: string; upper: string }> {
  const lower = join(dir, 'lower');
  const upper = join(dir, 'upper');
  await makeTree(lower, {
    'etc/hosts': '127.0.0.1 localhost\n',
    'etc/same-size': 'AAAA',
    'etc/mode': 'm',
    'etc/gone': 'g',
    'etc/owned': 'o',
    'var/cache/a': 'a',
    'var/cache/sub/c': 'c',
    'var/log/keep': 'k',
    'opt/file-to-dir': 'f',
    'opt/dir-to-link/inner': 'i',
    lnk: { symlink: 'a' },
    'deep/x/y/z': 'z',
    'usr/bin/sh': { text: 'sh', mode: 0o755 },
  });
  await fs.lutimes(join(lower, 'lnk'), T0, T0);
  await settleDirTimes(lower);
  await run('cp', ['-a', lower, upper]);

  // Same size, mtime put back: only the bytes tell (the "in doubt" case).
  await fs.writeFile(join(upper, 'etc/same-size'), 'BBBB');
  await fs.utimes(join(upper, 'etc/same-size'), T0, T0);
  await fs.chmod(join(upper, 'etc/mode'), 0o600);
  await fs.rm(join(upper, 'etc/gone'));
  await fs.rm(join(upper, 'var/cache'), { recursive: true });
  await makeTree(upper, { 'new/a/b/c.txt': { text: 'new', mtime: T0 + 0.75 } });
  await fs.link(join(upper, 'etc/hosts'), join(upper, 'etc/hosts-link'));
  await fs.rm(join(upper, 'opt/file-to-dir'));
  await makeTree(upper, { 'opt/file-to-dir/x': 'x' });
  await fs.rm(join(upper, 'opt/dir-to-link'), { recursive: true });
  await fs.symlink('../usr', join(upper, 'opt/dir-to-link'));
  await fs.lutimes(join(upper, 'opt/dir-to-link'), T0, T0);
  // Same length, mtime put back: only the target tells.
  await fs.rm(join(upper, 'lnk'));
  await fs.symlink('b', join(upper, 'lnk'));
  await fs.lutimes(join(upper, 'lnk'), T0, T0);
  if (IS_ROOT) await fs.chown(join(upper, 'etc/owned'), 1000, 1000);
  return { lower, upper };
}

const EXPECTED_CHANGES = [
  'M etc',
  'D etc/gone',
  'M etc/hosts',
  'A etc/hosts-link',
  'M etc/mode',
  ...(IS_ROOT ? ['M etc/owned'] : []),
  'M etc/same-size',
  'M lnk',
  'A new',
  'A new/a',
  'A new/a/b',
  'A new/a/b/c.txt',
  'M opt',
  'M opt/dir-to-link',
  'M opt/file-to-dir',
  'A opt/file-to-dir/x',
  'M var',
  'D var/cache',
];

describe('diffTrees', () => {
  it('finds every change, in a fixed order, with one deletion for a deleted directory', async () => {
    await withTmp(async (dir) => {
      const { lower, upper } = await lowerAndUpper(dir);
      expect(await changesOf(lower, upper)).toEqual(EXPECTED_CHANGES);
    });
  });

  it('finds nothing between a tree and itself or an exact copy', async () => {
    await withTmp(async (dir) => {
      const { lower } = await lowerAndUpper(dir);
      await run('cp', ['-a', lower, join(dir, 'copy')]);
      expect(await changesOf(lower, lower)).toEqual([]);
      expect(await changesOf(lower, join(dir, 'copy'))).toEqual([]);
    });
  });

  it('against no lower tree, everything is added', async () => {
    await withTmp(async (dir) => {
      await makeTree(dir, { 'b/c': 'c', a: 'a' });
      const changes: Change[] = [];
      for await (const c of diffTrees(null, dir)) changes.push(c);
      expect(changes.map((c) => `${c.kind} ${c.path}`)).toEqual(['added a', 'added b', 'added b/c']);
      expect(changes[0]!.stat!.size).toBe(1n);
    });
  });
});

describe('packageLayer', () => {
  it('round trip: the layer of (lower, upper) applied over lower gives upper', async () => {
    await withTmp(async (dir) => {
      const { lower, upper } = await lowerAndUpper(dir);
      const out = join(dir, 'layer.tar');
      const result = await packageLayer(lower, upper, out);
      const bytes = await fs.readFile(out);
      expect(result.digest).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(result.diffId).toBe(`sha256:${result.digest}`);
      expect(result).toMatchObject({ bytes: bytes.length, whiteouts: 2, hardlinks: 1, skipped: [] });

      expect(await tarNames(out)).toEqual([
        'etc/',
        'etc/.wh.gone',
        'etc/hosts',
        'etc/hosts-link => etc/hosts',
        'etc/mode',
        ...(IS_ROOT ? ['etc/owned'] : []),
        'etc/same-size',
        'lnk',
        'new/',
        'new/a/',
        'new/a/b/',
        'new/a/b/c.txt',
        'opt/',
        'opt/dir-to-link',
        'opt/file-to-dir/',
        'opt/file-to-dir/x',
        'var/',
        'var/.wh.cache',
      ]);

      const applied = join(dir, 'applied');
      await run('cp', ['-a', lower, applied]);
      await applyLayer(chunksOf(bytes, 10_000), applied);
      expect(await listTree(applied)).toEqual(await listTree(upper));
      // Compared at the nanosecond, the only difference left is c.txt's mtime (T0 + 0.75 in
      // upper): a layer stores mtimes in whole seconds, as Docker's do.
      expect(await changesOf(upper, applied)).toEqual(['M new', 'M new/a', 'M new/a/b', 'M new/a/b/c.txt']);
    });
  });

  it('is deterministic: the same trees give the same bytes, to a file or a stream', async () => {
    await withTmp(async (dir) => {
      const { lower, upper } = await lowerAndUpper(dir);
      const a = await packageLayer(lower, upper, join(dir, 'a.tar'));
      const chunks: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      });
      const b = await packageLayer(lower, upper, sink);
      expect(b.digest).toBe(a.digest);
      expect(Buffer.concat(chunks).equals(await fs.readFile(join(dir, 'a.tar')))).toBe(true);
      // A copy of upper (new inodes and ctimes, same content and metadata) gives the same layer.
      await run('cp', ['-a', upper, join(dir, 'upper2')]);
      expect((await packageLayer(lower, join(dir, 'upper2'), join(dir, 'c.tar'))).digest).toBe(a.digest);
    });
  });

  it('against no lower tree: a full layer that rebuilds the tree from nothing', async () => {
    await withTmp(async (dir) => {
      const { upper } = await lowerAndUpper(dir);
      const out = join(dir, 'full.tar');
      const r = await packageLayer(null, upper, out);
      expect(r.whiteouts).toBe(0);
      const rebuilt = join(dir, 'rebuilt');
      await fs.mkdir(rebuilt);
      await applyLayer(chunksOf(await fs.readFile(out)), rebuilt);
      expect(await listTree(rebuilt)).toEqual(await listTree(upper));
    });
  });

  it('leaves sockets out and says so; refuses a real file named like a whiteout', async () => {
    await withTmp(async (dir) => {
      const lower = join(dir, 'lower');
      const upper = join(dir, 'upper');
      await makeTree(lower, { a: 'a' });
      await makeTree(upper, { a: 'a', b: 'b' });
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(join(upper, 'sock'), resolve));
      try {
        const r = await packageLayer(lower, upper, join(dir, 'l.tar'));
        expect(r.skipped).toEqual(['sock']);
        expect(await tarNames(join(dir, 'l.tar'))).toEqual(['b']);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      await fs.writeFile(join(upper, '.wh.oops'), '');
      const e = await packageLayer(lower, upper, join(dir, 'm.tar')).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LayerError);
      expect((e as Error).message).toMatch(/\.wh\.oops: a file named "\.wh\.\.\.\." cannot be stored in an OCI layer/);
      expect(await fs.readdir(dir)).not.toContain('m.tar');
      expect((await fs.readdir(dir)).filter((n) => n.includes('.tmp'))).toEqual([]);
    });
  });

  it('a file whose size differs from its header is an error, and no output is left', async () => {
    await withTmp(async (dir) => {
      await makeTree(dir, { big: 'x'.repeat(1000) });
      await expect(collect(readExactly(join(dir, 'big'), 'big', 900))).rejects.toThrow(/big changed size while it was being packaged \(expected 900 bytes\)/);
      await expect(collect(readExactly(join(dir, 'big'), 'big', 1100))).rejects.toThrow(/expected 1100 bytes/);
      expect((await collect(readExactly(join(dir, 'big'), 'big', 1000))).length).toBe(1000);
    });
  });
});
