/**
 * A reader that went away does not cost the clean-up: mkimage whose stderr is a pipe nobody reads
 * (its parent was killed, `2>&1 | head -0`) still undoes its work on SIGTERM and exits 143. Before,
 * the EPIPE of its last message was an uncaught error: exit 1, and at an unlucky moment the loop
 * device, pool or temporary image stayed behind.
 */
import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { injectFault } from './helpers/faults.js';
import { BIN, cleanDir, tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir('mkimage-streams-');
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

it('SIGTERM with stderr a pipe without a reader: everything undone, exit 143', async () => {
  const bin = join(dir, 'bin');
  // mkfs.ext4 signals mkimage (TERM), then hangs until mkimage kills it.
  await injectFault(bin, { tool: 'mkfs.ext4', fault: 'signal-then-hang', signal: 'TERM' });
  const child = execa('node', [BIN, '--size', '64M', join(dir, 'x.img')], {
    env: { PATH: `${bin}:${process.env.PATH}` },
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    reject: false,
    buffer: false,
  });
  child.stderr!.destroy(); // the reader is gone before mkimage says anything
  const r = await child;
  expect(r.exitCode).toBe(143);
  expect((await readdir(dir)).filter((f) => f !== 'bin')).toEqual([]);
});
