/**
 * Proof in a real guest that an image laid out as `mkimage --from` lays it out boots AS THE ROOT of
 * a stock Debian kernel with an initramfs made by Debian's own mkinitramfs (qemu/build-initramfs.sh),
 * on an emulated NVDIMM and on virtio-pmem, and that /.mkimage/init runs the image's entrypoint as a
 * container runtime would: arguments, environment, working directory and user exactly, `/` mounted
 * with dax, one exit-status line, power-off.
 *
 * The image root holds only what --from writes (guestInitFiles(), /.mkimage/config.json) and a
 * static entrypoint (test/guest/fixtures/entrypoint.c, compiled here with gcc -static): no shell,
 * no libc. ext4 images: `mkimage --populate`; erofs images: `mkfs.erofs` into a file written into
 * the partition of an `--fs none` image (until --from makes erofs itself).
 *
 * QEMU's options and the kernel command line come from `mkimage qemu-args --json --guest-init`
 * (qemu/boot-root.sh). Each boot takes 15-30 s under TCG on the 2-core machine; two run at once.
 */
import { execa } from 'execa';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageConfig } from '../../src/guest/image-config.js';
import { REPO, cleanDir, cli, tempDir } from '../system/helpers/machine.js';
import { RICH, RICH_ARGV, RICH_ENV, buildEntrypoint, entrypointLines, stageRoot, type EntrypointLine } from './helpers/stage-root.js';

const BOOT_ROOT = join(REPO, 'qemu/boot-root.sh');
const BUILD_INITRAMFS = join(REPO, 'qemu/build-initramfs.sh');

interface RootReport {
  exitStatus: number | null;
  signal: number | null;
  init: string[];
  output: string[];
  poweredOff: boolean;
  panic: boolean;
  tail: string[];
  cmdline: string;
  device: string;
  bootSeconds: number;
}
let dir: string;
let app: Buffer;
const bootTimes: string[] = [];

beforeAll(async () => {
  dir = await tempDir('mkimage-root-');
  // Once and cached: the Debian kernel package, the busybox guest, then mkinitramfs (~1-2 min cold).
  await execa('bash', [BUILD_INITRAMFS], { stdio: 'inherit', timeout: 900_000 });
  app = await buildEntrypoint(dir);
}, 900_000);
afterAll(async () => {
  console.log(`root boots: ${bootTimes.join(', ')}`);
  if (dir) expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

/** Two boots at once at most: the machine has 2 cores and TCG keeps one busy per guest. */
let running = 0;
const waiting: (() => void)[] = [];
async function slot<T>(fn: () => Promise<T>): Promise<T> {
  while (running >= 2) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

async function stage(name: string, config: ImageConfig, extraDirs: string[] = []): Promise<string> {
  return stageRoot(join(dir, name), app, config, extraDirs);
}

async function ext4Image(root: string, name: string): Promise<string> {
  const image = join(dir, `${name}.img`);
  const r = await cli(['--size', '64M', '--populate', root, image]);
  expect(r.exitCode, r.stderr).toBe(0);
  return image;
}

/** mkfs.erofs into a file, written into the partition of an `--fs none` image. */
async function erofsImage(root: string, name: string): Promise<string> {
  const part = join(dir, `${name}.erofs`);
  await execa('mkfs.erofs', ['--all-root', '-T0', '--quiet', part, root]);
  const image = join(dir, `${name}.img`);
  const r = await cli(['--size', '16M', '--fs', 'none', image, '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  const { layout } = JSON.parse(r.stdout) as { layout: { partitionOffsetBytes: number; partitionSizeBytes: number } };
  const bytes = await readFile(part);
  expect(bytes.length).toBeLessThanOrEqual(layout.partitionSizeBytes);
  const fh = await open(image, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, layout.partitionOffsetBytes);
  } finally {
    await fh.close();
  }
  expect((await cli(['inspect', image])).stdout).toContain('filesystem: erofs');
  return image;
}

async function bootRoot(test: string, image: string, args: string[] = []): Promise<RootReport> {
  return slot(async () => {
    const log = join(dir, `${test.replace(/\W+/g, '-')}.log`);
    const r = await execa('bash', [BOOT_ROOT, image, '--timeout', '300', '--keep-log', log, ...args], { reject: false, timeout: 360_000 });
    expect(r.stdout, `boot-root.sh exited ${r.exitCode}: ${r.stderr}`).not.toBe('');
    const report = JSON.parse(String(r.stdout).trim().split('\n').pop()!) as RootReport;
    bootTimes.push(`${test} ${report.bootSeconds} s`);
    console.log(`${test}: ${report.bootSeconds} s; console ${log}`);
    return report;
  });
}

function entrypointLine(report: RootReport): EntrypointLine {
  const lines = entrypointLines(report.output);
  expect(lines, JSON.stringify(report, null, 1)).toHaveLength(1);
  return lines[0]!;
}

describe.concurrent('the entrypoint of an image booted as the root (Debian kernel + mkinitramfs)', { timeout: 900_000 }, () => {
  it('ext4 on an NVDIMM: argv, env, working directory, user exactly; / is ext4 with dax; exit status 0; power-off', async () => {
    const root = await stage('ext4-nvdimm', RICH);
    const image = await ext4Image(root, 'ext4-nvdimm');
    const r = await bootRoot('ext4 nvdimm', image);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(RICH_ARGV);
    expect(e.env).toEqual(RICH_ENV);
    expect(e.cwd).toBe('/work/sub dir'); // created by the init: the image has no /work
    expect({ uid: e.uid, gid: e.gid, groups: [...e.groups].sort() }).toEqual({ uid: 1000, gid: 1000, groups: [1000, 2000] });
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ ext4 rw,(\S+,)?dax=always[ ,]/);
    expect(e.tmp).toMatch(/^tmpfs \/tmp tmpfs rw,/);
    expect(r.init).toEqual(['exit status 0']);
    expect(r.exitStatus).toBe(0);
    expect(r).toMatchObject({ poweredOff: true, panic: false, device: 'nvdimm' });
    expect(r.cmdline).toContain('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init');
  });

  it('ext4 on virtio-pmem: --init PATH -- ARGS replaces Entrypoint + Cmd, words with spaces and = arrive intact; / has dax', async () => {
    const root = await stage('ext4-virtio', { ...RICH, Entrypoint: ['/nonexistent'], Cmd: ['never'] });
    const image = await ext4Image(root, 'ext4-virtio');
    const r = await bootRoot('ext4 virtio-pmem --init', image, ['--device', 'virtio-pmem', '--init', 'app', '--', 'one two', '', 'k=v w', "it's"]);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(['app', 'one two', '', 'k=v w', "it's"]);
    expect(e.env).toEqual(RICH_ENV); // the config's Env, WorkingDir and User still apply
    expect(e.cwd).toBe('/work/sub dir');
    expect(e.uid).toBe(1000);
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ ext4 rw,(\S+,)?dax=always[ ,]/);
    expect(r.init).toEqual(['exit status 0']);
    expect(r).toMatchObject({ poweredOff: true, panic: false, device: 'virtio-pmem' });
    expect(r.cmdline).toContain(`init=/.mkimage/init -- app "one two" "" "k=v w" it's`);
  });

  it('erofs on an NVDIMM: read-only root with dax, numeric user, default PATH, exit status 3', async () => {
    const root = await stage('erofs-nvdimm', { Entrypoint: ['app'], Cmd: ['exit three'], Env: ['APP_EXIT=3'], WorkingDir: '/work', User: '1000:2000' }, ['work']);
    const image = await erofsImage(root, 'erofs-nvdimm');
    const r = await bootRoot('erofs nvdimm exit 3', image);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(['app', 'exit three']);
    expect(e.env).toEqual(['APP_EXIT=3', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/home/app']);
    expect({ cwd: e.cwd, uid: e.uid, gid: e.gid, groups: e.groups }).toEqual({ cwd: '/work', uid: 1000, gid: 2000, groups: [2000] });
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ erofs ro,(\S+,)?dax=always[ ,]/);
    expect(e.tmp).toMatch(/^tmpfs \/tmp tmpfs rw,/); // the mount point came from guestInitFiles()
    expect(r.init).toEqual(['exit status 3']);
    expect(r.exitStatus).toBe(3);
    expect(r).toMatchObject({ poweredOff: true, panic: false });
    expect(r.cmdline).toContain('root=/dev/pmem0 rootfstype=erofs rootflags=dax ro init=/.mkimage/init');
  });

  it('erofs on virtio-pmem: argv, env, user exactly; / is erofs with dax', async () => {
    const root = await stage('erofs-virtio', RICH, ['work/sub dir']);
    const image = await erofsImage(root, 'erofs-virtio');
    const r = await bootRoot('erofs virtio-pmem', image, ['--device', 'virtio-pmem']);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(RICH_ARGV);
    expect(e.env).toEqual(RICH_ENV);
    expect(e.cwd).toBe('/work/sub dir');
    expect(e.uid).toBe(1000);
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ erofs ro,(\S+,)?dax=always[ ,]/);
    expect(r.init).toEqual(['exit status 0']);
    expect(r).toMatchObject({ poweredOff: true, panic: false, device: 'virtio-pmem' });
  });

  it('a missing entrypoint: a clear message, exit status 127, power-off, no panic', async () => {
    const root = await stage('missing', { Entrypoint: ['/usr/bin/not-there'], Cmd: ['x'] });
    const image = await ext4Image(root, 'missing');
    const r = await bootRoot('missing entrypoint', image);
    expect(r.init).toEqual(['error: cannot run "/usr/bin/not-there": No such file or directory', 'exit status 127']);
    expect(r.exitStatus).toBe(127);
    expect(r).toMatchObject({ poweredOff: true, panic: false });
  });
});
