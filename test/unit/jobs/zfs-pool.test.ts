import { describe, expect, it } from 'vitest';
import { PoolError, UsageError } from '../../../src/errors.js';
import { buildPool, longestLayerName, planPool, preflightPool } from '../../../src/jobs/zfs-pool.js';
import { withUndo } from '../../../src/undo.js';
import { FUSE, FakeZfs, OPENZFS } from '../helpers/fake-zfs.js';

const build = (fake: FakeZfs, o: Partial<Parameters<typeof buildPool>[0]> = {}) =>
  withUndo(undefined, (undo) => buildPool({ device: '/dev/loop3', pool: 'tank', run: fake.runner, flavour: fake.flavour, readLabel: fake.readLabel, ...o }, undo));

describe('planPool', () => {
  it('calldown (the default): storage, storage/empty@extracted, runtime', () => {
    const p = planPool({ pool: 'tank' });
    expect(p.datasets).toEqual(['storage', 'storage/empty', 'runtime']);
    expect(p.snapshots).toEqual(['storage/empty@extracted']);
  });

  it('dlite and none; --dataset adds parents first, once', () => {
    expect(planPool({ pool: 'tank', layout: 'dlite' }).datasets).toEqual(['dhyve', 'images', 'containers']);
    expect(planPool({ pool: 'tank', layout: 'none', datasets: ['a/b/c', 'a/d', 'a'] }).datasets).toEqual(['a', 'a/b', 'a/b/c', 'a/d']);
    expect(planPool({ pool: 'tank', datasets: ['storage/layers', 'runtime'] }).datasets).toEqual(['storage', 'storage/empty', 'runtime', 'storage/layers']);
  });

  it('refuses bad names and options before anything runs (UsageError, exit 2)', () => {
    const bad = [
      { pool: 'mirror' },
      { pool: 'tank', layout: 'lxd' as never },
      { pool: 'tank', datasets: ['ok', 'a/../b'] },
      { pool: 'tank', zfsOptions: ['compression'] },
      { pool: 'tank', zfsOptions: ['atime=off', 'atime=on'] },
      { pool: 'tank', zfsOptions: ['mountpoint=relative'] },
      { pool: 'tank', zfsOptions: ['mountpoint=none'], populateDir: '/x' },
    ];
    for (const r of bad) {
      let e: unknown;
      try {
        planPool(r);
      } catch (x) {
        e = x;
      }
      expect(e, JSON.stringify(r)).toBeInstanceOf(UsageError);
      expect((e as UsageError).exitStatus).toBe(2);
    }
  });

  it('a pool name whose layer names would pass 255 bytes is refused up front (calldown only)', () => {
    // POOL/storage/<64 hex>@extracted: 83 bytes besides the pool name, so 172 is the longest pool.
    expect(Buffer.byteLength(longestLayerName('p'.repeat(172)))).toBe(255);
    expect(() => planPool({ pool: 'p'.repeat(172) })).not.toThrow();
    expect(() => planPool({ pool: 'p'.repeat(173) })).toThrow(
      "--pool pppppppppppppppppppp... (173 bytes) is too long for --layout calldown: its layers are named POOL/storage/<64 hex digits>@extracted, 256 bytes, over ZFS's 255: choose a pool name of at most 172 bytes (or --layout dlite or none)",
    );
    expect(() => planPool({ pool: 'p'.repeat(173), layout: 'dlite' })).not.toThrow();
  });
});

describe('buildPool on OpenZFS (fake)', () => {
  it('creates under a temporary name with the portable options, builds the tree, exports', async () => {
    const fake = new FakeZfs(OPENZFS);
    fake.addForeignPool('tank', '/dev/nvme0n1p3'); // the host's own pool of the same name: no obstacle with -t
    const r = await build(fake, { datasets: ['images/base'], zfsOptions: ['atime=off'] });
    expect(r.pool).toBe('tank');
    expect(r.flavour).toBe(OPENZFS);
    expect(r.format).toBe('compatibility openzfs-2.1-linux');
    expect(r.datasets).toEqual(['tank', 'tank/images', 'tank/images/base', 'tank/runtime', 'tank/storage', 'tank/storage/empty']);
    expect(r.snapshots).toEqual(['tank/storage/empty@extracted']);

    const create = fake.calls.find((c) => c.startsWith('zpool create'))!;
    const tmp = /-t (mkimage_build_[0-9a-f]{8}) /.exec(create)![1]!;
    expect(create).toMatch(
      new RegExp(`^zpool create -f -o ashift=12 -o compatibility=openzfs-2.1-linux -o cachefile=none -O atime=off -R /\\S+/mkimage-zpool-\\S+ -m /tank -t ${tmp} tank /dev/loop3$`),
    );
    const after = fake.calls.slice(fake.calls.indexOf(create) + 1).filter((c) => !c.startsWith('zpool list'));
    expect(after).toEqual([
      // Leaves only, with -p: the parents come with them.
      `zfs create -p ${tmp}/storage/empty`,
      `zfs create ${tmp}/runtime`,
      `zfs create -p ${tmp}/images/base`,
      `zfs snapshot ${tmp}/storage/empty@extracted`,
      // No `zfs list`: each create succeeded, so the tree is the plan's; no `zpool list` after the
      // export (it succeeded, so nothing is imported under the build name).
      `zpool export ${tmp}`,
    ]);
    expect(fake.calls.slice(fake.calls.indexOf(`zpool export ${tmp}`) + 1)).toEqual([]);
    expect([...fake.pools.keys()]).toEqual(['tank']); // only the host's own pool is still imported
  });
});

describe('buildPool on zfs-fuse (fake)', () => {

  it('refuses a pool name already imported on the host, before creating anything', async () => {
    const fake = new FakeZfs(FUSE);
    fake.addForeignPool('tank');
    const e = await build(fake).catch((x) => x);
    expect(e).toBeInstanceOf(PoolError);
    expect(e.message).toMatch(/^a pool named tank is already imported on this host .*zpool export tank/);
    expect(fake.calls.some((c) => c.startsWith('zpool create'))).toBe(false);
    expect(fake.pools.get('tank')?.vdev).toBe('/dev/sdz1'); // untouched
  });

  it('a create that fails after making the pool (zfs-fuse: cannot mount) still has it destroyed', async () => {
    const fake = new FakeZfs(FUSE);
    const inner = fake.runner;
    const runner: typeof inner = async (file, args, options) => {
      const r = await inner(file, args, options);
      if (args[0] === 'create' && file === 'zpool') {
        const { ToolFailedError } = await import('../../../src/errors.js');
        throw new ToolFailedError("zpool create exited with 1: cannot mount '/x': directory is not empty", { stderr: "cannot mount '/x': directory is not empty" });
      }
      return r;
    };
    const e = await withUndo(undefined, (undo) => buildPool({ device: '/dev/loop3', pool: 'tank', run: runner, flavour: FUSE }, undo)).catch((x) => x);
    expect(e.message).toContain('cannot mount');
    expect(fake.calls).toContain('zpool destroy -f tank');
    expect(fake.pools.size).toBe(0);
  });

  it('undo never destroys a same-named pool on another device', async () => {
    const fake = new FakeZfs(FUSE).failOn(/^zpool create/, "cannot create 'tank': pool already exists");
    const inner = fake.runner;
    let listed = 0;
    // The name is free at the check, then someone imports a pool named tank from elsewhere.
    const runner: typeof inner = async (file, args, options) => {
      if (file === 'zpool' && args[0] === 'list' && ++listed === 2) fake.addForeignPool('tank', '/dev/sdq');
      return inner(file, args, options);
    };
    await withUndo(undefined, (undo) => buildPool({ device: '/dev/loop3', pool: 'tank', run: runner, flavour: FUSE }, undo)).catch(() => undefined);
    expect(fake.calls).not.toContain('zpool destroy -f tank');
    expect(fake.pools.get('tank')?.vdev).toBe('/dev/sdq');
  });

  it('an OpenZFS-only option is refused before anything runs', async () => {
    const fake = new FakeZfs(FUSE);
    const e = await build(fake, { zfsOptions: ['compression=lz4'] }).catch((x) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect(fake.calls).toEqual([]);
  });
});

describe('preflightPool', () => {
  it('detects the flavour, checks options and the name without writing anything', async () => {
    const fake = new FakeZfs(OPENZFS);
    const p = await preflightPool({ pool: 'tank', compatibility: 'grub2' }, fake.runner);
    expect(p.flavour.kind).toBe('openzfs');
    expect(p.format).toBe('compatibility grub2');
    expect(fake.calls.every((c) => /^(zfs version|zpool list)/.test(c))).toBe(true);
  });
});
