/**
 * Importing an image's layers, bottom first: each layer is extracted over a clone of its parent
 * under a temporary name, sealed, and renamed into place; a layer already present is checked and
 * reused.
 */
import { LayerError } from '../../errors.js';
import { zfsCloneArgs, zfsSetArgs } from '../../tools/zfs.js';
import { checkAborted, withUndo } from '../../undo.js';
import { applyLayer, type ApplyStats } from '../apply.js';
import { layerDigests, openLayer, type LayerBlob, type SourceImage } from '../source.js';
import type { StoreDatasets } from './datasets.js';
import { EMPTY, EXTRACTED, PROP_REFS, chainId } from './names.js';
import { originDataset } from './props.js';
import { removeStale } from './stale.js';

export type ImportEvent =
  | { kind: 'layer-start'; image: string; index: number; total: number; digest?: string; size?: number }
  | { kind: 'layer-bytes'; image: string; index: number; storedBytes: number; bytes: number; size?: number }
  | { kind: 'layer-done'; image: string; index: number; total: number; digest: string; status: 'extracted' | 'present'; bytes: number };

export interface ImportedLayer {
  digest: string;
  dataset: string;
  status: 'extracted' | 'present';
  /** Uncompressed bytes read (0 when present). */
  bytes: number;
  stats?: ApplyStats;
}

export interface ImportedImage {
  source: string;
  names: string[];
  layers: ImportedLayer[];
  /** The top layer's digest. */
  top: string;
}

/** Extracts one layer over a clone of `parent`; returns the finished dataset. */
async function extract(
  store: StoreDatasets,
  blob: LayerBlob,
  parent: string,
  parentChain: string | undefined,
  expectedDiffId: string | undefined,
  progress: (storedBytes: number, bytes: number) => void,
): Promise<{ dataset: string; digest: string; bytes: number; stats: ApplyStats }> {
  const signal = store.options.signal;
  return withUndo(signal, async (undo) => {
    const tmp = store.tempName();
    await store.zfs.zfs(zfsCloneArgs(`${parent}@${EXTRACTED}`, tmp));
    undo.push(`half-made layer ${tmp}`, () => store.destroy(tmp));
    const dir = await store.mountpoint(tmp);
    const stream = openLayer(blob, (p) => progress(p.storedBytes, p.bytes));
    let stats: ApplyStats;
    let digests;
    try {
      // zfs-fuse datasets hold no extended attributes (REFERENCE.md 9): they are dropped, counted
      // and named; OpenZFS applies them.
      stats = await applyLayer(stream.tar, dir, { signal, isRoot: store.options.isRoot, xattrs: store.zfs.flavour.kind === 'zfs-fuse' ? 'drop' : 'apply' });
      digests = await stream.finish();
    } catch (e) {
      await stream.close();
      throw e;
    }
    if (expectedDiffId !== undefined && digests.diffId !== expectedDiffId) {
      throw new LayerError(`${blob.origin} changed while it was imported: its diff_id was ${expectedDiffId}, now ${digests.diffId}`, { origin: blob.origin });
    }
    checkAborted(signal, 'layer import');
    const chain = chainId(parentChain, digests.digest);
    const final = await store.newLayerName(digests.digest, parentChain);
    await store.seal(tmp, digests.digest, chain);
    await store.renameInto(tmp, final);
    undo.commit();
    return { dataset: final, digest: digests.digest, bytes: digests.bytes, stats };
  });
}

/** Whether any layer was built on `parent` (a layer whose origin is one of its snapshots). */
async function hasChildLayers(store: StoreDatasets, parent: string): Promise<boolean> {
  const all = await store.props(store.paths.storage, true);
  return all.some((d) => originDataset(d.origin) === parent);
}

async function addRefs(store: StoreDatasets, dataset: string, names: readonly string[]): Promise<void> {
  const p = (await store.props(dataset))[0]!;
  const refs = [...new Set([...p.refs, ...names])].sort();
  if (refs.length === p.refs.length) return;
  await store.zfs.zfs(zfsSetArgs(dataset, PROP_REFS, JSON.stringify(refs)));
}

/** Imports the layers of one image, bottom first; layers already present are skipped. */
export async function importImage(store: StoreDatasets, image: SourceImage, onEvent?: (e: ImportEvent) => void): Promise<ImportedImage> {
  await removeStale(store);
  const label = image.names[0] ?? image.source;
  let parent = store.paths.empty;
  let parentChain: string | undefined;
  const layers: ImportedLayer[] = [];
  const total = image.layers.length;
  for (const blob of image.layers) {
    checkAborted(store.options.signal, 'layer import');
    // A plain tar does not say its diff_id: read it once to know whether it is here already,
    // unless nothing was ever built on this parent (then it cannot be, and one read is enough).
    let verified = false;
    const diffId =
      blob.diffId ??
      ((await hasChildLayers(store, parent))
        ? (await layerDigests(blob).then((d) => ((verified = true), d))).diffId
        : undefined);
    const diffHex = diffId?.slice('sha256:'.length);
    onEvent?.({ kind: 'layer-start', image: label, index: blob.index, total, ...(diffHex !== undefined ? { digest: diffHex } : {}), size: blob.size });
    if (diffHex !== undefined) {
      const present = await store.findLayer(parent, diffHex, parentChain);
      if (present) {
        // A layer present already is not extracted again, but its blob is still read and checked
        // against the manifest's digest and the config's diff_id: a corrupt blob is an error,
        // never "present already".
        if (!verified) await layerDigests(blob);
        layers.push({ digest: diffHex, dataset: present, status: 'present', bytes: 0 });
        onEvent?.({ kind: 'layer-done', image: label, index: blob.index, total, digest: diffHex, status: 'present', bytes: 0 });
        parent = present;
        parentChain = chainId(parentChain, diffHex);
        continue;
      }
    }
    // Extracted: its diff_id, when known beforehand, is checked against what was read.
    const done = await extract(store, blob, parent, parentChain, diffId, (storedBytes, bytes) =>
      onEvent?.({ kind: 'layer-bytes', image: label, index: blob.index, storedBytes, bytes, size: blob.size }),
    );
    layers.push({ digest: done.digest, dataset: done.dataset, status: 'extracted', bytes: done.bytes, stats: done.stats });
    onEvent?.({ kind: 'layer-done', image: label, index: blob.index, total, digest: done.digest, status: 'extracted', bytes: done.bytes });
    parent = done.dataset;
    parentChain = chainId(parentChain, done.digest);
  }
  if (image.names.length && parent !== store.paths.empty) await addRefs(store, parent, image.names);
  return { source: image.source, names: image.names, layers, top: layers.length ? layers[layers.length - 1]!.digest : EMPTY };
}
