/** The README's samples are what the tool prints: each is rerun here and compared. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { REPO, cleanDir, cli, tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

it('the inspect sample: the same seeded image gives the same report (bytes on disk depend on the host)', async () => {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const block = /```\n\$ mkimage --size 20G --sparse --seed readme disk\.img\n\$ mkimage inspect disk\.img\n([\s\S]*?)```/.exec(readme);
  expect(block, 'the README inspect sample').not.toBeNull();
  expect((await cli(['--size', '20G', '--sparse', '--seed', 'readme', '-q', 'disk.img'], { cwd: dir })).exitCode).toBe(0);
  const r = await cli(['inspect', 'disk.img'], { cwd: dir });
  expect(r.exitCode).toBe(0);
  const onDisk = (text: string) => text.trim().replace(/\(([\d.]+ [KMG]iB|\d+ B) on disk\)/, '(N on disk)');
  expect(onDisk(r.stdout)).toBe(onDisk(block![1]!));
});
