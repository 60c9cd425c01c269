/**
 * kill -9 at every phase of create (ext4, xfs, zfs, --from), attach, layers import, runtime commit,
 * and at one phase each of resize and snapshot,
 * injected deterministically: a wrapper for the phase's tool, first on PATH, runs the real tool to
 * completion and then SIGKILLs mkimage (helpers/faults.ts, 'run-then-signal'). A SIGKILL runs no
 * undo: what the killed command made stays, recorded in its journal (/run/mkimage/jobs).
 *
 * Then: the same command run again succeeds (its recovery takes back what the dead one left first),
 * everything the journal recorded is gone (temporary file, loop devices, pool, private altroot,
 * mounts), and a final destroy --yes (or rm) leaves nothing at all: no loop device, mount, pool,
 * journal or temporary file. Also `status` lists a dead job's leftovers and `status --clean` removes
 * them (with a private journal directory, so that other tests' dead jobs are not touched).
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { injectFault, leftovers, mkimage, poolsNamed } from '../helpers/faults.js';
import { cleanDir, loopsUnder, mountsUnder, tempDir } from '../helpers/machine.js';
import { ensureZfsDaemon } from '../helpers/zfs-daemon.js';
import type { JournalData } from '../../../src/guard/journal.js';

const JOBS = '/run/mkimage/jobs';
let dir: string;
let pools: string[] = [];

const daemon = await ensureZfsDaemon();
afterAll(async () => {
  await daemon.stop();
});

beforeEach(async () => {
  dir = await tempDir('mkimage-crash-');
  pools = [];
});

afterEach(async () => {
  const leftPools = await poolsNamed(pools);
  for (const p of leftPools) await execa('zpool', ['export', '-f', p], { reject: false });
  const journals = await journalsUnder(dir);
  const left = await cleanDir(dir);
  expect({ ...left, pools: leftPools, journals: journals.map((j) => j.file) }).toEqual({ loops: [], mounts: [], pools: [], journals: [] });
});

/** Journals (live or dead) whose job worked on something under `d`. */
async function journalsUnder(d: string, jobs = JOBS): Promise<{ file: string; data: JournalData }[]> {
  const names = await readdir(jobs).catch(() => [] as string[]);
  const out: { file: string; data: JournalData }[] = [];
  for (const n of names) {
    const text = await readFile(join(jobs, n), 'utf8').catch(() => '');
    if (text.includes(d)) out.push({ file: join(jobs, n), data: JSON.parse(text) as JournalData });
  }
  return out;
}

const pool = () => {
  const p = `mkcr${process.pid % 10000}${Math.random().toString(36).slice(2, 6)}`;
  pools.push(p);
  return p;
};

/** A tiny layer tar: one directory, one file. */
async function layerTar(name: string, content: string): Promise<string> {
  const src = join(dir, `${name}-src`);
  await mkdir(join(src, 'etc'), { recursive: true });
  await writeFile(join(src, 'etc', name), content);
  const tar = join(dir, `${name}.tar`);
  await execa('tar', ['--numeric-owner', '-C', src, '-cf', tar, '.']);
  return tar;
}

async function imported(name: string): Promise<boolean> {
  return (await poolsNamed([name])).length > 0;
}

/** Everything a journal recorded is gone (what a rerun's recovery must have taken back). */
async function recordedGone(journal: JournalData): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  for (const { what, record: r } of journal.steps) {
    if (r.kind === 'file') expect(existsSync(r.path), what).toBe(false);
    if (r.kind === 'dir' && r.path.includes('mkimage-zpool-')) expect(existsSync(r.path), what).toBe(false);
    if (r.kind === 'mount') expect(mounts.split('\n').some((l) => l.split(' ')[1] === r.path), what).toBe(false);
    if (r.kind === 'pool' && r.how === 'destroy') expect(await imported(r.name), what).toBe(false);
    if (r.kind === 'loop' && !existsSync(r.file)) expect(await loopsUnder(r.file), what).toEqual([]);
  }
}

interface Case {
  name: string;
  /** Makes what the command needs (an image, a runtime); returns the image path. */
  setup?: (img: string, p: string) => Promise<void>;
  args: (img: string, p: string) => Promise<string[]> | string[];
  tool: string;
  when?: string;
  zfs: boolean;
}

const zfsImage = async (img: string, p: string) => {
  const r = await mkimage(['--fs', 'zfs', '--pool', p, '--sparse', '--size', '128M', img]);
  expect(r.exitCode, r.stderr).toBe(0);
};

const withRuntime = async (img: string, p: string) => {
  await zfsImage(img, p);
  const l = await mkimage(['layers', 'import', '--json', img, await layerTar('base', 'one')]);
  expect(l.exitCode, l.stderr).toBe(0);
  const top = JSON.parse(l.stdout).images[0].top as string;
  expect((await mkimage(['runtime', 'create', img, '--layer', top, '--name', 'r1'])).exitCode).toBe(0);
  // A change to commit: written through an attach, kept after the detach.
  const a = await mkimage(['attach', '--json', img]);
  expect(a.exitCode, a.stderr).toBe(0);
  const rt = (JSON.parse(a.stdout).mountpoints as { dataset: string; mountpoint: string }[]).find((m) => m.dataset === `${p}/runtime/r1`)!;
  await writeFile(join(rt.mountpoint, 'etc', 'added'), 'two');
  expect((await mkimage(['detach', img])).exitCode).toBe(0);
};

const ext4Image = async (img: string) => {
  const r = await mkimage(['--sparse', '--size', '64M', img]);
  expect(r.exitCode, r.stderr).toBe(0);
};

const CASES: Case[] = [
  // The commands added after the lock journal their work the same way: --from's staging tree,
  // resize's loop device, snapshot's attachment.
  ...['mkfs.ext4', 'debugfs'].map(
    (tool): Case => ({ name: `create --from ext4: ${tool}`, args: async (img) => ['--from', await layerTar('f1', 'from'), '--size', '64M', img], tool, zfs: false }),
  ),
  { name: 'resize ext4: resize2fs', setup: ext4Image, args: (img) => ['resize', img, '--size', '96M'], tool: 'resize2fs', zfs: false },
  { name: 'snapshot: zfs snapshot', setup: zfsImage, args: (img) => ['snapshot', img, 's1'], tool: 'zfs', when: 'snapshot', zfs: true },
  { name: 'create ext4: fallocate', args: (img) => ['--size', '64M', img], tool: 'fallocate', zfs: false },
  { name: 'create ext4: mkfs.ext4', args: (img) => ['--size', '64M', img], tool: 'mkfs.ext4', zfs: false },
  { name: 'create xfs: losetup', args: (img) => ['--fs', 'xfs', '--sparse', '--size', '320M', img], tool: 'losetup', when: '--find', zfs: false },
  { name: 'create xfs: mkfs.xfs', args: (img) => ['--fs', 'xfs', '--sparse', '--size', '320M', img], tool: 'mkfs.xfs', zfs: false },
  ...['losetup --find', 'zpool create', 'zfs create', 'zfs snapshot', 'zpool export'].map(
    (phase): Case => ({
      name: `create zfs: ${phase}`,
      args: (img, p) => ['--fs', 'zfs', '--pool', p, '--sparse', '--size', '128M', img],
      tool: phase.split(' ')[0]!,
      when: phase.split(' ')[1],
      zfs: true,
    }),
  ),
  ...['losetup --find', 'zpool import', 'zfs list'].map(
    (phase): Case => ({ name: `attach: ${phase}`, setup: zfsImage, args: (img) => ['attach', img], tool: phase.split(' ')[0]!, when: phase.split(' ')[1], zfs: true }),
  ),
  ...['zpool import', 'zfs clone', 'zfs snapshot', 'zfs rename', 'zpool export'].map(
    (phase): Case => ({
      name: `layers import: ${phase}`,
      setup: zfsImage,
      args: async (img) => ['layers', 'import', img, await layerTar('l1', 'hello')],
      tool: phase.split(' ')[0]!,
      when: phase.split(' ')[1],
      zfs: true,
    }),
  ),
  ...['zpool import', 'zfs snapshot', 'zfs clone', 'zfs promote', 'zfs rename', 'zpool export'].map(
    (phase): Case => ({ name: `runtime commit: ${phase}`, setup: withRuntime, args: (img) => ['runtime', 'commit', img, 'r1'], tool: phase.split(' ')[0]!, when: phase.split(' ')[1], zfs: true }),
  ),
];

describe('kill -9 at every phase, then the same command again', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const img = join(dir, 'crash.img');
      const p = pool();
      await c.setup?.(img, p);
      const args = await c.args(img, p);
      const bin = join(dir, 'bin');
      await injectFault(bin, { tool: c.tool, fault: 'run-then-signal', signal: 'KILL', when: c.when });
      const killed = await mkimage(args, { env: { PATH: `${bin}:${process.env.PATH}` } });
      expect(existsSync(join(bin, `.${c.tool}.fired`)), 'the fault fired').toBe(true);
      expect(killed.exitCode, killed.stderr).toBe(-1); // killed by the signal, no cleanup ran
      const dead = await journalsUnder(dir);

      const again = await mkimage(args);
      expect(again.exitCode, again.stderr).toBe(0);
      for (const j of dead) await recordedGone(j.data);
      expect(await leftovers(dir)).toEqual([]);

      if (c.zfs) {
        const d = await mkimage(['destroy', '--yes', img]);
        expect(d.exitCode, d.stderr).toBe(0);
      } else {
        expect((await mkimage(['inspect', img])).exitCode).toBe(0);
      }
      expect(await loopsUnder(dir)).toEqual([]);
      expect(await mountsUnder(dir)).toEqual([]);
      expect(await poolsNamed([p])).toEqual([]);
      expect(existsSync(`/run/mkimage/pools/${p}`)).toBe(false);
    });
  }
});

describe('status and status --clean', () => {
  it("lists a dead job's leftovers and removes them, never a live job's", async () => {
    const jobs = join(dir, 'jobs');
    const env = { MKIMAGE_JOURNAL_DIR: jobs };
    const img = join(dir, 'left.img');
    const p = pool();
    const bin = join(dir, 'bin');
    await injectFault(bin, { tool: 'zfs', fault: 'run-then-signal', signal: 'KILL', when: 'create' });
    const killed = await mkimage(['--fs', 'zfs', '--pool', p, '--sparse', '--size', '128M', img], { env: { ...env, PATH: `${bin}:${process.env.PATH}` } });
    expect(killed.exitCode).toBe(-1);
    expect(await imported(p)).toBe(true);
    const [journal] = await journalsUnder(dir, jobs);
    const temp = journal!.data.steps.find((s) => s.record.kind === 'file')!.record as { path: string };
    expect(existsSync(temp.path)).toBe(true);

    // A live job's journal (this process's PID and start time) is listed by nobody and never touched.
    const self = (await readFile(`/proc/${process.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')[19]!;
    const live: JournalData = { version: 1, pid: process.pid, startTime: self, command: 'live test job', since: 'now', target: join(dir, 'live.img'), steps: [{ id: 1, what: 'file', record: { kind: 'file', path: join(dir, 'live-file') } }] };
    await writeFile(join(dir, 'live-file'), 'x');
    await writeFile(join(jobs, `${process.pid}-${self}-1.json`), JSON.stringify(live));

    const s = await mkimage(['status', '--json'], { env });
    expect(s.exitCode, s.stderr).toBe(0);
    const leftoverList = JSON.parse(s.stdout).leftovers as { pid: number; steps: { what: string }[] }[];
    expect(leftoverList.map((l) => l.pid)).toEqual([journal!.data.pid]);
    expect((await mkimage(['status'], { env })).stdout).toMatch(new RegExp(`leftover of PID ${journal!.data.pid} \\(mkimage --fs zfs .*\\): temporary file`));

    const clean = await mkimage(['status', '--clean', '--json'], { env });
    expect(clean.exitCode, clean.stderr).toBe(0);
    const cleaned = JSON.parse(clean.stdout) as { cleaned: { pid: number; failures: unknown[] }[]; leftovers: unknown[] };
    expect(cleaned.cleaned.map((c) => [c.pid, c.failures])).toEqual([[journal!.data.pid, []]]);
    expect(cleaned.leftovers).toEqual([]);
    expect(await imported(p)).toBe(false);
    expect(existsSync(temp.path)).toBe(false);
    await recordedGone(journal!.data);
    expect(existsSync(join(dir, 'live-file'))).toBe(true);
    expect(await readdir(jobs)).toEqual([`${process.pid}-${self}-1.json`]);
  });
});
