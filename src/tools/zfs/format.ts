/** Pool format: ashift, compatibility set or legacy version. */
import { UsageError } from '../../errors.js';
import { ZFS_FUSE_POOL_VERSION, capabilitiesOf, type ZfsFlavour } from './flavour.js';
import type { Property } from './options.js';

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
