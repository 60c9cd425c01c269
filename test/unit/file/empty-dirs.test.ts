import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeEmptyParents, removeEmptyTree } from '../../../src/file/empty-dirs.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-empty-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('removeEmptyTree', () => {
  it('removes a skeleton of empty directories, itself included', async () => {
    await mkdir(join(dir, 't/pool/storage/empty'), { recursive: true });
    await mkdir(join(dir, 't/pool/runtime'), { recursive: true });
    expect(await removeEmptyTree(join(dir, 't'))).toBe(true);
    expect(await readdir(dir)).toEqual([]);
  });

  it('keeps every file and the directories above it', async () => {
    await mkdir(join(dir, 't/pool/storage/empty'), { recursive: true });
    await writeFile(join(dir, 't/pool/storage/kept'), 'x');
    expect(await removeEmptyTree(join(dir, 't'))).toBe(false);
    expect(await readdir(join(dir, 't/pool/storage'))).toEqual(['kept']);
  });

  it('a missing directory counts as removed; a file is not a directory', async () => {
    expect(await removeEmptyTree(join(dir, 'nope'))).toBe(true);
    await writeFile(join(dir, 'f'), 'x');
    expect(await removeEmptyTree(join(dir, 'f'))).toBe(false);
    expect((await lstat(join(dir, 'f'))).isFile()).toBe(true);
  });
});

describe('removeEmptyParents', () => {
  it('removes up to, never including, the stop directory', async () => {
    await mkdir(join(dir, 'alt/pool/a/b'), { recursive: true });
    await removeEmptyParents(join(dir, 'alt/pool/a/b'), join(dir, 'alt'));
    expect(await readdir(join(dir, 'alt'))).toEqual([]);
  });

  it('stops at the first directory that is not empty', async () => {
    await mkdir(join(dir, 'alt/pool/a/b'), { recursive: true });
    await writeFile(join(dir, 'alt/pool/file'), 'x');
    await removeEmptyParents(join(dir, 'alt/pool/a/b'), join(dir, 'alt'));
    expect(await readdir(join(dir, 'alt/pool'))).toEqual(['file']);
  });

  it('does nothing for a path outside the stop directory', async () => {
    await mkdir(join(dir, 'other/x'), { recursive: true });
    await removeEmptyParents(join(dir, 'other/x'), join(dir, 'alt'));
    expect(await readdir(join(dir, 'other'))).toEqual(['x']);
  });
});
