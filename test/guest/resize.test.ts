/**
 * Proof in a real guest that `mkimage resize` grows what the guest sees: after growing an image,
 * the guest's /dev/pmem0 is the new partition (its size), the filesystem in it mounts with -o dax
 * (ext4 and xfs refuse to mount a filesystem larger than its device), and a file written on the
 * host after the resize, larger than the whole old filesystem and so lying in the grown part, reads
 * back in the guest with its sha256. The host checks the filesystem's own size.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MiB } from '../../src/layout/units.js';
import { REPO, cleanDir, cliJson, tempDir } from '../system/helpers/machine.js';

const BOOT = join(REPO, 'qemu/boot.sh');
const BUILD = join(REPO, 'qemu/build-guest.sh');

let dir: string;
beforeAll(async () => {
  await execa('bash', [BUILD], { stdio: 'inherit', timeout: 600_000 });
}, 600_000);
beforeEach(async () => {
  dir = await tempDir('mkimage-guest-resize-');
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

const json = (args: string[]) => cliJson(args);

/** Writes `data` as `name` into the image's filesystem through a loop mount of the partition. */
async function putFile(image: string, offsetBytes: number, sizeBytes: number, fsType: string, name: string, data: Buffer): Promise<void> {
  const mnt = join(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const loop = String((await execa('losetup', ['--find', '--show', '--offset', String(offsetBytes), '--sizelimit', String(sizeBytes), image])).stdout).trim();
  try {
    await execa('mount', ['-t', fsType, loop, mnt]);
    try {
      await writeFile(join(mnt, name), data);
    } finally {
      await execa('umount', [mnt]);
    }
  } finally {
    await execa('losetup', ['-d', loop], { reject: false });
  }
}

describe('a resized image in the guest', () => {
  const cases = [
    { fs: 'ext4', table: 'mbr', from: '64M', to: 256 * MiB },
    { fs: 'xfs', table: 'gpt', from: '310M', to: 512 * MiB },
  ] as const;
  for (const c of cases) {
    it(`${c.fs} ${c.table}: /dev/pmem0 is the new partition, the grown filesystem mounts with dax and its new space reads back`, async () => {
      const image = join(dir, 'disk.img');
      const made = await json(['--size', c.from, '--fs', c.fs, '--table', c.table, '--sparse', image]);
      const oldFs = made.layout.fsSizeBytes;
      const r = await json(['resize', image, '--size', String(c.to)]);
      const tail = c.table === 'gpt' ? 2 * MiB : 0;
      const part = c.to - 2 * MiB - tail;
      expect(r.partition.sizeBytes).toBe(part);
      expect(r.filesystem.sizeBytes).toBe(part);
      // More than the old filesystem could hold: it can only lie in the grown part.
      const big = Buffer.alloc(oldFs + 16 * MiB);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i / 4096, i);
      await putFile(image, 2 * MiB, part, c.fs, 'big.bin', big);

      const b = await execa('bash', [BOOT, image, '--timeout', '180', '--mkimage', '--fs', c.fs, '--append', `mkimage.hashmax=${big.length + 1}`], { reject: false, timeout: 240_000 });
      expect(b.exitCode, `boot.sh exited ${b.exitCode}: ${b.stderr}`).toBe(0);
      const report = JSON.parse(String(b.stdout).trim().split('\n').pop()!);
      console.log(`resize ${c.fs} ${c.table}: guest booted in ${report.bootSeconds} s`);
      expect(report.errors).toEqual([]);
      expect(report.pmem).toMatchObject({ present: true, size: part, dax: true });
      expect(report.mode).toBe('fsdax');
      expect(report.mount).toMatchObject({ type: c.fs, ok: true, daxOk: true, daxActive: true });
      expect(report.files).toContainEqual(expect.objectContaining({ path: '/big.bin', size: big.length, sha256: createHash('sha256').update(big).digest('hex') }));
    }, 300_000);
  }
});
