import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { formatAttached, formatStatus, zfsCreateOptions, zfsCreateRequest } from '../../../src/cli/zfs.js';

describe('create --fs zfs options', () => {
  const parse = (argv: string[]) => {
    const c = zfsCreateOptions(new Command('create').exitOverride().option('--fs <t>', '', 'ext4'));
    c.parse(argv, { from: 'user' });
    return c.opts();
  };

  it('collects repeatable options and passes them on', () => {
    const f = parse(['--fs', 'zfs', '--pool', 'tank', '--dataset', 'a/b', '--dataset', 'c', '--zfs-option', 'atime=off', '--zpool-option', 'autoexpand=on', '--layout', 'dlite']);
    expect(zfsCreateRequest(f.fs, f)).toEqual({
      pool: 'tank',
      layout: 'dlite',
      datasets: ['a/b', 'c'],
      zpoolOptions: ['autoexpand=on'],
      zfsOptions: ['atime=off'],
      compatibility: undefined,
      mount: undefined,
      owner: undefined,
    });
  });

  it('refuses ZFS options with another --fs, a missing --pool, --owner without --mount', () => {
    expect(() => zfsCreateRequest('ext4', parse(['--pool', 'tank', '--dataset', 'x']))).toThrow('--pool, --dataset only apply to --fs zfs');
    expect(() => zfsCreateRequest('ext4', parse(['--pool', 'tank']))).toThrow('--pool only applies to --fs zfs');
    expect(zfsCreateRequest('ext4', parse([]))).toBeUndefined();
    expect(() => zfsCreateRequest('zfs', parse([]))).toThrow(UsageError);
    expect(() => zfsCreateRequest('zfs', parse([]))).toThrow('--fs zfs needs --pool NAME');
    expect(() => zfsCreateRequest('zfs', parse(['--pool', 't', '--owner', 'me']))).toThrow('--owner needs --mount');
    expect(() => parse(['--layout', 'lxd'])).toThrow();
  });
});

describe('human output', () => {
  it('attach and status', () => {
    const a = {
      file: '/x/a.img', loopDevice: '/dev/loop3', pool: 'tank', guid: '42', health: 'ONLINE', altroot: '/mnt', alreadyAttached: false,
      flavour: 'zfs-fuse 0.7.0 (pool version 23)', mountpoints: [{ dataset: 'tank', mountpoint: '/mnt/tank' }],
    };
    expect(formatAttached(a)).toBe('/x/a.img: pool tank (guid 42) imported from /dev/loop3, ONLINE (zfs-fuse 0.7.0 (pool version 23))\n  tank  /mnt/tank');
    expect(formatStatus({ zfs: { flavour: 'openzfs 2.1.5' }, images: [], leftovers: [] })).toBe('no image attached (ZFS: openzfs 2.1.5)');
    const images = [{ file: '/x/a.img', loopDevice: '/dev/loop3', offsetBytes: 1, sizeLimitBytes: 2, mountpoints: [] }];
    expect(formatStatus({ zfs: { flavour: 'z' }, images, leftovers: [] })).toBe('/x/a.img: /dev/loop3, no pool imported from it\nZFS: z');
    // ZFS could not be asked: the pool is unknown, not absent (it may well be imported).
    expect(formatStatus({ zfs: { error: 'the zfs-fuse daemon is not running' }, images, leftovers: [] })).toBe(
      '/x/a.img: /dev/loop3, pool unknown (ZFS not available)\nZFS: not available: the zfs-fuse daemon is not running',
    );
    // Moved to another filesystem or deleted while attached, and what a killed command left.
    const deleted = { file: '/x/b.img (deleted)', deleted: true, loopDevice: '/dev/loop4', offsetBytes: 1, sizeLimitBytes: 2, pool: 'tank', health: 'ONLINE', mountpoints: [] };
    const leftover = { journal: '/run/mkimage/jobs/9-1-1.json', pid: 9, command: 'mkimage attach /x/c.img', since: 'T', pools: ['p'], steps: [{ what: 'import of pool p', record: { kind: 'pool' as const, name: 'p', file: '/x/c.img', how: 'export' as const } }] };
    expect(formatStatus({ zfs: { flavour: 'z' }, images: [deleted], leftovers: [leftover] }).split('\n')).toEqual([
      '/x/b.img (deleted): /dev/loop4, pool tank ONLINE',
      '  the image file was deleted or moved to another filesystem while attached: free it with mkimage detach --pool tank',
      'leftover of PID 9 (mkimage attach /x/c.img, no longer running; started T): import of pool p (mkimage status --clean removes it)',
      'ZFS: z',
    ]);
  });
});
