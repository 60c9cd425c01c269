/**
 * Proof in a real guest of the whole way from a container image to a running guest, as the
 * README's "From a container image to a running guest" gives it: an OCI image built in the test
 * (helpers/stage-root.ts appImage(): index.json, manifest, a config with Entrypoint, Cmd, Env,
 * WorkingDir and User, a gzip and a zstd layer) whose entrypoint is a static binary
 * (test/guest/fixtures/entrypoint.c: no shell, no libc in the image), turned into a root image with
 * `mkimage --from OCI_DIR --size auto --fs ext4|erofs IMAGE`, and booted by qemu/boot-root.sh with
 * `mkimage qemu-args` (-0) and `mkimage qemu-args --cmdline` (no flag: the image's source record
 * says it boots through /.mkimage/init), Debian's kernel and an initramfs made by Debian's
 * mkinitramfs (qemu/build-initramfs.sh), on an emulated NVDIMM and on virtio-pmem. The console
 * shows the entrypoint's arguments, environment, working directory and user exactly, `/` mounted
 * with dax, one exit-status line, and the power-off.
 *
 * Five boots, two at a time: ext4 and erofs each on an NVDIMM and on virtio-pmem (one of them with
 * `--init PATH -- ARGS`, one exiting 3), and a missing entrypoint. Each boot takes 15-30 s under
 * TCG on a free core of the 2-core machine, more under load.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageConfig } from '../../src/guest/image-config.js';
import { REPO, cleanDir, cli, tempDir } from '../system/helpers/machine.js';
import { RICH, RICH_ARGV, RICH_ENV, appImage, buildEntrypoint, entrypointLines, type EntrypointLine } from './helpers/stage-root.js';

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

/** The OCI image written at DIR/NAME.oci, then `mkimage --from DIR/NAME.oci --size auto --fs FS DIR/NAME.img`. */
async function fromImage(name: string, fs: 'ext4' | 'erofs', config: ImageConfig, extraDirs: string[] = []): Promise<string> {
  const oci = await appImage(join(dir, `${name}.oci`), app, config, extraDirs);
  const image = join(dir, `${name}.img`);
  const r = await cli(['--from', oci, '--size', 'auto', '--fs', fs, image]);
  expect(r.exitCode, r.stderr).toBe(0);
  expect((await cli(['inspect', image])).stdout).toMatch(new RegExp(`filesystem: ${fs} [^]*source: example\\.com/app:1 sha256:[0-9a-f]{64}, config sha256:[0-9a-f]{64}, boots /\\.mkimage/init`));
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

describe.concurrent('a container image booted as the root: mkimage --from, qemu-args, Debian kernel + mkinitramfs', { timeout: 900_000 }, () => {
  it('ext4 on an NVDIMM: argv, env, working directory, user exactly; / is ext4 with dax; exit status 0; power-off', async () => {
    const image = await fromImage('ext4-nvdimm', 'ext4', RICH);
    const r = await bootRoot('ext4 nvdimm', image);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(RICH_ARGV);
    expect(e.env).toEqual(RICH_ENV);
    expect(e.cwd).toBe('/work/sub dir'); // created by the init: the image has no /work
    expect({ uid: e.uid, gid: e.gid, groups: [...e.groups].sort() }).toEqual({ uid: 1000, gid: 1000, groups: [1000, 2000] });
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ ext4 rw,(\S+,)?dax=always[ ,]/);
    expect(e.tmp).toMatch(/^tmpfs \/tmp tmpfs rw,/); // the mount point --from added
    expect(r.init).toEqual(['exit status 0']);
    expect(r.exitStatus).toBe(0);
    expect(r).toMatchObject({ poweredOff: true, panic: false, device: 'nvdimm' });
    expect(r.cmdline).toMatch(/ root=\/dev\/pmem0 rootfstype=ext4 rootflags=dax rw init=\/\.mkimage\/init$/);
  });

  it('ext4 on virtio-pmem: --init PATH -- ARGS replaces Entrypoint + Cmd, words with spaces, = and a quote arrive intact; / has dax', async () => {
    const image = await fromImage('ext4-virtio', 'ext4', RICH);
    const r = await bootRoot('ext4 virtio-pmem --init', image, ['--device', 'virtio-pmem', '--init', 'app', '--', 'one two', '', 'k=v w', "it's"]);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(['app', 'one two', '', 'k=v w', "it's"]);
    expect(e.env).toEqual(RICH_ENV); // the config's Env, WorkingDir and User still apply
    expect(e.cwd).toBe('/work/sub dir');
    expect(e.uid).toBe(1000);
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ ext4 rw,(\S+,)?dax=always[ ,]/);
    expect(r.init).toEqual(['exit status 0']);
    expect(r).toMatchObject({ poweredOff: true, panic: false, device: 'virtio-pmem' });
    expect(r.cmdline).toMatch(/ init=\/\.mkimage\/init -- app "one two" "" "k=v w" it's$/);
  });

  it('erofs on an NVDIMM: read-only root with dax, numeric user, default PATH, exit status 3', async () => {
    const image = await fromImage('erofs-nvdimm', 'erofs', { Entrypoint: ['app'], Cmd: ['exit three'], Env: ['APP_EXIT=3'], WorkingDir: '/work', User: '1000:2000' }, ['work']);
    const r = await bootRoot('erofs nvdimm exit 3', image);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(['app', 'exit three']);
    expect(e.env).toEqual(['APP_EXIT=3', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/home/app']);
    expect({ cwd: e.cwd, uid: e.uid, gid: e.gid, groups: e.groups }).toEqual({ cwd: '/work', uid: 1000, gid: 2000, groups: [2000] });
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ erofs ro,(\S+,)?dax=always[ ,]/);
    expect(e.tmp).toMatch(/^tmpfs \/tmp tmpfs rw,/); // on a read-only root: the mount point --from added
    expect(r.init).toEqual(['exit status 3']);
    expect(r.exitStatus).toBe(3);
    expect(r).toMatchObject({ poweredOff: true, panic: false });
    expect(r.cmdline).toMatch(/ root=\/dev\/pmem0 rootfstype=erofs rootflags=dax ro init=\/\.mkimage\/init$/);
  });

  it('erofs on virtio-pmem: argv, env, working directory, user exactly; / is erofs with dax', async () => {
    // A read-only root: the working directory must be in the image.
    const image = await fromImage('erofs-virtio', 'erofs', RICH, ['work/sub dir']);
    const r = await bootRoot('erofs virtio-pmem', image, ['--device', 'virtio-pmem']);
    const e = entrypointLine(r);
    expect(e.argv).toEqual(RICH_ARGV);
    expect(e.env).toEqual(RICH_ENV);
    expect(e.cwd).toBe('/work/sub dir');
    expect({ uid: e.uid, gid: e.gid }).toEqual({ uid: 1000, gid: 1000 });
    expect(e.root).toMatch(/^\/dev\/pmem0 \/ erofs ro,(\S+,)?dax=always[ ,]/);
    expect(r.init).toEqual(['exit status 0']);
    expect(r).toMatchObject({ poweredOff: true, panic: false, device: 'virtio-pmem' });
  });

  it('a missing entrypoint: a clear message, exit status 127, power-off, no panic', async () => {
    const image = await fromImage('missing', 'ext4', { Entrypoint: ['/usr/bin/not-there'], Cmd: ['x'] });
    const r = await bootRoot('missing entrypoint', image);
    expect(r.init).toEqual(['error: cannot run "/usr/bin/not-there": No such file or directory', 'exit status 127']);
    expect(r.exitStatus).toBe(127);
    expect(r).toMatchObject({ poweredOff: true, panic: false });
  });
});
