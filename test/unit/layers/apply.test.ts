import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { LayerError } from '../../../src/errors.js';
import { applyLayer, makedev, type ApplyOptions } from '../../../src/layers/apply.js';
import { run } from '../../../src/tools/exec.js';
import { T0, chunksOf, listTree, makeTree, syncSourceOf, tarOf, withTmp, type TestEntry, type TreeEntry } from './helpers.js';

const IS_ROOT = process.getuid?.() === 0;

let MODE: 'async' | 'sync' = 'async';

async function apply(tar: Buffer, root: string, options: ApplyOptions = {}) {
  return applyLayer(MODE === 'sync' ? syncSourceOf(tar, 1000) : chunksOf(tar, 4096), root, options);
}

/** path -> "f MODE text" | "d MODE" | "l -> target" */
function summary(tree: Record<string, TreeEntry>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(tree).map(([p, e]) => [p, e.type === 'file' ? `f ${e.mode} ${e.text ?? e.sha}` : e.type === 'dir' ? `d ${e.mode}` : e.type === 'symlink' ? `l -> ${e.target}` : `${e.type} ${e.mode}`]),
  );
}

const DEEP = Array.from({ length: 40 }, (_, i) => `d${i}`);

/** Layer 1: a base tree, archived by GNU tar. */
async function gnuBaseLayer(dir: string): Promise<Buffer> {
  const src = join(dir, 'base');
  await makeTree(src, {
    etc: { dir: true, mode: 0o755 },
    'etc/passwd': 'root:x:0:0\n',
    'etc/hostname': 'base\n',
    'etc/motd': 'hi\n',
    'usr/bin/tool': { text: '#!/bin/sh\n', mode: 0o755 },
    'usr/lib/libx.so.1': 'ELF1',
    'usr/lib/libx.so': { link: 'usr/lib/libx.so.1' },
    bin: { symlink: 'usr/bin' },
    lib: { symlink: 'usr/lib' },
    'var/cache/a': 'a',
    'var/cache/sub/c': 'c',
    'opt/app/config': 'cfg1',
    'opt/app/data/d1': 'd1',
    tmp: { dir: true, mode: 0o1777 },
    [`${DEEP.join('/')}/leaf`]: 'bottom',
  });
  for (const d of ['', 'usr', 'usr/bin', 'usr/lib', 'var', 'var/cache', 'var/cache/sub', 'opt', 'opt/app', 'opt/app/data', ...DEEP.map((_, i) => DEEP.slice(0, i + 1).join('/'))]) {
    await fs.chmod(join(src, d), 0o755);
  }
  const out = join(dir, 'layer1.tar');
  await run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1700000000', '-cf', out, '-C', src, '.']);
  return fs.readFile(out);
}

const layer2: TestEntry[] = [
  { path: 'etc/.wh.hostname', type: 'file', text: '' },
  { path: 'var/.wh.cache', type: 'file', text: '' },
  { path: 'opt/app/.wh..wh..opq', type: 'file', text: '' },
  { path: 'opt/app', type: 'directory', mode: 0o750 },
  { path: 'opt/app/new', type: 'file', text: 'new in 2' },
  { path: 'etc/passwd', type: 'file', text: 'root:x:0:0\nuser:x:1000:1000\n' },
  { path: 'usr/bin/su', type: 'file', text: 'su', mode: 0o4755 },
  { path: 'home', type: 'directory' },
  { path: 'home/user', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
  { path: 'home/user/.profile', type: 'file', text: 'PS1=$\n', uid: 1000, gid: 1000 },
  { path: 'usr/lib/libx.so.2', type: 'hardlink', linkpath: 'usr/lib/libx.so.1' },
];

/** Layer 3: markers after the layer's own entries, a write through a relative symlink. */
const layer3: TestEntry[] = [
  { path: 'etc', type: 'directory', mtime: T0 + 200 },
  { path: 'etc/motd', type: 'file', text: 'motd3', mode: 0o600, mtime: T0 + 100 },
  { path: 'etc/.wh.motd', type: 'file', text: '' },
  { path: 'opt/app/mine', type: 'file', text: '3' },
  { path: 'opt/app/.wh..wh..opq', type: 'file', text: '' },
  { path: 'lib/libz.so', type: 'file', text: 'Z' },
  { path: '.wh.bin', type: 'file', text: '' },
  { path: 'var/cache', type: 'file', text: 'now a file' },
  { path: `${DEEP.join('/')}/leaf`, type: 'file', text: 'top' },
];

// Both readers: the asynchronous one (streams, gzip) and the synchronous one openLayer gives for an
// uncompressed file (one reused read buffer).
describe.each(['async', 'sync'] as const)('%s reading', (mode) => {
  beforeAll(() => {
    MODE = mode;
  });

  describe('applyLayer: a multi-layer image', () => {
    it('applied in order gives the merged tree', async () => {
      await withTmp(async (dir) => {
        const root = join(dir, 'root');
        await fs.mkdir(root);
        const s1 = await apply(await gnuBaseLayer(dir), root);
        expect(s1).toMatchObject({ hardlinks: 1, symlinks: 2, whiteouts: 0 });
        const s2 = await apply(gzipSync(await tarOf(layer2)), root);
        expect(s2).toMatchObject({ whiteouts: 2, opaques: 1, hardlinks: 1, files: 4 });
        const s3 = await apply(await tarOf(layer3), root);
        expect(s3).toMatchObject({ whiteouts: 2, opaques: 1 });

        const tree = await listTree(root);
        const deepDirs = Object.fromEntries(DEEP.map((_, i) => [DEEP.slice(0, i + 1).join('/'), 'd 755']));
        expect(summary(tree)).toEqual({
          ...deepDirs,
          [`${DEEP.join('/')}/leaf`]: 'f 644 top',
          etc: 'd 755',
          'etc/motd': 'f 600 motd3',
          'etc/passwd': 'f 644 root:x:0:0\nuser:x:1000:1000\n',
          home: 'd 755',
          'home/user': 'd 700',
          'home/user/.profile': 'f 644 PS1=$\n',
          lib: 'l -> usr/lib',
          opt: 'd 755',
          'opt/app': 'd 750',
          'opt/app/mine': 'f 644 3',
          tmp: 'd 1777',
          usr: 'd 755',
          'usr/bin': 'd 755',
          'usr/bin/su': 'f 4755 su',
          'usr/bin/tool': 'f 755 #!/bin/sh\n',
          'usr/lib': 'd 755',
          'usr/lib/libx.so': 'f 644 ELF1',
          'usr/lib/libx.so.1': 'f 644 ELF1',
          'usr/lib/libx.so.2': 'f 644 ELF1',
          'usr/lib/libz.so': 'f 644 Z',
          var: 'd 755',
          'var/cache': 'f 644 now a file',
        });
        // One inode for the three names of libx (layer 1's hard link, layer 2's link to a lower file).
        expect(tree['usr/lib/libx.so']!.linkGroup).toBe('usr/lib/libx.so');
        expect(tree['usr/lib/libx.so.1']!.linkGroup).toBe('usr/lib/libx.so');
        expect(tree['usr/lib/libx.so.2']!.linkGroup).toBe('usr/lib/libx.so');
        // mtimes: a file's from its header; a directory's set after its contents were written.
        expect(tree['etc/motd']!.mtime).toBe(T0 + 100);
        expect(tree.etc!.mtime).toBe(T0 + 200);
        expect(tree.usr!.mtime).toBe(T0); // untouched by layers 2 and 3
        expect(tree['usr/bin/tool']!.mtime).toBe(T0);
        if (IS_ROOT) {
          expect(tree['home/user']).toMatchObject({ uid: 1000, gid: 1000 });
          expect(tree['home/user/.profile']).toMatchObject({ uid: 1000, gid: 1000 });
        }
      });
    });

    it('modes are the layer\'s whatever the umask (files are created with their mode where open(2) can give it)', async () => {
      const old = process.umask(0o077);
      try {
        await withTmp(async (root) => {
          await makeTree(root, { 'x/old': 'lower', 'x/dir': { dir: true, mode: 0o700 } });
          await apply(
            await tarOf([
              { path: 'x/a', type: 'file', text: 'a', mode: 0o644 },
              { path: 'x/b', type: 'file', text: 'b', mode: 0o777 },
              { path: 'x/c', type: 'file', text: 'c', mode: 0o2755 },
              { path: 'x/d', type: 'file', text: 'd', mode: 0o400 },
              { path: 'x/old', type: 'file', text: 'upper', mode: 0o640 }, // replaces a file (EEXIST path)
              { path: 'x/dir', type: 'file', text: 'was a dir', mode: 0o604 }, // replaces a directory
              { path: 'y/z/e', type: 'file', text: 'e', mode: 0o666 }, // parents made 0755
            ]),
            root,
          );
          const t = summary(await listTree(root));
          expect(t).toMatchObject({ 'x/a': 'f 644 a', 'x/b': 'f 777 b', 'x/c': 'f 2755 c', 'x/d': 'f 400 d', 'x/old': 'f 640 upper', 'x/dir': 'f 604 was a dir', y: 'd 755', 'y/z': 'd 755', 'y/z/e': 'f 666 e' });
        });
      } finally {
        process.umask(old);
      }
    });

    it('a directory entry merges with the lower directory; any other type replaces what is there', async () => {
      await withTmp(async (root) => {
        await makeTree(root, { 'a/keep': 'k', b: 'file', 'c/sub/x': 'x', l: { symlink: 'a' } });
        await apply(
          await tarOf([
            { path: 'a', type: 'directory', mode: 0o711 },
            { path: 'b', type: 'directory' },
            { path: 'c', type: 'symlink', linkpath: 'a' },
            { path: 'l', type: 'directory' },
          ]),
          root,
        );
        expect(summary(await listTree(root))).toEqual({ a: 'd 711', 'a/keep': 'f 644 k', b: 'd 755', c: 'l -> a', l: 'd 755' });
      });
    });

    it("owners are the layer's: chown is left out only where it changes nothing, not under a directory of another group (setgid)", async () => {
      await withTmp(async (root) => {
        await makeTree(root, { 'var/local': { dir: true, mode: 0o775 } });
        if (IS_ROOT) {
          // The root and a lower directory setgid with group 50: what is made in them gets group 50.
          for (const d of [root, join(root, 'var/local')]) {
            await fs.chown(d, 0, 50);
            await fs.chmod(d, 0o2775);
          }
        }
        await apply(
          await tarOf([
            { path: 'var/first', type: 'file', text: '1' }, // var: group 0, as made by root
            { path: 'top', type: 'file', text: 't' },
            { path: 'var/local/f', type: 'file', text: 'f', uid: 0, gid: 0 },
            { path: 'var/local/g', type: 'file', text: 'g', uid: 0, gid: 50 },
            { path: 'var/local/l', type: 'symlink', linkpath: 'f', uid: 0, gid: 0 },
            { path: 'a/b', type: 'file', text: 'b', uid: 0, gid: 0 },
            { path: 'a/c', type: 'file', text: 'c', uid: 7, gid: 8 },
            { path: 'a/l', type: 'symlink', linkpath: 'b', uid: 0, gid: 0 },
            { path: 's', type: 'directory', mode: 0o2775, uid: 0, gid: 50 },
            { path: 's/f', type: 'file', text: 'sf', uid: 0, gid: 0 },
          ]),
          root,
        );
        const t = await listTree(root);
        const owners = Object.fromEntries(['var/first', 'top', 'var/local/f', 'var/local/g', 'var/local/l', 'a/b', 'a/c', 'a/l', 's', 's/f'].map((p) => [p, `${t[p]!.uid}:${t[p]!.gid}`]));
        const me = `${process.getuid!()}:${process.getgid!()}`;
        expect(owners).toEqual(
          IS_ROOT
            ? { 'var/first': '0:0', top: '0:0', 'var/local/f': '0:0', 'var/local/g': '0:50', 'var/local/l': '0:0', 'a/b': '0:0', 'a/c': '7:8', 'a/l': '0:0', s: '0:50', 's/f': '0:0' }
            : Object.fromEntries(Object.keys(owners).map((p) => [p, me])),
        );
      });
    });

    it('creates device nodes and fifos as root, with their numbers and modes', async () => {
      await withTmp(async (root) => {
        const tar = await tarOf([
          { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
          { path: 'dev/loop9', type: 'block', devmajor: 7, devminor: 9, mode: 0o660 },
          { path: 'run/fifo', type: 'fifo', mode: 0o620 },
        ]);
        if (!IS_ROOT) {
          await expect(apply(tar, root)).rejects.toThrow(/device-not-root/);
          return;
        }
        await apply(tar, root);
        const st = await fs.lstat(join(root, 'dev/null'), { bigint: true });
        expect(st.isCharacterDevice()).toBe(true);
        expect(st.rdev).toBe(makedev(1, 3));
        expect(st.mode & 0o7777n).toBe(0o666n);
        expect((await fs.lstat(join(root, 'dev/loop9'))).isBlockDevice()).toBe(true);
        const fifo = await fs.lstat(join(root, 'run/fifo'));
        expect(fifo.isFIFO()).toBe(true);
        expect(fifo.mode & 0o7777).toBe(0o620);
      });
    });
  });

  describe('applyLayer refuses hostile layers, and nothing lands outside the root', () => {
    interface Case {
      name: string;
      lower?: Parameters<typeof makeTree>[1];
      entries: (outside: string) => TestEntry[];
      rule: string;
      options?: ApplyOptions;
    }
    const cases: Case[] = [
      { name: 'path traversal ../x', entries: () => [{ path: '../outside/pwned', type: 'file', text: 'x' }], rule: 'parent-reference' },
      { name: 'traversal hidden in the middle a/../../x', entries: () => [{ path: 'a/../../outside/pwned', type: 'file', text: 'x' }], rule: 'parent-reference' },
      { name: 'absolute path', entries: (o) => [{ path: `${o}/pwned`, type: 'file', text: 'x' }], rule: 'absolute-path' },
      {
        name: 'symlink escape (relative) then a write through it',
        entries: () => [
          { path: 'evil', type: 'symlink', linkpath: '../outside' },
          { path: 'evil/pwned', type: 'file', text: 'x' },
        ],
        rule: 'symlink-escape',
      },
      {
        name: 'symlink escape in a lower layer, write in this one',
        lower: { 'usr/x': 'x', evil: { symlink: '../usr/../../outside' } },
        entries: () => [{ path: 'evil/pwned', type: 'file', text: 'x' }],
        rule: 'symlink-escape',
      },
      {
        name: 'absolute symlink whose .. climbs above the root, then a write through it',
        entries: (o) => [
          { path: 'evil', type: 'symlink', linkpath: `/..${o}` },
          { path: 'evil/pwned', type: 'file', text: 'x' },
        ],
        rule: 'symlink-escape',
      },
      {
        name: 'a chain of symlinks that ends outside',
        entries: () => [
          { path: 'a', type: 'symlink', linkpath: 'b/c' },
          { path: 'b/c', type: 'symlink', linkpath: '../../outside' },
          { path: 'a/pwned', type: 'file', text: 'x' },
        ],
        rule: 'symlink-escape',
      },
      {
        name: 'a symlink loop',
        entries: () => [
          { path: 'loop', type: 'symlink', linkpath: 'loop' },
          { path: 'loop/x', type: 'file', text: 'x' },
        ],
        rule: 'symlink-loop',
      },
      { name: 'hard link to ../outside', entries: () => [{ path: 'hl', type: 'hardlink', linkpath: '../outside/secret' }], rule: 'hardlink-outside' },
      { name: 'hard link to an absolute path', entries: (o) => [{ path: 'hl', type: 'hardlink', linkpath: `${o}/secret` }], rule: 'hardlink-outside' },
      {
        name: 'hard link through a symlink to outside',
        entries: () => [
          { path: 'evil', type: 'symlink', linkpath: '../outside' },
          { path: 'hl', type: 'hardlink', linkpath: 'evil/secret' },
        ],
        rule: 'symlink-escape',
      },
      {
        name: 'whiteout through a symlink to outside',
        entries: () => [
          { path: 'evil', type: 'symlink', linkpath: '../outside' },
          { path: 'evil/.wh.secret', type: 'file', text: '' },
        ],
        rule: 'symlink-escape',
      },
      {
        name: 'opaque directory through a symlink to outside',
        entries: () => [
          { path: 'evil', type: 'symlink', linkpath: '../outside' },
          { path: 'evil/.wh..wh..opq', type: 'file', text: '' },
        ],
        rule: 'symlink-escape',
      },
      { name: 'a device node as non-root', entries: () => [{ path: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 }], rule: 'device-not-root', options: { isRoot: false } },
      { name: 'a fifo as non-root', entries: () => [{ path: 'p', type: 'fifo' }], rule: 'device-not-root', options: { isRoot: false } },
      { name: 'a hard link to a missing file', entries: () => [{ path: 'hl', type: 'hardlink', linkpath: 'nothing' }], rule: 'hardlink-missing' },
      { name: 'the root replaced by a file', entries: () => [{ path: './', type: 'file', text: 'x' }], rule: 'replace-root' },
      { name: 'a file below a file', lower: { f: 'x' }, entries: () => [{ path: 'f/g', type: 'file', text: 'x' }], rule: 'parent-not-directory' },
    ];

    for (const c of cases) {
      it(c.name, async () => {
        await withTmp(async (dir) => {
          const outside = join(dir, 'outside');
          const root = join(dir, 'root');
          await makeTree(outside, { secret: 'secret' });
          await fs.mkdir(root);
          if (c.lower) await makeTree(root, c.lower);
          const before = await listTree(outside);
          const error = await apply(await tarOf(c.entries(outside)), root, c.options).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(LayerError);
          expect((error as LayerError).data.rule).toBe(c.rule);
          expect((error as LayerError).message).toMatch(/^layer entry ".*" refused \([a-z-]+\): /);
          expect(await listTree(outside)).toEqual(before);
          expect((await fs.stat(join(outside, 'secret'))).nlink).toBe(1);
          expect(await fs.readdir(dir)).toEqual(['outside', 'root']);
        });
      });
    }

    it('an absolute symlink in a lower layer (var/run -> /run) is resolved inside the root, as a runtime does', async () => {
      await withTmp(async (dir) => {
        const outside = join(dir, 'outside');
        const root = join(dir, 'root');
        await makeTree(outside, { secret: 'secret' });
        await fs.mkdir(root);
        await apply(await tarOf([{ path: 'run', type: 'directory' }, { path: 'var', type: 'directory' }, { path: 'var/run', type: 'symlink', linkpath: '/run' }]), root);
        // The host's own absolute path: still inside the root when resolved from it.
        await apply(await tarOf([{ path: 'var/run/pidfile', type: 'file', text: '42' }, { path: 'evil', type: 'symlink', linkpath: outside }, { path: 'evil/pwned', type: 'file', text: 'x' }]), root);
        expect(await fs.readFile(join(root, 'run/pidfile'), 'utf8')).toBe('42');
        expect(await fs.readlink(join(root, 'var/run'))).toBe('/run');
        expect(await fs.readFile(join(root, outside, 'pwned'), 'utf8')).toBe('x');
        expect(await fs.readdir(outside)).toEqual(['secret']);
      });
    });

    it('never writes through a symlink in the last component: the entry replaces the link', async () => {
      await withTmp(async (dir) => {
        const outside = join(dir, 'outside');
        const root = join(dir, 'root');
        await makeTree(outside, { secret: 'secret', sub: { dir: true } });
        await fs.mkdir(root);
        await apply(
          await tarOf([
            { path: 'evil', type: 'symlink', linkpath: '../outside/secret' },
            { path: 'evil', type: 'file', text: 'mine', mode: 0o600 },
            { path: 'evil2', type: 'symlink', linkpath: join(outside, 'secret') },
            { path: 'evil2', type: 'hardlink', linkpath: 'evil' },
            { path: 'evil3', type: 'symlink', linkpath: '../outside/sub' },
            { path: 'evil3', type: 'directory' },
            { path: 'evil3/x', type: 'file', text: 'inside' },
          ]),
          root,
        );
        expect(await fs.readFile(join(outside, 'secret'), 'utf8')).toBe('secret');
        expect((await fs.stat(join(outside, 'secret'))).mode & 0o777).toBe(0o644);
        expect(await fs.readdir(join(outside, 'sub'))).toEqual([]);
        expect(summary(await listTree(root))).toEqual({ evil: 'f 600 mine', evil2: 'f 600 mine', evil3: 'd 755', 'evil3/x': 'f 644 inside' });
      });
    });

    it('follows a relative symlink that stays inside (lib -> usr/lib)', async () => {
      await withTmp(async (root) => {
        await makeTree(root, { 'usr/lib/a': 'a', lib: { symlink: 'usr/lib' }, 'x/y': { symlink: '../usr/./lib' } });
        await apply(
          await tarOf([
            { path: 'lib/b', type: 'file', text: 'b' },
            { path: 'x/y/c', type: 'file', text: 'c' },
            { path: 'lib/.wh.a', type: 'file', text: '' },
          ]),
          root,
        );
        expect((await fs.readdir(join(root, 'usr/lib'))).sort()).toEqual(['b', 'c']);
        expect((await fs.lstat(join(root, 'lib'))).isSymbolicLink()).toBe(true);
      });
    });

    it('a hard link then a file at the same path replaces the link, not the target', async () => {
      await withTmp(async (root) => {
        await apply(
          await tarOf([
            { path: 'a', type: 'file', text: 'original' },
            { path: 'hl', type: 'hardlink', linkpath: 'a' },
            { path: 'hl', type: 'file', text: 'changed' },
          ]),
          root,
        );
        expect(await fs.readFile(join(root, 'a'), 'utf8')).toBe('original');
        expect(await fs.readFile(join(root, 'hl'), 'utf8')).toBe('changed');
      });
    });

    it('a truncated layer is a LayerError after the entries before it were applied', async () => {
      await withTmp(async (root) => {
        const tar = await tarOf([
          { path: 'first', type: 'file', text: 'ok' },
          { path: 'second', type: 'file', text: 'y'.repeat(5000) },
        ]);
        await expect(apply(tar.subarray(0, 2048), root)).rejects.toThrow(/tar stream truncated: the data of "second"/);
        expect(await fs.readFile(join(root, 'first'), 'utf8')).toBe('ok');
      });
    });

    it('a signal aborted by an event (a SIGINT handler, here a timer) stops a running extraction', async () => {
      await withTmp(async (root) => {
        const ac = new AbortController();
        const tar = await tarOf(Array.from({ length: 600 }, (_, i) => ({ path: `f${i}`, type: 'file' as const, text: '' })));
        // Scheduled once the extraction runs: the abort can only come in a turn of the event loop.
        const onProgress = (p: { entries: number }) => p.entries === 1 && setTimeout(() => ac.abort('test'), 0);
        await expect(apply(tar, root, { signal: ac.signal, onProgress })).rejects.toThrow(/interrupted during layer extraction/);
        // The event loop gets a turn at least every 256 entries: the timer ran and stopped it.
        expect((await fs.readdir(root)).length).toBeLessThan(600);
      });
    });

    it('an aborted signal stops between entries', async () => {
      await withTmp(async (root) => {
        const ac = new AbortController();
        ac.abort('test');
        await expect(apply(await tarOf([{ path: 'a', type: 'file', text: 'a' }]), root, { signal: ac.signal })).rejects.toThrow(/interrupted during layer extraction/);
      });
    });
  });
});

describe('extended attributes the target cannot hold', () => {
  it("'drop' counts each attribute and names its file; nothing else changes", async () => {
    const { applyEntries } = await import('../../../src/layers/apply.js');
    const { readTar } = await import('../../../src/layers/tar-read.js');
    await withTmp(async (root) => {
      const tar = await tarOf([
        { path: 'usr', type: 'directory' },
        { path: 'usr/bin', type: 'directory' },
        { path: 'usr/bin/ping', type: 'file', text: 'ELF' },
        { path: 'usr/bin/ls', type: 'file', text: 'ELF2' },
      ]);
      // What tar-read gives for SCHILY.xattr.* records: `xattrs` on the entry.
      const xattrs: Record<string, Record<string, Buffer>> = {
        'usr/bin/ping': { 'security.capability': Buffer.from('0100000200200000', 'hex'), 'user.note': Buffer.from('x') },
      };
      async function* withXattrs() {
        for await (const e of readTar(chunksOf(tar))) yield Object.assign(e, xattrs[e.path] ? { xattrs: xattrs[e.path] } : {});
      }
      const stats = await applyEntries(withXattrs(), root, { xattrs: 'drop', isRoot: false });
      expect(stats.xattrsDropped).toBe(2);
      expect(stats.xattrsDroppedFiles).toEqual([{ path: 'usr/bin/ping', names: ['security.capability', 'user.note'] }]);
      expect(stats.files).toBe(2);
      const none = await applyEntries(readTar(chunksOf(await tarOf([{ path: 'a', type: 'file', text: 'a' }]))), root, { xattrs: 'drop', isRoot: false });
      expect(none).toMatchObject({ xattrsDropped: 0, xattrsDroppedFiles: [] });
    });
  });
});

describe('extended attributes the target holds', () => {
  it("'apply' sets each one (any bytes) on the file made, after its owner and mode; a hard link shares them", async () => {
    const { applyEntries } = await import('../../../src/layers/apply.js');
    const { readTar } = await import('../../../src/layers/tar-read.js');
    await withTmp(async (root) => {
      const tar = await tarOf([
        { path: 'bin', type: 'directory' },
        { path: 'bin/ping', type: 'file', text: 'ELF', mode: 0o755 },
        { path: 'bin/ping2', type: 'hardlink', linkpath: 'bin/ping' },
      ]);
      // security.capability (cap_net_raw+ep, VFS_CAP_REVISION_2) needs root; user.* any owner.
      const caps = Buffer.from('0000000200200000000000000000000000000000', 'hex');
      const xattrs: Record<string, Record<string, Buffer>> = {
        'bin/ping': { 'user.note': Buffer.from([0, 1, 0xff, 0x20]), ...(IS_ROOT ? { 'security.capability': caps } : {}) },
      };
      async function* withXattrs() {
        for await (const e of readTar(chunksOf(tar))) yield Object.assign(e, xattrs[e.path] ? { xattrs: xattrs[e.path] } : {});
      }
      const stats = await applyEntries(withXattrs(), root, { xattrs: 'apply' });
      expect(stats.xattrsApplied).toBe(IS_ROOT ? 2 : 1);
      // Read back with getfattr, independently of mkimage's code.
      const dump = await run('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'hex', join(root, 'bin/ping2')]);
      expect(dump.stdout).toContain('user.note=0x0001ff20');
      if (IS_ROOT) expect(dump.stdout).toContain(`security.capability=0x${caps.toString('hex')}`);
    });
  });
});
