/** The flavour learned once per boot, kept in /run (see FLAVOUR_CACHE). */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { findOnPath } from '../exec.js';
import type { ZfsFlavour } from './flavour.js';

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
export interface FlavourKey {
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
