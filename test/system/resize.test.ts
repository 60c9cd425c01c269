/**
 * resize against the real tools (root: loop devices, resize2fs, xfs_growfs, zfs-fuse): every
 * filesystem on both tables grows, the filesystem or pool fills the new partition, e2fsck /
 * xfs_repair / a scrub find nothing, `sfdisk --verify` passes, `inspect` says ok, and the ids
 * are those of the image before. kill -9 at each phase of a resize leaves a valid image that a
 * second resize completes.
 */
import { execa } from 'execa';
import { mkdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { readAt } from '../../src/file/image-file.js';
import { MiB } from '../../src/layout/units.js';
import { injectFault, mkimage } from './helpers/faults.js';
import { cli, cliJson, loopsUnder, mountsUnder, sh, withLoop } from './helpers/machine.js';
import { importedPools, zfsTestBed } from './helpers/zfs-test-bed.js';

const bed = zfsTestBed({ poolPrefix: 'mkr', dirPrefix: 'mkimage-resize-' });
const poolName = bed.poolName;
let dir: string;
beforeEach(() => {
  dir = bed.dir();
});

const json = (args: string[]) => cliJson(args, { silent: true });

async function inspect(img: string) {
  const r = await cli(['inspect', '--json', img]);
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) };
}

/** What the filesystem or pool says about itself, and whether its checker is happy. */
async function checkFs(img: string, fs: string, partOffset: number, partSize: number, pool?: string): Promise<{ sizeBytes?: number; poolSize?: string; clean: boolean; out: string }> {
  if (fs === 'ext4') {
    return withLoop(img, partOffset, partSize, async (dev) => {
      const f = await sh('e2fsck', ['-fn', dev]);
      const d = await sh('dumpe2fs', ['-h', dev]);
      const blocks = Number(/Block count:\s+(\d+)/.exec(d.stdout)?.[1]);
      return { sizeBytes: blocks * 4096, clean: f.exitCode === 0, out: f.stdout + f.stderr };
    });
  }
  if (fs === 'xfs') {
    return withLoop(img, partOffset, partSize, async (dev) => {
      const f = await sh('xfs_repair', ['-n', dev]);
      const d = await sh('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p dblocks', dev]);
      const blocks = Number(/dblocks = (\d+)/.exec(d.stdout)?.[1]);
      return { sizeBytes: blocks * 4096, clean: f.exitCode === 0, out: f.stdout + f.stderr };
    });
  }
  if (fs === 'zfs') {
    const a = await cli(['attach', img, '--mount', join(dir, 'alt')]);
    expect(a.exitCode, a.stderr).toBe(0);
    try {
      const size = (await sh('zpool', ['list', '-H', '-o', 'size', pool!])).stdout.trim();
      await sh('zpool', ['scrub', pool!]);
      let status = '';
      for (let i = 0; i < 50; i++) {
        status = (await sh('zpool', ['status', pool!])).stdout;
        if (!/scrub in progress/.test(status)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      return { poolSize: size, clean: /with 0 errors/.test(status) && /No known data errors/.test(status) && /ONLINE/.test(status), out: status };
    } finally {
      const d = await cli(['detach', img]);
      expect(d.exitCode, d.stderr).toBe(0);
    }
  }
  return { clean: true, out: '' };
}

/** zpool list's human size ("194M", "1.2G") in bytes, roughly. */
function humanBytes(s: string): number {
  const m = /^([\d.]+)([KMGT]?)$/.exec(s);
  const unit = { '': 1, K: 1024, M: MiB, G: 1024 * MiB, T: 1024 * 1024 * MiB }[m?.[2] ?? ''] ?? NaN;
  return Number(m?.[1]) * unit;
}

const SIZES: Record<string, [string, number, number]> = {
  ext4: ['64M', 64 * MiB, 160 * MiB],
  xfs: ['310M', 310 * MiB, 400 * MiB],
  zfs: ['100M', 100 * MiB, 200 * MiB],
  none: ['16M', 16 * MiB, 40 * MiB],
};

describe.each(['mbr', 'gpt'])('resize, %s', (table) => {
  it.each(['ext4', 'xfs', 'zfs', 'none'])('%s: grows the file, table, PFN block and filesystem; checkers clean, inspect ok, ids kept', async (fs) => {
    const img = join(dir, `${fs}.img`);
    const [size, oldBytes, newBytes] = SIZES[fs]!;
    const pool = fs === 'zfs' ? poolName() : undefined;
    let populate: string[] = [];
    if (fs === 'ext4' || fs === 'xfs') {
      await mkdir(join(dir, 'tree'));
      await writeFile(join(dir, 'tree', 'kept.txt'), 'still here\n');
      populate = ['--populate', join(dir, 'tree')];
    }
    const made = await json(['--size', size, '--fs', fs, '--table', table, ...(pool ? ['--pool', pool] : []), ...populate, img]);
    const before = (await inspect(img)).report;
    const r = await json(['resize', img, '--size', `+${(newBytes - oldBytes) / MiB}M`]);
    expect(r).toMatchObject({ oldSizeBytes: oldBytes, sizeBytes: newBytes, fs, table, sparse: false });
    expect(r.steps).toEqual(['reserve', 'grow', 'headers', ...(fs === 'none' ? [] : ['fs'])]);
    const st = await stat(img);
    expect(st.size).toBe(newBytes);
    expect(st.blocks * 512).toBeGreaterThanOrEqual(newBytes); // preallocated as made

    const { exitCode, report } = await inspect(img);
    expect(report.problems).toEqual([]);
    expect(exitCode).toBe(0);
    const tail = table === 'gpt' ? 2 * MiB : 0;
    expect(report.partition).toMatchObject({ offsetBytes: 2 * MiB, sizeBytes: newBytes - 2 * MiB - tail });
    expect(report.guest.pmemSizeBytes).toBe(newBytes - 2 * MiB - tail);
    expect(report.pfn.uuid).toBe(before.pfn.uuid);
    expect(report.pfn.npfns).toBe((newBytes - 2 * MiB - tail) / 4096);
    expect(report.table).toEqual(before.table);
    expect(report.partitions[0].uuid).toBe(before.partitions[0].uuid);
    if (fs === 'ext4' || fs === 'xfs') expect(report.filesystem).toMatchObject({ type: fs, uuid: made.ids.fsUuid, sizeBytes: newBytes - 2 * MiB - tail });

    const verify = await sh('sfdisk', ['--verify', img]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout + verify.stderr).not.toMatch(/mismatch|corrupt|invalid/i);

    const f = await checkFs(img, fs, 2 * MiB, newBytes - 2 * MiB - tail, pool);
    expect(f.clean, f.out).toBe(true);
    if (fs === 'ext4' || fs === 'xfs') expect(f.sizeBytes).toBe(newBytes - 2 * MiB - tail);
    if (fs === 'zfs') expect(humanBytes(f.poolSize!)).toBeGreaterThan(oldBytes);
    if (fs === 'ext4') {
      const cat = await sh('debugfs', ['-R', 'cat /kept.txt', `${img}?offset=${2 * MiB}`]);
      expect(cat.stdout).toBe('still here');
    }
  });
});

describe('resize: what it refuses and what it mends', () => {
  it('the header it writes is byte for byte the one create writes at that size (same --seed)', async () => {
    for (const table of ['mbr', 'gpt']) {
      const grown = join(dir, `grown-${table}.img`);
      const made = join(dir, `made-${table}.img`);
      await json(['--size', '64M', '--seed', '7', '--table', table, '--sparse', grown]);
      await json(['--size', '200M', '--seed', '7', '--table', table, '--sparse', made]);
      await json(['resize', grown, '--size', '200M']);
      expect((await readAt(grown, 0, 2 * MiB)).equals(await readAt(made, 0, 2 * MiB))).toBe(true);
      expect((await readAt(grown, 198 * MiB, 2 * MiB)).equals(await readAt(made, 198 * MiB, 2 * MiB))).toBe(true);
    }
  });

  it('shrinking is refused (exit 2, the numbers, nothing changed); the same size is nothing to do', async () => {
    const img = join(dir, 'a.img');
    await json(['--size', '64M', '--sparse', img]);
    const head = await readAt(img, 0, 2 * MiB);
    const r = await cli(['resize', img, '--size', '32M']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/67108864 bytes \(64 MiB\): shrinking to 33554432 bytes \(32 MiB\) is not supported/);
    expect((await stat(img)).size).toBe(64 * MiB);
    expect((await readAt(img, 0, 2 * MiB)).equals(head)).toBe(true);
    const same = await json(['resize', img, '--size', '64M']);
    expect(same.steps).toEqual([]);
  });

  it('a file grown with truncate: inspect says what to run, and running it makes the image whole (sparse as found)', async () => {
    const img = join(dir, 'b.img');
    await json(['--size', '64M', '--table', 'gpt', img]);
    await truncate(img, 128 * MiB);
    const bad = await inspect(img);
    expect(bad.exitCode).toBe(1);
    expect(bad.report.ok).toBe(false);
    const size = bad.report.problems.find((p: { field: string }) => p.field === 'size');
    expect(size.message).toContain(`run mkimage resize ${img} --size ${128 * MiB}`);
    const human = await cli(['inspect', img]);
    expect(human.stdout).not.toContain('verdict: ok');
    const r = await json(['resize', img, '--size', String(128 * MiB)]);
    expect(r).toMatchObject({ oldSizeBytes: 64 * MiB, fileSizeBytes: 128 * MiB, sizeBytes: 128 * MiB, sparse: true });
    expect(r.steps).toEqual(['headers', 'fs']);
    expect((await inspect(img)).report.problems).toEqual([]);
    expect((await sh('sfdisk', ['--verify', img])).exitCode).toBe(0);
    expect((await checkFs(img, 'ext4', 2 * MiB, 124 * MiB)).clean).toBe(true);
  });

  it('--memmap pmem: refused past what the data offset holds; create --max-size reserves room', async () => {
    const p = join(dir, 'p.img');
    await json(['--size', '200M', '--memmap', 'pmem', '--sparse', p]);
    const r = await cli(['resize', p, '--size', '4G']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/struct pages on the device \(--memmap pmem\).*at most 254 MiB/);
    const q = join(dir, 'q.img');
    await json(['--size', '200M', '--memmap', 'pmem', '--max-size', '4G', '--sparse', q]);
    const g = await json(['resize', q, '--size', '4G']);
    expect(g.sizeBytes).toBe(4096 * MiB);
    expect((await inspect(q)).report.problems).toEqual([]);
  });
});

/**
 * kill -9 of mkimage as each tool of a resize starts (the tool itself runs on, orphaned, as it
 * would after a crash of mkimage alone). What a killed process leaves attached (a loop device, a
 * mount, an imported pool) is what guard/recover cleans up (issue 9); here the test removes it.
 * Then: the image is valid (inspect ok, checker clean), and a second resize finishes the job.
 */
describe('resize killed with SIGKILL at each phase', () => {
  const cases: [string, string, string | undefined][] = [
    ['ext4', 'fallocate', undefined],
    ['ext4', 'losetup', '--find'],
    ['ext4', 'e2fsck', undefined],
    ['ext4', 'resize2fs', undefined],
    ['xfs', 'mount', undefined],
    ['xfs', 'xfs_growfs', undefined],
    ['zfs', 'zpool', 'import'],
    ['zfs', 'zpool', 'online'],
  ];
  it.each(cases)('%s, as %s %s starts', async (fs, tool, when) => {
    const table = tool === 'e2fsck' || tool === 'mount' ? 'gpt' : 'mbr';
    const img = join(dir, 'k.img');
    const [size, , newBytes] = SIZES[fs]!;
    const pool = fs === 'zfs' ? poolName() : undefined;
    await json(['--size', size, '--fs', fs, '--table', table, ...(pool ? ['--pool', pool] : []), img]);
    const bin = join(dir, 'bin');
    await injectFault(bin, { tool, fault: 'signal-then-run', signal: 'KILL', when });
    const killed = await mkimage(['resize', img, '--size', String(newBytes)], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(killed.exitCode).not.toBe(0);
    // Let the orphaned tool finish, then take away what the dead process had attached.
    await new Promise((r) => setTimeout(r, 1500));
    for (const m of await mountsUnder(dir)) await execa('umount', [m.split(' ')[1]!], { reject: false });
    if (pool && (await importedPools()).includes(pool)) await sh('zpool', ['export', '-f', pool]);
    for (const l of await loopsUnder(dir)) await execa('losetup', ['-d', l.split(/\s+/)[0]!], { reject: false });

    const after = await inspect(img);
    expect(after.report.problems, tool).toEqual([]);
    const tail = table === 'gpt' ? 2 * MiB : 0;
    const part = after.report.partition.sizeBytes;
    expect([newBytes - 2 * MiB - tail, Number(/\d+/.exec(size)![0]) * MiB - 2 * MiB - tail]).toContain(part);
    const f = await checkFs(img, fs, 2 * MiB, part, pool);
    expect(f.clean, f.out).toBe(true);

    const again = await json(['resize', img, '--size', String(newBytes)]);
    expect(again.sizeBytes).toBe(newBytes);
    const done = await inspect(img);
    expect(done.report.problems).toEqual([]);
    const g = await checkFs(img, fs, 2 * MiB, newBytes - 2 * MiB - tail, pool);
    expect(g.clean, g.out).toBe(true);
    if (fs !== 'zfs') expect(g.sizeBytes).toBe(newBytes - 2 * MiB - tail);
    expect((await sh('sfdisk', ['--verify', img])).exitCode).toBe(0);
  });
});
