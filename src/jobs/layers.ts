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
import { promises as fs } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { removeEmptyTree } from '../file/empty-dirs.js';
import { MkimageError } from '../errors.js';
import { withImageLock, type LockOptions } from '../guard/lock.js';
import { Undo } from '../undo.js';
import { attachImage, detachImage, lockOptions, readImageZfs, type AttachedImage } from './attach.js';
import { run as defaultRun, type Runner } from '../tools/exec.js';
import { Zfs, checkDatasetPath, detectFlavour, type ZfsFlavour } from '../tools/zfs.js';
import type { PackageResult } from '../layers/package.js';
import { readSources } from '../layers/source.js';
import { LayerStore, type CommitResult, type ImportEvent, type ImportedImage, type LayerInfo, type RuntimeInfo } from '../layers/store.js';

export interface LayerJobOptions {
  signal?: AbortSignal;
  /** Tests: stands between mkimage and zpool/zfs/losetup. */
  run?: Runner;
  flavour?: ZfsFlavour;
  /** Where the pool's datasets appear if mkimage attaches the image (attach --mount). */
  mount?: string;
  /** The dataset below the pool holding storage/ and runtime/ (default: the pool's root). */
  base?: string;
  /** Tests: instead of /run/mkimage. */
  runtimeDir?: string;
  /** Set owners and create devices while applying layers (default: running as root). */
  isRoot?: boolean;
  /** Seconds to wait for another command holding the image's lock (default 60; 0: fail at once). */
  waitSeconds?: number;
  onWait?: LockOptions['onWait'];
}

export interface JobContext {
  /** The pool as imported, and whether mkimage attached it for this job. */
  pool: string;
  attachedByJob: boolean;
}

/**
 * Runs `body` on the image's layer store, attaching and detaching the image around it if needed.
 * `ensure`: make the calldown tree where it is missing (commands that write); without it the
 * store is only read and nothing is written to the image.
 */
export async function withLayerStore<T>(
  image: string,
  o: LayerJobOptions,
  body: (store: LayerStore, ctx: JobContext) => Promise<T>,
  { ensure }: { ensure: boolean } = { ensure: false },
): Promise<T & JobContext> {
  await readImageZfs(image); // a missing or foreign file is refused before waiting for a lock
  // The image's lock for the whole job: attach, the work, detach (nested locks share it).
  return withImageLock(image, lockOptions(o), () => layerJob(image, o, body, ensure));
}

async function layerJob<T>(image: string, o: LayerJobOptions, body: (store: LayerStore, ctx: JobContext) => Promise<T>, ensure: boolean): Promise<T & JobContext> {
  const run = o.run ?? defaultRun;
  const flavour = o.flavour ?? (await detectFlavour(run, { signal: o.signal }));
  // The first directory of --mount that is not there yet: attaching makes it, and when this job
  // detaches again it is removed again if empty (as the default altroot is), not left behind.
  const madeMount = o.mount === undefined ? undefined : await firstMissing(resolve(o.mount));
  // --mount is the altroot for an image this job attaches; one attached already stays where it is.
  const attached: AttachedImage = await attachImage(image, { signal: o.signal, run, flavour, mount: o.mount, mountIfDetached: true, runtimeDir: o.runtimeDir });
  const ctx: JobContext = { pool: attached.pool, attachedByJob: !attached.alreadyAttached };
  // Journaled: a job killed while it has the image attached for itself leaves it to be detached
  // by the next command (jobs/recover.ts), not attached for good.
  const st = await fs.stat(attached.file);
  const id = { path: attached.file, dev: st.dev, ino: st.ino };
  const undo = new Undo({ journal: { image: id, pools: [attached.pool] } });
  const detach = () => detachImage(image, { run, flavour, runtimeDir: o.runtimeDir });
  const detachStep = ctx.attachedByJob
    ? undo.push(`attachment of ${attached.file}`, async () => void (await detach()), { kind: 'attached', file: attached.file, dev: st.dev, ino: st.ino, pool: attached.pool, guid: attached.guid })
    : undefined;
  let result: T;
  try {
    if (o.base !== undefined) checkDatasetPath(o.base, attached.pool, '--base');
    const zfs = new Zfs(flavour, run, o.signal);
    const store = await LayerStore.open(zfs, o.base ? `${attached.pool}/${o.base}` : attached.pool, { signal: o.signal, isRoot: o.isRoot, ensure });
    result = await body(store, ctx);
  } catch (error) {
    if (detachStep !== undefined) {
      try {
        await undo.settle(detachStep);
      } catch (detachError) {
        if (error instanceof MkimageError) {
          error.data.detachError = (detachError as Error).message;
          error.message += `; detaching ${image} failed too: ${(detachError as Error).message}`;
        }
      }
    }
    if (ctx.attachedByJob && madeMount) await removeEmptyTree(madeMount).catch(() => undefined);
    throw error;
  }
  if (detachStep !== undefined) await undo.settle(detachStep);
  undo.release();
  if (ctx.attachedByJob && madeMount) await removeEmptyTree(madeMount);
  return Object.assign(result as object, ctx) as T & JobContext;
}

/** The highest directory of `path` that does not exist (undefined when `path` exists). */
async function firstMissing(path: string): Promise<string | undefined> {
  let missing: string | undefined;
  for (let p = path; p !== dirname(p); p = dirname(p)) {
    if (await fs.lstat(p).then(() => true, () => false)) return missing;
    missing = p;
  }
  return missing;
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

/** withLayerStore under the image's lock, for the housekeeping commands. */
function lockedStore<T>(image: string, o: LayerJobOptions, command: string, body: (store: LayerStore) => Promise<T>): Promise<T & JobContext> {
  return withImageLock(image, { ...lockOptions(o), command }, () => withLayerStore(image, o, body));
}

export async function removeLayer(image: string, digest: string, o: LayerJobOptions = {}): Promise<{ layer: LayerInfo; droppedRefs: string[] } & JobContext> {
  return lockedStore(image, o, `mkimage layers rm ${image} ${digest}`, (store) => store.removeLayer(digest));
}

export async function pruneLayers(image: string, o: LayerJobOptions & { dryRun?: boolean } = {}): Promise<{ layers: LayerInfo[]; leftovers: string[]; dryRun: boolean } & JobContext> {
  return lockedStore(image, o, `mkimage layers prune ${image}`, async (store) => ({ ...(await store.prune({ dryRun: o.dryRun })), dryRun: o.dryRun ?? false }));
}
