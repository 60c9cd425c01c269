/**
 * run()'s streaming descriptors against real processes: a child reads a file's descriptor as its
 * stdin and writes another's as its stdout, or reads a Node stream piped in; nothing passes
 * through run()'s buffers (RunResult.stdout stays empty).
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/tools/exec.js';
import { tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir('mkimage-exec-');
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('run with stdin/stdout descriptors', () => {
  it('copies 8 MiB file to file through cat without buffering it', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    await fs.writeFile(join(dir, 'in'), data);
    const input = await fs.open(join(dir, 'in'), constants.O_RDONLY);
    const output = await fs.open(join(dir, 'out'), constants.O_WRONLY | constants.O_CREAT, 0o600);
    try {
      const r = await run('cat', [], { stdin: input.fd, stdout: output.fd });
      expect(r.stdout).toBe('');
    } finally {
      await input.close();
      await output.close();
    }
    expect((await fs.readFile(join(dir, 'out'))).equals(data)).toBe(true);
  });

  it('pipes a Node stream into the child', async () => {
    const out = await fs.open(join(dir, 'out2'), constants.O_WRONLY | constants.O_CREAT, 0o600);
    try {
      await run('cat', [], { stdin: Readable.from([Buffer.from('one '), Buffer.from('two')]), stdout: out.fd });
    } finally {
      await out.close();
    }
    expect(await fs.readFile(join(dir, 'out2'), 'utf8')).toBe('one two');
  });
});
