/**
 * Runtimes (containers' roots): runtime/<id>, a writable clone of a layer; made, removed, and
 * committed as a new layer (calldown "commit").
 */
import { randomHex } from '../../file/random.js';
import { Writable } from 'node:stream';
import { PoolError, UsageError } from '../../errors.js';
import { retryBusy, zfsCloneArgs, zfsDestroyArgs, zfsPromoteArgs, zfsSetArgs, zfsSnapshotArgs } from '../../tools/zfs.js';
import { checkAborted, withUndo } from '../../undo.js';
import { packageLayer } from '../package.js';
import type { StoreDatasets } from './datasets.js';
import type { RuntimeInfo } from './inventory.js';
import { COMMIT_SNAPSHOT_PREFIX, EXTRACTED, chainId, checkRuntimeId } from './names.js';
import { isMissing, originDataset, type DatasetProps } from './props.js';
import { removeStale } from './stale.js';

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

/** Counts bytes and throws them away: packaging only for the digest. */
function nullSink(): Writable {
  return new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

/**
 * runtime/<id>: a writable clone of the layer's @extracted snapshot. `quotaBytes`: the most the
 * container may write (ZFS `quota` on the clone: its own changes and snapshots; the layer's
 * blocks it shares are not counted), set right after the clone (zfs-fuse's clone takes no -o);
 * if setting it fails, the clone is destroyed again.
 */
export async function createRuntime(store: StoreDatasets, layerRef: string, id: string, options: { quotaBytes?: number } = {}): Promise<RuntimeInfo & { quotaBytes?: number }> {
  checkRuntimeId(id);
  if (options.quotaBytes !== undefined && (!Number.isSafeInteger(options.quotaBytes) || options.quotaBytes <= 0)) {
    throw new UsageError(`--quota ${options.quotaBytes} must be a positive size`, { quotaBytes: options.quotaBytes });
  }
  const layer = await store.resolveLayer(layerRef);
  const dataset = `${store.paths.runtime}/${id}`;
  if (await store.propsOrUndefined(dataset)) throw new UsageError(`runtime ${id} exists already (${dataset}): remove it first (mkimage runtime rm)`, { id });
  return withUndo(store.options.signal, async (undo) => {
    undo.push(`runtime ${dataset}`, () => store.destroy(dataset));
    await store.zfs.zfs(zfsCloneArgs(`${layer.dataset}@${EXTRACTED}`, dataset));
    if (options.quotaBytes !== undefined) await store.zfs.zfs(zfsSetArgs(dataset, 'quota', String(options.quotaBytes)));
    const p = (await store.props(dataset))[0]!;
    undo.commit();
    return { id, dataset, layer: layer.digest, mountpoint: p.mounted ? p.mountpoint : undefined, usedBytes: p.used, quotaBytes: options.quotaBytes };
  });
}

async function runtimeProps(store: StoreDatasets, id: string): Promise<DatasetProps> {
  checkRuntimeId(id);
  const dataset = `${store.paths.runtime}/${id}`;
  const p = await store.propsOrUndefined(dataset);
  if (!p) throw new UsageError(`no runtime ${id} in this image (${dataset} does not exist)`, { id });
  return p;
}

/** Destroys runtime/<id>, and the commit snapshot it was cloned from when nothing else uses it. */
export async function removeRuntime(store: StoreDatasets, id: string): Promise<{ dataset: string; removedSnapshot?: string }> {
  const p = await runtimeProps(store, id);
  await store.destroy(p.name, store.zfs);
  let removedSnapshot: string | undefined;
  const origin = p.origin;
  if (origin && origin.split('@')[1]?.startsWith(COMMIT_SNAPSHOT_PREFIX)) {
    try {
      await retryBusy(() => store.zfs.zfs(zfsDestroyArgs(origin, false)));
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
export async function commitRuntime(store: StoreDatasets, id: string, options: { remove?: boolean } = {}): Promise<CommitResult> {
  const signal = store.options.signal;
  const { zfs, cleanup } = store;
  await removeStale(store);
  const rt = await runtimeProps(store, id);
  const parent = originDataset(rt.origin);
  if (!parent || !parent.startsWith(`${store.paths.storage}/`)) {
    throw new PoolError(`runtime ${id} is not a clone of a layer (its origin is ${rt.origin ?? 'none'}): it cannot be committed`, { id, origin: rt.origin });
  }
  const parentInfo = (await store.list()).find((l) => l.dataset === parent);
  const parentChain = await store.chainOf(parent);
  const removeIfAsked = async (): Promise<boolean> => {
    if (!options.remove) return false;
    await removeRuntime(store, id);
    return true;
  };
  return withUndo(signal, async (undo) => {
    const snap = `${rt.name}@${COMMIT_SNAPSHOT_PREFIX}${randomHex(4)}`;
    // Recorded before zfs runs: one killed (Ctrl-C) after making the snapshot leaves it otherwise.
    undo.push(`snapshot ${snap}`, async () => {
      await retryBusy(() => cleanup.zfs(zfsDestroyArgs(snap, false))).catch((e: unknown) => {
        if (!isMissing(e)) throw e;
      });
    });
    await zfs.zfs(zfsSnapshotArgs(snap));
    const tmp = store.tempName();
    await zfs.zfs(zfsCloneArgs(snap, tmp));
    undo.push(`half-made layer ${tmp}`, () => store.destroy(tmp));
    const pkg = await packageLayer(await store.mountpoint(parent), await store.mountpoint(tmp), nullSink(), { signal });
    checkAborted(signal, 'runtime commit');
    const chain = chainId(parentChain, pkg.digest);
    const existing = await store.findLayer(parent, pkg.digest, parentChain);
    if (existing) {
      // The same changes on the same parent were committed before: nothing new.
      await undo.unwind();
      const runtimeRemoved = await removeIfAsked();
      return { id, digest: pkg.digest, dataset: existing, parent: parentInfo?.digest ?? parent, created: false, entries: pkg.entries, whiteouts: pkg.whiteouts, tarBytes: pkg.bytes, runtimeRemoved };
    }
    const final = await store.newLayerName(pkg.digest, parentChain);
    await retryBusy(() => zfs.zfs(zfsPromoteArgs(tmp)));
    // Undone: the runtime takes its snapshots back, then the clone and the snapshot go.
    undo.push(`promotion of ${tmp}`, async () => {
      await retryBusy(() => cleanup.zfs(zfsPromoteArgs(rt.name)));
    });
    await store.seal(tmp, pkg.digest, chain);
    await store.renameInto(tmp, final, [rt.name]);
    undo.commit();
    const runtimeRemoved = await removeIfAsked();
    return { id, digest: pkg.digest, dataset: final, parent: parentInfo?.digest ?? parent, created: true, entries: pkg.entries, whiteouts: pkg.whiteouts, tarBytes: pkg.bytes, runtimeRemoved };
  });
}
