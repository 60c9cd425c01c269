/**
 * Container layers in an imported pool, as calldown's ZFS storage spec lays them out (REFERENCE.md
 * section 8, seed 001):
 *
 *   <root>/storage                    parent of every layer
 *   <root>/storage/empty@extracted    the empty base; every bottom layer is a clone of it
 *   <root>/storage/<digest>@extracted one layer: a clone of its parent layer's @extracted with the
 *                                     layer applied; <digest> is the hex sha256 of the layer's
 *                                     uncompressed tar (its OCI diff_id)
 *   <root>/runtime/<id>               a container's root: a clone of a layer's @extracted
 *
 * A layer is built under a temporary name (storage/.tmp-<random>) and renamed when complete;
 * a failure or a signal destroys it. Finished layers are read-only (readonly=on), so a layer's
 * mounted tree always equals its @extracted snapshot: commit and export compare mounted trees
 * (zfs-fuse has neither `zfs diff` nor a .zfs snapshot directory).
 *
 * Two layers with the same diff_id but different parents hold different trees: the second is
 * named by its chain id instead (Docker's ChainID: sha256 of "<parent chain id> <diff_id>"; for
 * a bottom layer, sha256 of "empty <diff_id>"), so a dataset's name never lies about its content. Every layer records, in user properties,
 * its diff_id (mkimage:diffid) and chain id (mkimage:chainid); the top layer of an imported image
 * records the image's reference names (mkimage:refs, a JSON list).
 *
 * This file is the store's face: the LayerStore class, whose methods each call one module of
 * src/layers/store/: names.ts (the tree's names, chain ids), props.ts (dataset properties, parsed),
 * inventory.ts (layers and runtimes from them, resolving a reference), datasets.ts (the datasets on
 * the pool: open, mount, destroy, rename, seal), import.ts, runtimes.ts (create, commit, rm),
 * housekeeping.ts (layers rm, prune), stale.ts (leftovers of killed jobs), export.ts.
 */
import type { Writable } from 'node:stream';
import type { Zfs } from '../tools/zfs.js';
import type { PackageResult } from './package.js';
import type { SourceImage } from './source.js';
import { StoreDatasets, type StoreOptions } from './store/datasets.js';
import { exportLayer } from './store/export.js';
import { prune, removeLayer } from './store/housekeeping.js';
import { importImage, type ImportEvent, type ImportedImage } from './store/import.js';
import type { Inventory, LayerInfo, RuntimeInfo } from './store/inventory.js';
import { commitRuntime, createRuntime, removeRuntime, type CommitResult } from './store/runtimes.js';

export { COMMIT_SNAPSHOT_PREFIX, EMPTY, EXTRACTED, PROP_CHAINID, PROP_DIFFID, PROP_REFS, TMP_PREFIX, altLayerName, chainId, checkRuntimeId } from './store/names.js';
export type { StoreOptions } from './store/datasets.js';
export type { ImportEvent, ImportedImage, ImportedLayer } from './store/import.js';
export type { LayerInfo, RuntimeInfo } from './store/inventory.js';
export type { CommitResult } from './store/runtimes.js';

export class LayerStore {
  /** The dataset holding storage/ and runtime/: the pool's root, or a dataset below it. */
  readonly root: string;
  readonly storage: string;
  readonly runtime: string;
  readonly empty: string;

  private constructor(private readonly datasets: StoreDatasets) {
    ({ root: this.root, storage: this.storage, runtime: this.runtime, empty: this.empty } = datasets.paths);
  }

  /**
   * The store under `root` of an imported pool. With `ensure`, makes what is missing of the
   * calldown tree (storage, storage/empty@extracted, runtime), so an image made with another
   * --layout works too; without it, changes nothing (`layers list` and `export` only read).
   */
  static async open(zfs: Zfs, root: string, options: StoreOptions = {}): Promise<LayerStore> {
    return new LayerStore(await StoreDatasets.open(zfs, root, options));
  }

  /** Imports the layers of one image, bottom first; layers already present are skipped. */
  importImage(image: SourceImage, onEvent?: (e: ImportEvent) => void): Promise<ImportedImage> {
    return importImage(this.datasets, image, onEvent);
  }

  /** Every layer, bottom layers first, with parents, sizes, references and runtimes. */
  list(): Promise<LayerInfo[]> {
    return this.datasets.list();
  }

  /** Layers and runtimes from one `zfs get`; none when the pool has no store. */
  inventory(): Promise<Inventory> {
    return this.datasets.inventory();
  }

  /**
   * A layer by its dataset name below storage/ (a digest or chain id), "sha256:<digest>", a
   * unique prefix of either (at least 6 hex digits), or "empty".
   */
  resolveLayer(ref: string): Promise<LayerInfo> {
    return this.datasets.resolveLayer(ref);
  }

  /** Removes one layer; refused while anything depends on it (store/housekeeping.ts). */
  removeLayer(ref: string): Promise<{ layer: LayerInfo; droppedRefs: string[] }> {
    return removeLayer(this.datasets, ref);
  }

  /** Removes leftovers of killed jobs and every layer nothing uses (store/housekeeping.ts). */
  prune(options: { dryRun?: boolean } = {}): Promise<{ layers: LayerInfo[]; leftovers: string[] }> {
    return prune(this.datasets, options);
  }

  /** The layer as an OCI layer tar: its changes against its parent, whiteouts for deletions. */
  exportLayer(ref: string, out: string | Writable): Promise<PackageResult & { layer: LayerInfo }> {
    return exportLayer(this.datasets, ref, out);
  }

  /** runtime/<id>: a writable clone of the layer's @extracted snapshot (store/runtimes.ts). */
  createRuntime(layerRef: string, id: string, options: { quotaBytes?: number } = {}): Promise<RuntimeInfo & { quotaBytes?: number }> {
    return createRuntime(this.datasets, layerRef, id, options);
  }

  /** Destroys runtime/<id>, and the commit snapshot it was cloned from when nothing else uses it. */
  removeRuntime(id: string): Promise<{ dataset: string; removedSnapshot?: string }> {
    return removeRuntime(this.datasets, id);
  }

  /** runtime/<id>'s changes as a new layer (calldown "commit"); `remove`: the runtime goes after. */
  commitRuntime(id: string, options: { remove?: boolean } = {}): Promise<CommitResult> {
    return commitRuntime(this.datasets, id, options);
  }
}
