/**
 * `mkimage --from` in a real guest: the OCI fixture (test/system/helpers/oci-fixture.ts) flattened
 * into ext4, erofs and xfs, booted as an NVDIMM (qemu/boot.sh); the guest mounts /dev/pmem0 with
 * -o dax and reads a file of the top layer (usr/bin/newer) and one written through an absolute
 * symlink (run/pidfile). Three boots, ~5-15 s each under TCG.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REPO, cleanDir, cli, tempDir } from '../system/helpers/machine.js';
import { writeFixture } from '../system/helpers/oci-fixture.js';

const BOOT = join(REPO, 'qemu/boot.sh');
const BUILD = join(REPO, 'qemu/build-guest.sh');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

let dir: string;
beforeAll(async () => {
  await execa('bash', [BUILD], { stdio: 'inherit', timeout: 600_000 });
}, 600_000);
beforeEach(async () => {
  dir = await tempDir('mkimage-guest-from-');
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

describe('the guest mounts an image built with --from, with dax, and reads the top layer', () => {
  for (const fs of ['ext4', 'erofs', 'xfs'] as const) {
    it(fs, async () => {
      const f = await writeFixture(join(dir, 'oci'));
      const image = join(dir, `${fs}.img`);
      const c = await cli(['--from', f.dir, '--fs', fs, '--size', 'auto', '--sparse', '--json', image]);
      expect(c.exitCode, c.stdout + c.stderr).toBe(0);
      const r = await execa('bash', [BOOT, image, '--timeout', '180', '--mkimage', '--fs', fs, ...(fs === 'erofs' ? ['--readonly'] : [])], { reject: false, timeout: 240_000 });
      expect(r.exitCode, `boot.sh exited ${r.exitCode}: ${r.stderr}`).toBe(0);
      const report = JSON.parse(String(r.stdout).trim().split('\n').pop()!);
      console.log(`${fs}: guest booted in ${report.bootSeconds} s`);
      expect(report.pmem.present).toBe(true);
      expect(report.mode).toBe('fsdax');
      expect(report.mount, JSON.stringify(report.mount) + JSON.stringify(report.errors) + String(report.kernelLog ?? '')).toMatchObject({ type: fs, ok: true, daxOk: true });
      expect(report.files).toContainEqual(expect.objectContaining({ path: '/usr/bin/newer', sha256: sha256('#!/bin/sh\necho top layer\n') }));
      expect(report.files).toContainEqual(expect.objectContaining({ path: '/run/pidfile', sha256: sha256('42') }));
      expect(report.errors).toEqual([]);
    });
  }
});
