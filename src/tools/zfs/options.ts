/** --zpool-option / --zfs-option pairs: parsed, and checked against what the flavour has. */
import { UsageError } from '../../errors.js';
import type { ZfsFlavour } from './flavour.js';

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
