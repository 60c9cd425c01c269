/** What a process killed mid-build left in the store, removed before new work. */
import { parseGet, retryBusy, zfsDestroyArgs, zfsGetArgs, zfsPromoteArgs } from '../../tools/zfs.js';
import type { StoreDatasets } from './datasets.js';
import { COMMIT_SNAPSHOT_PREFIX, TMP_PREFIX } from './names.js';

/**
 * What a process killed mid-build left (no undo ran: SIGKILL, a power cut), destroyed before
 * new work: half-made layer datasets, and commit snapshots nothing was cloned from (a commit
 * snapshot in use is always the origin of a runtime or a layer). Returns what it removed.
 */
export async function removeStale(store: StoreDatasets): Promise<string[]> {
  const { zfs, paths } = store;
  const stale = (await zfs.listDatasets(paths.storage, 'filesystem')).map((d) => d.name).filter((n) => n.startsWith(`${paths.storage}/${TMP_PREFIX}`));
  if (stale.length) {
    // A commit killed after promoting its temporary layer: the runtime became a clone of it.
    // The runtime is promoted back first (it takes its snapshots back), then the layer can go.
    const runtimes = parseGet((await zfs.zfs(zfsGetArgs(['origin'], paths.runtime, true))).stdout);
    for (const [name, p] of runtimes) {
      if (!name.includes('@') && p.origin && stale.some((t) => p.origin!.startsWith(`${t}@`))) await retryBusy(() => zfs.zfs(zfsPromoteArgs(name)));
    }
  }
  for (const d of stale) await store.destroy(d, zfs);
  // `zfs get -r` lists snapshots too: their names, and every dataset's origin.
  const all = parseGet((await zfs.zfs(zfsGetArgs(['origin'], [paths.storage, paths.runtime], true))).stdout);
  const origins = new Set([...all.values()].map((p) => p.origin).filter((o): o is string => o !== undefined));
  const snaps = [...all.keys()].filter((n) => n.split('@')[1]?.startsWith(COMMIT_SNAPSHOT_PREFIX) && !origins.has(n));
  for (const snap of snaps) {
    try {
      // Without -r or -R: a clone elsewhere in the pool makes it fail, and the snapshot stays.
      await retryBusy(() => zfs.zfs(zfsDestroyArgs(snap, false)));
      stale.push(snap);
    } catch {
      /* still in use */
    }
  }
  return stale;
}
