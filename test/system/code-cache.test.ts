/**
 * The CLI's V8 code cache (dist/bundle/cli.cjs.cache, made by `npm run build` through
 * scripts/code-cache.cjs, loaded by bin/load-bundle.js): the one the build wrote is accepted by
 * this Node, and a corrupt, empty or missing one only costs speed, never a wrong result.
 */
import { execa } from 'execa';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO, tempDir } from './helpers/machine.js';

const require = createRequire(import.meta.url);
const { loadBundle, BUNDLE } = require(join(REPO, 'bin/load-bundle.js')) as {
  loadBundle(file: string): { exports: { main: unknown }; script: { cachedDataRejected?: boolean } };
  BUNDLE: string;
};

let dir: string;
beforeEach(async () => {
  dir = await tempDir('mkimage-code-cache-test-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('code cache', () => {
  it('the cache the build wrote is accepted by this Node for this bundle', () => {
    const { exports, script } = loadBundle(BUNDLE);
    expect(typeof exports.main).toBe('function');
    expect(script.cachedDataRejected).toBe(false);
  });

  for (const [what, make] of [
    ['corrupt', (f: string) => writeFile(f, Buffer.alloc(4096, 0xa5))],
    ['empty', (f: string) => writeFile(f, '')],
    ['missing', (f: string) => rm(f)],
  ] as const) {
    it(`cache ${what}: the CLI works the same (version, a create, its inspect)`, async () => {
      const copy = join(dir, 'pkg');
      await mkdir(copy);
      await cp(join(REPO, 'bin'), join(copy, 'bin'), { recursive: true });
      await cp(join(REPO, 'dist/bundle'), join(copy, 'dist/bundle'), { recursive: true });
      await make(join(copy, 'dist/bundle/cli.cjs.cache'));
      const bin = join(copy, 'bin/mkimage.js');
      expect((await execa('node', [bin, '--version'])).stdout).toBe('0.1.0');
      const img = join(dir, 'x.img');
      await execa('node', [bin, '--size', '16M', '--sparse', '--fs', 'none', '--seed', '7', img]);
      const report = JSON.parse((await execa('node', [bin, 'inspect', '--json', img])).stdout);
      expect(report).toMatchObject({ ok: true, sizeBytes: 16 * 1024 * 1024, table: { type: 'mbr' } });
    });
  }
});
