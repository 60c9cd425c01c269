/**
 * The layer and runtime commands as whole jobs on an image file: each attaches the image when it
 * is not attached (loop device, zpool import), does its work on the LayerStore, and leaves the
 * image as it found it (detached again, or still attached when it was).
 *
 *   importLayers   mkimage layers import IMAGE SOURCE...   (and create --import)
 *   listLayers     mkimage layers list IMAGE
 *   exportLayer    mkimage layers export IMAGE DIGEST -o FILE
 *   createRuntime  mkimage runtime create IMAGE --layer DIGEST --name ID
 *   commitRuntime  mkimage runtime commit IMAGE ID
 *   removeRuntime  mkimage runtime rm IMAGE ID
 *   removeLayer    mkimage layers rm IMAGE DIGEST
 *   pruneLayers    mkimage layers prune IMAGE
 */
import type { Writable } from 'node:stream';
import { withPool, type PoolJobOptions } from './pool-session.js';
import { checkDatasetPath } from '../tools/zfs.js';
import type { PackageResult } from '../layers/package.js';
import { readSources } from '../layers/source.js';
import { LayerStore, type CommitResult, type ImportEvent, type ImportedImage, type LayerInfo, type RuntimeInfo } from '../layers/store.js';

export interface LayerJobOptions extends PoolJobOptions {
  /** The dataset below the pool holding storage/ and runtime/ (default: the pool's root). */
  base?: string;
  /** Set owners and create devices while applying layers (default: running as root). */
  isRoot?: boolean;
}

export interface JobContext {
  /** The pool as imported, and whether mkimage attached it for this job. */
  pool: string;
  attachedByJob: boolean;
}

/**
 * Runs `body` on the image's layer store, in a pool session (jobs/pool-session.ts: the image's
 * lock, attached and detached around it if needed, journaled). `ensure`: make the calldown tree
 * where it is missing (commands that write); without it the store is only read and nothing is
 * written to the image.
 */
export async function withLayerStore<T>(
  image: string,
  o: LayerJobOptions,
  body: (store: LayerStore, ctx: JobContext) => Promise<T>,
  { ensure }: { ensure: boolean } = { ensure: false },
): Promise<T & JobContext> {
  return withPool(image, o, async (s) => {
    if (o.base !== undefined) checkDatasetPath(o.base, s.pool, '--base');
    const store = await LayerStore.open(s.zfs, o.base ? `${s.pool}/${o.base}` : s.pool, { signal: o.signal, isRoot: o.isRoot, ensure });
    const ctx: JobContext = { pool: s.pool, attachedByJob: s.attachedByJob };
    return Object.assign((await body(store, ctx)) as object, ctx) as T & JobContext;
  });
}

export interface ImportResult {
  images: ImportedImage[];
  /** Layers extracted by this run / found present already. */
  extracted: number;
  present: number;
  bytes: number;
  /** Extended attributes the pool could not hold (zfs-fuse), and the files that lost them. */
  xattrsDropped: number;
  xattrsDroppedFiles: { layer: string; path: string; names: string[] }[];
}

/**
 * Imports every image of `sources` (OCI layout directories, docker save archives, plain layer
 * tars in order). The sources are read and checked before the image is touched.
 */
export async function importLayers(image: string, sources: readonly string[], o: LayerJobOptions & { onEvent?: (e: ImportEvent) => void } = {}): Promise<ImportResult & JobContext> {
  const images = await readSources(sources);
  return withLayerStore(
    image,
    o,
    async (store) => {
      const out: ImportedImage[] = [];
      for (const img of images) out.push(await store.importImage(img, o.onEvent));
      const all = out.flatMap((i) => i.layers);
      return {
        images: out,
        extracted: all.filter((l) => l.status === 'extracted').length,
        present: all.filter((l) => l.status === 'present').length,
        bytes: all.reduce((n, l) => n + l.bytes, 0),
        xattrsDropped: all.reduce((n, l) => n + (l.stats?.xattrsDropped ?? 0), 0),
        xattrsDroppedFiles: all.flatMap((l) => (l.stats?.xattrsDroppedFiles ?? []).map((f) => ({ layer: l.digest, ...f }))),
      };
    },
    { ensure: true },
  );
}

export async function listLayers(image: string, o: LayerJobOptions = {}): Promise<{ layers: LayerInfo[]; runtimes: RuntimeInfo[] } & JobContext> {
  return withLayerStore(image, o, (store) => store.inventory());
}

export async function exportLayer(image: string, digest: string, out: string | Writable, o: LayerJobOptions = {}): Promise<PackageResult & { layer: LayerInfo } & JobContext> {
  return withLayerStore(image, o, (store) => store.exportLayer(digest, out));
}

export async function createRuntime(image: string, layer: string, id: string, o: LayerJobOptions & { quotaBytes?: number } = {}): Promise<RuntimeInfo & { quotaBytes?: number } & JobContext> {
  return withLayerStore(image, o, (store) => store.createRuntime(layer, id, { quotaBytes: o.quotaBytes }), { ensure: true });
}

export async function commitRuntime(image: string, id: string, o: LayerJobOptions & { remove?: boolean } = {}): Promise<CommitResult & JobContext> {
  return withLayerStore(image, o, (store) => store.commitRuntime(id, { remove: o.remove }), { ensure: true });
}

export async function removeRuntime(image: string, id: string, o: LayerJobOptions = {}): Promise<{ dataset: string; removedSnapshot?: string } & JobContext> {
  return withLayerStore(image, o, (store) => store.removeRuntime(id), { ensure: true });
}

export async function removeLayer(image: string, digest: string, o: LayerJobOptions = {}): Promise<{ layer: LayerInfo; droppedRefs: string[] } & JobContext> {
  return withLayerStore(image, { ...o, command: o.command ?? `mkimage layers rm ${image} ${digest}` }, (store) => store.removeLayer(digest));
}

export async function pruneLayers(image: string, o: LayerJobOptions & { dryRun?: boolean } = {}): Promise<{ layers: LayerInfo[]; leftovers: string[]; dryRun: boolean } & JobContext> {
  return withLayerStore(image, { ...o, command: o.command ?? `mkimage layers prune ${image}` }, async (store) => ({ ...(await store.prune({ dryRun: o.dryRun })), dryRun: o.dryRun ?? false }));
}
