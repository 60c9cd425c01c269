/**
 * Many hands on two images at once, through the CLI: for MKIMAGE_STRESS_SECONDS (default 60) three
 * workers per image run attach, detach, status, layers import, layers list and runtime create/rm
 * (each worker its own runtime names): first each kind once (in an order rotated per worker), then
 * at random, each worker's sequence drawn from its own seeded generator (MKIMAGE_STRESS_SEED,
 * default 9, plus the worker's number). A checker takes each image's lock itself now and then (so no
 * command runs meanwhile) and checks the state the last command left: a loop device of the image
 * means its pool is imported from it, ONLINE, no errors, its datasets mounted; none means no pool.
 *
 * Afterwards: every command succeeded (all requests are valid once commands are serialized, so
 * any failure is a race), each success said what is true (attach: the image's own pool and guid,
 * ONLINE, from a loop device of that file; a layer imported or a runtime created is listed by every
 * `layers list` that started after it and before its removal), the pools are ONLINE with no errors,
 * and after a final detach and destroy nothing is left: loop devices, pools, mounts, /run/mkimage
 * entries, journals, temporary files.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withImageLock } from '../../../src/guard/lock.js';
import { leftovers, mkimage, poolsNamed } from '../helpers/faults.js';
import { cleanDir, loopsUnder, mountsUnder, tempDir } from '../helpers/machine.js';
import { ensureZfsDaemon } from '../helpers/zfs-daemon.js';

const SECONDS = Number(process.env.MKIMAGE_STRESS_SECONDS ?? 60);
const SEED = Number(process.env.MKIMAGE_STRESS_SEED ?? 9);
const WORKERS_PER_IMAGE = 3;

const daemon = await ensureZfsDaemon();
afterAll(async () => {
  await daemon.stop();
});

/** mulberry32: a small seeded generator, so a failing sequence can be run again. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Op {
  image: string;
  worker: string;
  kind: string;
  args: string[];
  start: number;
  end: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

interface Img {
  path: string;
  pool: string;
  guid: string;
  tars: { path: string; digest: string }[];
}

async function layerTar(dir: string, name: string): Promise<string> {
  const src = join(dir, `${name}-src`);
  await mkdir(join(src, 'etc'), { recursive: true });
  await writeFile(join(src, 'etc', name), `${name}\n`);
  const tar = join(dir, `${name}.tar`);
  await execa('tar', ['--numeric-owner', '--mtime=@0', '-C', src, '-cf', tar, '.']);
  return tar;
}

async function sha256(path: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** The state an image is left in, checked while holding its lock (no mkimage command runs). */
async function checkState(img: Img, problems: string[]): Promise<void> {
  await withImageLock(img.path, { waitSeconds: 300, command: 'stress test checker' }, async () => {
    const loops = String((await execa('losetup', ['--list', '--noheadings', '--output', 'NAME', '--associated', img.path])).stdout).split('\n').filter(Boolean).map((l) => l.trim());
    const pools = await poolsNamed([img.pool]);
    if (loops.length > 1) problems.push(`${img.path}: ${loops.length} loop devices: ${loops.join(', ')}`);
    if (!loops.length) {
      if (pools.length) problems.push(`${img.path}: no loop device, yet pool ${img.pool} is imported`);
      return;
    }
    if (!pools.length) return problems.push(`${img.path}: loop device ${loops[0]} without its pool imported`), undefined;
    const st = String((await execa('zpool', ['status', img.pool])).stdout);
    if (!/state: ONLINE/.test(st) || !/errors: No known data errors/.test(st)) problems.push(`${img.path}: zpool status: ${st}`);
    if (!st.includes(loops[0]!.split('/').pop()!)) problems.push(`${img.path}: pool ${img.pool} not on ${loops[0]}: ${st}`);
    const ds = String((await execa('zfs', ['list', '-H', '-o', 'name,mounted', '-t', 'filesystem', '-r', img.pool])).stdout);
    const unmounted = ds.split('\n').filter((l) => l.endsWith('\tno') && !/\/\.tmp|@/.test(l));
    if (unmounted.length) problems.push(`${img.path}: datasets not mounted: ${unmounted.join('; ')}`);
  });
}

describe(`stress: ${WORKERS_PER_IMAGE} workers on each of two images for ${SECONDS} s`, () => {
  it('every reported success is true, the pools stay healthy, and nothing is left', { timeout: (SECONDS + 600) * 1000 }, async () => {
    const dir = await tempDir('mkimage-stress-');
    const imgs: Img[] = [];
    try {
      for (const n of ['a', 'b']) {
        const path = join(dir, `${n}.img`);
        const pool = `mkst${n}${process.pid % 10000}${Math.random().toString(36).slice(2, 6)}`;
        const r = await mkimage(['--fs', 'zfs', '--pool', pool, '--sparse', '--size', '192M', '--json', path]);
        expect(r.exitCode, r.stderr).toBe(0);
        const tars = [];
        for (const t of ['l1', 'l2', 'l3']) {
          const tar = await layerTar(dir, `${n}${t}`);
          tars.push({ path: tar, digest: await sha256(tar) });
        }
        imgs.push({ path, pool, guid: JSON.parse(r.stdout).zfs.guid, tars });
      }

      const ops: Op[] = [];
      const problems: string[] = [];
      const deadline = Date.now() + SECONDS * 1000;
      const run = async (img: Img, worker: string, kind: string, args: string[]) => {
        const start = Date.now();
        const r = await mkimage([...args, '--wait', '300', '--json']);
        const op = { image: img.path, worker, kind, args, start, end: Date.now(), ...r };
        ops.push(op);
        return op;
      };
      const KINDS = ['attach', 'detach', 'status', 'list', 'import', 'runtime-create', 'runtime-rm'] as const;
      const WEIGHTS = [3, 3, 1, 1, 2, 2, 1];
      const total = WEIGHTS.reduce((a, b) => a + b, 0);
      const worker = async (img: Img, w: string, index: number) => {
        const random = prng(SEED + index);
        const mine: string[] = [];
        let n = 0;
        for (let i = 0; Date.now() < deadline; i++) {
          // The first seven: each kind once, rotated per worker; then drawn by weight.
          let kind: (typeof KINDS)[number] = KINDS[(i + index) % KINDS.length]!;
          if (i >= KINDS.length) {
            let x = random() * total;
            kind = KINDS[WEIGHTS.findIndex((wt) => (x -= wt) < 0)]!;
          }
          if (kind === 'runtime-rm' && !mine.length) kind = 'runtime-create';
          if (kind === 'attach') await run(img, w, kind, ['attach', img.path]);
          else if (kind === 'detach') await run(img, w, kind, ['detach', img.path]);
          else if (kind === 'status') await run(img, w, kind, ['status']);
          else if (kind === 'list') await run(img, w, kind, ['layers', 'list', img.path]);
          else if (kind === 'import') await run(img, w, kind, ['layers', 'import', img.path, img.tars[Math.floor(random() * img.tars.length)]!.path]);
          else if (kind === 'runtime-create') {
            const name = `${w}n${n++}`;
            const op = await run(img, w, kind, ['runtime', 'create', img.path, '--layer', 'empty', '--name', name]);
            if (op.exitCode === 0) mine.push(name);
          } else {
            await run(img, w, kind, ['runtime', 'rm', img.path, mine.shift()!]);
          }
        }
      };
      const checker = async () => {
        while (Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 3000));
          for (const img of imgs) await checkState(img, problems);
        }
      };
      await Promise.all([...imgs.flatMap((img, i) => Array.from({ length: WORKERS_PER_IMAGE }, (_, k) => worker(img, `w${i}${k}`, i * WORKERS_PER_IMAGE + k))), checker()]);

      // Every command succeeded, with a JSON result.
      const failed = ops.filter((o) => o.exitCode !== 0).map((o) => `${o.args.join(' ')}: exit ${o.exitCode}: ${o.stderr}`);
      expect(failed).toEqual([]);
      expect(problems).toEqual([]);
      // status takes no lock: it may see an image half-way, but never our pool unhealthy.
      for (const o of ops.filter((x) => x.kind === 'status')) {
        const st = JSON.parse(o.stdout) as { images: { pool?: string; health?: string }[] };
        for (const i of st.images.filter((y) => imgs.some((m) => m.pool === y.pool))) expect(i.health).toBe('ONLINE');
      }
      for (const kind of ['attach', 'detach', 'status', 'list', 'import', 'runtime-create', 'runtime-rm']) expect(ops.some((o) => o.kind === kind), `some ${kind} ran`).toBe(true);

      for (const img of imgs) {
        const mine = ops.filter((o) => o.image === img.path);
        for (const o of mine.filter((x) => x.kind === 'attach')) {
          const a = JSON.parse(o.stdout) as { file: string; pool: string; guid: string; health: string; loopDevice: string; mountpoints: unknown[] };
          expect(a).toMatchObject({ file: img.path, pool: img.pool, guid: img.guid, health: 'ONLINE' });
          expect(a.loopDevice).toMatch(/^\/dev\/loop\d+$/);
          expect(a.mountpoints.length).toBeGreaterThan(0);
        }
        for (const o of mine.filter((x) => x.kind === 'detach')) {
          const d = JSON.parse(o.stdout) as { wasAttached: boolean; exported: boolean; pool: string };
          if (d.wasAttached) expect(d).toMatchObject({ exported: true, pool: img.pool });
        }
        // What an import or runtime create reported is seen by every list that started after it
        // ended (and, for a runtime, before its rm started).
        const lists = mine.filter((x) => x.kind === 'list').map((x) => ({ op: x, r: JSON.parse(x.stdout) as { layers: { digest: string }[]; runtimes: { id: string }[] } }));
        for (const o of mine.filter((x) => x.kind === 'import')) {
          const digest = (JSON.parse(o.stdout) as { images: { top: string }[] }).images[0]!.top;
          for (const l of lists.filter((x) => x.op.start > o.end)) expect(l.r.layers.map((y) => y.digest)).toContain(digest);
        }
        for (const o of mine.filter((x) => x.kind === 'runtime-create')) {
          const name = o.args[o.args.indexOf('--name') + 1]!;
          const rm = mine.find((x) => x.kind === 'runtime-rm' && x.args.includes(name));
          for (const l of lists.filter((x) => x.op.start > o.end && (!rm || x.op.end < rm.start))) expect(l.r.runtimes.map((y) => y.id)).toContain(name);
        }
        await checkState(img, problems);
      }
      expect(problems).toEqual([]);

      // The end: detach, the pools export cleanly; destroy; nothing is left.
      for (const img of imgs) {
        const d = await mkimage(['detach', img.path]);
        expect(d.exitCode, d.stderr).toBe(0);
        const i = await mkimage(['inspect', '--json', img.path]);
        expect(JSON.parse(i.stdout).pool.state).toBe('exported');
        expect((await mkimage(['destroy', '--yes', img.path])).exitCode).toBe(0);
      }
      expect(await loopsUnder(dir)).toEqual([]);
      expect(await mountsUnder(dir)).toEqual([]);
      expect(await poolsNamed(imgs.map((i) => i.pool))).toEqual([]);
      for (const img of imgs) expect(existsSync(`/run/mkimage/pools/${img.pool}`)).toBe(false);
      const journals = await readdir('/run/mkimage/jobs').catch(() => [] as string[]);
      for (const j of journals) expect(await readFile(join('/run/mkimage/jobs', j), 'utf8').catch(() => '')).not.toContain(dir);
      expect(await leftovers(dir)).toEqual([]);
      console.log(`stress: ${ops.length} commands in ${SECONDS} s: ${['attach', 'detach', 'status', 'list', 'import', 'runtime-create', 'runtime-rm'].map((k) => `${k} ${ops.filter((o) => o.kind === k).length}`).join(', ')}`);
    } finally {
      for (const img of imgs) await execa('zpool', ['export', '-f', img.pool], { reject: false });
      const left = await cleanDir(dir);
      expect(left).toEqual({ loops: [], mounts: [], });
    }
  });
});
