/**
 * attach against hostile images (root, ZFS): a real `--fs zfs` image, its headers and ZFS labels
 * mutated with the seeded generator of the inspect fuzz (test/unit/helpers/header-fuzz.ts).
 *
 * attach runs the real losetup and zpool, except `zpool import`, which this test refuses (as a
 * damaged pool would be refused): whatever the bytes, attach must end in a MkimageError and leave
 * no loop device on the file, no pool, and nothing but empty directories under its runtime
 * directory. And a pool name read from a label must be held to the rules of --pool: a name that
 * starts with `-`, holds `..`, spaces or shell characters is refused before losetup or zpool use it.
 *
 * Reproduce: FUZZ_SEED=<seed> ATTACH_FUZZ_ITERATIONS=<n> npx vitest run test/system/faults-fuzz.test.ts
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { lstat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MkimageError, ToolFailedError } from '../../src/errors.js';
import { attachImage } from '../../src/jobs/attach.js';
import { MiB } from '../../src/layout/units.js';
import { sealVdevPhys } from '../../src/layout/zfs-label.js';
import { run as realRun, type Runner } from '../../src/tools/exec.js';
import { detectFlavour, type ZfsFlavour } from '../../src/tools/zfs.js';
import { Rng, WorkImage, baseFromFile, baseImage, mutate, type BaseImage } from '../unit/helpers/header-fuzz.js';
import { mkimage, poolsNamed } from './helpers/faults.js';
import { cleanDir, loopsUnder, mountsUnder, tempDir } from './helpers/machine.js';
import { ensureZfsDaemon } from './helpers/zfs-daemon.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261122);
const ITERATIONS = Number(process.env.ATTACH_FUZZ_ITERATIONS ?? 300);
const LABEL = gunzipSync(readFileSync(join(import.meta.dirname, '../fixtures/zfs-label0-vdev-phys.bin.gz')));
const POOL = `mkfz${process.pid}`.slice(0, 9).padEnd(9, 'z');

const daemon = await ensureZfsDaemon().catch(() => undefined);
const zfsUp = daemon !== undefined && (await execa('zpool', ['list'], { reject: false })).exitCode === 0;

let dir: string;
let base: BaseImage;
let flavour: ZfsFlavour;

beforeAll(async () => {
  if (!zfsUp) throw new Error('zfs-fuse is not running and could not be started: these tests need a real ZFS');
  dir = await tempDir('mkimage-attach-fuzz-');
  const img = join(dir, 'real.img');
  const r = await mkimage(['--fs', 'zfs', '--pool', POOL, '--layout', 'none', '--size', '128M', '--sparse', img]);
  if (r.exitCode !== 0) throw new Error(`cannot make the base image: ${r.stderr}`);
  base = await baseFromFile('real-zfs-128M', img, baseImage({ name: 'zfs', size: 128 * MiB, fs: 'zfs', zfsLabel: LABEL }));
  flavour = await detectFlavour(realRun);
});

afterAll(async () => {
  if (dir) {
    const left = await cleanDir(dir);
    expect(left).toEqual({ loops: [], mounts: [] });
  }
  await daemon?.stop();
});

/** The real runner, but `zpool import` is refused; every call is recorded. */
function refusingImport(calls: string[][]): Runner {
  return async (file, args, options) => {
    calls.push([file, ...args]);
    if (file === 'zpool' && args[0] === 'import') {
      throw new ToolFailedError('zpool import refused by the fuzz test', { tool: file, command: [file, ...args], exitCode: 1, stderr: 'cannot import: refused by the test' });
    }
    return realRun(file, args, options);
  };
}

/** Files, links or mount points under `root` (empty directories are fine). */
async function nonDirectories(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d).catch(() => [] as string[])) {
      const p = join(d, e);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(root);
  return out;
}

async function loopsOf(file: string): Promise<string[]> {
  const r = await execa('losetup', ['--associated', file, '--noheadings', '--output', 'NAME', '--list'], { reject: false });
  return String(r.stdout).split('\n').filter(Boolean);
}

describe('attach against hostile images', () => {
  let runtime: string;
  beforeEach(async () => {
    runtime = join(dir, `run-${Math.random().toString(36).slice(2, 8)}`);
  });
  afterEach(async () => {
    expect(await loopsUnder(dir)).toEqual([]);
    expect(await mountsUnder(dir)).toEqual([]);
  });

  it(`${ITERATIONS} seeded mutations (seed ${SEED}): a MkimageError every time, nothing left`, async () => {
    const rng = new Rng(SEED ^ 0xa77ac4);
    const w = new WorkImage(join(dir, 'work.img'), base);
    await w.reset();
    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const m = mutate(base, rng);
      await w.apply(m);
      const where = `#${i}: ${m.steps.join('; ')}`;
      const calls: string[][] = [];
      try {
        const r = await attachImage(w.path, { run: refusingImport(calls), flavour, runtimeDir: runtime });
        failures.push(`${where}: attached ${JSON.stringify(r)} although zpool import was refused`);
      } catch (e) {
        if (!(e instanceof MkimageError)) failures.push(`${where}: ${(e as Error)?.stack ?? e}`);
        else outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1);
      }
      if (calls.some((c) => c[0] === 'zpool' && c[1] === 'import')) outcomes.set('reached zpool import', (outcomes.get('reached zpool import') ?? 0) + 1);
      const loops = await loopsOf(w.path);
      const files = await nonDirectories(runtime);
      const pools = await poolsNamed([POOL]);
      if (loops.length || files.length || pools.length) failures.push(`${where}: left loops ${loops.join(' ')}, files ${files.join(' ')}, pools ${pools.join(' ')}`);
      await w.restore();
    }
    await w.close();
    expect(failures.slice(0, 10), `${failures.length} of ${ITERATIONS} attaches`).toEqual([]);
    // Some mutations left the image attachable up to the import (headers it does not need).
    expect(outcomes.get('reached zpool import') ?? 0, JSON.stringify(Object.fromEntries(outcomes))).toBeGreaterThan(0);
  });

  // The pool name comes from the image's own label: a hostile image chooses it.
  //
  // Regression (found by this test): attach once used the label's pool name unchecked: "-fxxxxxxx"
  // made it run `zpool import ... -fxxxxxxx` (the name read as options), and "../../../" put the
  // altroot outside the runtime directory. attach now holds it to checkPoolName first.
  const names = ['-fxxxxxxx', '-o cache', '../../../', 'a b c d e', 'x;rm -rf ', '$(reboot)', 'a|b&c>d`'];
  for (const name of names) {
    it(`a label naming its pool ${JSON.stringify(name)} is refused before losetup or zpool use it`, async () => {
      const hostile = Buffer.from(name.padEnd(POOL.length, 'x').slice(0, POOL.length), 'latin1');
      const regions = base.regions.map((r) => {
        if (r.kind !== 'zfs-label') return r;
        const data = Buffer.from(r.data);
        for (let at = data.indexOf(POOL); at >= 0; at = data.indexOf(POOL, at + 1)) hostile.copy(data, at);
        return { ...r, data: sealVdevPhys(data, r.vdevOffset!) };
      });
      const w = new WorkImage(join(dir, 'named.img'), { ...base, regions });
      await w.reset();
      await w.close();
      const calls: string[][] = [];
      const e = await attachImage(w.path, { run: refusingImport(calls), flavour, runtimeDir: runtime }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(MkimageError);
      const used = calls.filter((c) => (c[0] === 'zpool' && c[1] !== 'list' && c[1] !== 'status') || (c[0] === 'losetup' && c.includes('--find')));
      expect(used, `commands run with the hostile name: ${JSON.stringify(used)}`).toEqual([]);
      expect(await nonDirectories(runtime)).toEqual([]);
      expect(await readdir(join(runtime, '..'))).not.toContain('x');
      await writeFile(join(dir, 'named.img'), '');
    });
  }
});
