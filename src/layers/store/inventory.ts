/**
 * The store's contents from one `zfs get -r` (pure): which datasets are layers and runtimes, each
 * layer's parent, references and runtimes, and which layer a user's reference names.
 */
import { UsageError } from '../../errors.js';
import { EMPTY, TMP_PREFIX, childOf, type StorePaths } from './names.js';
import { originDataset, type DatasetProps } from './props.js';

export interface LayerInfo {
  /** Hex sha256 of the layer's tar (diff_id), "empty" for the base. */
  digest: string;
  dataset: string;
  /** The parent layer's digest; undefined for the base. */
  parent?: string;
  /** The parent layer's dataset (unambiguous where a digest is stored twice, under its chain id). */
  parentDataset?: string;
  /** Bytes this layer holds on its own (ZFS `used`). */
  usedBytes: number;
  /** Image references whose layers include this one. */
  refs: string[];
  /** Runtime ids cloned from this layer. */
  runtimes: string[];
  chainId?: string;
}

export interface RuntimeInfo {
  id: string;
  dataset: string;
  /** Digest of the layer it was cloned from (or last committed to). */
  layer: string;
  mountpoint?: string;
  usedBytes: number;
}

export interface Inventory {
  layers: LayerInfo[];
  runtimes: RuntimeInfo[];
}

/**
 * Layers (bottom layers first, then by name) and runtimes from the properties of everything below
 * storage/ and runtime/. Temporary layers (.tmp-*) and deeper datasets are not layers.
 */
export function inventoryOf(all: readonly DatasetProps[], paths: StorePaths): Inventory {
  const { storage, empty } = paths;
  const layers = all.filter((d) => childOf(storage, d.name) !== undefined && !d.name.startsWith(`${storage}/${TMP_PREFIX}`));
  const byName = new Map(layers.map((d) => [d.name, d]));
  const digestOf = (d: DatasetProps) => (d.name === empty ? EMPTY : (d.diffid?.replace(/^sha256:/, '') ?? d.name.slice(storage.length + 1)));
  const parentOf = (d: DatasetProps) => {
    const o = originDataset(d.origin);
    return o && byName.has(o) ? o : undefined;
  };
  // References: an image uses its top layer and every layer below it.
  const refs = new Map<string, Set<string>>();
  for (const d of layers) {
    for (let cur: DatasetProps | undefined = d, hops = 0; cur && hops < 1000; cur = byName.get(parentOf(cur) ?? ''), hops++) {
      const set = refs.get(cur.name) ?? new Set<string>();
      for (const r of d.refs) set.add(r);
      refs.set(cur.name, set);
    }
  }
  const runtimes = runtimesOf(all, byName, paths);
  const depth = (d: DatasetProps) => {
    let n = 0;
    for (let cur = parentOf(d); cur && n < 1000; cur = parentOf(byName.get(cur)!)) n++;
    return n;
  };
  const infos = layers
    .map((d) => ({ d, depth: depth(d) }))
    .sort((a, b) => a.depth - b.depth || (a.d.name < b.d.name ? -1 : 1))
    .map(({ d }) => ({
      digest: digestOf(d),
      dataset: d.name,
      parent: parentOf(d) ? digestOf(byName.get(parentOf(d)!)!) : undefined,
      parentDataset: parentOf(d),
      usedBytes: d.used,
      refs: [...(refs.get(d.name) ?? [])].sort(),
      runtimes: runtimes.filter((r) => r.layerDataset === d.name).map((r) => r.id),
      chainId: d.chainid,
    }));
  return { layers: infos, runtimes: runtimes.map(({ layerDataset: _l, ...r }) => r) };
}

function runtimesOf(all: readonly DatasetProps[], layers: Map<string, DatasetProps>, paths: StorePaths): (RuntimeInfo & { layerDataset?: string })[] {
  const { runtime, empty } = paths;
  return all
    .filter((d) => childOf(runtime, d.name) !== undefined)
    .map((d) => {
      const layerDataset = originDataset(d.origin);
      const layer = layerDataset ? layers.get(layerDataset) : undefined;
      return {
        id: d.name.slice(runtime.length + 1),
        dataset: d.name,
        layer: layer ? (layer.name === empty ? EMPTY : (layer.diffid?.replace(/^sha256:/, '') ?? layer.name)) : (layerDataset ?? '?'),
        layerDataset,
        mountpoint: d.mounted ? d.mountpoint : undefined,
        usedBytes: d.used,
      };
    });
}

/**
 * The layer `ref` names among `layers`: its dataset name below storage/ (a digest or chain id),
 * "sha256:<digest>", a unique prefix of either (at least 6 hex digits), or "empty". The dataset
 * named exactly so wins: storage/<digest> over the same digest on another parent.
 */
export function matchLayer(layers: readonly LayerInfo[], ref: string, paths: StorePaths): LayerInfo {
  const { storage, empty } = paths;
  const want = ref.replace(/^sha256:/, '').toLowerCase();
  if (want === EMPTY) return layers.find((l) => l.dataset === empty)!;
  if (!/^[0-9a-f]{6,64}$/.test(want)) throw new UsageError(`layer ${JSON.stringify(ref)} is not a digest (hex sha256, or a prefix of at least 6 digits)`, { layer: ref });
  const exact = layers.find((l) => l.dataset === `${storage}/${want}`);
  if (exact) return exact;
  const hits = layers.filter((l) => l.digest.startsWith(want) || l.dataset.slice(storage.length + 1).startsWith(want));
  if (hits.length === 1) return hits[0]!;
  if (!hits.length) throw new UsageError(`no layer ${ref} in this image (mkimage layers list shows them)`, { layer: ref });
  throw new UsageError(`layer ${ref} is ambiguous: it matches ${hits.map((h) => h.dataset.slice(storage.length + 1)).join(', ')} (a layer imported on two different parents is stored under its chain id: give that)`, { layer: ref, datasets: hits.map((h) => h.dataset) });
}
