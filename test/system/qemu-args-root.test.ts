/**
 * `mkimage qemu-args` on real images (ext4 by mkimage, erofs by mkfs.erofs written into the
 * partition of an `--fs none` image, and one built with --from): --device, --cmdline from the
 * source record, with --guest-init / --no-guest-init and --init, and the usage errors. What a guest does with these lines: test/guest/boot-root.test.ts.
 */
import { execa } from 'execa';
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanDir, cli, tempDir } from './helpers/machine.js';

let dir: string;
let ext4: string;
let erofs: string;
let none: string;
let fromImg: string;
beforeAll(async () => {
  dir = await tempDir('mkimage-qargs-');
  ext4 = join(dir, 'ext4.img');
  expect((await cli(['--size', '16M', ext4])).exitCode).toBe(0);
  none = join(dir, 'none.img');
  const r = await cli(['--size', '8M', '--fs', 'none', none, '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  await mkdir(join(dir, 'tree'));
  await writeFile(join(dir, 'tree/hello'), 'hi');
  await execa('mkfs.erofs', ['--quiet', join(dir, 'part.erofs'), join(dir, 'tree')]);
  erofs = join(dir, 'erofs.img');
  const e = await cli(['--size', '8M', '--fs', 'none', erofs, '--json']);
  const bytes = await readFile(join(dir, 'part.erofs'));
  const fh = await open(erofs, 'r+');
  await fh.write(bytes, 0, bytes.length, JSON.parse(e.stdout).layout.partitionOffsetBytes);
  await fh.close();
  // An image built with --from (a plain layer tar): its source record says hasGuestConfig.
  await execa('tar', ['-C', join(dir, 'tree'), '-cf', join(dir, 'layer.tar'), 'hello']);
  fromImg = join(dir, 'from.img');
  const f = await cli(['--from', join(dir, 'layer.tar'), '--size', 'auto', '--sparse', fromImg]);
  expect(f.exitCode, f.stderr).toBe(0);
});
afterAll(async () => {
  if (dir) expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

describe('qemu-args', () => {
  it('--device virtio-pmem: no nvdimm=on, virtio-pmem-pci on the same backend; nvdimm stays the default', async () => {
    const v = await cli(['qemu-args', '--mem', '512M', '--device', 'virtio-pmem', ext4, '--json']);
    expect(v.exitCode, v.stderr).toBe(0);
    const j = JSON.parse(v.stdout);
    expect(j.device).toBe('virtio-pmem');
    expect(j.args).toEqual(['-machine', 'pc', '-m', '512M,slots=2,maxmem=528M', '-object', `memory-backend-file,id=mem1,share=on,mem-path=${ext4},size=16777216`, '-device', 'virtio-pmem-pci,memdev=mem1,id=vpmem1']);
    const n = JSON.parse((await cli(['qemu-args', ext4, '--json'])).stdout);
    expect(n.device).toBe('nvdimm');
    expect(n.args).toContain('pc,nvdimm=on');
  });

  it('--cmdline: unchanged without --guest-init; init=/.mkimage/init with it; --init PATH -- ARGS', async () => {
    expect((await cli(['qemu-args', ext4, '--cmdline'])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw');
    expect((await cli(['qemu-args', ext4, '--cmdline', '--guest-init'])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init');
    expect((await cli(['qemu-args', ext4, '--cmdline', '--guest-init', '--init', '/bin/sh', '--', '-c', 'echo hi', ''])).stdout).toBe(
      'root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init -- /bin/sh -c "echo hi" ""',
    );
    expect((await cli(['qemu-args', ext4, '--cmdline', '--readonly', '--init', '/sbin/init', '--', 'single'])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax ro init=/sbin/init -- single');
  });

  it('an image built with --from boots through /.mkimage/init with no flag (its source record); --no-guest-init lets the kernel run --init', async () => {
    expect((await cli(['qemu-args', fromImg, '--cmdline'])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init');
    expect((await cli(['qemu-args', fromImg, '--cmdline', '--init', 'app', '--', 'one two', ''])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init -- app "one two" ""');
    expect((await cli(['qemu-args', fromImg, '--cmdline', '--no-guest-init', '--init', '/sbin/init', '--', 'single'])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/sbin/init -- single');
    expect((await cli(['qemu-args', fromImg, '--cmdline', '--no-guest-init'])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw');
    expect(JSON.parse((await cli(['qemu-args', fromImg, '--json'])).stdout)).toMatchObject({ guestInit: true, guestInitFrom: 'source-record', cmdline: 'root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init' });
    // Without a record: as before, and the JSON says why.
    expect(JSON.parse((await cli(['qemu-args', ext4, '--json'])).stdout)).toMatchObject({ guestInit: false, guestInitFrom: 'none', cmdline: 'root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw' });
    expect(JSON.parse((await cli(['qemu-args', ext4, '--json', '--guest-init'])).stdout)).toMatchObject({ guestInit: true, guestInitFrom: 'option' });
  });

  it('a damaged source record cannot say: qemu-args asks for --guest-init or --no-guest-init', async () => {
    const bad = join(dir, 'bad-record.img');
    await copyFile(fromImg, bad);
    const fh = await open(bad, 'r+');
    await fh.write(Buffer.from('X'), 0, 1, 1024 + 40); // a byte of the record's JSON: its CRC fails
    await fh.close();
    const r = await cli(['qemu-args', bad, '--cmdline']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/the source record at byte 1024 is damaged \(source\.crc32: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\), so it cannot say whether the image holds \/\.mkimage\/init: give --guest-init or --no-guest-init/);
    expect((await cli(['qemu-args', bad, '--cmdline', '--guest-init'])).stdout).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init');
  });

  it('erofs: detected, always ro', async () => {
    expect((await cli(['inspect', erofs])).stdout).toMatch(/filesystem: erofs /);
    expect((await cli(['qemu-args', erofs, '--cmdline', '--guest-init'])).stdout).toBe('root=/dev/pmem0 rootfstype=erofs rootflags=dax ro init=/.mkimage/init');
    expect(JSON.parse((await cli(['qemu-args', erofs, '--json'])).stdout).mountHint).toBe('mount -t erofs -o dax,ro /dev/pmem0 /mnt');
  });

  it('usage errors (exit 2, one line): bad device, ARGS without --init, a double quote, --init on an image without a root filesystem', async () => {
    const cases: [string[], RegExp][] = [
      [['qemu-args', ext4, '--device', 'virtio'], /--device takes nvdimm or virtio-pmem, not "virtio"/],
      [['qemu-args', ext4, '--', 'a'], /arguments after the image \("a"\) are for --init PATH: give --init/],
      [['qemu-args', ext4, '--cmdline', '--init', '/bin/app', '--', 'say "hi"'], /cannot carry the argument "say \\"hi\\"": it has a double quote/],
      [['qemu-args', ext4, '--cmdline', '--init', 'bin/app'], /--init takes an absolute path inside the image/],
      [['qemu-args', none, '--cmdline', '--guest-init'], /--init needs a root filesystem \(ext4, xfs or erofs\) in the image; it holds none/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    }
  });
});
