/** Argument builders for zpool(8) and zfs(8) (pure): each decides by the flavour's capabilities. */
import { UsageError } from '../../errors.js';
import { capabilitiesOf, type ZfsFlavour } from './flavour.js';
import type { Property } from './options.js';

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
