/**
 * The two ZFS flavours, told apart by `detectFlavour`, and what each one's command line has (pure:
 * no process runs here).
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
 */

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
