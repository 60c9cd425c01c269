/** Pool, dataset and snapshot names: checked before any command runs (UsageError, exit 2). */
import { UsageError } from '../../errors.js';

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
