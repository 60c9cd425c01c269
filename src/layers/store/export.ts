/** A layer as an OCI layer tar: its tree packaged against its parent's. */
import type { Writable } from 'node:stream';
import { packageLayer, type PackageResult } from '../package.js';
import type { StoreDatasets } from './datasets.js';
import type { LayerInfo } from './inventory.js';
import { originDataset } from './props.js';

/** The layer as an OCI layer tar: its changes against its parent, whiteouts for deletions. */
export async function exportLayer(store: StoreDatasets, ref: string, out: string | Writable): Promise<PackageResult & { layer: LayerInfo }> {
  const layer = await store.resolveLayer(ref);
  const p = (await store.props(layer.dataset))[0]!;
  const parentDataset = originDataset(p.origin) ?? store.paths.empty;
  const lower = await store.mountpoint(parentDataset);
  const upper = await store.mountpoint(layer.dataset);
  const r = await packageLayer(lower, upper, out, { signal: store.options.signal });
  return { ...r, layer };
}
