import { lstat, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StagedTree } from '../../../src/layers/apply.js';
import { addStagedFiles, ext4BytesFor, ext4Holds, ext4JournalBlocks, imageConfigOf, sourceRecordOf } from '../../../src/jobs/from.js';

describe('--from: pure parts', () => {
  it('imageConfigOf keeps the runtime fields of the OCI config with their spec names, drops the rest', () => {
    expect(imageConfigOf({ Entrypoint: ['/bin/sh'], Cmd: ['-c', 'x'], Env: ['A=b'], WorkingDir: '/w', User: '1000:1000', ExposedPorts: { '80/tcp': {} }, Labels: { a: 'b' } })).toEqual({
      Entrypoint: ['/bin/sh'],
      Cmd: ['-c', 'x'],
      Env: ['A=b'],
      WorkingDir: '/w',
      User: '1000:1000',
    });
    expect(imageConfigOf({ Entrypoint: null, Cmd: 'not a list', WorkingDir: '' })).toEqual({});
    expect(imageConfigOf(undefined)).toEqual({});
  });

  it('sourceRecordOf: what the header records', () => {
    expect(sourceRecordOf({ reference: 'r', manifestDigest: `sha256:${'1'.repeat(64)}`, diffIds: ['x'] }, true)).toEqual({ reference: 'r', manifestDigest: `sha256:${'1'.repeat(64)}`, hasGuestConfig: true });
  });

  it('ext4 journal sizes follow mke2fs (ext2fs_default_journal_size)', () => {
    expect([ext4JournalBlocks(2000), ext4JournalBlocks(20000), ext4JournalBlocks(100000), ext4JournalBlocks(300000), ext4JournalBlocks(1 << 20)]).toEqual([0, 1024, 4096, 8192, 16384]);
  });

  it('--size auto: the smallest size holding the content, with 10% + 16 MiB headroom; the minimum without', () => {
    // A Debian minbase: ~44,000 data blocks, ~1,200 directory blocks, 8,745 inodes.
    const w = { dataBlocks: 44000, dirBlocks: 1200, xattrBlocks: 0, inodes: 8745 };
    const bare = ext4BytesFor(w, false);
    const auto = ext4BytesFor(w, true);
    expect(ext4Holds(bare, w)).toBe(true);
    expect(ext4Holds(bare - 1024 * 1024, w)).toBe(false);
    expect(auto).toBeGreaterThanOrEqual(bare + Math.ceil((45200 * 4096) / 10) + 16 * 1024 * 1024);
    // Many tiny files: inodes decide (one per 16 KiB of filesystem).
    const tiny = { dataBlocks: 0, dirBlocks: 10, xattrBlocks: 0, inodes: 100000 };
    expect(Math.floor(ext4BytesFor(tiny, false) / 16384)).toBeGreaterThanOrEqual(100016);
  });
});

describe('addStagedFiles', () => {
  it('a directory is made only where the layers left nothing (a symlink or a directory there stays); a file replaces what is there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mkimage-staged-'));
    try {
      await mkdir(join(dir, 'tmp'), 0o755);
      await symlink('/var/run', join(dir, 'run'));
      const tree: StagedTree = { meta: new Map([['tmp', { type: 'directory', mode: 0o1777, uid: 0, gid: 0, mtime: 1, devmajor: 0, devminor: 0, xattrs: {} }]]) };
      await addStagedFiles(dir, tree, [
        { path: '/proc', type: 'dir', mode: 0o555, uid: 0, gid: 0 },
        { path: '/run', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
        { path: '/tmp', type: 'dir', mode: 0o1777, uid: 0, gid: 0 },
        { path: '/.mkimage/init', mode: 0o755, uid: 0, gid: 0, bytes: Buffer.from('ELF') },
      ]);
      expect((await lstat(join(dir, 'proc'))).isDirectory()).toBe(true);
      expect(tree.meta.get('proc')).toMatchObject({ type: 'directory', mode: 0o555, uid: 0, gid: 0 });
      expect((await lstat(join(dir, 'run'))).isSymbolicLink()).toBe(true);
      expect(tree.meta.has('run')).toBe(false);
      expect(tree.meta.get('tmp')?.mtime).toBe(1); // the layers' entry, untouched
      expect(await readFile(join(dir, '.mkimage/init'), 'utf8')).toBe('ELF');
      expect(tree.meta.get('.mkimage/init')).toMatchObject({ type: 'file', mode: 0o755, uid: 0, gid: 0 });
      expect(tree.meta.get('.mkimage')).toMatchObject({ type: 'directory', mode: 0o755 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
