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
 * zfs-fuse refuses to rename a mounted dataset ("dataset is busy"): renames unmount first and
 * mount again after.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { LayerError, PoolError, UsageError, toolFailedWith } from '../errors.js';
import { checkAborted, withUndo } from '../undo.js';
import {
  Zfs,
  parseGet,
  retryBusy,
  zfsCloneArgs,
  zfsCreateArgs,
  zfsDestroyArgs,
  zfsGetArgs,
  zfsMountArgs,
  zfsPromoteArgs,
  zfsRenameArgs,
  zfsSetArgs,
  zfsSnapshotArgs,
} from '../tools/zfs.js';
import { applyLayer, type ApplyStats } from './apply.js';
import { packageLayer, type PackageResult } from './package.js';
import { layerDigests, openLayer, type LayerBlob, type SourceImage } from './source.js';

export const EXTRACTED = 'extracted';
export const EMPTY = 'empty';
export const TMP_PREFIX = '.tmp-';
export const COMMIT_SNAPSHOT_PREFIX = 'mkimage-commit-';
export const PROP_DIFFID = 'mkimage:diffid';
export const PROP_CHAINID = 'mkimage:chainid';
export const PROP_REFS = 'mkimage:refs';

/** Docker's ChainID step: sha256 of "sha256:<parent chain> sha256:<diff>" (hex in, hex out). */
export function chainId(parentChain: string | undefined, diffHex: string): string {
  if (parentChain === undefined) return diffHex;
  return createHash('sha256').update(`sha256:${parentChain} sha256:${diffHex}`).digest('hex');
}

/**
 * The dataset name of a layer whose digest is taken by the same layer on another parent: its
 * chain id, or for a bottom layer (whose chain id is its digest) sha256 of "empty sha256:<digest>".
 */
export function altLayerName(parentChain: string | undefined, diffHex: string): string {
  if (parentChain === undefined) return createHash('sha256').update(`empty sha256:${diffHex}`).digest('hex');
  return chainId(parentChain, diffHex);
}

/** A runtime (container) id: one dataset name component. */
export function checkRuntimeId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(id)) {
    throw new UsageError(`runtime id ${JSON.stringify(id)} must be 1 to 128 letters, digits, _ . : - and start with a letter or digit`, { id });
  }
}

// ---------------------------------------------------------------------------------------------

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

export interface CommitResult {
  id: string;
  digest: string;
  dataset: string;
  parent: string;
  /** False when an identical layer existed already (nothing was added). */
  created: boolean;
  entries: number;
  whiteouts: number;
  tarBytes: number;
  runtimeRemoved: boolean;
}

interface DatasetProps {
  name: string;
  origin?: string;
  used: number;
  mountpoint?: string;
  mounted: boolean;
  diffid?: string;
  chainid?: string;
  refs: string[];
}

const PROPS = ['origin', 'used', 'mountpoint', 'mounted', PROP_DIFFID, PROP_CHAINID, PROP_REFS];

function toProps(name: string, r: Record<string, string>): DatasetProps {
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

/** Counts bytes and throws them away: packaging only for the digest. */
function nullSink(): Writable {
  return new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

/** zfs's answer for a dataset that is not there; OpenZFS says this for a missing snapshot. */
function isMissing(e: unknown): boolean {
  return toolFailedWith(e, /does not exist|could not find any snapshots/);
}

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

export class LayerStore {
  readonly storage: string;
  readonly runtime: string;
  readonly empty: string;
  private readonly cleanup: Zfs;
  /** Which of storage and runtime exist (all of them once `ensure` made them). */
  private readonly present = new Set<string>();

  private constructor(
    private readonly zfs: Zfs,
    /** The dataset holding storage/ and runtime/: the pool's root, or a dataset below it. */
    readonly root: string,
    private readonly options: StoreOptions,
  ) {
    this.storage = `${root}/storage`;
    this.runtime = `${root}/runtime`;
    this.empty = `${this.storage}/${EMPTY}`;
    this.cleanup = zfs.forCleanup();
  }

  /**
   * The store under `root` of an imported pool. With `ensure`, makes what is missing of the
   * calldown tree (storage, storage/empty@extracted, runtime), so an image made with another
   * --layout works too; without it, changes nothing (`layers list` and `export` only read).
   */
  static async open(zfs: Zfs, root: string, options: StoreOptions = {}): Promise<LayerStore> {
    const store = new LayerStore(zfs, root, options);
    const have = new Set((await zfs.listDatasets(root, 'filesystem,snapshot')).map((d) => d.name));
    if (!have.has(root)) throw new PoolError(`dataset ${root} does not exist in the pool`, { root });
    for (const d of [store.storage, store.runtime]) if (have.has(d)) store.present.add(d);
    if (!options.ensure) return store;
    for (const d of [store.storage, store.empty, store.runtime]) if (!have.has(d)) await zfs.zfs(zfsCreateArgs(d));
    store.present.add(store.storage).add(store.runtime);
    if (!have.has(`${store.empty}@${EXTRACTED}`)) await zfs.zfs(zfsSnapshotArgs(`${store.empty}@${EXTRACTED}`));
    // The base must stay empty: it is every bottom layer's parent when packaging. (zfs-fuse
    // applies readonly at the next mount and, until then, reports "off, temporary": there is no
    // reading it back, so it is set every time.)
    await zfs.zfs(zfsSetArgs(store.empty, 'readonly', 'on'));
    return store;
  }

  private async props(dataset: string | readonly string[], recursive = false): Promise<DatasetProps[]> {
    const r = await this.zfs.zfs(zfsGetArgs(PROPS, dataset, recursive));
    return [...parseGet(r.stdout)].filter(([n]) => !n.includes('@')).map(([n, p]) => toProps(n, p));
  }

  private async propsOrUndefined(dataset: string): Promise<DatasetProps | undefined> {
    try {
      return (await this.props(dataset))[0];
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  /** Where a dataset is mounted; mounts it when it is not. */
  private async mountpoint(dataset: string): Promise<string> {
    let p = (await this.props(dataset))[0];
    if (p && !p.mounted) {
      await retryBusy(() => this.zfs.zfs(zfsMountArgs(dataset)));
      p = (await this.props(dataset))[0];
    }
    if (!p?.mountpoint || !p.mounted) throw new PoolError(`dataset ${dataset} cannot be mounted (mountpoint ${p?.mountpoint ?? 'none'}): layers need their datasets mounted`, { dataset });
    return p.mountpoint;
  }

  /** Destroys a dataset and its snapshots (unmounting first); nothing when it is gone already. */
  private async destroy(dataset: string, zfs = this.cleanup): Promise<void> {
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
  private async renameInto(from: string, to: string, clones: readonly string[] = []): Promise<void> {
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

  private tempName(): string {
    return `${this.storage}/${TMP_PREFIX}${randomBytes(6).toString('hex')}`;
  }

  /**
   * What a process killed mid-build left (no undo ran: SIGKILL, a power cut), destroyed before
   * new work: half-made layer datasets, and commit snapshots nothing was cloned from (a commit
   * snapshot in use is always the origin of a runtime or a layer).
   */
  private async removeStale(): Promise<string[]> {
    const stale = (await this.zfs.listDatasets(this.storage, 'filesystem')).map((d) => d.name).filter((n) => n.startsWith(`${this.storage}/${TMP_PREFIX}`));
    if (stale.length) {
      // A commit killed after promoting its temporary layer: the runtime became a clone of it.
      // The runtime is promoted back first (it takes its snapshots back), then the layer can go.
      const runtimes = parseGet((await this.zfs.zfs(zfsGetArgs(['origin'], this.runtime, true))).stdout);
      for (const [name, p] of runtimes) {
        if (!name.includes('@') && p.origin && stale.some((t) => p.origin!.startsWith(`${t}@`))) await retryBusy(() => this.zfs.zfs(zfsPromoteArgs(name)));
      }
    }
    for (const d of stale) await this.destroy(d, this.zfs);
    // `zfs get -r` lists snapshots too: their names, and every dataset's origin.
    const all = parseGet((await this.zfs.zfs(zfsGetArgs(['origin'], [this.storage, this.runtime], true))).stdout);
    const origins = new Set([...all.values()].map((p) => p.origin).filter((o): o is string => o !== undefined));
    const snaps = [...all.keys()].filter((n) => n.split('@')[1]?.startsWith(COMMIT_SNAPSHOT_PREFIX) && !origins.has(n));
    for (const snap of snaps) {
      try {
        // Without -r or -R: a clone elsewhere in the pool makes it fail, and the snapshot stays.
        await retryBusy(() => this.zfs.zfs(zfsDestroyArgs(snap, false)));
        stale.push(snap);
      } catch {
        /* still in use */
      }
    }
    return stale;
  }

  private layerName(digestOrChain: string): string {
    return `${this.storage}/${digestOrChain}`;
  }

  /**
   * The dataset of `diffHex` on top of `parent`, if present: by digest, else by chain id. Its
   * origin is parent@extracted, or for a layer committed from a runtime that was itself committed
   * before, parent@mkimage-commit-*: the same tree (a layer is read-only once sealed).
   */
  private async findLayer(parent: string, diffHex: string, parentChain: string | undefined): Promise<string | undefined> {
    for (const name of [this.layerName(diffHex), this.layerName(altLayerName(parentChain, diffHex))]) {
      const p = await this.propsOrUndefined(name);
      if (p?.origin && p.origin.split('@')[0] === parent) return name;
    }
    return undefined;
  }

  /** The name a new layer gets: its digest, unless a layer with that digest but another parent has it. */
  private async newLayerName(diffHex: string, parentChain: string | undefined): Promise<string> {
    if (!(await this.propsOrUndefined(this.layerName(diffHex)))) return this.layerName(diffHex);
    const alt = this.layerName(altLayerName(parentChain, diffHex));
    if (await this.propsOrUndefined(alt)) {
      throw new PoolError(`layer datasets ${this.layerName(diffHex)} and ${alt} both exist with other parents: the store is inconsistent`, { diffHex, alt });
    }
    return alt;
  }

  private async chainOf(dataset: string): Promise<string | undefined> {
    if (dataset === this.empty) return undefined;
    const p = (await this.props(dataset))[0];
    return p?.chainid ?? p?.diffid?.replace(/^sha256:/, '');
  }

  /** Marks a finished layer: snapshot @extracted, its digests, read-only. */
  private async seal(dataset: string, diffHex: string, chain: string): Promise<void> {
    await this.zfs.zfs(zfsSnapshotArgs(`${dataset}@${EXTRACTED}`));
    await this.zfs.zfs(zfsSetArgs(dataset, PROP_DIFFID, `sha256:${diffHex}`));
    await this.zfs.zfs(zfsSetArgs(dataset, PROP_CHAINID, chain));
    await this.zfs.zfs(zfsSetArgs(dataset, 'readonly', 'on'));
  }

  /** Extracts one layer over a clone of `parent`; returns the finished dataset. */
  private async extract(blob: LayerBlob, parent: string, parentChain: string | undefined, expectedDiffId: string | undefined, progress: (storedBytes: number, bytes: number) => void): Promise<{ dataset: string; digest: string; bytes: number; stats: ApplyStats }> {
    const signal = this.options.signal;
    return withUndo(signal, async (undo) => {
      const tmp = this.tempName();
      await this.zfs.zfs(zfsCloneArgs(`${parent}@${EXTRACTED}`, tmp));
      undo.push(`half-made layer ${tmp}`, () => this.destroy(tmp));
      const dir = await this.mountpoint(tmp);
      const stream = openLayer(blob, (p) => progress(p.storedBytes, p.bytes));
      let stats: ApplyStats;
      let digests;
      try {
        // zfs-fuse datasets hold no extended attributes (REFERENCE.md 9): they are dropped, counted
        // and named; OpenZFS applies them.
        stats = await applyLayer(stream.tar, dir, { signal, isRoot: this.options.isRoot, xattrs: this.zfs.flavour.kind === 'zfs-fuse' ? 'drop' : 'apply' });
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
      const final = await this.newLayerName(digests.digest, parentChain);
      await this.seal(tmp, digests.digest, chain);
      await this.renameInto(tmp, final);
      undo.commit();
      return { dataset: final, digest: digests.digest, bytes: digests.bytes, stats };
    });
  }

  /** Imports the layers of one image, bottom first; layers already present are skipped. */
  async importImage(image: SourceImage, onEvent?: (e: ImportEvent) => void): Promise<ImportedImage> {
    await this.removeStale();
    const label = image.names[0] ?? image.source;
    let parent = this.empty;
    let parentChain: string | undefined;
    const layers: ImportedLayer[] = [];
    const total = image.layers.length;
    for (const blob of image.layers) {
      checkAborted(this.options.signal, 'layer import');
      // A plain tar does not say its diff_id: read it once to know whether it is here already,
      // unless nothing was ever built on this parent (then it cannot be, and one read is enough).
      let verified = false;
      const diffId =
        blob.diffId ??
        ((await this.hasChildLayers(parent))
          ? (await layerDigests(blob).then((d) => ((verified = true), d))).diffId
          : undefined);
      if (diffId === undefined) {
        onEvent?.({ kind: 'layer-start', image: label, index: blob.index, total, size: blob.size });
        const done = await this.extract(blob, parent, parentChain, undefined, (storedBytes, bytes) =>
          onEvent?.({ kind: 'layer-bytes', image: label, index: blob.index, storedBytes, bytes, size: blob.size }),
        );
        layers.push({ digest: done.digest, dataset: done.dataset, status: 'extracted', bytes: done.bytes, stats: done.stats });
        onEvent?.({ kind: 'layer-done', image: label, index: blob.index, total, digest: done.digest, status: 'extracted', bytes: done.bytes });
        parent = done.dataset;
        parentChain = chainId(parentChain, done.digest);
        continue;
      }
      const diffHex = diffId.slice('sha256:'.length);
      const chain = chainId(parentChain, diffHex);
      onEvent?.({ kind: 'layer-start', image: label, index: blob.index, total, digest: diffHex, size: blob.size });
      const present = await this.findLayer(parent, diffHex, parentChain);
      // A layer present already is not extracted again, but its blob is still read and checked
      // against the manifest's digest and the config's diff_id: a corrupt blob is an error, never
      // "present already".
      if (present && !verified) await layerDigests(blob);
      if (present) {
        layers.push({ digest: diffHex, dataset: present, status: 'present', bytes: 0 });
        onEvent?.({ kind: 'layer-done', image: label, index: blob.index, total, digest: diffHex, status: 'present', bytes: 0 });
        parent = present;
        parentChain = chain;
        continue;
      }
      const done = await this.extract(blob, parent, parentChain, diffId, (storedBytes, bytes) =>
        onEvent?.({ kind: 'layer-bytes', image: label, index: blob.index, storedBytes, bytes, size: blob.size }),
      );
      layers.push({ digest: done.digest, dataset: done.dataset, status: 'extracted', bytes: done.bytes, stats: done.stats });
      onEvent?.({ kind: 'layer-done', image: label, index: blob.index, total, digest: done.digest, status: 'extracted', bytes: done.bytes });
      parent = done.dataset;
      parentChain = chain;
    }
    if (image.names.length && parent !== this.empty) await this.addRefs(parent, image.names);
    return { source: image.source, names: image.names, layers, top: layers.length ? layers[layers.length - 1]!.digest : EMPTY };
  }

  /** Whether any layer was built on `parent` (a layer whose origin is one of its snapshots). */
  private async hasChildLayers(parent: string): Promise<boolean> {
    const all = await this.props(this.storage, true);
    return all.some((d) => d.origin?.split('@')[0] === parent);
  }

  private async addRefs(dataset: string, names: readonly string[]): Promise<void> {
    const p = (await this.props(dataset))[0]!;
    const refs = [...new Set([...p.refs, ...names])].sort();
    if (refs.length === p.refs.length) return;
    await this.zfs.zfs(zfsSetArgs(dataset, PROP_REFS, JSON.stringify(refs)));
  }

  /** Every layer, bottom layers first, with parents, sizes, references and runtimes. */
  async list(): Promise<LayerInfo[]> {
    return (await this.inventory()).layers;
  }

  /** Layers and runtimes from one `zfs get`; none when the pool has no store. */
  async inventory(): Promise<{ layers: LayerInfo[]; runtimes: RuntimeInfo[] }> {
    const roots = [this.storage, this.runtime].filter((d) => this.present.has(d));
    if (!roots.length) return { layers: [], runtimes: [] };
    const all = await this.props(roots, true);
    const layers = all.filter((d) => d.name.startsWith(`${this.storage}/`) && !d.name.slice(this.storage.length + 1).includes('/') && !d.name.startsWith(`${this.storage}/${TMP_PREFIX}`));
    const byName = new Map(layers.map((d) => [d.name, d]));
    const digestOf = (d: DatasetProps) => (d.name === this.empty ? EMPTY : (d.diffid?.replace(/^sha256:/, '') ?? d.name.slice(this.storage.length + 1)));
    const parentOf = (d: DatasetProps) => {
      const o = d.origin?.split('@')[0];
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
    const runtimes = this.runtimes(all, byName);
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

  private runtimes(all: readonly DatasetProps[], layers: Map<string, DatasetProps>): (RuntimeInfo & { layerDataset?: string })[] {
    return all
      .filter((d) => d.name.startsWith(`${this.runtime}/`) && !d.name.slice(this.runtime.length + 1).includes('/'))
      .map((d) => {
        const layerDataset = d.origin?.split('@')[0];
        const layer = layerDataset ? layers.get(layerDataset) : undefined;
        return {
          id: d.name.slice(this.runtime.length + 1),
          dataset: d.name,
          layer: layer ? (layer.name === this.empty ? EMPTY : (layer.diffid?.replace(/^sha256:/, '') ?? layer.name)) : (layerDataset ?? '?'),
          layerDataset,
          mountpoint: d.mounted ? d.mountpoint : undefined,
          usedBytes: d.used,
        };
      });
  }

  /**
   * A layer by its dataset name below storage/ (a digest or chain id), "sha256:<digest>", a
   * unique prefix of either (at least 6 hex digits), or "empty".
   */
  async resolveLayer(ref: string): Promise<LayerInfo> {
    if (!this.present.has(this.storage)) {
      throw new UsageError(`no layer ${ref} in this image: it has no layer store (${this.storage} does not exist; mkimage layers import makes one)`, { layer: ref, storage: this.storage });
    }
    const want = ref.replace(/^sha256:/, '').toLowerCase();
    const layers = await this.list();
    if (want === EMPTY) return layers.find((l) => l.dataset === this.empty)!;
    if (!/^[0-9a-f]{6,64}$/.test(want)) throw new UsageError(`layer ${JSON.stringify(ref)} is not a digest (hex sha256, or a prefix of at least 6 digits)`, { layer: ref });
    // The dataset named exactly so wins: storage/<digest> over the same digest on another parent.
    const exact = layers.find((l) => l.dataset === this.layerName(want));
    if (exact) return exact;
    const hits = layers.filter((l) => l.digest.startsWith(want) || l.dataset.slice(this.storage.length + 1).startsWith(want));
    if (hits.length === 1) return hits[0]!;
    if (!hits.length) throw new UsageError(`no layer ${ref} in this image (mkimage layers list shows them)`, { layer: ref });
    throw new UsageError(`layer ${ref} is ambiguous: it matches ${hits.map((h) => h.dataset.slice(this.storage.length + 1)).join(', ')} (a layer imported on two different parents is stored under its chain id: give that)`, { layer: ref, datasets: hits.map((h) => h.dataset) });
  }

  /**
   * Who depends on a layer: every dataset in the pool cloned from one of its snapshots (the
   * layers built on it, runtimes, clones elsewhere). ZFS cannot destroy a snapshot with clones.
   */
  private async dependents(layerDataset: string): Promise<{ layers: string[]; runtimes: string[]; others: string[] }> {
    const pool = this.root.split('/')[0]!;
    const all = parseGet((await this.zfs.zfs(zfsGetArgs(['origin'], pool, true))).stdout);
    const clones = [...all].filter(([n, p]) => !n.includes('@') && p.origin?.split('@')[0] === layerDataset).map(([n]) => n);
    const isLayer = (n: string) => n.startsWith(`${this.storage}/`) && !n.slice(this.storage.length + 1).includes('/');
    const isRuntime = (n: string) => n.startsWith(`${this.runtime}/`) && !n.slice(this.runtime.length + 1).includes('/');
    return {
      layers: clones.filter(isLayer),
      runtimes: clones.filter(isRuntime).map((n) => n.slice(this.runtime.length + 1)),
      others: clones.filter((n) => !isLayer(n) && !isRuntime(n)),
    };
  }

  /**
   * Removes one layer (its dataset and snapshots). Refused, naming them, while layers are built on
   * it or runtimes (or other clones) were cloned from it; the base `empty` is never removed.
   * Image references on it (or above it) are dropped with it and reported.
   */
  async removeLayer(ref: string): Promise<{ layer: LayerInfo; droppedRefs: string[] }> {
    const layer = await this.resolveLayer(ref);
    if (layer.dataset === this.empty) throw new UsageError('the base layer "empty" is every bottom layer\'s parent: it is never removed', { layer: ref });
    const dep = await this.dependents(layer.dataset);
    const uses = [
      ...dep.layers.map((d) => `layer ${d.slice(this.storage.length + 1)}`),
      ...dep.runtimes.map((r) => `runtime ${r}`),
      ...dep.others.map((d) => `clone ${d}`),
    ];
    if (uses.length) {
      throw new UsageError(
        `layer ${layer.digest} is in use: ${uses.join(', ')} ${uses.length > 1 ? 'depend' : 'depends'} on it (remove ${dep.layers.length ? 'the layers above it' : ''}${dep.layers.length && dep.runtimes.length ? ' and ' : ''}${dep.runtimes.length ? 'the runtimes (mkimage runtime rm)' : ''}${!dep.layers.length && !dep.runtimes.length ? 'the clones' : ''} first); nothing was removed`,
        { layer: layer.digest, layers: dep.layers, runtimes: dep.runtimes, clones: dep.others },
      );
    }
    await this.destroy(layer.dataset, this.zfs);
    return { layer, droppedRefs: layer.refs };
  }

  /**
   * Removes what nothing uses: leftovers of killed imports and commits (temporary layers, commit
   * snapshots nothing was cloned from), then, again and again, every layer that no image
   * reference names (on it or on a layer above it), that no runtime or other clone was made from,
   * and that no layer is built on. The base `empty` stays. `dryRun`: only say what would go.
   */
  async prune(options: { dryRun?: boolean } = {}): Promise<{ layers: LayerInfo[]; leftovers: string[] }> {
    if (!this.present.has(this.storage)) return { layers: [], leftovers: [] };
    const leftovers = options.dryRun ? [] : await this.removeStale();
    const removed: LayerInfo[] = [];
    const gone = new Set<string>();
    for (;;) {
      const layers = (await this.list()).filter((l) => !gone.has(l.dataset));
      const pool = this.root.split('/')[0]!;
      const all = parseGet((await this.zfs.zfs(zfsGetArgs(['origin'], pool, true))).stdout);
      const used = new Set([...all].filter(([n, p]) => !n.includes('@') && !gone.has(n) && p.origin).map(([, p]) => p.origin!.split('@')[0]!));
      const victims = layers.filter((l) => l.dataset !== this.empty && !l.refs.length && !l.runtimes.length && !used.has(l.dataset));
      if (!victims.length) break;
      for (const v of victims) {
        if (!options.dryRun) await this.destroy(v.dataset, this.zfs);
        gone.add(v.dataset);
        removed.push(v);
      }
    }
    return { layers: removed, leftovers };
  }

  /** The layer as an OCI layer tar: its changes against its parent, whiteouts for deletions. */
  async exportLayer(ref: string, out: string | Writable): Promise<PackageResult & { layer: LayerInfo }> {
    const layer = await this.resolveLayer(ref);
    const p = (await this.props(layer.dataset))[0]!;
    const parentDataset = p.origin?.split('@')[0] ?? this.empty;
    const lower = await this.mountpoint(parentDataset);
    const upper = await this.mountpoint(layer.dataset);
    const r = await packageLayer(lower, upper, out, { signal: this.options.signal });
    return { ...r, layer };
  }

  /**
   * runtime/<id>: a writable clone of the layer's @extracted snapshot. `quotaBytes`: the most the
   * container may write (ZFS `quota` on the clone: its own changes and snapshots; the layer's
   * blocks it shares are not counted), set right after the clone (zfs-fuse's clone takes no -o);
   * if setting it fails, the clone is destroyed again.
   */
  async createRuntime(layerRef: string, id: string, options: { quotaBytes?: number } = {}): Promise<RuntimeInfo & { quotaBytes?: number }> {
    checkRuntimeId(id);
    if (options.quotaBytes !== undefined && (!Number.isSafeInteger(options.quotaBytes) || options.quotaBytes <= 0)) {
      throw new UsageError(`--quota ${options.quotaBytes} must be a positive size`, { quotaBytes: options.quotaBytes });
    }
    const layer = await this.resolveLayer(layerRef);
    const dataset = `${this.runtime}/${id}`;
    if (await this.propsOrUndefined(dataset)) throw new UsageError(`runtime ${id} exists already (${dataset}): remove it first (mkimage runtime rm)`, { id });
    return withUndo(this.options.signal, async (undo) => {
      undo.push(`runtime ${dataset}`, () => this.destroy(dataset));
      await this.zfs.zfs(zfsCloneArgs(`${layer.dataset}@${EXTRACTED}`, dataset));
      if (options.quotaBytes !== undefined) await this.zfs.zfs(zfsSetArgs(dataset, 'quota', String(options.quotaBytes)));
      const p = (await this.props(dataset))[0]!;
      undo.commit();
      return { id, dataset, layer: layer.digest, mountpoint: p.mounted ? p.mountpoint : undefined, usedBytes: p.used, quotaBytes: options.quotaBytes };
    });
  }

  private async runtimeProps(id: string): Promise<DatasetProps> {
    checkRuntimeId(id);
    const dataset = `${this.runtime}/${id}`;
    const p = await this.propsOrUndefined(dataset);
    if (!p) throw new UsageError(`no runtime ${id} in this image (${dataset} does not exist)`, { id });
    return p;
  }

  /** Destroys runtime/<id>, and the commit snapshot it was cloned from when nothing else uses it. */
  async removeRuntime(id: string): Promise<{ dataset: string; removedSnapshot?: string }> {
    const p = await this.runtimeProps(id);
    await this.destroy(p.name, this.zfs);
    let removedSnapshot: string | undefined;
    const origin = p.origin;
    if (origin && origin.split('@')[1]?.startsWith(COMMIT_SNAPSHOT_PREFIX)) {
      try {
        await retryBusy(() => this.zfs.zfs(zfsDestroyArgs(origin, false)));
        removedSnapshot = origin;
      } catch {
        /* still the origin of another clone: it stays */
      }
    }
    return { dataset: p.name, removedSnapshot };
  }

  /**
   * runtime/<id>'s changes as a new layer (calldown "commit"): snapshot the runtime, clone the
   * snapshot into a temporary storage dataset, package it against the parent layer to learn its
   * digest, promote it (the runtime becomes its clone), snapshot @extracted, rename to
   * storage/<digest>. With `remove`, the runtime is destroyed afterwards.
   */
  async commitRuntime(id: string, options: { remove?: boolean } = {}): Promise<CommitResult> {
    const signal = this.options.signal;
    await this.removeStale();
    const rt = await this.runtimeProps(id);
    const parent = rt.origin?.split('@')[0];
    if (!parent || !parent.startsWith(`${this.storage}/`)) {
      throw new PoolError(`runtime ${id} is not a clone of a layer (its origin is ${rt.origin ?? 'none'}): it cannot be committed`, { id, origin: rt.origin });
    }
    const parentInfo = (await this.list()).find((l) => l.dataset === parent);
    const parentChain = await this.chainOf(parent);
    return withUndo(signal, async (undo) => {
      const snap = `${rt.name}@${COMMIT_SNAPSHOT_PREFIX}${randomBytes(4).toString('hex')}`;
      // Recorded before zfs runs: one killed (Ctrl-C) after making the snapshot leaves it otherwise.
      undo.push(`snapshot ${snap}`, async () => {
        await retryBusy(() => this.cleanup.zfs(zfsDestroyArgs(snap, false))).catch((e: unknown) => {
          if (!isMissing(e)) throw e;
        });
      });
      await this.zfs.zfs(zfsSnapshotArgs(snap));
      const tmp = this.tempName();
      await this.zfs.zfs(zfsCloneArgs(snap, tmp));
      undo.push(`half-made layer ${tmp}`, () => this.destroy(tmp));
      const pkg = await packageLayer(await this.mountpoint(parent), await this.mountpoint(tmp), nullSink(), { signal });
      checkAborted(signal, 'runtime commit');
      const chain = chainId(parentChain, pkg.digest);
      const existing = await this.findLayer(parent, pkg.digest, parentChain);
      if (existing) {
        // The same changes on the same parent were committed before: nothing new.
        await undo.unwind();
        let runtimeRemoved = false;
        if (options.remove) {
          await this.removeRuntime(id);
          runtimeRemoved = true;
        }
        return { id, digest: pkg.digest, dataset: existing, parent: parentInfo?.digest ?? parent, created: false, entries: pkg.entries, whiteouts: pkg.whiteouts, tarBytes: pkg.bytes, runtimeRemoved };
      }
      const final = await this.newLayerName(pkg.digest, parentChain);
      await retryBusy(() => this.zfs.zfs(zfsPromoteArgs(tmp)));
      // Undone: the runtime takes its snapshots back, then the clone and the snapshot go.
      undo.push(`promotion of ${tmp}`, async () => {
        await retryBusy(() => this.cleanup.zfs(zfsPromoteArgs(rt.name)));
      });
      await this.seal(tmp, pkg.digest, chain);
      await this.renameInto(tmp, final, [rt.name]);
      undo.commit();
      let runtimeRemoved = false;
      if (options.remove) {
        await this.removeRuntime(id);
        runtimeRemoved = true;
      }
      return { id, digest: pkg.digest, dataset: final, parent: parentInfo?.digest ?? parent, created: true, entries: pkg.entries, whiteouts: pkg.whiteouts, tarBytes: pkg.bytes, runtimeRemoved };
    });
  }
}
