/** What the store reads of a dataset: its `zfs get` properties, parsed (pure). */
import { toolFailedWith } from '../../errors.js';
import { parseGet } from '../../tools/zfs.js';
import { PROP_CHAINID, PROP_DIFFID, PROP_REFS } from './names.js';

export interface DatasetProps {
  name: string;
  origin?: string;
  used: number;
  mountpoint?: string;
  mounted: boolean;
  diffid?: string;
  chainid?: string;
  refs: string[];
}

/** The properties asked for: `zfs get -H -p -o name,property,value PROPS ...`. */
export const PROPS = ['origin', 'used', 'mountpoint', 'mounted', PROP_DIFFID, PROP_CHAINID, PROP_REFS];

export function toProps(name: string, r: Record<string, string>): DatasetProps {
  let refs: string[] = [];
  if (r[PROP_REFS]) {
    try {
      const v: unknown = JSON.parse(r[PROP_REFS]!);
      if (Array.isArray(v)) refs = v.filter((x): x is string => typeof x === 'string');
    } catch {
      /* a hand-edited property: no refs */
    }
  }
  return {
    name,
    origin: r.origin,
    used: Number(r.used ?? 0),
    mountpoint: r.mountpoint?.startsWith('/') ? r.mountpoint : undefined,
    mounted: r.mounted === 'yes',
    diffid: r[PROP_DIFFID],
    chainid: r[PROP_CHAINID],
    refs,
  };
}

/** `zfs get` output of PROPS as one DatasetProps per dataset (snapshots left out), in its order. */
export function parseProps(stdout: string): DatasetProps[] {
  return [...parseGet(stdout)].filter(([n]) => !n.includes('@')).map(([n, p]) => toProps(n, p));
}

/** The dataset a clone was made from: "tank/storage/x" of origin "tank/storage/x@extracted". */
export function originDataset(origin: string | undefined): string | undefined {
  return origin?.split('@')[0];
}

/** zfs's answer for a dataset that is not there; OpenZFS says this for a missing snapshot. */
export function isMissing(e: unknown): boolean {
  return toolFailedWith(e, /does not exist|could not find any snapshots/);
}
