/**
 * zpool(8) and zfs(8): the one module that talks to ZFS. Every call goes through exec.ts `run`
 * (argument arrays, never a shell), asks for machine-readable output where the flavour has it, and
 * builds its arguments in pure functions that the unit tests check for both flavours.
 *
 * Two ZFS flavours, told apart by `detectFlavour`:
 *
 *   openzfs   zfsutils-linux on production hosts. `zfs version` answers. Has `-o compatibility=`
 *             (2.1+), `zpool create -t` (temporary in-core name), `-p` on `zpool list`/`zfs list`,
 *             `zpool import -d DEVICE` (0.8+), `zpool status -P`, `zpool import -N`.
 *   zfs-fuse  Debian's userspace ZFS 0.7.0, pool version 23, ZPL 4; a daemon (`zfs-fuse`) must run.
 *             Measured on zfs-fuse 0.7.0-25+b1: `zfs version` is an unknown command (exit 2);
 *             accepts `zpool create -f -o ashift=12 -o cachefile=none -o version=N (N <= 23)
 *             -O prop=value -R root -m mountpoint`; refuses `-t` (invalid option), `-o
 *             compatibility=` and `-o feature@...` (not valid pool properties), `compression=lz4`,
 *             `xattr=sa`, `acltype`, `dnodesize`, `relatime`; has `-H` but no `-p` on `zpool list`
 *             and `zfs list`, no `-H`/`-p` on `zpool get`, `-Hp` on `zfs get`; `zpool import -d`
 *             takes a directory only (a device path fails "Not a directory"); no `zpool status -P`.
 *             `zpool destroy`/`export` sometimes fail "pool is busy" right after a mount and work
 *             when repeated: `retryBusy` repeats them.
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { PermissionError, PoolError, UsageError, toolFailedWith, toolStderr } from '../errors.js';
import { run as defaultRun, findOnPath, hasTool, type RunOptions, type Runner } from './exec.js';

// ---------------------------------------------------------------------------------------------
// Flavours

export type ZfsKind = 'openzfs' | 'zfs-fuse';

export interface ZfsFlavour {
  kind: ZfsKind;
  /** Userland version: "2.1.5" (OpenZFS), "0.7.0" (zfs-fuse); "unknown" when it cannot be told. */
  version: string;
  /** The newest on-disk format: 5000 (feature flags) for OpenZFS, 23 for zfs-fuse. */
  poolVersion: number;
  /** For people and --json: "openzfs 2.1.5" or "zfs-fuse 0.7.0 (pool version 23)". */
  description: string;
}

/** What a flavour's command line has; every argument builder below decides by these. */
export interface ZfsCapabilities {
  /** `zpool create -o compatibility=` (OpenZFS 2.1+). */
  compatibility: boolean;
  /** `zpool create -t tname`: a temporary in-core name, so the real name may be in use here. */
  tempName: boolean;
  /** `-p` (exact numbers) on `zpool list` and `zfs list`. */
  parsableLists: boolean;
  /** `zpool import -d DEVICE` (OpenZFS 0.8+); otherwise -d takes a directory only. */
  importDevice: boolean;
  /** `zpool import -N`: import without mounting. */
  importNoMount: boolean;
  /** `zpool status -P`: full vdev paths. */
  statusFullPaths: boolean;
  /** Highest value for `-o version=N` (legacy, pre-feature-flags pools). */
  maxLegacyVersion: number;
}

/** The last legacy pool version; OpenZFS reports feature-flag pools as 5000. */
export const SPA_VERSION_LEGACY_MAX = 28;
export const SPA_VERSION_FEATURES = 5000;
/** zfs-fuse 0.7.0's pool version (`zpool upgrade -v`). */
export const ZFS_FUSE_POOL_VERSION = 23;

/** Compares dotted versions numerically: "2.1.5" >= "2.1". "unknown" is older than anything. */
export function versionAtLeast(version: string, min: string): boolean {
  const m = /^(\d+(?:\.\d+)*)/.exec(version);
  if (!m) return false;
  const a = m[1]!.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

export function capabilitiesOf(f: ZfsFlavour): ZfsCapabilities {
  if (f.kind === 'zfs-fuse') {
    return {
      compatibility: false,
      tempName: false,
      parsableLists: false,
      importDevice: false,
      importNoMount: false,
      statusFullPaths: false,
      maxLegacyVersion: Math.min(f.poolVersion, ZFS_FUSE_POOL_VERSION),
    };
  }
  return {
    compatibility: versionAtLeast(f.version, '2.1'),
    tempName: true,
    parsableLists: true,
    importDevice: versionAtLeast(f.version, '0.8'),
    importNoMount: true,
    statusFullPaths: true,
    maxLegacyVersion: SPA_VERSION_LEGACY_MAX,
  };
}

export function describeFlavour(kind: ZfsKind, version: string, poolVersion: number): string {
  return kind === 'openzfs' ? `openzfs ${version}` : `zfs-fuse ${version} (pool version ${poolVersion})`;
}

/** `zfs version` output ("zfs-2.1.5-1ubuntu6\nzfs-kmod-2.1.5-1ubuntu6") to "2.1.5". */
export function parseZfsVersion(stdout: string): string | undefined {
  const m = /^zfs-(\d+\.\d+(?:\.\d+)?)/m.exec(stdout);
  return m?.[1];
}

/** `zpool upgrade -v`: "running ZFS pool version 23" or, on feature-flag systems, "feature flags". */
export function parsePoolVersion(stdout: string): number | undefined {
  const m = /pool version (\d+)/.exec(stdout);
  if (m) return Number(m[1]);
  if (/feature flags/i.test(stdout)) return SPA_VERSION_FEATURES;
  return undefined;
}

/** Debian's package version "0.7.0-25+b1" to the upstream "0.7.0". */
export function upstreamVersion(debianVersion: string): string | undefined {
  const m = /^(?:\d+:)?(\d+(?:\.\d+)+)/.exec(debianVersion.trim());
  return m?.[1];
}

const DAEMON_DOWN = /zfs-fuse daemon is running|connect: (No such file|Connection refused)/;
const MODULE_MISSING = /modules are not loaded|\/dev\/zfs/i;
/** What zpool says to an ordinary user: zfs-fuse's socket and OpenZFS's /dev/zfs are root's. */
const NOT_ROOT = /failed to initialize ZFS library|permission denied/i;

/** The ToolFailedError of a zpool/zfs call that could not reach ZFS at all, as a PoolError. */
export function unreachableError(e: unknown): PoolError | undefined {
  const stderr = toolStderr(e);
  if (process.geteuid?.() !== 0 && toolFailedWith(e, NOT_ROOT)) {
    return new PermissionError('zpool and zfs need root here (they talk to the ZFS daemon or /dev/zfs, which are root\'s): run mkimage as root (e.g. with sudo)', { stderr }, { cause: e });
  }
  if (toolFailedWith(e, DAEMON_DOWN)) {
    return new PoolError('the zfs-fuse daemon is not running, so zpool and zfs cannot work: start it with: zfs-fuse (as root), then try again', { stderr }, { cause: e });
  }
  if (toolFailedWith(e, MODULE_MISSING)) {
    return new PoolError('the OpenZFS kernel module is not loaded: load it with: modprobe zfs (as root), then try again', { stderr }, { cause: e });
  }
  return undefined;
}

/**
 * Which ZFS this host runs, and a check that it answers (zfs-fuse: the daemon runs; OpenZFS: the
 * module is loaded). ToolMissingError names both packages when zpool/zfs are not installed.
 */
export async function detectFlavour(run: Runner = defaultRun, options: FlavourOptions = {}): Promise<ZfsFlavour> {
  const flavour = await learnFlavour(run, options);
  // Reachable? (zfs-fuse: the daemon; OpenZFS: /dev/zfs.)
  try {
    await run('zpool', ['list', '-H', '-o', 'name'], { signal: options.signal });
  } catch (e) {
    throw unreachableError(e) ?? e;
  }
  return flavour;
}

/**
 * Which ZFS runs and the pools imported here, in one `zpool list` after the flavour is known (from
 * the cache, normally): the list is also the check that ZFS answers.
 */
export async function zfsHost(run: Runner = defaultRun, options: FlavourOptions = {}): Promise<{ flavour: ZfsFlavour; pools: PoolInfo[] }> {
  const flavour = await learnFlavour(run, options);
  const zfs = new Zfs(flavour, run, options.signal);
  return { flavour, pools: await zfs.listPools() };
}

export interface FlavourOptions {
  signal?: AbortSignal;
  toolExists?: (file: string) => Promise<boolean>;
  /**
   * Where the answer is kept for the rest of the boot. Default: FLAVOUR_CACHE when `run` is the
   * real runner (a fake's answers describe no host), none otherwise; null: no cache.
   */
  cacheFile?: string | null;
}

/**
 * The flavour learned once per boot: `zfs version`, `zpool upgrade -v` and `dpkg-query` cost three
 * processes (35 ms, more with zfs-fuse) on every --fs zfs create. Kept in /run (gone at reboot), as
 * one file beside /run/mkimage (whose directories attach makes and removes), keyed by the zpool
 * binary (path, mtime, ctime: an upgrade or another ZFS package changes them) and the boot id.
 */
export const FLAVOUR_CACHE = '/run/mkimage-zfs-flavour.json';

interface FlavourCacheEntry {
  key: FlavourKey;
  flavour: ZfsFlavour;
}
interface FlavourKey {
  zpool: string;
  mtimeMs: number;
  ctimeMs: number;
  bootId: string;
}

/** The key of this boot's zpool binary; undefined when zpool is not on PATH (then no cache). */
export function flavourKey(bootIdFile = '/proc/sys/kernel/random/boot_id'): FlavourKey | undefined {
  const path = findOnPath('zpool');
  if (!path) return undefined;
  try {
    const st = statSync(path);
    return { zpool: path, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, bootId: readFileSync(bootIdFile, 'utf8').trim() };
  } catch {
    return undefined;
  }
}

/** The cached flavour, if the file is ours (root's or this user's, not writable by others) and its key matches. */
export function readFlavourCache(file: string, key: FlavourKey): ZfsFlavour | undefined {
  try {
    const st = statSync(file);
    const uid = process.geteuid?.() ?? 0;
    if ((st.uid !== 0 && st.uid !== uid) || st.mode & 0o022) return undefined;
    const entry = JSON.parse(readFileSync(file, 'utf8')) as FlavourCacheEntry;
    const k = entry.key;
    if (k?.zpool !== key.zpool || k.mtimeMs !== key.mtimeMs || k.ctimeMs !== key.ctimeMs || k.bootId !== key.bootId) return undefined;
    const f = entry.flavour;
    if ((f?.kind !== 'openzfs' && f?.kind !== 'zfs-fuse') || typeof f.version !== 'string' || !Number.isInteger(f.poolVersion) || typeof f.description !== 'string') return undefined;
    return { kind: f.kind, version: f.version, poolVersion: f.poolVersion, description: f.description };
  } catch {
    return undefined;
  }
}

/** Writes the cache atomically (temp file, rename); a user who cannot write /run just has none. */
export function writeFlavourCache(file: string, key: FlavourKey, flavour: ZfsFlavour): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, `${JSON.stringify({ key, flavour } satisfies FlavourCacheEntry)}\n`, { mode: 0o644, flag: 'wx' });
    renameSync(temp, file);
  } catch {
    rmSync(temp, { force: true });
  }
}

async function learnFlavour(run: Runner, options: FlavourOptions): Promise<ZfsFlavour> {
  const file = options.cacheFile === undefined ? (run === defaultRun ? FLAVOUR_CACHE : null) : options.cacheFile;
  const key = file ? flavourKey() : undefined;
  const cached = file && key ? readFlavourCache(file, key) : undefined;
  if (cached) return cached;
  const flavour = await probeFlavour(run, options);
  if (file && key) writeFlavourCache(file, key, flavour);
  return flavour;
}

/** Asks the tools which ZFS this is (three processes); no check that it answers. */
async function probeFlavour(run: Runner, options: FlavourOptions): Promise<ZfsFlavour> {
  const { signal, toolExists = hasTool } = options;
  const version = await run('zfs', ['version'], { signal, okExitCodes: [0, 1, 2] });
  const openzfsVersion = version.exitCode === 0 ? parseZfsVersion(version.stdout) : undefined;
  if (openzfsVersion) {
    return { kind: 'openzfs', version: openzfsVersion, poolVersion: SPA_VERSION_FEATURES, description: describeFlavour('openzfs', openzfsVersion, SPA_VERSION_FEATURES) };
  }
  // No `zfs version`: zfs-fuse, or OpenZFS (ZFS on Linux) older than 0.8.
  let upgrade;
  try {
    upgrade = await run('zpool', ['upgrade', '-v'], { signal });
  } catch (e) {
    throw unreachableError(e) ?? e;
  }
  const poolVersion = parsePoolVersion(upgrade.stdout) ?? ZFS_FUSE_POOL_VERSION;
  if (await toolExists('zfs-fuse')) {
    const pkg = await run('dpkg-query', ['-W', '-f', '${Version}', 'zfs-fuse'], { signal, okExitCodes: [0, 1] }).catch(() => undefined);
    const v = (pkg?.exitCode === 0 && upstreamVersion(pkg.stdout)) || 'unknown';
    return { kind: 'zfs-fuse', version: v, poolVersion, description: describeFlavour('zfs-fuse', v, poolVersion) };
  }
  return { kind: 'openzfs', version: 'unknown (older than 0.8)', poolVersion, description: describeFlavour('openzfs', 'older than 0.8', poolVersion) };
}

// ---------------------------------------------------------------------------------------------
// Names: checked before any command runs (UsageError, exit 2)

/** ZFS_MAX_DATASET_NAME_LEN is 256 with the terminating NUL. */
export const MAX_NAME_BYTES = 255;
/** OpenZFS refuses datasets nested deeper than zfs_max_dataset_nesting (50). */
export const MAX_DATASET_DEPTH = 50;
/** The characters ZFS allows in pool and dataset names, minus the space mkimage refuses. */
const NAME_CHARS = /^[A-Za-z0-9_.:-]+$/;
const RESERVED_POOL_PREFIXES = ['mirror', 'raidz', 'draid', 'spare'];
const RESERVED_POOL_NAMES = ['log', 'cache', 'special', 'dedup'];

function nameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.startsWith('-')) return "starts with '-' (it would be read as an option)";
  if (/\s/.test(name)) return 'contains white space';
  if (name.includes('..')) return "contains '..'";
  const bad = [...name].find((c) => !NAME_CHARS.test(c) && c !== '/');
  if (bad !== undefined) return `contains ${JSON.stringify(bad)}: only letters, digits and _ . : - are allowed`;
  return undefined;
}

/** A pool name ZFS accepts and mkimage can pass anywhere safely. Throws UsageError. */
export function checkPoolName(name: string, what = '--pool'): void {
  const fail = (why: string) => {
    throw new UsageError(`${what} ${JSON.stringify(name)} ${why}`, { pool: name });
  };
  const p = nameProblem(name);
  if (p) fail(p);
  if (name.includes('/')) fail("contains '/': a pool name is one word (datasets go in --dataset)");
  if (!/^[A-Za-z]/.test(name)) fail('must begin with a letter');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) fail(`is ${Buffer.byteLength(name)} bytes long: ZFS names hold at most ${MAX_NAME_BYTES}`);
  if (RESERVED_POOL_NAMES.includes(name)) fail('is reserved by ZFS (a vdev keyword): choose another name');
  const prefix = RESERVED_POOL_PREFIXES.find((r) => name.startsWith(r));
  if (prefix) fail(`begins with "${prefix}", which ZFS reserves for vdev types: choose another name`);
  if (/^c[0-9]/.test(name)) fail('looks like a Solaris disk name (c0...), which ZFS reserves: choose another name');
}

/**
 * A dataset path below the pool ("storage/empty"): components of letters, digits, _ . : -, none
 * starting with '-', no '..', no ".zfs" (the snapshot directory), no '@' or '#'.
 */
export function checkDatasetPath(path: string, pool: string, what = '--dataset'): void {
  const fail = (why: string) => {
    throw new UsageError(`${what} ${JSON.stringify(path)} ${why}`, { dataset: path });
  };
  if (path.startsWith('/') || path.endsWith('/')) fail("must not start or end with '/': give a path below the pool, e.g. images/base");
  if (path.includes('@') || path.includes('#')) fail("contains '@' or '#': snapshots and bookmarks are not datasets");
  const p = nameProblem(path);
  if (p) fail(p);
  const parts = path.split('/');
  for (const part of parts) {
    if (part === '') fail("has an empty component ('//')");
    if (part === '.') fail("has a '.' component");
    if (part.startsWith('-')) fail(`has a component starting with '-' (${JSON.stringify(part)})`);
    if (part === '.zfs') fail("has a component named .zfs, the snapshot directory ZFS shows in every dataset");
  }
  if (parts.length > MAX_DATASET_DEPTH) fail(`is ${parts.length} levels deep: OpenZFS allows at most ${MAX_DATASET_DEPTH}`);
  const full = `${pool}/${path}`;
  if (Buffer.byteLength(full) > MAX_NAME_BYTES) fail(`makes ${JSON.stringify(full.slice(0, 40))}... ${Buffer.byteLength(full)} bytes long: ZFS names hold at most ${MAX_NAME_BYTES}`);
}

/** A snapshot's short name (after '@'). */
export function checkSnapshotName(name: string): void {
  const p = nameProblem(name);
  if (p || name.includes('/')) throw new UsageError(`snapshot name ${JSON.stringify(name)} ${p ?? "contains '/'"}`, { snapshot: name });
}

export type Property = readonly [key: string, value: string];

/** "key=value" from --zpool-option/--zfs-option; the key as ZFS spells properties, the value one line. */
export function parseProperty(text: string, what: string): Property {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`${what} ${JSON.stringify(text)} is not KEY=VALUE (e.g. ${what === '--zfs-option' ? 'compression=on' : 'autoexpand=on'})`, { option: text });
  const key = text.slice(0, eq);
  const value = text.slice(eq + 1);
  const native = /^[a-z][a-z0-9_]*(@[a-z0-9_.:-]+)?$/.test(key);
  const user = /^[a-z0-9_.-]+:[a-z0-9_.:-]+$/i.test(key);
  if (!native && !user) {
    throw new UsageError(`${what} key ${JSON.stringify(key)} is not a ZFS property name (lower case letters, digits, _; user properties contain ':')`, { option: text });
  }
  if (value === '' || /[\0\n\r]/.test(value) || value.startsWith('-')) {
    throw new UsageError(`${what} ${JSON.stringify(text)} needs a one-line value not starting with '-'`, { option: text });
  }
  if (value.length > 8191) throw new UsageError(`${what} ${key} value is ${value.length} characters: ZFS holds at most 8191`, { option: key });
  return [key, value];
}

/** Pool properties mkimage sets itself: given by the user they would break the build or the image. */
const MANAGED_POOL_PROPERTIES: Readonly<Record<string, string>> = {
  altroot: 'mkimage mounts under its own altroot while building; use --mount DIR to choose where the pool is mounted later',
  cachefile: 'the image must not be remembered by the build host (cachefile=none is always set)',
  compatibility: 'use --compatibility',
};

/** Pool properties zfs-fuse 0.7.0 has (`zpool get` with no arguments lists them). */
const ZFS_FUSE_POOL_PROPERTIES = ['ashift', 'autoexpand', 'autoreplace', 'bootfs', 'dedupditto', 'delegation', 'failmode', 'listsnapshots', 'version'];
/** File system properties zfs-fuse 0.7.0 can set (`zfs set` usage). */
const ZFS_FUSE_FS_PROPERTIES = [
  'aclinherit', 'aclmode', 'atime', 'canmount', 'casesensitivity', 'checksum', 'compression', 'copies', 'dedup', 'devices',
  'exec', 'logbias', 'mlslabel', 'mountpoint', 'nbmand', 'normalization', 'primarycache', 'quota', 'readonly', 'recordsize',
  'refquota', 'refreservation', 'reservation', 'secondarycache', 'setuid', 'sharenfs', 'sharesmb', 'snapdir', 'utf8only',
  'version', 'vscan', 'xattr', 'zoned',
];
/** zfs-fuse's values where OpenZFS has more (lz4, zstd, sa, ...). */
const ZFS_FUSE_VALUES: Readonly<Record<string, RegExp>> = {
  compression: /^(on|off|lzjb|gzip|gzip-[1-9]|zle)$/,
  xattr: /^(on|off)$/,
  checksum: /^(on|off|fletcher2|fletcher4|sha256)$/,
  dedup: /^(on|off|verify|sha256|sha256,verify)$/,
};

/** Refuses, before anything runs, options this flavour does not have. */
export function checkOptionsForFlavour(f: ZfsFlavour, poolOptions: readonly Property[], fsOptions: readonly Property[]): void {
  for (const [key] of poolOptions) {
    const why = MANAGED_POOL_PROPERTIES[key];
    if (why) throw new UsageError(`--zpool-option ${key}=... is not accepted: ${why}`, { option: key });
  }
  if (f.kind !== 'zfs-fuse') return;
  for (const [key, value] of poolOptions) {
    if (!ZFS_FUSE_POOL_PROPERTIES.includes(key)) {
      throw new UsageError(`--zpool-option ${key}=${value}: ${f.description} has no pool property ${key} (it has ${ZFS_FUSE_POOL_PROPERTIES.join(', ')})`, { option: key });
    }
  }
  for (const [key, value] of fsOptions) {
    const isUser = key.includes(':') || key.startsWith('userquota@') || key.startsWith('groupquota@');
    if (!isUser && !ZFS_FUSE_FS_PROPERTIES.includes(key)) {
      throw new UsageError(`--zfs-option ${key}=${value}: ${f.description} has no file system property ${key} (OpenZFS-only properties need an OpenZFS host)`, { option: key });
    }
    const values = ZFS_FUSE_VALUES[key];
    if (values && !values.test(value)) {
      throw new UsageError(`--zfs-option ${key}=${value}: ${f.description} does not have ${key}=${value} (allowed: ${values.source.replace(/[\^$()]/g, '').replace(/\|/g, ', ')})`, { option: key });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pool format: ashift, compatibility set or legacy version

/** A pool every OpenZFS from 2.1 on imports read-write (the Debian 12 / Ubuntu 22.04 generation). */
export const DEFAULT_COMPATIBILITY = 'openzfs-2.1-linux';
/** 4 KiB sectors: the page size DAX maps, and what zfs-fuse picks by itself for loop devices. */
export const DEFAULT_ASHIFT = 12;

export interface PoolFormat {
  /** `-o` pairs for `zpool create`. */
  options: Property[];
  /** What the pool's format is, for people and --json. */
  description: string;
}

/**
 * The format options for `zpool create`. `compatibility` (undefined = the default) is a
 * compatibility set list for OpenZFS 2.1+ ("openzfs-2.1-linux", "grub2,openzfs-2.0-linux"),
 * "legacy" (no features), "off" (all features), or "vN" (a legacy pool version N <= 28, for old
 * readers: v23 is what zfs-fuse reads). zfs-fuse makes version 23 pools, which every OpenZFS
 * imports; it takes "vN" with N <= 23, and "legacy"/"off" (meaningless there) are accepted.
 */
export function poolFormat(f: ZfsFlavour, compatibility: string | undefined, poolOptions: readonly Property[]): PoolFormat {
  const caps = capabilitiesOf(f);
  const userVersion = poolOptions.find(([k]) => k === 'version')?.[1];
  const userAshift = poolOptions.some(([k]) => k === 'ashift');
  const options: Property[] = userAshift ? [] : [['ashift', String(DEFAULT_ASHIFT)]];
  if (userVersion !== undefined && compatibility !== undefined) {
    throw new UsageError(`--compatibility ${compatibility} and --zpool-option version=${userVersion} exclude each other: give one (--compatibility v${userVersion} is the same as the option)`, { compatibility, version: userVersion });
  }
  const legacy = compatibility === undefined ? undefined : /^v(\d+)$/.exec(compatibility);
  if (legacy) {
    const v = Number(legacy[1]);
    if (v < 1 || v > caps.maxLegacyVersion) {
      throw new UsageError(`--compatibility ${compatibility}: ${f.description} makes legacy pool versions 1 to ${caps.maxLegacyVersion}`, { compatibility });
    }
    options.push(['version', String(v)]);
    return { options, description: `pool version ${v}` };
  }
  if (userVersion !== undefined) return { options, description: `pool version ${userVersion}` };
  if (f.kind === 'zfs-fuse') {
    if (compatibility !== undefined && compatibility !== 'legacy' && compatibility !== 'off') {
      throw new UsageError(
        `--compatibility ${compatibility} needs OpenZFS 2.1 or later; this host runs ${f.description}, whose pools every OpenZFS imports: drop the option (or give v${ZFS_FUSE_POOL_VERSION} or lower)`,
        { compatibility },
      );
    }
    return { options, description: `pool version ${f.poolVersion} (zfs-fuse)` };
  }
  const set = compatibility ?? DEFAULT_COMPATIBILITY;
  if (!caps.compatibility) {
    if (compatibility === undefined) return { options, description: 'all features of this OpenZFS (it has no compatibility sets before 2.1)' };
    throw new UsageError(`--compatibility ${compatibility} needs OpenZFS 2.1 or later; this host runs ${f.description}: drop the option or give vN (e.g. v28)`, { compatibility });
  }
  checkCompatibility(set);
  options.push(['compatibility', set]);
  return { options, description: `compatibility ${set}` };
}

/** "off", "legacy", or a comma-separated list of compatibility.d file names or absolute paths. */
export function checkCompatibility(set: string): void {
  if (set === 'off' || set === 'legacy') return;
  for (const file of set.split(',')) {
    const ok = /^[A-Za-z0-9_.+-]+$/.test(file) || /^\/[A-Za-z0-9_.+/-]+$/.test(file);
    if (!ok || file.includes('..')) {
      throw new UsageError(`--compatibility ${JSON.stringify(set)}: ${JSON.stringify(file)} is not a compatibility set name (e.g. openzfs-2.1-linux, grub2, legacy, off, v28)`, { compatibility: set });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Argument builders (pure)

const o = (props: readonly Property[], flag = '-o'): string[] => props.flatMap(([k, v]) => [flag, `${k}=${v}`]);

export interface PoolCreateSpec {
  /** The on-disk name. */
  pool: string;
  /** The one vdev: the loop device of the partition. */
  device: string;
  /** Mounts go below this while building (altroot; also cachefile=none). */
  altroot: string;
  /** The root dataset's mountpoint as the guest will see it (default /<pool>). */
  mountpoint?: string;
  /** The in-core name while building (OpenZFS -t), so that `pool` may already be imported here. */
  tempName?: string;
  /** From `poolFormat`, then the user's --zpool-option pairs. */
  poolOptions: readonly Property[];
  /** The user's --zfs-option pairs (set on the root dataset, inherited below). */
  fsOptions: readonly Property[];
}

export function zpoolCreateArgs(f: ZfsFlavour, s: PoolCreateSpec): string[] {
  const caps = capabilitiesOf(f);
  if (s.tempName !== undefined && !caps.tempName) {
    throw new UsageError(`${f.description} cannot create a pool under a temporary name (zpool create -t)`, { flavour: f.description });
  }
  const userMountpoint = s.fsOptions.some(([k]) => k === 'mountpoint');
  return [
    'create',
    '-f',
    ...o(s.poolOptions),
    '-o', 'cachefile=none',
    ...o(s.fsOptions, '-O'),
    '-R', s.altroot,
    ...(userMountpoint ? [] : ['-m', s.mountpoint ?? `/${s.pool}`]),
    ...(s.tempName !== undefined ? ['-t', s.tempName] : []),
    s.pool,
    s.device,
  ];
}

export interface PoolImportSpec {
  /** The pool name (or its numeric guid). */
  pool: string;
  /** OpenZFS 0.8+: the device itself; otherwise a directory holding only a link to it. */
  search: string;
  altroot: string;
  force?: boolean;
  /** OpenZFS: import without mounting. */
  noMount?: boolean;
}

export function zpoolImportArgs(f: ZfsFlavour, s: PoolImportSpec): string[] {
  const caps = capabilitiesOf(f);
  return [
    'import',
    '-d', s.search,
    '-o', 'cachefile=none',
    '-R', s.altroot,
    ...(s.force ? ['-f'] : []),
    ...(s.noMount && caps.importNoMount ? ['-N'] : []),
    s.pool,
  ];
}

export function zpoolExportArgs(pool: string, force = false): string[] {
  return ['export', ...(force ? ['-f'] : []), pool];
}

/**
 * `zpool online -e POOL VDEV`: use all of a vdev's device after it grew. OpenZFS needs it (or
 * autoexpand=on and a reopen); zfs-fuse 0.7 already takes the whole device when it imports the
 * pool and accepts the command all the same (checked: exit 0, size unchanged).
 */
export function zpoolOnlineExpandArgs(pool: string, vdev: string): string[] {
  return ['online', '-e', pool, vdev];
}

export function zpoolDestroyArgs(pool: string): string[] {
  return ['destroy', '-f', pool];
}

export const POOL_LIST_PROPERTIES = ['name', 'guid', 'health', 'altroot'] as const;

export function zpoolListArgs(f: ZfsFlavour, pool?: string): string[] {
  return ['list', '-H', ...(capabilitiesOf(f).parsableLists ? ['-p'] : []), '-o', POOL_LIST_PROPERTIES.join(','), ...(pool ? [pool] : [])];
}

export function zpoolStatusArgs(f: ZfsFlavour, pool: string): string[] {
  return ['status', ...(capabilitiesOf(f).statusFullPaths ? ['-P'] : []), pool];
}

/** `parents`: -p, missing parents made too (with default properties), in the same process. */
export function zfsCreateArgs(dataset: string, props: readonly Property[] = [], parents = false): string[] {
  return ['create', ...(parents ? ['-p'] : []), ...o(props), dataset];
}

export function zfsSnapshotArgs(snapshot: string, recursive = false): string[] {
  return ['snapshot', ...(recursive ? ['-r'] : []), snapshot];
}

/**
 * `zfs send -R [-i FROM] DATASET@SNAP`: a replication stream (the dataset, its descendants,
 * their properties and snapshots), full or incremental from FROM (a snapshot of the same dataset).
 */
export function zfsSendArgs(snapshot: string, from?: string): string[] {
  return ['send', '-R', ...(from !== undefined ? ['-i', from] : []), snapshot];
}

/**
 * `zfs receive [-F] TARGET`: a full stream creates TARGET (its parent must exist), an incremental
 * one needs `force` (-F: roll TARGET back to its latest snapshot first; a mounted zfs-fuse
 * dataset counts as modified once read, atime).
 */
export function zfsReceiveArgs(target: string, force = false): string[] {
  return ['receive', ...(force ? ['-F'] : []), target];
}

export function zfsRollbackArgs(snapshot: string): string[] {
  return ['rollback', '-r', snapshot];
}

export const SNAPSHOT_LIST_PROPERTIES = ['name', 'used', 'referenced', 'createtxg'] as const;

/** Snapshots below `root`, oldest first (createtxg). */
export function zfsListSnapshotsArgs(f: ZfsFlavour, root: string): string[] {
  return ['list', '-H', ...(capabilitiesOf(f).parsableLists ? ['-p'] : []), '-r', '-t', 'snapshot', '-s', 'createtxg', '-o', SNAPSHOT_LIST_PROPERTIES.join(','), root];
}

export const DATASET_LIST_PROPERTIES = ['name', 'type', 'mountpoint', 'mounted'] as const;

export function zfsListArgs(f: ZfsFlavour, root: string, types = 'filesystem,volume,snapshot'): string[] {
  return ['list', '-H', ...(capabilitiesOf(f).parsableLists ? ['-p'] : []), '-r', '-t', types, '-o', DATASET_LIST_PROPERTIES.join(','), root];
}

export function zfsUnmountArgs(dataset: string): string[] {
  return ['unmount', dataset];
}

export function zfsMountArgs(dataset: string): string[] {
  return ['mount', dataset];
}

export function zfsCloneArgs(snapshot: string, dataset: string): string[] {
  return ['clone', snapshot, dataset];
}
export function zfsPromoteArgs(dataset: string): string[] {
  return ['promote', dataset];
}
export function zfsRenameArgs(from: string, to: string): string[] {
  return ['rename', from, to];
}
/**
 * `recursive` (-r): a dataset's own snapshots too, or for a snapshot, the same name in every child
 * dataset; without it, only the one named. Never -R: a dependent clone makes it fail instead.
 */
export function zfsDestroyArgs(dataset: string, recursive = true): string[] {
  return ['destroy', ...(recursive ? ['-r'] : []), dataset];
}
export function zfsSetArgs(dataset: string, key: string, value: string): string[] {
  return ['set', `${key}=${value}`, dataset];
}
/** One line per dataset and property: name, property, value (exact numbers). */
export function zfsGetArgs(properties: readonly string[], datasets: string | readonly string[], recursive = false): string[] {
  return ['get', '-H', '-p', ...(recursive ? ['-r'] : []), '-o', 'name,property,value', properties.join(','), ...(typeof datasets === 'string' ? [datasets] : datasets)];
}

// ---------------------------------------------------------------------------------------------
// Output parsers (pure)

/** `zfs get -H -p -o name,property,value` output as name -> property -> value ('-' dropped). */
export function parseGet(stdout: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const [name, prop, ...rest] = line.split('\t');
    if (!name || !prop) continue;
    const value = rest.join('\t');
    const rec = out.get(name) ?? {};
    if (value !== '-') rec[prop] = value;
    out.set(name, rec);
  }
  return out;
}

export interface PoolInfo {
  name: string;
  guid: string;
  health: string;
  /** undefined when the pool has none ('-'). */
  altroot?: string;
}

function rows(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t'));
}

export function parsePoolList(stdout: string): PoolInfo[] {
  return rows(stdout)
    .filter((r) => r.length >= 4)
    .map(([name, guid, health, altroot]) => ({ name: name!, guid: guid!, health: health!, altroot: altroot === '-' ? undefined : altroot }));
}

export interface DatasetInfo {
  name: string;
  type: string;
  /** undefined for snapshots and 'none'/'legacy'/'-'. */
  mountpoint?: string;
  mounted: boolean;
}

export function parseDatasetList(stdout: string): DatasetInfo[] {
  return rows(stdout)
    .filter((r) => r.length >= 4)
    .map(([name, type, mountpoint, mounted]) => ({
      name: name!,
      type: type!,
      mountpoint: mountpoint && mountpoint.startsWith('/') ? mountpoint : undefined,
      mounted: mounted === 'yes',
    }));
}

/** Group lines of a `zpool status` config, not devices. */
const VDEV_GROUP = /^(mirror|raidz[123]?|draid[^ ]*|spare|replacing|logs|cache|spares|special|dedup)(-\d+)?$/;

/**
 * The leaf vdevs of `zpool status`: the device column of the config table after the pool's own
 * line. zfs-fuse prints a device under /dev without "/dev/" ("loop0") and any other path in full;
 * OpenZFS with -P prints full paths. Compare them by basename.
 */
export function parseStatusVdevs(stdout: string): string[] {
  const out: string[] = [];
  let state: 'before' | 'header' | 'pool' | 'vdevs' = 'before';
  for (const line of stdout.split('\n')) {
    const first = line.trim().split(/\s+/)[0] ?? '';
    if (state === 'before') {
      if (/^\s*config:/.test(line)) state = 'header';
    } else if (state === 'header') {
      if (first === 'NAME') state = 'pool';
    } else if (state === 'pool') {
      if (first) state = 'vdevs'; // the pool's own line
    } else {
      if (!first || /^errors:/.test(first)) break;
      if (!VDEV_GROUP.test(first)) out.push(first);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Calls

/** zfs-fuse answers "pool is busy" / "dataset is busy" for a moment after a mount: try again. */
export async function retryBusy<T>(action: () => Promise<T>, attempts = 6, delayMs = 150): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await action();
    } catch (e) {
      if (i >= attempts || !toolFailedWith(e, /\bbusy\b/i)) throw e;
      await new Promise((r) => setTimeout(r, delayMs * i));
    }
  }
}

/** zpool/zfs through `run`; an unreachable ZFS (daemon down, no module) becomes a PoolError. */
export class Zfs {
  readonly caps: ZfsCapabilities;
  constructor(
    readonly flavour: ZfsFlavour,
    private readonly runner: Runner = defaultRun,
    private readonly signal?: AbortSignal,
    /** First pause before repeating a "busy" export/destroy/unmount (then 2x, 3x, ...). */
    private readonly busyDelayMs = 150,
  ) {
    this.caps = capabilitiesOf(flavour);
  }

  /** The same, without the job's signal: for undo steps, which must run after an abort too. */
  forCleanup(): Zfs {
    return new Zfs(this.flavour, this.runner, undefined, this.busyDelayMs);
  }

  private async call(file: 'zpool' | 'zfs', args: readonly string[], options: RunOptions = {}) {
    try {
      return await this.runner(file, args, { signal: this.signal, ...options });
    } catch (e) {
      throw unreachableError(e) ?? e;
    }
  }

  zpool(args: readonly string[], options?: RunOptions) {
    return this.call('zpool', args, options);
  }

  zfs(args: readonly string[], options?: RunOptions) {
    return this.call('zfs', args, options);
  }

  async listPools(): Promise<PoolInfo[]> {
    return parsePoolList((await this.zpool(zpoolListArgs(this.flavour))).stdout);
  }

  async findPool(name: string): Promise<PoolInfo | undefined> {
    return (await this.listPools()).find((p) => p.name === name);
  }

  /** Leaf vdev paths of an imported pool. */
  async poolVdevs(pool: string): Promise<string[]> {
    return parseStatusVdevs((await this.zpool(zpoolStatusArgs(this.flavour, pool))).stdout);
  }

  async listDatasets(root: string, types?: string): Promise<DatasetInfo[]> {
    return parseDatasetList((await this.zfs(zfsListArgs(this.flavour, root, types))).stdout);
  }

  /** Cleanup paths run without the job's signal: an interrupted job must still be able to undo. */
  async exportPool(pool: string, force = false): Promise<void> {
    await retryBusy(() => this.call('zpool', zpoolExportArgs(pool, force), { signal: undefined }), 6, this.busyDelayMs);
  }

  async destroyPool(pool: string): Promise<void> {
    await retryBusy(() => this.call('zpool', zpoolDestroyArgs(pool), { signal: undefined }), 6, this.busyDelayMs);
  }

  async unmount(dataset: string): Promise<void> {
    await retryBusy(() => this.call('zfs', zfsUnmountArgs(dataset), { signal: undefined }), 6, this.busyDelayMs);
  }
}
