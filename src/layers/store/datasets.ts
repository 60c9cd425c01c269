/**
 * The store's datasets on the pool: opening (and with `ensure`, making) the calldown tree, reading
 * properties, mounting, destroying, renaming a finished layer into place, sealing it, and naming
 * new layers. What import, runtimes and housekeeping share.
 *
 * zfs-fuse refuses to rename a mounted dataset ("dataset is busy"): renames unmount first and
 * mount again after.
 */
import { randomHex } from '../../file/random.js';
import { PoolError, UsageError } from '../../errors.js';
import { Zfs, retryBusy, zfsCreateArgs, zfsDestroyArgs, zfsGetArgs, zfsMountArgs, zfsRenameArgs, zfsSetArgs, zfsSnapshotArgs } from '../../tools/zfs.js';
import { inventoryOf, matchLayer, type Inventory, type LayerInfo } from './inventory.js';
import { EXTRACTED, PROP_CHAINID, PROP_DIFFID, TMP_PREFIX, altLayerName, storePaths, type StorePaths } from './names.js';
import { PROPS, isMissing, originDataset, parseProps, type DatasetProps } from './props.js';

export interface StoreOptions {
  signal?: AbortSignal;
  /** Set owners and create devices while applying (default: running as root). */
  isRoot?: boolean;
  /**
   * Make what is missing of the calldown tree (import and the runtime commands). Without it the
   * store is only read: nothing is written to the pool, and a missing tree is an empty store.
   */
  ensure?: boolean;
}

export class StoreDatasets {
  readonly paths: StorePaths;
  /** The same Zfs without the job's signal: undo steps must run after an abort too. */
  readonly cleanup: Zfs;
  /** Which of storage and runtime exist (all of them once `ensure` made them). */
  readonly present = new Set<string>();

  private constructor(
    readonly zfs: Zfs,
    root: string,
    readonly options: StoreOptions,
  ) {
    this.paths = storePaths(root);
    this.cleanup = zfs.forCleanup();
  }

  /**
   * The store under `root` of an imported pool. With `ensure`, makes what is missing of the
   * calldown tree (storage, storage/empty@extracted, runtime), so an image made with another
   * --layout works too; without it, changes nothing (`layers list` and `export` only read).
   */
  static async open(zfs: Zfs, root: string, options: StoreOptions = {}): Promise<StoreDatasets> {
    const store = new StoreDatasets(zfs, root, options);
    const { storage, runtime, empty } = store.paths;
    const have = new Set((await zfs.listDatasets(root, 'filesystem,snapshot')).map((d) => d.name));
    if (!have.has(root)) throw new PoolError(`dataset ${root} does not exist in the pool`, { root });
    for (const d of [storage, runtime]) if (have.has(d)) store.present.add(d);
    if (!options.ensure) return store;
    for (const d of [storage, empty, runtime]) if (!have.has(d)) await zfs.zfs(zfsCreateArgs(d));
    store.present.add(storage).add(runtime);
    if (!have.has(`${empty}@${EXTRACTED}`)) await zfs.zfs(zfsSnapshotArgs(`${empty}@${EXTRACTED}`));
    // The base must stay empty: it is every bottom layer's parent when packaging. (zfs-fuse
    // applies readonly at the next mount and, until then, reports "off, temporary": there is no
    // reading it back, so it is set every time.)
    await zfs.zfs(zfsSetArgs(empty, 'readonly', 'on'));
    return store;
  }

  async props(dataset: string | readonly string[], recursive = false): Promise<DatasetProps[]> {
    return parseProps((await this.zfs.zfs(zfsGetArgs(PROPS, dataset, recursive))).stdout);
  }

  async propsOrUndefined(dataset: string): Promise<DatasetProps | undefined> {
    try {
      return (await this.props(dataset))[0];
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  /** Where a dataset is mounted; mounts it when it is not. */
  async mountpoint(dataset: string): Promise<string> {
    let p = (await this.props(dataset))[0];
    if (p && !p.mounted) {
      await retryBusy(() => this.zfs.zfs(zfsMountArgs(dataset)));
      p = (await this.props(dataset))[0];
    }
    if (!p?.mountpoint || !p.mounted) throw new PoolError(`dataset ${dataset} cannot be mounted (mountpoint ${p?.mountpoint ?? 'none'}): layers need their datasets mounted`, { dataset });
    return p.mountpoint;
  }

  /** Destroys a dataset and its snapshots (unmounting first); nothing when it is gone already. */
  async destroy(dataset: string, zfs = this.cleanup): Promise<void> {
    try {
      await zfs.unmount(dataset);
    } catch {
      /* not mounted, or gone: the destroy says which */
    }
    try {
      await retryBusy(() => zfs.zfs(zfsDestroyArgs(dataset, true)));
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }

  /**
   * Renames a finished layer into place. zfs-fuse renames only an unmounted dataset whose
   * dependent clones are unmounted too (`clones`: after a commit, the runtime); they are mounted
   * again after. A failing mount afterwards is not an error: the layer is complete, and is
   * mounted when next needed.
   */
  async renameInto(from: string, to: string, clones: readonly string[] = []): Promise<void> {
    const remount: string[] = [];
    for (const d of [from, ...clones]) {
      const p = await this.propsOrUndefined(d);
      if (!p?.mounted) continue;
      try {
        await this.zfs.unmount(d);
      } catch (e) {
        throw new PoolError(`cannot unmount ${d} to rename ${from} (zfs-fuse renames only unmounted datasets): a process has files open under ${p.mountpoint ?? d}; close them and retry`, { dataset: d }, { cause: e });
      }
      if (d !== from) remount.push(d);
    }
    try {
      await retryBusy(() => this.zfs.zfs(zfsRenameArgs(from, to)));
    } finally {
      for (const d of remount) await retryBusy(() => this.zfs.zfs(zfsMountArgs(d))).catch(() => undefined);
    }
    await retryBusy(() => this.zfs.zfs(zfsMountArgs(to))).catch(() => undefined);
  }

  /** A new temporary layer's name: storage/.tmp-<12 hex>. */
  tempName(): string {
    return `${this.paths.storage}/${TMP_PREFIX}${randomHex(6)}`;
  }

  layerName(digestOrChain: string): string {
    return `${this.paths.storage}/${digestOrChain}`;
  }

  /**
   * The dataset of `diffHex` on top of `parent`, if present: by digest, else by chain id. Its
   * origin is parent@extracted, or for a layer committed from a runtime that was itself committed
   * before, parent@mkimage-commit-*: the same tree (a layer is read-only once sealed).
   */
  async findLayer(parent: string, diffHex: string, parentChain: string | undefined): Promise<string | undefined> {
    for (const name of [this.layerName(diffHex), this.layerName(altLayerName(parentChain, diffHex))]) {
      const p = await this.propsOrUndefined(name);
      if (p?.origin && originDataset(p.origin) === parent) return name;
    }
    return undefined;
  }

  /** The name a new layer gets: its digest, unless a layer with that digest but another parent has it. */
  async newLayerName(diffHex: string, parentChain: string | undefined): Promise<string> {
    if (!(await this.propsOrUndefined(this.layerName(diffHex)))) return this.layerName(diffHex);
    const alt = this.layerName(altLayerName(parentChain, diffHex));
    if (await this.propsOrUndefined(alt)) {
      throw new PoolError(`layer datasets ${this.layerName(diffHex)} and ${alt} both exist with other parents: the store is inconsistent`, { diffHex, alt });
    }
    return alt;
  }

  /** A layer's chain id (undefined for the base). */
  async chainOf(dataset: string): Promise<string | undefined> {
    if (dataset === this.paths.empty) return undefined;
    const p = (await this.props(dataset))[0];
    return p?.chainid ?? p?.diffid?.replace(/^sha256:/, '');
  }

  /** Marks a finished layer: snapshot @extracted, its digests, read-only. */
  async seal(dataset: string, diffHex: string, chain: string): Promise<void> {
    await this.zfs.zfs(zfsSnapshotArgs(`${dataset}@${EXTRACTED}`));
    await this.zfs.zfs(zfsSetArgs(dataset, PROP_DIFFID, `sha256:${diffHex}`));
    await this.zfs.zfs(zfsSetArgs(dataset, PROP_CHAINID, chain));
    await this.zfs.zfs(zfsSetArgs(dataset, 'readonly', 'on'));
  }

  /** Layers and runtimes from one `zfs get`; none when the pool has no store. */
  async inventory(): Promise<Inventory> {
    const roots = [this.paths.storage, this.paths.runtime].filter((d) => this.present.has(d));
    if (!roots.length) return { layers: [], runtimes: [] };
    return inventoryOf(await this.props(roots, true), this.paths);
  }

  async list(): Promise<LayerInfo[]> {
    return (await this.inventory()).layers;
  }

  /** The layer `ref` names (see matchLayer); a UsageError when the image has no store. */
  async resolveLayer(ref: string): Promise<LayerInfo> {
    if (!this.present.has(this.paths.storage)) {
      throw new UsageError(`no layer ${ref} in this image: it has no layer store (${this.paths.storage} does not exist; mkimage layers import makes one)`, { layer: ref, storage: this.paths.storage });
    }
    return matchLayer(await this.list(), ref, this.paths);
  }
}
