/** Removing layers: one by name (refused while anything depends on it), or all unused (prune). */
import { UsageError } from '../../errors.js';
import { parseGet, zfsGetArgs } from '../../tools/zfs.js';
import type { StoreDatasets } from './datasets.js';
import type { LayerInfo } from './inventory.js';
import { childOf } from './names.js';
import { originDataset } from './props.js';
import { removeStale } from './stale.js';

/** Every dataset of the pool (snapshots left out) with its origin, from one `zfs get -r origin`. */
async function poolOrigins(store: StoreDatasets): Promise<Map<string, Record<string, string>>> {
  const pool = store.paths.root.split('/')[0]!;
  const all = parseGet((await store.zfs.zfs(zfsGetArgs(['origin'], pool, true))).stdout);
  return new Map([...all].filter(([n]) => !n.includes('@')));
}

/**
 * Who depends on a layer: every dataset in the pool cloned from one of its snapshots (the
 * layers built on it, runtimes, clones elsewhere). ZFS cannot destroy a snapshot with clones.
 */
async function dependents(store: StoreDatasets, layerDataset: string): Promise<{ layers: string[]; runtimes: string[]; others: string[] }> {
  const { storage, runtime } = store.paths;
  const clones = [...(await poolOrigins(store))].filter(([, p]) => originDataset(p.origin) === layerDataset).map(([n]) => n);
  const isLayer = (n: string) => childOf(storage, n) !== undefined;
  const isRuntime = (n: string) => childOf(runtime, n) !== undefined;
  return {
    layers: clones.filter(isLayer),
    runtimes: clones.filter(isRuntime).map((n) => n.slice(runtime.length + 1)),
    others: clones.filter((n) => !isLayer(n) && !isRuntime(n)),
  };
}

/**
 * Removes one layer (its dataset and snapshots). Refused, naming them, while layers are built on
 * it or runtimes (or other clones) were cloned from it; the base `empty` is never removed.
 * Image references on it (or above it) are dropped with it and reported.
 */
export async function removeLayer(store: StoreDatasets, ref: string): Promise<{ layer: LayerInfo; droppedRefs: string[] }> {
  const { storage, empty } = store.paths;
  const layer = await store.resolveLayer(ref);
  if (layer.dataset === empty) throw new UsageError('the base layer "empty" is every bottom layer\'s parent: it is never removed', { layer: ref });
  const dep = await dependents(store, layer.dataset);
  const uses = [
    ...dep.layers.map((d) => `layer ${d.slice(storage.length + 1)}`),
    ...dep.runtimes.map((r) => `runtime ${r}`),
    ...dep.others.map((d) => `clone ${d}`),
  ];
  if (uses.length) {
    throw new UsageError(
      `layer ${layer.digest} is in use: ${uses.join(', ')} ${uses.length > 1 ? 'depend' : 'depends'} on it (remove ${dep.layers.length ? 'the layers above it' : ''}${dep.layers.length && dep.runtimes.length ? ' and ' : ''}${dep.runtimes.length ? 'the runtimes (mkimage runtime rm)' : ''}${!dep.layers.length && !dep.runtimes.length ? 'the clones' : ''} first); nothing was removed`,
      { layer: layer.digest, layers: dep.layers, runtimes: dep.runtimes, clones: dep.others },
    );
  }
  await store.destroy(layer.dataset, store.zfs);
  return { layer, droppedRefs: layer.refs };
}

/**
 * Removes what nothing uses: leftovers of killed imports and commits (temporary layers, commit
 * snapshots nothing was cloned from), then, again and again, every layer that no image
 * reference names (on it or on a layer above it), that no runtime or other clone was made from,
 * and that no layer is built on. The base `empty` stays. `dryRun`: only say what would go.
 */
export async function prune(store: StoreDatasets, options: { dryRun?: boolean } = {}): Promise<{ layers: LayerInfo[]; leftovers: string[] }> {
  if (!store.present.has(store.paths.storage)) return { layers: [], leftovers: [] };
  const leftovers = options.dryRun ? [] : await removeStale(store);
  const removed: LayerInfo[] = [];
  const gone = new Set<string>();
  for (;;) {
    const layers = (await store.list()).filter((l) => !gone.has(l.dataset));
    const origins = await poolOrigins(store);
    const used = new Set([...origins].filter(([n, p]) => !gone.has(n) && p.origin).map(([, p]) => originDataset(p.origin)!));
    const victims = layers.filter((l) => l.dataset !== store.paths.empty && !l.refs.length && !l.runtimes.length && !used.has(l.dataset));
    if (!victims.length) break;
    for (const v of victims) {
      if (!options.dryRun) await store.destroy(v.dataset, store.zfs);
      gone.add(v.dataset);
      removed.push(v);
    }
  }
  return { layers: removed, leftovers };
}
