/**
 * Layer store housekeeping in a real pool (zfs-fuse): `layers rm` refuses a layer something
 * depends on and says what, `layers prune` removes what no image reference or runtime uses (and
 * leftovers of killed imports), `runtime create --quota`, and a present layer's blob is still
 * checked against its digests. The store stays consistent: what `layers list` shows is what ZFS has.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { T0, tarOf, writeOciLayout, type TestEntry } from '../unit/layers/helpers.js';
import { cleanDir, cli, cliJson, sh, tempDir } from './helpers/machine.js';
import { ensureZfsDaemon, type ZfsDaemon } from './helpers/zfs-daemon.js';

let daemon: ZfsDaemon;
let dir: string;
let image: string;
const pool = `mkh${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  daemon = await ensureZfsDaemon();
  dir = await tempDir('mkimage-housekeeping-');
  image = join(dir, 'h.img');
  // Created attached (create --mount): every command finds it attached and leaves it so, which
  // spares an import and an export per command (seconds each on zfs-fuse).
  const r = await cli(['--size', '512M', '--sparse', '--fs', 'zfs', '--pool', pool, '--mount', join(dir, 'mnt'), image]);
  expect(r.exitCode, r.stderr).toBe(0);
});
afterAll(async () => {
  await cli(['detach', image]);
  const pools = (await sh('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n');
  if (pools.includes(pool)) await sh('zpool', ['export', '-f', pool]);
  const left = await cleanDir(dir);
  await daemon?.stop();
  expect({ pool: pools.includes(pool), ...left }).toEqual({ pool: false, loops: [], mounts: [] });
});

const file = (path: string, text: string): TestEntry => ({ path, type: 'file', text, mtime: T0 });
const L1 = [{ path: 'etc', type: 'directory' } as TestEntry, file('etc/base', 'base\n')];
const L2 = [file('etc/app', 'app\n')];
const L3 = [file('etc/other', 'other\n')];

async function ok(args: string[]) {
  const r = await cli(args);
  expect(r.exitCode, r.stderr).toBe(0);
  return r;
}
const json = (args: string[]) => cliJson(args);
async function layers(): Promise<{ digest: string; refs: string[]; runtimes: string[] }[]> {
  return (await json(['layers', 'list', image])).layers;
}
/** The layer datasets ZFS has below storage/. */
async function storageDatasets(): Promise<string[]> {
  return (await sh('zfs', ['list', '-H', '-r', '-o', 'name', `${pool}/storage`])).stdout.split('\n').filter(Boolean).sort();
}

describe('layers rm, layers prune, runtime create --quota', () => {
  it('refuses what is in use, prunes what is not, keeps the store consistent', async () => {
    const [t1, t2, t3] = [await tarOf(L1), await tarOf(L2), await tarOf(L3)];
    const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const [d1, d2, d3] = [hex(t1), hex(t2), hex(t3)];
    const oci = join(dir, 'oci');
    await writeOciLayout(oci, [t1, t2], { names: ['docker.io/library/app:1'] });
    await ok(['layers', 'import', image, oci]);
    // The same bottom layer under a plain tar chain: no image reference on d3.
    await fs.writeFile(join(dir, 'l1.tar'), t1);
    await fs.writeFile(join(dir, 'l3.tar'), t3);
    await ok(['layers', 'import', image, join(dir, 'l1.tar'), join(dir, 'l3.tar')]);

    // A corrupt blob for a layer that is present already: an error, not "present already".
    const bad = join(dir, 'oci-bad');
    await writeOciLayout(bad, [t1, t2], { names: ['docker.io/library/app:1'], corruptLayer: 0 });
    const corrupt = await cli(['layers', 'import', image, bad]);
    expect(corrupt.exitCode).toBe(1);
    expect(corrupt.stderr).toMatch(/corrupt/);

    const rt = await json(['runtime', 'create', image, '--layer', d2, '--name', 'r1', '--quota', '64M']);
    expect(rt.quotaBytes).toBe(64 * 1024 * 1024);
    const quota = (await sh('zfs', ['get', '-H', '-o', 'value', 'quota', `${pool}/runtime/r1`])).stdout.trim();
    expect(quota).toBe('64M');

    const r1 = await cli(['layers', 'rm', image, d1]);
    expect(r1.exitCode).toBe(2);
    expect(r1.stderr).toContain(`layer ${d2}`);
    expect(r1.stderr).toContain(`layer ${d3}`);
    const r2 = await cli(['layers', 'rm', image, d2.slice(0, 10)]);
    expect(r2.exitCode).toBe(2);
    expect(r2.stderr).toContain('runtime r1');
    expect(r2.stderr).toContain('nothing was removed');
    const empty = await cli(['layers', 'rm', image, 'empty']);
    expect(empty.exitCode).toBe(2);

    const dry = await json(['layers', 'prune', image, '--dry-run']);
    expect(dry.layers.map((l: { digest: string }) => l.digest)).toEqual([d3]);
    expect((await layers()).map((l) => l.digest).sort()).toEqual(['empty', d1, d2, d3].sort());

    // A leftover of a killed import: a temporary layer dataset.
    await sh('zfs', ['clone', `${pool}/storage/empty@extracted`, `${pool}/storage/.tmp-deadbeef0001`]);
    const pruned = await json(['layers', 'prune', image]);
    expect(pruned.layers.map((l: { digest: string }) => l.digest)).toEqual([d3]);
    expect(pruned.leftovers).toEqual([`${pool}/storage/.tmp-deadbeef0001`]);
    expect(await storageDatasets()).toEqual([`${pool}/storage`, `${pool}/storage/${d1}`, `${pool}/storage/${d2}`, `${pool}/storage/empty`].sort());

    await ok(['runtime', 'rm', image, 'r1']);
    const rm = await json(['layers', 'rm', image, d2]);
    expect(rm.droppedRefs).toEqual(['docker.io/library/app:1']);
    const last = await json(['layers', 'prune', image]);
    expect(last.layers.map((l: { digest: string }) => l.digest)).toEqual([d1]);
    expect((await layers()).map((l) => l.digest)).toEqual(['empty']);
    expect(await storageDatasets()).toEqual([`${pool}/storage`, `${pool}/storage/empty`]);
    const nothing = await cli(['layers', 'prune', image]);
    expect(nothing.stdout).toContain('nothing to prune');
  }, 300_000);
});
