/**
 * The guest init (guest/init.c, built into dist/guest/mkimage-init) on the host, without QEMU: what
 * guestInitFiles() hands to --from, and the init run as PID 1 of a new PID and mount namespace
 * chrooted into a staged root (`unshare --pid --fork --mount --root=DIR`). There, its reboot()
 * ends only the namespace (the kernel kills the namespace's init with SIGINT), and its
 * mounts vanish with the namespace. The staged root is a plain directory, never a mount root, so
 * the init's final `mount -o remount,ro /` fails (EINVAL) instead of touching a host filesystem.
 * Milliseconds per case; the guest tests (test/guest/boot-root.test.ts) prove the same in a VM.
 */
import { execa } from 'execa';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUEST_MOUNT_POINTS, guestInitBinaryPath, guestInitFiles } from '../../src/guest/init.js';
import type { ImageConfig } from '../../src/guest/image-config.js';
import { RICH, RICH_ARGV, RICH_ENV, buildEntrypoint, entrypointLines, stageRoot } from '../guest/helpers/stage-root.js';
import { cleanDir, tempDir } from './helpers/machine.js';

let dir: string;
let app: Buffer;
let n = 0;
beforeAll(async () => {
  dir = await tempDir('mkimage-init-');
  app = await buildEntrypoint(dir);
});
afterAll(async () => {
  if (dir) expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

/** Stages a root and runs /.mkimage/init as PID 1 in it; returns its console lines. */
async function runInit(config: ImageConfig | string | null, args: string[] = [], extraDirs: string[] = []) {
  const root = await stageRoot(join(dir, `root${n++}`), app, config, extraDirs);
  const r = await execa('unshare', ['--pid', '--fork', '--mount', `--root=${root}`, '/.mkimage/init', ...args], { reject: false, timeout: 30_000, stdin: 'ignore', all: true });
  const lines = String(r.all).split('\n').filter(Boolean);
  return { root, ended: r.signal ?? r.exitCode, lines, init: lines.filter((l) => l.startsWith('mkimage-init: ')).map((l) => l.slice(14)) };
}

describe('guestInitFiles', () => {
  it('gives the mount points, /.mkimage and the init: a static x86-64 ELF (no PT_INTERP), 0755, root-owned', async () => {
    const files = await guestInitFiles();
    expect(files.map((f) => [f.path, f.type, f.mode.toString(8), f.uid, f.gid])).toEqual([
      ...GUEST_MOUNT_POINTS.map((m) => [m.path, 'dir', m.mode.toString(8), 0, 0]),
      ['/.mkimage', 'dir', '755', 0, 0],
      ['/.mkimage/init', 'file', '755', 0, 0],
    ]);
    const elf = files.at(-1)!.data!;
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf.readUInt16LE(18)).toBe(62); // e_machine EM_X86_64
    const phoff = Number(elf.readBigUInt64LE(32));
    const phentsize = elf.readUInt16LE(54);
    const types = Array.from({ length: elf.readUInt16LE(56) }, (_, i) => elf.readUInt32LE(phoff + i * phentsize));
    expect(types).not.toContain(3); // PT_INTERP: no dynamic loader, no libc needed in the image
    expect((await stat(guestInitBinaryPath())).size).toBe(elf.length);
  });
});

describe('the init as PID 1 (PID namespace, chroot)', () => {
  it('refuses to run as anything but PID 1', async () => {
    const r = await execa(guestInitBinaryPath(), [], { reject: false });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/^mkimage-init: error: must run as PID 1 \(the kernel's init=\), not as PID \d+$/);
  });

  it('runs Entrypoint + Cmd with Env, WorkingDir (created) and User (names, supplementary groups) exactly; one exit-status line', async () => {
    const r = await runInit(RICH);
    const [e, ...more] = entrypointLines(r.lines);
    expect(more).toEqual([]);
    expect(e!.argv).toEqual(RICH_ARGV);
    expect(e!.env).toEqual(RICH_ENV);
    expect(e!.cwd).toBe('/work/sub dir');
    expect({ uid: e!.uid, gid: e!.gid, groups: [...e!.groups].sort() }).toEqual({ uid: 1000, gid: 1000, groups: [1000, 2000] });
    expect(e!.pid).toBe(2);
    expect(e!.tmp).toMatch(/^tmpfs \/tmp tmpfs rw,nosuid,nodev/);
    expect(r.init).toEqual(['exit status 0']);
    expect(r.ended).toBe('SIGINT'); // reboot() in a PID namespace: SIGINT to its init (unshare passes it on)
  });

  it('the exit status, and a signal by number and name', async () => {
    expect((await runInit({ Entrypoint: ['/bin/app'], Env: ['APP_EXIT=3'] })).init).toEqual(['exit status 3']);
    expect((await runInit({ Cmd: ['/bin/app'], Env: ['APP_EXIT=255'] })).init).toEqual(['exit status 255']);
    expect((await runInit({ Cmd: ['app'], Env: ['APP_SIGNAL=9'] })).init).toEqual(['killed by signal 9 (SIGKILL)']);
    expect((await runInit({ Cmd: ['app'], Env: ['APP_SIGNAL=15'] })).init).toEqual(['killed by signal 15 (SIGTERM)']);
  });

  it('its own arguments (the kernel words after --) replace Entrypoint + Cmd; Env, WorkingDir and User stay', async () => {
    const r = await runInit({ ...RICH, Entrypoint: ['/nonexistent'] }, ['app', 'a b', '', 'k=v']);
    const [e] = entrypointLines(r.lines);
    expect(e!.argv).toEqual(['app', 'a b', '', 'k=v']);
    expect(e!.env).toEqual(RICH_ENV);
    expect(e!.uid).toBe(1000);
    expect(r.init).toEqual(['exit status 0']);
  });

  it('numeric user and group (no supplementary groups with an explicit group), OCI default PATH, HOME', async () => {
    const [e] = entrypointLines((await runInit({ Cmd: ['app'], User: '1000:2000' })).lines);
    expect({ uid: e!.uid, gid: e!.gid, groups: e!.groups }).toEqual({ uid: 1000, gid: 2000, groups: [2000] });
    expect(e!.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/home/app']);
    const [f] = entrypointLines((await runInit({ Cmd: ['app'], User: '4242', Env: ['HOME=/h'] }, [], ['h'])).lines);
    expect({ uid: f!.uid, gid: f!.gid, cwd: f!.cwd }).toEqual({ uid: 4242, gid: 0, cwd: '/' });
    expect(f!.env).toEqual(['HOME=/h', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    const [g] = entrypointLines((await runInit({ Cmd: ['app'], User: 'app:extra' })).lines);
    expect({ uid: g!.uid, gid: g!.gid }).toEqual({ uid: 1000, gid: 2000 });
  });

  it('reads JSON escapes (\\u, surrogate pairs, \\/), skips unknown and nested members, takes null as absent', async () => {
    const raw = '{"schemaVersion":1,"source":{"diffIds":["sha256:x"],"extra":[1,2.5e3,true,false,null,{"a":[]}]},' +
      '"config":{"ExposedPorts":{"80/tcp":{}},"Entrypoint":["app","\\u00e9\\ud83d\\ude00","a\\/b\\tc\\"d\\\\"],"Cmd":null,"User":null,"Labels":{"k":"v"}}}';
    const [e] = entrypointLines((await runInit(raw)).lines);
    expect(e!.argv).toEqual(['app', 'é😀', 'a/b\tc"d\\']);
    expect(e!.uid).toBe(0);
  });

  it('fails clearly and still powers off: missing or malformed config, no command, command not found, unknown user', async () => {
    expect((await runInit(null)).init).toEqual(['error: cannot read /.mkimage/config.json: No such file or directory', 'exit status 125']);
    expect((await runInit('{"config":{"Cmd":["app"]')).init).toEqual(["error: /.mkimage/config.json: expected ',' or '}' at byte 24", 'exit status 125']);
    expect((await runInit('{"config":{"Cmd":["\\u0000"]}}')).init).toEqual(['error: /.mkimage/config.json: \\u0000 in a string at byte 25', 'exit status 125']);
    expect((await runInit({ Env: ['A=b'] })).init).toEqual(['error: /.mkimage/config.json has no Entrypoint or Cmd, and the kernel command line gave none after --', 'exit status 125']);
    expect((await runInit({ Cmd: ['/usr/bin/not-there'] })).init).toEqual(['error: cannot run "/usr/bin/not-there": No such file or directory', 'exit status 127']);
    expect((await runInit({ Cmd: ['nothere'], Env: ['PATH=/bin:/usr/bin'] })).init).toEqual(['error: cannot run "nothere": not found (PATH=/bin:/usr/bin)', 'exit status 127']);
    expect((await runInit({ Cmd: ['/etc/passwd'] })).init).toEqual(['error: cannot run "/etc/passwd": Permission denied', 'exit status 126']);
    expect((await runInit({ Cmd: ['app'], User: 'nobody' })).init).toEqual(['error: user "nobody" not found in /etc/passwd', 'exit status 126']);
    expect((await runInit({ Cmd: ['app'], User: 'app:nogroup' })).init).toEqual(['error: group "nogroup" not found in /etc/group', 'exit status 126']);
  });
});
