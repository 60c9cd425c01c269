/**
 * Proof in a real guest: images made by mkimage, booted under QEMU as NVDIMMs (qemu/boot.sh, a
 * Debian 6.1 kernel and a busybox initramfs built once by qemu/build-guest.sh), and what the guest
 * kernel saw: /dev/pmem0, the namespace mode, `mount -o dax`, the files, the pools.
 * Each boot takes ~5 s under TCG; boot times are printed and collected in the summary at the end.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MiB } from '../../src/layout/units.js';
import { REPO, cleanDir, cli, tempDir } from '../system/helpers/machine.js';

const BOOT = join(REPO, 'qemu/boot.sh');
const BUILD = join(REPO, 'qemu/build-guest.sh');
const bootTimes: { test: string; seconds: number }[] = [];

interface GuestReport {
  kernel: string;
  pmem: { present: boolean; size: number; dax: boolean };
  mode: string;
  pfn: { mode: string; dataoff: number; align: number; uuid: string } | null;
  blkid: { type: string; uuid: string } | null;
  mount: { type: string; ok: boolean; daxOk: boolean; daxActive: boolean; options: string; error: string } | null;
  zfs: { imported: boolean; importCommand: string; list: string[]; error: string; exported: boolean } | null;
  files: { path: string; type: string; size: number; sha256?: string }[];
  write: { ok: boolean; path: string; sha256: string; error: string } | null;
  errors: string[];
  bootSeconds: number;
}

let dir: string;
beforeAll(async () => {
  // Once and cached: downloads a Debian kernel package and builds the initramfs (~20 s cold).
  await execa('bash', [BUILD], { stdio: 'inherit', timeout: 600_000 });
}, 600_000);
beforeEach(async () => {
  dir = await tempDir('mkimage-guest-');
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});
afterAll(() => {
  const total = bootTimes.reduce((a, b) => a + b.seconds, 0);
  console.log(`guest boots: ${bootTimes.map((b) => `${b.test} ${b.seconds.toFixed(1)} s`).join(', ')}; total ${total.toFixed(1)} s`);
});

/** Boots `image`; with `product` (the default) QEMU's NVDIMM options come from `mkimage qemu-args`. */
async function boot(test: string, image: string, args: string[] = [], product = true): Promise<GuestReport> {
  const r = await execa('bash', [BOOT, image, '--timeout', '180', ...(product ? ['--mkimage'] : []), ...args], { reject: false, timeout: 240_000 });
  expect(r.exitCode, `boot.sh exited ${r.exitCode}: ${r.stderr}`).toBe(0);
  const report = JSON.parse(String(r.stdout).trim().split('\n').pop()!) as GuestReport;
  bootTimes.push({ test, seconds: report.bootSeconds });
  console.log(`${test}: guest booted in ${report.bootSeconds} s`);
  return report;
}

async function create(args: string[]) {
  const r = await cli([...args, '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** Reads a file from the image's filesystem on the host through a read-only loop mount. */
async function readOnHost(image: string, offsetBytes: number, sizeBytes: number, fsType: string, path: string): Promise<Buffer> {
  const mnt = join(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const loop = String((await execa('losetup', ['--find', '--show', '--read-only', '--offset', String(offsetBytes), '--sizelimit', String(sizeBytes), image])).stdout).trim();
  try {
    await execa('mount', ['-t', fsType, '-o', fsType === 'xfs' ? 'ro,norecovery' : 'ro,noload', loop, mnt]);
    try {
      return await readFile(join(mnt, path));
    } finally {
      await execa('umount', [mnt]);
    }
  } finally {
    await execa('losetup', ['-d', loop], { reject: false });
  }
}

async function fsck(image: string, offsetBytes: number, sizeBytes: number, fsType: string) {
  const loop = String((await execa('losetup', ['--find', '--show', '--read-only', '--offset', String(offsetBytes), '--sizelimit', String(sizeBytes), image])).stdout).trim();
  try {
    return await execa(fsType === 'xfs' ? 'xfs_repair' : 'e2fsck', fsType === 'xfs' ? ['-n', loop] : ['-fn', loop], { reject: false });
  } finally {
    await execa('losetup', ['-d', loop], { reject: false });
  }
}

describe('ext4 and xfs images as the guest sees them', () => {
  const matrix = [
    { fs: 'ext4', sparse: false, memmap: 'ram', size: '256M' },
    { fs: 'ext4', sparse: true, memmap: 'pmem', size: '256M' },
    { fs: 'ext4', sparse: true, memmap: 'ram', size: '256M' },
    { fs: 'ext4', sparse: false, memmap: 'pmem', size: '256M' },
    { fs: 'xfs', sparse: true, memmap: 'ram', size: '320M' },
    { fs: 'xfs', sparse: false, memmap: 'pmem', size: '320M' },
    { fs: 'xfs', sparse: false, memmap: 'ram', size: '320M' },
    { fs: 'xfs', sparse: true, memmap: 'pmem', size: '320M' },
  ] as const;
  for (const m of matrix) {
    const name = `${m.fs} ${m.sparse ? 'sparse' : 'preallocated'} --memmap ${m.memmap}`;
    it(`${name}: /dev/pmem0 = size - dataoff, fsdax, mount -o dax, the populated file reads back, the guest's write reaches the host`, async () => {
      const tree = join(dir, 'tree');
      await mkdir(join(tree, 'etc'), { recursive: true });
      const content = `populated for ${name}\n`;
      await writeFile(join(tree, 'etc/hello.txt'), content);
      const image = join(dir, 'disk.img');
      const res = await create(['--size', m.size, '--fs', m.fs, '--memmap', m.memmap, '--populate', tree, ...(m.sparse ? ['--sparse'] : []), image]);
      const report = await boot(name, image, ['--fs', m.fs, '--write']);

      expect(report.errors).toEqual([]);
      expect(report.pmem.present).toBe(true);
      expect(report.pmem.size).toBe(res.sizeBytes - res.layout.dataOffBytes);
      expect(report.mode).toBe('fsdax');
      expect(report.pfn).toMatchObject({ mode: m.memmap, dataoff: res.layout.dataOffBytes, uuid: res.ids.pfnUuid });
      expect(report.blkid).toMatchObject({ type: m.fs, uuid: res.ids.fsUuid });
      expect(report.mount).toMatchObject({ type: m.fs, ok: true, daxOk: true, daxActive: true });
      expect(report.files).toContainEqual(expect.objectContaining({ path: '/etc/hello.txt', size: content.length, sha256: sha256(content) }));

      // share=on: what the guest wrote is in the file, and the filesystem checks clean on the host.
      expect(report.write).toMatchObject({ ok: true, path: '/guest-wrote.txt' });
      const wrote = await readOnHost(image, res.layout.partitionOffsetBytes, res.layout.fsSizeBytes, m.fs, 'guest-wrote.txt');
      expect(sha256(wrote)).toBe(report.write!.sha256);
      const check = await fsck(image, res.layout.partitionOffsetBytes, res.layout.fsSizeBytes, m.fs);
      expect(check.exitCode, String(check.stdout) + String(check.stderr)).toBe(0);
      // A preallocated image is still wholly allocated after the guest mounted, wrote and unmounted.
      if (!m.sparse) expect((await stat(image)).blocks * 512).toBeGreaterThanOrEqual(res.sizeBytes);
    });
  }
});

describe('a ZFS image', () => {
  it('the guest imports the pool from /dev/pmem0 and lists the whole dataset tree', async () => {
    const image = join(dir, 'zfs.img');
    const pool = `gpool${process.pid}`;
    const res = await create(['--size', '256M', '--sparse', '--fs', 'zfs', '--pool', pool, '--dataset', 'images/base', image]);
    const report = await boot('zfs', image, ['--pool', pool]);
    expect(report.mode).toBe('fsdax');
    expect(report.zfs).toMatchObject({ imported: true, error: '', exported: true });
    const expected = [...res.zfs.datasets, ...res.zfs.snapshots].sort();
    expect([...report.zfs!.list].sort()).toEqual(expected);
    expect(expected).toEqual(expect.arrayContaining([pool, `${pool}/storage`, `${pool}/storage/empty`, `${pool}/storage/empty@extracted`, `${pool}/runtime`, `${pool}/images/base`]));
  });
});

describe('GPT and read-only images', () => {
  it('a GPT image: the partition the host sees is the guest\'s /dev/pmem0 start, and mounts with dax', async () => {
    const image = join(dir, 'gpt.img');
    const res = await create(['--size', '256M', '--sparse', '--table', 'gpt', image]);
    const report = await boot('gpt ext4', image, ['--fs', 'ext4']);
    expect(report.mode).toBe('fsdax');
    // end_trunc leaves the last 2 MiB (the backup GPT) out: /dev/pmem0 is exactly the partition.
    expect(report.pmem.size).toBe(res.layout.partitionSizeBytes);
    expect(report.pmem.size).toBe(res.sizeBytes - res.layout.dataOffBytes - 2 * MiB);
    expect(report.mount).toMatchObject({ ok: true, daxActive: true });
  });

  it('a GPT ZFS image: the guest imports and exports the pool, and the backup GPT survives', async () => {
    const image = join(dir, 'gptzfs.img');
    const pool = `gptpool${process.pid}`;
    const res = await create(['--size', '256M', '--sparse', '--table', 'gpt', '--fs', 'zfs', '--pool', pool, image]);
    const report = await boot('gpt zfs', image, ['--pool', pool]);
    expect(report.pmem.size).toBe(res.layout.partitionSizeBytes);
    expect(report.zfs).toMatchObject({ imported: true, error: '', exported: true });
    expect([...report.zfs!.list].sort()).toEqual([...res.zfs.datasets, ...res.zfs.snapshots].sort());
    // The guest's pool wrote its end labels at the end of /dev/pmem0: not over the backup GPT.
    const after = await cli(['inspect', '--json', image]);
    expect(JSON.parse(after.stdout).problems).toEqual([]);
    const verify = await execa('sfdisk', ['--verify', image], { reject: false });
    expect(String(verify.stdout)).toContain('No errors detected');
  });

  it('--readonly: the guest mounts the shared image read-only and the file is unchanged', async () => {
    const image = join(dir, 'ro.img');
    await create(['--size', '256M', '--sparse', image]);
    const before = sha256(await readFile(image));
    const report = await boot('read-only', image, ['--fs', 'ext4', '--readonly']);
    expect(report.mode).toBe('fsdax');
    expect(report.mount).toMatchObject({ ok: true });
    expect(report.mount!.options).toMatch(/(^|,)ro(,|$)/);
    expect(sha256(await readFile(image))).toBe(before);
  });
});

describe('the negative case proves the test can fail', () => {
  it('one flipped byte in the PFN block: no fsdax in the guest, and inspect says why', async () => {
    const image = join(dir, 'bad.img');
    await create(['--size', '256M', '--sparse', image]);
    const good = await boot('negative: control', image, ['--fs', 'ext4']);
    expect(good.mode).toBe('fsdax');
    const fh = await open(image, 'r+');
    try {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, 4096 + 0x40);
      b[0]! ^= 0x01;
      await fh.write(b, 0, 1, 4096 + 0x40);
    } finally {
      await fh.close();
    }
    // mkimage qemu-args refuses this image (checked below): boot it with boot.sh's own QEMU line.
    const bad = await boot('negative: flipped byte', image, ['--fs', 'ext4'], false);
    expect(bad.mode).not.toBe('fsdax');
    expect(bad.mount?.daxOk ?? false).toBe(false);
    if (bad.pmem.present) expect(bad.pmem.size).toBe(256 * MiB); // the raw namespace: the whole file
    const insp = await cli(['inspect', image]);
    expect(insp.exitCode).toBe(1);
    expect(insp.stdout).toContain('pfn.checksum');
    const args = await cli(['qemu-args', image]);
    expect(args.exitCode).toBe(1);
    expect(args.stderr).toMatch(/a guest kernel would reject this image \(pfn\.checksum/);
  });
});
