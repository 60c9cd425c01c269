/** Parsers of zpool/zfs output (pure): -H lists, `zfs get`, `zpool status`. */

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
