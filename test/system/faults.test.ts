/**
 * Faults against the real tools (root, loop devices, tmpfs): no space, signals at each phase,
 * missing tools, not root, concurrent creates, hostile pool and dataset names. Each test works in
 * its own temp dir; afterwards no loop device, mount or pool of it may be left (`losetup`,
 * /proc/mounts, `zpool list`), and mkimage leaves either the complete image or nothing.
 *
 * Phases are hit deterministically, not by timers: a wrapper for the tool of that phase, first on
 * PATH, signals mkimage and then runs the real tool or hangs (helpers/faults.ts).
 */
import { execa } from 'execa';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MiB } from '../../src/layout/units.js';
import { injectFault, leftovers, mkimage, pathWith, poolsNamed, readCalls, recordCalls, type Fault } from './helpers/faults.js';
import { cleanDir, loopsUnder, mountsUnder, sh, tempDir, withLoop } from './helpers/machine.js';
import { ensureZfsDaemon } from './helpers/zfs-daemon.js';

let dir: string;
/** Pools a test may have made (by name): none may be left. */
let pools: string[] = [];

beforeEach(async () => {
  dir = await tempDir('mkimage-faults-');
  pools = [];
});

afterEach(async () => {
  const leftPools = await poolsNamed(pools);
  const poolMounts = (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => pools.some((p) => l.startsWith(`${p} `) || l.startsWith(`${p}/`)));
  for (const p of leftPools) await execa('zpool', ['export', '-f', p], { reject: false });
  const left = await cleanDir(dir);
  expect({ ...left, pools: leftPools, poolMounts }).toEqual({ loops: [], mounts: [], pools: [], poolMounts: [] });
});

// CI machines have zfs-fuse installed with its daemon stopped: start it (and stop only that one).
const daemon = await ensureZfsDaemon().catch(() => undefined);
afterAll(async () => {
  await daemon?.stop();
});

/** Whether `--fs zfs` builds a pool on this machine (ZFS up, the zfs part of create in place). */
async function zfsWorks(): Promise<boolean> {
  const help = await mkimage(['create', '--help']);
  if (!help.stdout.includes('--pool')) return false;
  if ((await execa('zpool', ['list'], { reject: false })).exitCode !== 0) return false;
  const d = await tempDir('mkimage-faults-probe-');
  try {
    const img = join(d, 'probe.img');
    const r = await mkimage(['--fs', 'zfs', '--pool', `mkft${process.pid}`, '--sparse', '--size', '128M', img]);
    if (r.exitCode !== 0) return false;
    const i = await mkimage(['inspect', '--json', img]);
    return JSON.parse(i.stdout).filesystem?.type === 'zfs';
  } catch {
    return false;
  } finally {
    await cleanDir(d);
  }
}
const ZFS = await zfsWorks();

// ZFS is part of what CI proves: without it the zfs fault tests below would prove nothing, so its
// absence is a failure here, not a skip.
it('--fs zfs works on this machine (the global setup starts zfs-fuse)', () => {
  expect(ZFS).toBe(true);
});

/** The image is complete (a guest and host tools accept it) or absent; nothing else is in `dir`. */
async function completeOrNothing(img: string, allowed: string[] = []): Promise<'complete' | 'nothing'> {
  expect(await leftovers(dir)).toEqual([]);
  const names = (await readdir(dir)).filter((n) => !allowed.includes(n));
  if (!names.includes(img.split('/').pop()!)) {
    expect(names).toEqual([]);
    return 'nothing';
  }
  const r = await mkimage(['inspect', '--json', img]);
  expect(r.exitCode, r.stdout).toBe(0);
  return 'complete';
}

async function nothingLeftOf(): Promise<void> {
  expect(await loopsUnder(dir)).toEqual([]);
  expect(await mountsUnder(dir)).toEqual([]);
}

// -------------------------------------------------------------------------------------------------

describe('no space', () => {
  async function withTmpfs<T>(sizeMiB: number, body: (small: string) => Promise<T>): Promise<T> {
    const small = join(dir, 'small');
    await mkdir(small);
    await execa('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0755`, 'mkimage-faults', small]);
    try {
      return await body(small);
    } finally {
      await execa('umount', [small], { reject: false });
    }
  }

  it('a preallocated image larger than the filesystem: how much is needed and free, exit 1, no file', async () => {
    await withTmpfs(64, async (small) => {
      const r = await mkimage(['--size', '128M', join(small, 'big.img')]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/^mkimage: not enough space for a preallocated 128 MiB image in .*small: 128 MiB needed, 64(\.0)? MiB free \(use --sparse/);
      expect(await readdir(small)).toEqual([]);
    });
  });

  it('the space goes between the check and fallocate: NoSpace with the numbers, no file', async () => {
    await withTmpfs(64, async (small) => {
      // Another writer takes 40 MiB after mkimage's preflight saw 64 MiB free for a 48 MiB image.
      const bin = join(dir, 'bin');
      await mkdir(bin);
      const real = (await execa('sh', ['-c', 'command -v fallocate'])).stdout.trim();
      await writeFile(join(bin, 'fallocate'), `#!/bin/sh\n${real} -l 40M ${join(small, 'other-writer')}\nexec ${real} "$@"\n`);
      await chmod(join(bin, 'fallocate'), 0o755);
      const r = await mkimage(['--size', '48M', join(small, 'img.img')], { env: { PATH: `${bin}:${process.env.PATH}` } });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/^mkimage: no space for a preallocated 48 MiB image in .*small: 48 MiB needed, [\d.]+ MiB free after the attempt/);
      expect(await readdir(small)).toEqual(['other-writer']);
    });
  });

  it('a sparse image whose populate fills the host filesystem: exit 1, no file', async () => {
    await withTmpfs(32, async (small) => {
      const tree = join(dir, 'tree');
      await mkdir(tree);
      await writeFile(join(tree, 'blob'), Buffer.alloc(48 * MiB, 0x5a));
      const r = await mkimage(['--size', '256M', '--sparse', '--populate', tree, join(small, 'thin.img')]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/No space left on device|no space/i);
      expect(await readdir(small)).toEqual([]);
    });
  });
});

// -------------------------------------------------------------------------------------------------

describe('signals at each phase: the complete image or nothing, exit 130/143', () => {
  interface Phase {
    name: string;
    args: string[];
    tool: string;
    when?: string;
    fault: Fault;
    populate?: boolean;
  }
  const ext4 = ['--size', '64M'];
  const xfs = ['--fs', 'xfs', '--size', '304M', '--sparse'];
  const phases: Phase[] = [
    { name: 'allocation: signal, fallocate hangs', args: ext4, tool: 'fallocate', fault: 'signal-then-hang' },
    { name: 'allocation: signal while fallocate runs', args: ext4, tool: 'fallocate', fault: 'signal-then-run' },
    { name: 'allocation: signal after fallocate', args: ext4, tool: 'fallocate', fault: 'run-then-signal' },
    { name: 'mkfs.ext4: signal, mkfs hangs', args: ext4, tool: 'mkfs.ext4', fault: 'signal-then-hang' },
    { name: 'mkfs.ext4 --populate: signal after mkfs, before the rename', args: [...ext4, '--populate'], tool: 'mkfs.ext4', fault: 'run-then-signal', populate: true },
    { name: 'loop attach: signal after losetup attached', args: xfs, tool: 'losetup', when: '--find', fault: 'run-then-signal' },
    { name: 'loop attached, mkfs.xfs: signal, mkfs hangs', args: xfs, tool: 'mkfs.xfs', fault: 'signal-then-hang' },
    { name: 'loop attached, mkfs.xfs: signal after mkfs', args: xfs, tool: 'mkfs.xfs', fault: 'run-then-signal' },
    { name: 'xfs populate: signal after mount', args: [...xfs, '--populate'], tool: 'mount', fault: 'run-then-signal', populate: true },
    { name: 'xfs populate: signal, cp hangs', args: [...xfs, '--populate'], tool: 'cp', fault: 'signal-then-hang', populate: true },
    { name: 'xfs populate: signal after umount', args: [...xfs, '--populate'], tool: 'umount', fault: 'run-then-signal', populate: true },
    { name: 'loop detach: signal after losetup --detach', args: xfs, tool: 'losetup', when: '--detach', fault: 'run-then-signal' },
  ];

  for (const p of phases) {
    for (const signal of ['INT', 'TERM'] as const) {
      it(`SIG${signal} ${p.name}`, async () => {
        const bin = join(dir, 'bin');
        await injectFault(bin, { tool: p.tool, fault: p.fault, signal, when: p.when });
        const allowed = ['bin'];
        const args = [...p.args];
        if (p.populate) {
          const tree = join(dir, 'tree');
          await mkdir(join(tree, 'a/b'), { recursive: true });
          await writeFile(join(tree, 'a/b/c.txt'), 'payload\n');
          args.push(tree);
          allowed.push('tree');
        }
        const img = join(dir, 'x.img');
        const r = await mkimage([...args, img], { env: { PATH: `${bin}:${process.env.PATH}` } });
        expect(r.stderr).toMatch(/interrupted/);
        expect(r.exitCode).toBe(signal === 'INT' ? 130 : 143);
        await nothingLeftOf();
        expect(await completeOrNothing(img, allowed)).toBe('nothing');
      });
    }
  }

  // Ctrl-C in a terminal signals the whole process group: the tool running dies too.
  const groupCases: Array<{ name: string; tool: string; when?: string; populate?: boolean }> = [
    { name: 'mkfs.xfs starts', tool: 'mkfs.xfs' },
    { name: 'mount starts (xfs populate)', tool: 'mount', populate: true },
    { name: 'losetup --detach starts: the detach is retried while unwinding', tool: 'losetup', when: '--detach' },
  ];
  for (const g of groupCases) {
    it(`Ctrl-C to the process group while ${g.name}: nothing left`, async () => {
      const bin = join(dir, 'bin');
      await injectFault(bin, { tool: g.tool, fault: 'group-signal-then-run', signal: 'INT', when: g.when });
      const args = [...xfs];
      const allowed = ['bin'];
      if (g.populate) {
        await mkdir(join(dir, 'tree'));
        await writeFile(join(dir, 'tree/f.txt'), 'payload\n');
        args.push('--populate', join(dir, 'tree'));
        allowed.push('tree');
      }
      const img = join(dir, 'g.img');
      const r = await mkimage([...args, img], { env: { PATH: `${bin}:${process.env.PATH}` }, group: true });
      expect(r.exitCode, r.stderr).toBe(130);
      await nothingLeftOf();
      expect(await completeOrNothing(img, allowed)).toBe('nothing');
    });
  }

  describe('zfs', () => {
    const zfsPhases: Array<{ name: string; tool: string; when: string; fault: Fault; populate?: boolean }> = [
      { name: 'zpool create: signal, zpool hangs', tool: 'zpool', when: 'create', fault: 'signal-then-hang' },
      { name: 'zpool create: signal after the pool exists', tool: 'zpool', when: 'create', fault: 'run-then-signal' },
      { name: 'dataset tree: signal after a zfs create', tool: 'zfs', when: 'create', fault: 'run-then-signal' },
      { name: 'dataset tree: signal, zfs create hangs', tool: 'zfs', when: 'create', fault: 'signal-then-hang' },
      { name: 'export: signal after zpool export', tool: 'zpool', when: 'export', fault: 'run-then-signal' },
      { name: 'export: signal while zpool export runs', tool: 'zpool', when: 'export', fault: 'signal-then-run' },
      { name: 'populate: signal, cp into the pool hangs', tool: 'cp', when: '-a', fault: 'signal-then-hang', populate: true },
    ];
    for (const p of zfsPhases) {
      for (const signal of ['INT', 'TERM'] as const) {
        it(`SIG${signal} ${p.name}`, async () => {
          const pool = `mkft${process.pid}${signal.toLowerCase()}`;
          pools.push(pool);
          const bin = join(dir, 'bin');
          await injectFault(bin, { tool: p.tool, fault: p.fault, signal, when: p.when });
          const allowed = ['bin'];
          const extra: string[] = [];
          if (p.populate) {
            await mkdir(join(dir, 'tree/etc'), { recursive: true });
            await writeFile(join(dir, 'tree/etc/motd'), 'hello\n');
            extra.push('--populate', join(dir, 'tree'));
            allowed.push('tree');
          }
          const img = join(dir, 'z.img');
          const r = await mkimage(['--fs', 'zfs', '--pool', pool, '--size', '128M', '--sparse', ...extra, img], { env: { PATH: `${bin}:${process.env.PATH}` } });
          expect(r.exitCode, r.stderr).toBe(signal === 'INT' ? 130 : 143);
          await nothingLeftOf();
          expect(await poolsNamed([pool])).toEqual([]);
          expect(await completeOrNothing(img, allowed)).toBe('nothing');
        });
      }
    }
  });

  it('--force over an existing image, interrupted in mkfs: the old image is left as it was', async () => {
    const img = join(dir, 'old.img');
    expect((await mkimage(['--size', '64M', '--sparse', '--seed', 'old', img])).exitCode).toBe(0);
    const before = await sh('sha256sum', [img]);
    const bin = join(dir, 'bin');
    await injectFault(bin, { tool: 'mkfs.ext4', fault: 'signal-then-hang', signal: 'INT' });
    const r = await mkimage(['--size', '128M', '--force', img], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.exitCode).toBe(130);
    expect((await sh('sha256sum', [img])).stdout).toBe(before.stdout);
    expect(await leftovers(dir)).toEqual([]);
  });

  it('a second SIGINT while cleaning up does not cut the clean-up short', async () => {
    const bin = join(dir, 'bin');
    // The first signal while mkfs.xfs runs; the second when the clean-up detaches the loop device.
    await injectFault(bin, { tool: 'mkfs.xfs', fault: 'signal-then-hang', signal: 'INT' });
    await injectFault(bin, { tool: 'losetup', fault: 'signal-then-run', signal: 'INT', when: '--detach' });
    const img = join(dir, 's.img');
    const r = await mkimage([...xfs, img], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.exitCode).toBe(130);
    await nothingLeftOf();
    expect(await completeOrNothing(img, ['bin'])).toBe('nothing');
  });
});

// -------------------------------------------------------------------------------------------------

describe('missing tools: the error names the tool and the Debian package; nothing is created', () => {
  // zfs-fuse and dpkg-query: how mkimage tells which ZFS runs; flock: the per-image lock.
  const everything = ['fallocate', 'mkfs.ext4', 'mkfs.xfs', 'losetup', 'mount', 'umount', 'cp', 'zpool', 'zfs', 'zfs-fuse', 'dpkg-query', 'sh', 'flock'];
  const cases: Array<{ missing: string; args: string[]; pkg: RegExp; zfs?: boolean; populate?: boolean }> = [
    { missing: 'cp', args: ['--fs', 'xfs', '--size', '304M', '--sparse'], pkg: /coreutils/, populate: true },
    { missing: 'mount', args: ['--fs', 'xfs', '--size', '304M', '--sparse'], pkg: /mount \(util-linux\)/, populate: true },
    { missing: 'cp', args: ['--fs', 'zfs', '--pool', 'mkftmissing', '--size', '128M', '--sparse'], pkg: /coreutils/, zfs: true, populate: true },
    { missing: 'mkfs.ext4', args: ['--size', '64M', '--sparse'], pkg: /e2fsprogs/ },
    { missing: 'flock', args: ['--size', '64M', '--sparse'], pkg: /util-linux/ },
    { missing: 'fallocate', args: ['--size', '64M'], pkg: /util-linux/ },
    { missing: 'mkfs.xfs', args: ['--fs', 'xfs', '--size', '304M', '--sparse'], pkg: /xfsprogs/ },
    { missing: 'losetup', args: ['--fs', 'xfs', '--size', '304M', '--sparse'], pkg: /mount \(util-linux\)/ },
    { missing: 'zpool', args: ['--fs', 'zfs', '--pool', 'mkftmissing', '--size', '128M', '--sparse'], pkg: /zfsutils-linux|zfs-fuse/, zfs: true },
    { missing: 'losetup', args: ['--fs', 'zfs', '--pool', 'mkftmissing', '--size', '128M', '--sparse'], pkg: /mount \(util-linux\)/, zfs: true },
  ];
  for (const c of cases) {
    it(`${c.args.includes('xfs') ? 'xfs' : c.args.includes('zfs') ? 'zfs' : 'ext4'}${c.populate ? ' --populate' : ''} without ${c.missing}`, async () => {
      if (c.zfs) pools.push('mkftmissing');
      const bin = await pathWith(join(dir, 'bin'), everything.filter((t) => t !== c.missing));
      const img = join(dir, 'm.img');
      const extra: string[] = [];
      if (c.populate) {
        await mkdir(join(dir, 'tree'));
        await writeFile(join(dir, 'tree/f'), 'x\n');
        extra.push('--populate', join(dir, 'tree'));
      }
      // A private lock directory: "nothing was created" includes no lock file left behind.
      const locks = join(dir, 'locks');
      const r = await mkimage([...c.args, ...extra, img], { env: { PATH: bin, MKIMAGE_LOCK_DIR: locks } });
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^mkimage: ${c.missing.replace('.', '\\.')} is not installed or not on PATH: install the Debian package`));
      expect(r.stderr).toMatch(c.pkg);
      expect(r.stderr).toMatch(/nothing was created/);
      expect(await readdir(locks).catch(() => [])).toEqual([]);
      expect((await readdir(dir)).filter((n) => n !== 'tree' && n !== 'locks')).toEqual(['bin']);
    });
  }
});

// -------------------------------------------------------------------------------------------------

describe('not root', () => {
  async function nobodyDir(writable: boolean): Promise<string> {
    await chmod(dir, 0o755);
    const d = join(dir, writable ? 'open' : 'closed');
    await mkdir(d);
    await chmod(d, writable ? 0o1777 : 0o755);
    return d;
  }

  for (const fs of ['xfs', 'zfs']) {
    it(`--fs ${fs} as nobody: a clear error about root before anything is written (writable dir)`, async () => {
      const d = await nobodyDir(true);
      const r = await mkimage(['--fs', fs, ...(fs === 'zfs' ? ['--pool', 'mkftnobody'] : []), '--size', '400M', join(d, 'n.img')], { asNobody: true });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^mkimage: --fs ${fs} formats a loop device of the partition, which needs root`));
      expect(await readdir(d)).toEqual([]);
    });
  }

  it('--fs xfs as nobody in a directory nobody cannot write: still the root error, not EACCES', async () => {
    const d = await nobodyDir(false);
    const r = await mkimage(['--fs', 'xfs', '--size', '400M', '--sparse', join(d, 'n.img')], { asNobody: true });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/needs root/);
    expect(r.stderr).not.toMatch(/EACCES|permission denied/i);
    expect(await readdir(d)).toEqual([]);
  });

  it('ext4 needs no root: nobody makes an image in a directory it can write', async () => {
    const d = await nobodyDir(true);
    const r = await mkimage(['--size', '64M', join(d, 'ok.img')], { asNobody: true });
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await stat(join(d, 'ok.img'))).size).toBe(64 * MiB);
  });
});

// -------------------------------------------------------------------------------------------------

describe('concurrency', () => {
  it('8 creates at once (xfs and ext4, zfs when here) all succeed, with distinct loop devices; inspect and fsck pass', async () => {
    const bin = join(dir, 'bin');
    const log = join(dir, 'losetup.log');
    // losetup attaches and detaches are logged in the order they happen (an attach after it
    // succeeded, a detach before it runs); mkfs.xfs waits a second so that the xfs jobs hold their
    // loop devices at the same time. A device handed out twice would show in the replay below.
    await mkdir(bin);
    const realLosetup = (await execa('sh', ['-c', 'command -v losetup'])).stdout.trim();
    await writeFile(
      join(bin, 'losetup'),
      `#!/bin/sh
case " $* " in
  *" --find "*) out=$(${realLosetup} "$@"); st=$?; [ $st -eq 0 ] && echo "A $out" >> ${log}; printf '%s\\n' "$out"; exit $st;;
  *" --detach "*) for last; do :; done; echo "D $last" >> ${log}; exec ${realLosetup} "$@";;
esac
exec ${realLosetup} "$@"
`,
    );
    await chmod(join(bin, 'losetup'), 0o755);
    const realXfs = (await execa('sh', ['-c', 'command -v mkfs.xfs'])).stdout.trim();
    await writeFile(join(bin, 'mkfs.xfs'), `#!/bin/sh\nsleep 1\nexec ${realXfs} "$@"\n`);
    await chmod(join(bin, 'mkfs.xfs'), 0o755);
    const tree = join(dir, 'tree');
    await mkdir(tree);
    await writeFile(join(tree, 'hello.txt'), 'hello\n');
    const jobs: Array<{ name: string; args: string[]; fs: 'ext4' | 'xfs' | 'zfs' | 'none' }> = [
      { name: 'x1.img', args: ['--fs', 'xfs', '--size', '320M', '--sparse'], fs: 'xfs' },
      { name: 'x2.img', args: ['--fs', 'xfs', '--size', '320M', '--sparse', '--label', 'two'], fs: 'xfs' },
      { name: 'x3.img', args: ['--fs', 'xfs', '--size', '320M', '--sparse', '--populate', tree], fs: 'xfs' },
      { name: 'e1.img', args: ['--size', '64M'], fs: 'ext4' },
      { name: 'e2.img', args: ['--size', '128M', '--sparse', '--populate', tree], fs: 'ext4' },
      { name: 'e3.img', args: ['--size', '64M', '--table', 'gpt'], fs: 'ext4' },
      { name: 'z1.img', args: ['--fs', 'zfs', '--pool', `mkft${process.pid}a`, '--size', '128M', '--sparse'], fs: 'zfs' as const },
      { name: 'z2.img', args: ['--fs', 'zfs', '--pool', `mkft${process.pid}b`, '--size', '128M', '--sparse'], fs: 'zfs' as const },
    ];
    pools.push(`mkft${process.pid}a`, `mkft${process.pid}b`);
    expect(jobs).toHaveLength(8);
    const results = await Promise.all(jobs.map((j) => mkimage([...j.args, '--json', join(dir, j.name)], { env: { PATH: `${bin}:${process.env.PATH}` } })));
    results.forEach((r, i) => expect(r.exitCode, `${jobs[i]!.name}: ${r.stderr}`).toBe(0));

    // Replay the log: no device attached while it is attached already; the jobs overlapped.
    const events = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    const attached = new Set<string>();
    let most = 0;
    for (const e of events) {
      const [what, dev] = e.split(' ') as [string, string];
      if (what === 'A') {
        expect(attached.has(dev), `${dev} attached twice at once: ${events.join(', ')}`).toBe(false);
        attached.add(dev);
        most = Math.max(most, attached.size);
      } else attached.delete(dev);
    }
    const loopUsers = jobs.filter((j) => j.fs === 'xfs' || j.fs === 'zfs').length;
    expect(events.filter((e) => e.startsWith('A '))).toHaveLength(loopUsers);
    expect(attached.size, 'every loop device detached').toBe(0);
    expect(most, `at most ${most} loop devices at once: the jobs did not overlap`).toBeGreaterThan(1);

    for (const [i, j] of jobs.entries()) {
      const img = join(dir, j.name);
      const res = JSON.parse(results[i]!.stdout);
      const insp = await mkimage(['inspect', '--json', img]);
      expect(insp.exitCode, `${j.name}: ${insp.stdout}`).toBe(0);
      expect(JSON.parse(insp.stdout).filesystem?.type).toBe(j.fs === 'none' ? undefined : j.fs);
      if (j.fs === 'ext4') {
        const fsck = await withLoop(img, res.layout.partitionOffsetBytes, res.layout.fsSizeBytes, (d) => sh('e2fsck', ['-fn', d]));
        expect(fsck.exitCode, `${j.name}: ${fsck.stdout}`).toBe(0);
      } else if (j.fs === 'xfs') {
        const repair = await withLoop(img, res.layout.partitionOffsetBytes, res.layout.fsSizeBytes, (d) => sh('xfs_repair', ['-n', d]));
        expect(repair.exitCode, `${j.name}: ${repair.stderr}`).toBe(0);
      }
    }
  });
});

// -------------------------------------------------------------------------------------------------

describe('hostile pool and dataset names are refused before any command runs', () => {
  const bad = ['-f', '-o', 'two words', 'a;rm -rf x', '$(id)', '`id`', 'a|b', 'a&b', 'pool>x', '..', 'a/../b', "it's", 'a\nb', ''];
  for (const name of bad) {
    for (const where of ['--pool', '--dataset'] as const) {
      it(`${where} ${JSON.stringify(name)}`, async () => {
        const bin = join(dir, 'bin');
        const log = join(dir, 'calls.log');
        for (const t of ['zpool', 'zfs', 'losetup', 'fallocate', 'zfs-fuse']) await recordCalls(bin, t, log);
        const img = join(dir, 'n.img');
        const args = where === '--pool' ? ['--pool', name] : ['--pool', 'mkftnames', '--dataset', name];
        const r = await mkimage(['--fs', 'zfs', ...args, '--size', '128M', img], { env: { PATH: `${bin}:${process.env.PATH}` } });
        expect(r.exitCode, r.stderr).toBe(2);
        expect(r.stderr).toMatch(/^mkimage: /);
        expect(await readCalls(log)).toEqual([]);
        expect((await readdir(dir)).sort()).toEqual(['bin']);
      });
    }
  }
});
