/**
 * qemu-args from the real CLI: the forms scripts use (-0 for paths with spaces), --cmdline for an
 * image without a root filesystem, and the guest RAM floor.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanDir, cli, sh, tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

async function make(name: string, args: string[] = []): Promise<string> {
  const img = join(dir, name);
  const r = await cli(['create', '-q', '--size', '64M', '--sparse', ...args, img]);
  expect(r.exitCode, r.stderr).toBe(0);
  return img;
}

describe('qemu-args for scripts', () => {
  it('-0: NUL-separated arguments that mapfile -d "" reads back intact for a path with spaces', async () => {
    await mkdir(join(dir, 'my images'));
    const img = await make('my images/disk one.img');
    const json = JSON.parse((await cli(['qemu-args', '--json', img])).stdout);
    const r = await cli(['qemu-args', '-0', img]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.endsWith('\0')).toBe(true);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(json.args);
    expect(json.args.some((a: string) => a.includes('mem-path=') && a.includes('disk one.img'))).toBe(true);
    // As the README shows it: bash reads the arguments into an array, one element per argument.
    const bash = await sh('bash', ['-c', `mapfile -d '' a < <(node "$0" qemu-args -0 "$1"); printf '%s\\n' "\${#a[@]}" "\${a[5]}"`, join(import.meta.dirname, '../../bin/mkimage.js'), img]);
    expect(bash.stdout.split('\n')).toEqual([String(json.args.length), json.args[5]]);
  });

  it('--cmdline for an ext4 image: the root= line; for --fs none: nothing on stdout, exit 2, the hint on stderr', async () => {
    const ext4 = await make('ext4.img');
    const ok = await cli(['qemu-args', '--cmdline', ext4]);
    expect(ok).toMatchObject({ exitCode: 0, stdout: 'root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw' });
    const none = await make('none.img', ['--fs', 'none']);
    const r = await cli(['qemu-args', '--cmdline', none]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`mkimage: ${none} has no ext4, xfs or erofs filesystem to be the guest's root, so there is no root= command line: in the guest, mkfs on /dev/pmem0 first: the image has no filesystem`);
    // --json keeps the answer: no cmdline field, the mount hint.
    const j = await cli(['qemu-args', '--cmdline', '--json', none]);
    expect(j.exitCode).toBe(0);
    expect(JSON.parse(j.stdout)).not.toHaveProperty('cmdline');
  });

  it('--mem below what a guest needs is refused, naming the minimum', async () => {
    const img = await make('disk.img');
    const r = await cli(['qemu-args', '--mem', '3K', img]);
    expect(r.exitCode).toBe(2);
    // 64 MiB image, 2 MiB headers: 15872 pages of 4 KiB, 64 B each = 992 KiB of struct pages.
    expect(r.stderr).toBe(`mkimage: --mem 3 KiB is too little guest RAM for ${img}: give at least 65.0 MiB (64 MiB for the kernel and 992 KiB for the struct pages of /dev/pmem0: 64 B per 4 KiB page with --memmap ram)`);
    expect((await cli(['qemu-args', '--mem', '65M', img])).exitCode).toBe(0);
  });
});
