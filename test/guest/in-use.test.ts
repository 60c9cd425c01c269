/**
 * A running guest owns its image: while a QEMU guest runs on a ZFS image, with the pool imported in
 * the guest, the host's `mkimage attach` and `mkimage layers list` refuse with EBUSY naming the QEMU
 * process, and `inspect` says the pool is active and not attached here. The host never imports
 * the pool the guest has imported (that would corrupt it).
 *
 * QEMU runs here directly (not through qemu/boot.sh, whose QEMU reads no input) with the test
 * guest's kernel and initramfs (qemu/build-guest.sh) and the NVDIMM options of `mkimage qemu-args`;
 * `mkimage.shell=1` gives a shell on the console after the guest's own report, through which the
 * test imports the pool again in the guest, holds it while the host tries, then exports it and
 * powers off. One boot, ~10-20 s under TCG.
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REPO, cleanDir, cli, tempDir } from '../system/helpers/machine.js';

const BUILD = join(REPO, 'qemu/build-guest.sh');
let cache: string;
let dir: string;
let qemu: ResultPromise | undefined;

beforeAll(async () => {
  const r = await execa('bash', [BUILD], { timeout: 600_000 });
  cache = String(r.stdout).trim().split('\n').pop()!;
}, 600_000);
beforeEach(async () => {
  dir = await tempDir('mkimage-guest-inuse-');
});
afterEach(async () => {
  qemu?.kill('SIGKILL');
  await qemu?.catch(() => undefined);
  qemu = undefined;
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

describe('an image a running guest uses', () => {
  it('the host refuses attach and layers list with EBUSY naming QEMU while the guest has the pool imported', { timeout: 300_000 }, async () => {
    const image = join(dir, 'guest.img');
    const pool = `ginuse${process.pid}`;
    const c = await cli(['--size', '256M', '--sparse', '--fs', 'zfs', '--pool', pool, image]);
    expect(c.exitCode, c.stderr).toBe(0);
    const q = await cli(['qemu-args', '--json', '--mem', '512M', image]);
    expect(q.exitCode, q.stderr).toBe(0);
    const nvdimm = (JSON.parse(q.stdout) as { args: string[] }).args;
    const kernel = existsSync(join(cache, 'vmlinux')) ? join(cache, 'vmlinux') : join(cache, 'vmlinuz');
    const accel = existsSync('/dev/kvm') ? 'kvm:tcg' : 'tcg';
    qemu = execa(
      'qemu-system-x86_64',
      ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio', '-monitor', 'none', '-accel', accel, '-smp', '1', ...nvdimm,
        '-kernel', kernel, '-initrd', join(cache, 'initrd.img'), '-append', `console=ttyS0 panic=-1 quiet mkimage.pool=${pool} mkimage.shell=1`],
      { stdin: 'pipe', reject: false, buffer: false, timeout: 280_000 },
    );
    let out = '';
    qemu.stdout!.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const waitFor = async (re: RegExp, what: string) => {
      for (let i = 0; i < 2400 && !re.test(out); i++) {
        if (qemu!.exitCode !== undefined && qemu!.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(re.test(out), `${what}; console:\n${out.slice(-3000)}`).toBe(true);
    };
    const send = (line: string) => qemu!.stdin!.write(`${line}\n`);

    // The guest's own run (import, list, export, report), then its shell: import the pool again.
    await waitFor(/MKIMAGE-GUEST-END/, 'the guest reported');
    const report = JSON.parse(out.split('\n').find((l) => l.startsWith('MKIMAGE-GUEST {'))!.replace('MKIMAGE-GUEST ', '').trim());
    expect(report.zfs).toMatchObject({ imported: true, exported: true });
    await new Promise((r) => setTimeout(r, 1000));
    send('zfs-fuse --no-daemon --no-kstat-mount >/tmp/z2.log 2>&1 &');
    send('i=0; while ! zpool list >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done');
    send(`mkdir -p /mnt/held && zpool import -d /run/zdev -R /mnt/held ${pool} && echo HELD-$((40+2))`);
    await waitFor(/HELD-42/, 'the guest imported the pool again');

    // The host, meanwhile: refused, naming QEMU; nothing attached; inspect says why.
    for (const args of [['attach', '--json', image], ['layers', 'list', '--json', image]]) {
      const r = await cli(args);
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(1);
      const e = (JSON.parse(r.stdout) as { error: { code: string; message: string; data: { users: { pid: number; command: string; how: string[] }[] } } }).error;
      expect(e.code).toBe('EBUSY');
      expect(e.message).toContain(`PID ${qemu.pid} (qemu-system-x86_64 `);
      // The whole command line is in the error's data (the message cuts it at 200 characters).
      expect(e.data.users).toEqual([expect.objectContaining({ pid: qemu.pid, how: expect.arrayContaining(['mapped']) })]);
      expect(e.data.users[0]!.command).toContain(`mem-path=${image}`);
    }
    const i = await cli(['inspect', '--json', image]);
    expect(i.exitCode).toBe(1);
    expect(JSON.parse(i.stdout).pool).toMatchObject({ state: 'active', attachedHere: false });
    const loops = await execa('losetup', ['--list', '--noheadings', '--associated', image]);
    expect(String(loops.stdout)).toBe('');

    // The guest exports its pool and powers off; then the host may attach.
    send(`zpool export ${pool} && echo EXPORTED-$((40+2))`);
    await waitFor(/EXPORTED-42/, 'the guest exported the pool');
    send('poweroff -f');
    const end = await qemu;
    qemu = undefined;
    expect(end.exitCode).toBe(0);
    const a = await cli(['attach', image]);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(a.stdout).toContain('ONLINE');
    expect((await cli(['destroy', '--yes', image])).exitCode).toBe(0);
  });
});
