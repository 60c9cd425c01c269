import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PoolError, ToolFailedError, UsageError } from '../../../src/errors.js';
import type { RunOptions, RunResult, Runner } from '../../../src/tools/exec.js';
import {
  DEFAULT_COMPATIBILITY,
  Zfs,
  capabilitiesOf,
  checkDatasetPath,
  checkOptionsForFlavour,
  checkPoolName,
  detectFlavour,
  flavourKey,
  readFlavourCache,
  zfsHost,
  parseDatasetList,
  parsePoolList,
  parsePoolVersion,
  parseProperty,
  parseStatusVdevs,
  parseZfsVersion,
  poolFormat,
  retryBusy,
  upstreamVersion,
  versionAtLeast,
  zfsListArgs,
  zpoolCreateArgs,
  zpoolImportArgs,
  zpoolListArgs,
  zpoolStatusArgs,
  type ZfsFlavour,
} from '../../../src/tools/zfs.js';

const OPENZFS: ZfsFlavour = { kind: 'openzfs', version: '2.1.5', poolVersion: 5000, description: 'openzfs 2.1.5' };
const OPENZFS_20: ZfsFlavour = { kind: 'openzfs', version: '2.0.3', poolVersion: 5000, description: 'openzfs 2.0.3' };
const FUSE: ZfsFlavour = { kind: 'zfs-fuse', version: '0.7.0', poolVersion: 23, description: 'zfs-fuse 0.7.0 (pool version 23)' };

/** Answers by "file args..." prefix; records every call. */
function fakeRunner(answers: Array<[prefix: string, answer: Partial<RunResult> | Error]>) {
  const calls: string[] = [];
  const runner: Runner = async (file, args, options?: RunOptions) => {
    const line = [file, ...args].join(' ');
    calls.push(line);
    const hit = answers.find(([p]) => line.startsWith(p));
    if (!hit) throw new Error(`unexpected command: ${line}`);
    const a = hit[1];
    if (a instanceof Error) throw a;
    const exitCode = a.exitCode ?? 0;
    if (!(options?.okExitCodes ?? [0]).includes(exitCode)) {
      throw new ToolFailedError(`${line} exited with ${exitCode}`, { stderr: a.stderr ?? '', exitCode });
    }
    return { command: [file, ...args], exitCode, stdout: a.stdout ?? '', stderr: a.stderr ?? '' };
  };
  return { runner, calls };
}

const failed = (stderr: string, exitCode = 1) => new ToolFailedError(`failed: ${stderr}`, { stderr, exitCode });

describe('flavour detection', () => {
  it('OpenZFS: `zfs version` answers, then `zpool list` checks the module', async () => {
    const { runner, calls } = fakeRunner([
      ['zfs version', { stdout: 'zfs-2.1.5-1ubuntu6~22.04.1\nzfs-kmod-2.1.5-1ubuntu6~22.04.1\n' }],
      ['zpool list -H -o name', { stdout: '' }],
    ]);
    const f = await detectFlavour(runner);
    expect(f).toEqual(OPENZFS);
    expect(calls).toEqual(['zfs version', 'zpool list -H -o name']);
  });

  it('zfs-fuse: `zfs version` is unknown (exit 2); the pool version comes from `zpool upgrade -v`', async () => {
    const { runner } = fakeRunner([
      ['zfs version', { exitCode: 2, stderr: "unrecognized command 'version'\n" }],
      ['zpool upgrade -v', { stdout: 'This system is currently running ZFS pool version 23.\n' }],
      ['dpkg-query -W -f ${Version} zfs-fuse', { stdout: '0.7.0-25+b1' }],
      ['zpool list -H -o name', { stdout: '' }],
    ]);
    expect(await detectFlavour(runner, { toolExists: async (t) => t === 'zfs-fuse' })).toEqual(FUSE);
  });

  it('ZFS on Linux before 0.8 (no `zfs version`, no zfs-fuse binary) is OpenZFS of unknown version', async () => {
    const { runner } = fakeRunner([
      ['zfs version', { exitCode: 2, stderr: "unrecognized command 'version'\n" }],
      ['zpool upgrade -v', { stdout: 'This system supports ZFS pool feature flags.\n' }],
      ['zpool list -H -o name', { stdout: '' }],
    ]);
    const f = await detectFlavour(runner, { toolExists: async () => false });
    expect(f.kind).toBe('openzfs');
    expect(capabilitiesOf(f)).toMatchObject({ compatibility: false, importDevice: false, tempName: true });
  });

  it('zfs-fuse daemon down: a PoolError that says how to start it', async () => {
    const down = failed('connect: No such file or directory\nPlease make sure that the zfs-fuse daemon is running.\ninternal error: failed to initialize ZFS library\n');
    const { runner } = fakeRunner([
      ['zfs version', { exitCode: 1, stderr: 'connect: No such file or directory\n' }],
      ['zpool upgrade -v', down],
    ]);
    const e = await detectFlavour(runner).catch((x) => x);
    expect(e).toBeInstanceOf(PoolError);
    expect(e.message).toContain('start it with: zfs-fuse');
  });

  it('OpenZFS module not loaded: a PoolError that says modprobe zfs', async () => {
    const { runner } = fakeRunner([
      ['zfs version', { stdout: 'zfs-2.2.2-0ubuntu9\n' }],
      ['zpool list', failed("The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs' as root to load them.\n")],
    ]);
    const e = await detectFlavour(runner).catch((x) => x);
    expect(e).toBeInstanceOf(PoolError);
    expect(e.message).toContain('modprobe zfs');
  });

  it('parses versions', () => {
    expect(parseZfsVersion('zfs-0.8.3-1ubuntu12\nzfs-kmod-0.8.3-1ubuntu12\n')).toBe('0.8.3');
    expect(parseZfsVersion("unrecognized command 'version'")).toBeUndefined();
    expect(parsePoolVersion('This system is currently running ZFS pool version 23.')).toBe(23);
    expect(parsePoolVersion('This system supports ZFS pool feature flags.')).toBe(5000);
    expect(upstreamVersion('0.7.0-25+b1')).toBe('0.7.0');
    expect(upstreamVersion('1:2.1.11-1')).toBe('2.1.11');
    expect(versionAtLeast('2.1.5', '2.1')).toBe(true);
    expect(versionAtLeast('2.0.7', '2.1')).toBe(false);
    expect(versionAtLeast('0.8.0', '0.8')).toBe(true);
    expect(versionAtLeast('unknown', '0.8')).toBe(false);
  });

  it('capabilities per flavour', () => {
    expect(capabilitiesOf(FUSE)).toEqual({
      compatibility: false,
      tempName: false,
      parsableLists: false,
      importDevice: false,
      importNoMount: false,
      statusFullPaths: false,
      maxLegacyVersion: 23,
    });
    expect(capabilitiesOf(OPENZFS)).toMatchObject({ compatibility: true, tempName: true, parsableLists: true, importDevice: true });
    expect(capabilitiesOf(OPENZFS_20).compatibility).toBe(false);
  });
});

describe('names are checked before anything runs', () => {
  it.each(['tank', 'dlitepool', 'a', 'pool_1.x:y-z', 'mypool', 'logs'])('accepts pool %s', (n) => {
    expect(() => checkPoolName(n)).not.toThrow();
  });

  it.each([
    ['', 'is empty'],
    ['-f', "starts with '-'"],
    ['my pool', 'white space'],
    ['a..b', "'..'"],
    ['tank;rm', 'contains ";"'],
    ['$(reboot)', 'contains "$"'],
    ['a`b`', 'contains "`"'],
    ['tank/x', "contains '/'"],
    ['1tank', 'begin with a letter'],
    ['mirror', 'ZFS reserves'],
    ['raidz2pool', 'begins with "raidz"'],
    ['spare', 'begins with "spare"'],
    ['log', 'reserved'],
    ['c0t0d0', 'Solaris disk name'],
    ['t'.repeat(256), '256 bytes long'],
    ['tänk', 'contains "ä"'],
  ])('refuses pool %j (%s)', (n, why) => {
    let e: unknown;
    try {
      checkPoolName(n);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).exitStatus).toBe(2);
    expect((e as Error).message).toContain(why);
  });

  it.each(['storage', 'storage/empty', 'images/base.v1', 'a:b/c_d-e', '.hidden'])('accepts dataset %s', (d) => {
    expect(() => checkDatasetPath(d, 'tank')).not.toThrow();
  });

  it.each([
    ['/abs', "must not start or end with '/'"],
    ['trail/', "must not start or end with '/'"],
    ['a//b', "empty component"],
    ['a/../b', "'..'"],
    ['a/-x', "starting with '-'"],
    ['-x', "starts with '-'"],
    ['a b', 'white space'],
    ['snap@x', "'@'"],
    ['a/.zfs', '.zfs'],
    ['a%b', 'contains "%"'],
    ['a;b', 'contains ";"'],
    [Array.from({ length: 51 }, () => 'd').join('/'), '51 levels deep'],
    ['x'.repeat(251), 'bytes long'],
  ])('refuses dataset %j (%s)', (d, why) => {
    expect(() => checkDatasetPath(d, 'tank')).toThrow(UsageError);
    expect(() => checkDatasetPath(d, 'tank')).toThrow(why);
  });

  it('parses KEY=VALUE options and refuses the rest', () => {
    expect(parseProperty('compression=on', '--zfs-option')).toEqual(['compression', 'on']);
    expect(parseProperty('com.example:owner=a b', '--zfs-option')).toEqual(['com.example:owner', 'a b']);
    expect(parseProperty('feature@async_destroy=enabled', '--zpool-option')).toEqual(['feature@async_destroy', 'enabled']);
    expect(() => parseProperty('compression', '--zfs-option')).toThrow('not KEY=VALUE');
    expect(() => parseProperty('=on', '--zfs-option')).toThrow('not KEY=VALUE');
    expect(() => parseProperty('Comp=on', '--zfs-option')).toThrow('not a ZFS property name');
    expect(() => parseProperty('atime=', '--zfs-option')).toThrow('one-line value');
    expect(() => parseProperty('atime=-R', '--zfs-option')).toThrow("not starting with '-'");
    expect(() => parseProperty('atime=on\noff', '--zfs-option')).toThrow('one-line value');
  });

  it('refuses options the flavour lacks, and the ones mkimage manages', () => {
    expect(() => checkOptionsForFlavour(OPENZFS, [['altroot', '/x']], [])).toThrow('--mount');
    expect(() => checkOptionsForFlavour(FUSE, [['cachefile', '/x']], [])).toThrow('cachefile=none is always set');
    expect(() => checkOptionsForFlavour(FUSE, [['autotrim', 'on']], [])).toThrow('has no pool property autotrim');
    expect(() => checkOptionsForFlavour(FUSE, [['feature@lz4_compress', 'enabled']], [])).toThrow('no pool property');
    expect(() => checkOptionsForFlavour(FUSE, [], [['compression', 'lz4']])).toThrow('does not have compression=lz4');
    expect(() => checkOptionsForFlavour(FUSE, [], [['xattr', 'sa']])).toThrow('does not have xattr=sa');
    expect(() => checkOptionsForFlavour(FUSE, [], [['acltype', 'posixacl']])).toThrow('no file system property acltype');
    expect(() => checkOptionsForFlavour(FUSE, [['autoexpand', 'on']], [['compression', 'gzip-9'], ['atime', 'off'], ['com.example:x', 'y']])).not.toThrow();
    expect(() => checkOptionsForFlavour(OPENZFS, [['autotrim', 'on']], [['compression', 'lz4'], ['xattr', 'sa'], ['acltype', 'posixacl']])).not.toThrow();
  });
});

describe('pool format', () => {
  it('OpenZFS 2.1+: ashift=12 and the default compatibility set', () => {
    expect(poolFormat(OPENZFS, undefined, [])).toEqual({
      options: [['ashift', '12'], ['compatibility', DEFAULT_COMPATIBILITY]],
      description: 'compatibility openzfs-2.1-linux',
    });
    expect(poolFormat(OPENZFS, 'legacy', []).options).toEqual([['ashift', '12'], ['compatibility', 'legacy']]);
    expect(poolFormat(OPENZFS, 'grub2,openzfs-2.0-linux', []).options).toContainEqual(['compatibility', 'grub2,openzfs-2.0-linux']);
    expect(poolFormat(OPENZFS, 'v28', []).options).toEqual([['ashift', '12'], ['version', '28']]);
    expect(() => poolFormat(OPENZFS, 'v29', [])).toThrow('1 to 28');
    expect(() => poolFormat(OPENZFS, '../../etc/passwd', [])).toThrow('not a compatibility set name');
    expect(() => poolFormat(OPENZFS, 'grub2', [['version', '28']])).toThrow('exclude each other');
    expect(poolFormat(OPENZFS, undefined, [['version', '28']]).options).toEqual([['ashift', '12']]);
    expect(poolFormat(OPENZFS, undefined, [['ashift', '9']]).options).toEqual([['compatibility', DEFAULT_COMPATIBILITY]]);
  });

  it('OpenZFS 2.0: no compatibility sets; an explicit one is refused', () => {
    expect(poolFormat(OPENZFS_20, undefined, []).options).toEqual([['ashift', '12']]);
    expect(() => poolFormat(OPENZFS_20, 'grub2', [])).toThrow('needs OpenZFS 2.1');
  });

  it('zfs-fuse: ashift=12 only; v1..v23; a compatibility set is refused', () => {
    expect(poolFormat(FUSE, undefined, [])).toEqual({ options: [['ashift', '12']], description: 'pool version 23 (zfs-fuse)' });
    expect(poolFormat(FUSE, 'legacy', []).options).toEqual([['ashift', '12']]);
    expect(poolFormat(FUSE, 'v15', []).options).toEqual([['ashift', '12'], ['version', '15']]);
    expect(() => poolFormat(FUSE, 'v28', [])).toThrow('1 to 23');
    expect(() => poolFormat(FUSE, 'openzfs-2.1-linux', [])).toThrow('needs OpenZFS 2.1 or later; this host runs zfs-fuse');
  });
});

describe('command lines', () => {
  const spec = {
    pool: 'tank',
    device: '/dev/loop7',
    altroot: '/tmp/mkimage-x/root',
    poolOptions: [] as [string, string][],
    fsOptions: [['atime', 'off']] as [string, string][],
  };

  it('zpool create for OpenZFS: compatibility, cachefile=none, -R, -m, -t', () => {
    const f = poolFormat(OPENZFS, undefined, []);
    expect(zpoolCreateArgs(OPENZFS, { ...spec, poolOptions: f.options, tempName: 'mkimage-123' })).toEqual([
      'create', '-f',
      '-o', 'ashift=12', '-o', 'compatibility=openzfs-2.1-linux',
      '-o', 'cachefile=none',
      '-O', 'atime=off',
      '-R', '/tmp/mkimage-x/root',
      '-m', '/tank',
      '-t', 'mkimage-123',
      'tank', '/dev/loop7',
    ]);
  });

  it('zpool create for zfs-fuse: only what it accepts (no compatibility, no -t)', () => {
    const f = poolFormat(FUSE, undefined, []);
    const args = zpoolCreateArgs(FUSE, { ...spec, poolOptions: [...f.options, ['autoexpand', 'on']] });
    expect(args).toEqual([
      'create', '-f',
      '-o', 'ashift=12', '-o', 'autoexpand=on',
      '-o', 'cachefile=none',
      '-O', 'atime=off',
      '-R', '/tmp/mkimage-x/root',
      '-m', '/tank',
      'tank', '/dev/loop7',
    ]);
    expect(args.join(' ')).not.toMatch(/compatibility|-t /);
    expect(() => zpoolCreateArgs(FUSE, { ...spec, poolOptions: [], tempName: 'x' })).toThrow('temporary name');
  });

  it('a --zfs-option mountpoint replaces -m', () => {
    const args = zpoolCreateArgs(FUSE, { ...spec, fsOptions: [['mountpoint', '/srv/pool']] });
    expect(args).toContain('mountpoint=/srv/pool');
    expect(args).not.toContain('-m');
  });

  it('zpool import: a device (OpenZFS 0.8+) or a directory (zfs-fuse), never a cache file', () => {
    expect(zpoolImportArgs(OPENZFS, { pool: 'tank', search: '/dev/loop7', altroot: '/mnt/x' })).toEqual([
      'import', '-d', '/dev/loop7', '-o', 'cachefile=none', '-R', '/mnt/x', 'tank',
    ]);
    expect(zpoolImportArgs(OPENZFS, { pool: 'tank', search: '/dev/loop7', altroot: '/mnt/x', force: true, noMount: true })).toEqual([
      'import', '-d', '/dev/loop7', '-o', 'cachefile=none', '-R', '/mnt/x', '-f', '-N', 'tank',
    ]);
    expect(zpoolImportArgs(FUSE, { pool: 'tank', search: '/run/mkimage/vdev/loop7', altroot: '/mnt/x', force: true, noMount: true })).toEqual([
      'import', '-d', '/run/mkimage/vdev/loop7', '-o', 'cachefile=none', '-R', '/mnt/x', '-f', 'tank',
    ]);
  });

  it('machine-readable lists: -H everywhere, -p only on OpenZFS', () => {
    expect(zpoolListArgs(OPENZFS)).toEqual(['list', '-H', '-p', '-o', 'name,guid,health,altroot']);
    expect(zpoolListArgs(FUSE, 'tank')).toEqual(['list', '-H', '-o', 'name,guid,health,altroot', 'tank']);
    expect(zfsListArgs(OPENZFS, 'tank')).toEqual(['list', '-H', '-p', '-r', '-t', 'filesystem,volume,snapshot', '-o', 'name,type,mountpoint,mounted', 'tank']);
    expect(zfsListArgs(FUSE, 'tank', 'filesystem')).toEqual(['list', '-H', '-r', '-t', 'filesystem', '-o', 'name,type,mountpoint,mounted', 'tank']);
    expect(zpoolStatusArgs(OPENZFS, 'tank')).toEqual(['status', '-P', 'tank']);
    expect(zpoolStatusArgs(FUSE, 'tank')).toEqual(['status', 'tank']);
  });
});

describe('output parsers', () => {
  it('zpool list -H', () => {
    expect(parsePoolList('tank\t18130710136412982543\tONLINE\t/tmp/alt\nother\t42\tDEGRADED\t-\n')).toEqual([
      { name: 'tank', guid: '18130710136412982543', health: 'ONLINE', altroot: '/tmp/alt' },
      { name: 'other', guid: '42', health: 'DEGRADED', altroot: undefined },
    ]);
    expect(parsePoolList('')).toEqual([]);
  });

  it('zfs list -H', () => {
    expect(parseDatasetList('tq\tfilesystem\t/tmp/alt/tq\tyes\ntq/a@s\tsnapshot\t-\t-\ntq/n\tfilesystem\tnone\tno\n')).toEqual([
      { name: 'tq', type: 'filesystem', mountpoint: '/tmp/alt/tq', mounted: true },
      { name: 'tq/a@s', type: 'snapshot', mountpoint: undefined, mounted: false },
      { name: 'tq/n', type: 'filesystem', mountpoint: undefined, mounted: false },
    ]);
  });

  it('zpool status vdev paths (zfs-fuse output, as printed)', () => {
    const status = [
      '  pool: tq',
      ' state: ONLINE',
      ' scrub: none requested',
      'config:',
      '',
      '\tNAME                  STATE     READ WRITE CKSUM',
      '\ttq                    ONLINE       0     0     0',
      '\t  /tmp/zx/dev2/loop0  ONLINE       0     0     0',
      '',
      'errors: No known data errors',
    ].join('\n');
    expect(parseStatusVdevs(status)).toEqual(['/tmp/zx/dev2/loop0']);
  });

  it('zpool status vdevs: zfs-fuse drops /dev/ from device names; groups are skipped', () => {
    const fuse = "  pool: mkt1\n state: ONLINE\n scrub: none requested\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tmkt1        ONLINE       0     0     0\n\t  loop0     ONLINE       0     0     0\n\nerrors: No known data errors\n";
    expect(parseStatusVdevs(fuse)).toEqual(['loop0']);
    const mirror = 'config:\n\n\tNAME           STATE\n\ttank           ONLINE\n\t  mirror-0     ONLINE\n\t    /dev/sda1  ONLINE\n\t    /dev/sdb1  ONLINE\n\tlogs\n\t  /dev/nvme0n1 ONLINE\n\nerrors: No known data errors\n';
    expect(parseStatusVdevs(mirror)).toEqual(['/dev/sda1', '/dev/sdb1', '/dev/nvme0n1']);
    expect(parseStatusVdevs("cannot open 'x': no such pool")).toEqual([]);
  });
});

describe('Zfs calls', () => {
  it('repeats export while zfs-fuse says busy, and gives up on other errors', async () => {
    let n = 0;
    const runner: Runner = async (file, args) => {
      n++;
      if (n < 3) throw failed("cannot export 'tq': pool is busy");
      return { command: [file, ...args], exitCode: 0, stdout: '', stderr: '' };
    };
    await new Zfs(FUSE, runner, undefined, 1).exportPool('tq');
    expect(n).toBe(3);
    let m = 0;
    const e = await retryBusy(async () => {
      m++;
      throw failed("cannot open 'tq': no such pool");
    }, 5, 1).catch((x) => x);
    expect(m).toBe(1);
    expect(e).toBeInstanceOf(ToolFailedError);
  });

  it('a daemon that stopped mid-job is a PoolError on any call', async () => {
    const { runner } = fakeRunner([['zfs list', failed('connect: Connection refused\nPlease make sure that the zfs-fuse daemon is running.\n')]]);
    const e = await new Zfs(FUSE, runner).listDatasets('tq').catch((x) => x);
    expect(e).toBeInstanceOf(PoolError);
    expect(e.message).toMatch(/^the zfs-fuse daemon is not running.*start it with: zfs-fuse/);
  });
});

describe('the flavour cache (once per boot)', () => {
  let dir: string;
  let path: string | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mkimage-flavour-'));
    // A zpool binary of our own on PATH: only stat'd for the key, never run (the runner is fake).
    writeFileSync(join(dir, 'zpool'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(dir, 'zpool'), 0o755);
    path = process.env.PATH;
    process.env.PATH = `${dir}:${path ?? ''}`;
  });
  afterEach(() => {
    process.env.PATH = path;
    rmSync(dir, { recursive: true, force: true });
  });
  const fuseAnswers: Array<[string, Partial<RunResult>]> = [
    ['zfs version', { exitCode: 2, stderr: "unrecognized command 'version'\n" }],
    ['zpool upgrade -v', { stdout: 'This system is currently running ZFS pool version 23.\n' }],
    ['dpkg-query -W -f ${Version} zfs-fuse', { stdout: '0.7.0-25+b1' }],
    ['zpool list -H -o name,guid,health,altroot', { stdout: 'tank\t42\tONLINE\t-\n' }],
  ];
  const toolExists = async (t: string) => t === 'zfs-fuse';

  it('asks zfs version / zpool upgrade / dpkg-query once; later only one zpool list, which also lists the pools', async () => {
    const cacheFile = join(dir, 'flavour.json');
    const first = fakeRunner(fuseAnswers);
    expect(await zfsHost(first.runner, { cacheFile, toolExists })).toEqual({ flavour: FUSE, pools: [{ name: 'tank', guid: '42', health: 'ONLINE', altroot: undefined }] });
    expect(first.calls).toEqual(['zfs version', 'zpool upgrade -v', 'dpkg-query -W -f ${Version} zfs-fuse', 'zpool list -H -o name,guid,health,altroot']);
    const entry = JSON.parse(readFileSync(cacheFile, 'utf8'));
    expect(entry.key).toMatchObject({ zpool: join(dir, 'zpool'), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() });
    expect(entry.flavour).toEqual(FUSE);
    expect(statSync(cacheFile).mode & 0o777).toBe(0o644);

    const second = fakeRunner(fuseAnswers);
    expect((await zfsHost(second.runner, { cacheFile, toolExists })).flavour).toEqual(FUSE);
    expect(second.calls).toEqual(['zpool list -H -o name,guid,health,altroot']);
    // detectFlavour uses it too, and still checks that ZFS answers.
    const third = fakeRunner([['zpool list -H -o name', { stdout: '' }]]);
    expect(await detectFlavour(third.runner, { cacheFile, toolExists })).toEqual(FUSE);
    expect(third.calls).toEqual(['zpool list -H -o name']);
  });

  it('asks again when the zpool binary changed (another package, an upgrade) or after a reboot', async () => {
    const cacheFile = join(dir, 'flavour.json');
    await zfsHost(fakeRunner(fuseAnswers).runner, { cacheFile, toolExists });
    const key = flavourKey()!;
    expect(readFlavourCache(cacheFile, key)).toEqual(FUSE);
    expect(readFlavourCache(cacheFile, { ...key, bootId: 'another-boot' })).toBeUndefined();
    utimesSync(join(dir, 'zpool'), new Date(2020, 0, 1), new Date(2020, 0, 1));
    const again = fakeRunner(fuseAnswers);
    await zfsHost(again.runner, { cacheFile, toolExists });
    expect(again.calls).toContain('zfs version');
  });

  it('ignores a cache others can write, or one that does not parse as a flavour', async () => {
    const cacheFile = join(dir, 'flavour.json');
    await zfsHost(fakeRunner(fuseAnswers).runner, { cacheFile, toolExists });
    const key = flavourKey()!;
    chmodSync(cacheFile, 0o666);
    expect(readFlavourCache(cacheFile, key)).toBeUndefined();
    chmodSync(cacheFile, 0o644);
    writeFileSync(cacheFile, JSON.stringify({ key, flavour: { kind: 'solaris', version: '11', poolVersion: 44, description: 'x' } }));
    expect(readFlavourCache(cacheFile, key)).toBeUndefined();
    writeFileSync(cacheFile, '{not json');
    expect(readFlavourCache(cacheFile, key)).toBeUndefined();
  });

  it('a fake runner never reads or writes the host cache (its answers describe no host)', async () => {
    const r = fakeRunner(fuseAnswers);
    await zfsHost(r.runner, { toolExists });
    expect(r.calls[0]).toBe('zfs version');
  });
});
