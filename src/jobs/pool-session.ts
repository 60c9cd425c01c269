/**
 * A job on an image's pool: hold the image's lock, attach the image when it is not attached
 * (loop device, zpool import under a private altroot), run, and leave the image as found
 * (detached again, or still attached when it was). Every job on a pool runs through it: the
 * layer and runtime commands (jobs/layers.ts), snapshot, snapshots, send and receive.
 *
 * Journaled: a job killed while it has the image attached for itself leaves it to be detached by
 * the next command (jobs/recover.ts), not attached for good. The image's identity is taken before
 * attaching, so that nothing can stand between the attachment and its journal record.
 */
import { lstatSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { MkimageError } from '../errors.js';
import { removeEmptyTree } from '../file/empty-dirs.js';
import { withImageLock, type LockOptions } from '../guard/lock.js';
import { Undo } from '../undo.js';
import { run as defaultRun, type Runner } from '../tools/exec.js';
import { Zfs, detectFlavour, type ZfsFlavour } from '../tools/zfs.js';
import { attachImage, detachImage, readImageZfs, type AttachedImage } from './attach.js';

export interface PoolJobOptions {
  signal?: AbortSignal;
  /** Tests: stands between mkimage and zpool/zfs/losetup. */
  run?: Runner;
  flavour?: ZfsFlavour;
  /** The altroot to import with when the image is not attached (attach --mount). */
  mount?: string;
  /** Tests: instead of /run/mkimage. */
  runtimeDir?: string;
  /** Seconds to wait for another mkimage command on the image (default 60). */
  waitSeconds?: number;
  /** Called once when another command holds the image and this one starts to wait. */
  onWait?: LockOptions['onWait'];
  /** What this command is, for a waiter's message. */
  command?: string;
}

export interface PoolSession {
  zfs: Zfs;
  pool: string;
  attached: AttachedImage;
  /** mkimage attached the image for this job (and detaches it after). */
  attachedByJob: boolean;
}

export async function withPool<T>(image: string, o: PoolJobOptions, body: (s: PoolSession) => Promise<T>): Promise<T> {
  await readImageZfs(image); // a missing or foreign file is refused before waiting for a lock
  return withImageLock(image, { waitSeconds: o.waitSeconds, onWait: o.onWait, command: o.command, signal: o.signal }, () => poolJob(image, o, body));
}

async function poolJob<T>(image: string, o: PoolJobOptions, body: (s: PoolSession) => Promise<T>): Promise<T> {
  const run = o.run ?? defaultRun;
  const flavour = o.flavour ?? (await detectFlavour(run, { signal: o.signal }));
  // The image is locked: the file its path names now is the one attached below.
  const st = statSync(image);
  // The first directory of --mount that is not there yet: attaching makes it, and when this job
  // detaches again it is removed again if empty (as the default altroot is), not left behind.
  const madeMount = o.mount === undefined ? undefined : firstMissing(resolve(o.mount));
  const removeMadeMount = async () => {
    if (madeMount) await removeEmptyTree(madeMount).catch(() => undefined);
  };
  let attached: AttachedImage;
  try {
    attached = await attachImage(image, { signal: o.signal, run, flavour, mount: o.mount, mountIfDetached: true, runtimeDir: o.runtimeDir });
  } catch (e) {
    await removeMadeMount();
    throw e;
  }
  const undo = new Undo({ journal: { image: { path: attached.file, dev: st.dev, ino: st.ino }, pools: [attached.pool] } });
  const session: PoolSession = { zfs: new Zfs(flavour, run, o.signal), pool: attached.pool, attached, attachedByJob: !attached.alreadyAttached };
  const detachStep = session.attachedByJob
    ? undo.push(`attachment of ${attached.file}`, async () => void (await detachImage(image, { run, flavour, runtimeDir: o.runtimeDir })), {
        kind: 'attached',
        file: attached.file,
        dev: st.dev,
        ino: st.ino,
        pool: attached.pool,
        guid: attached.guid,
      })
    : undefined;
  let result: T;
  try {
    result = await body(session);
  } catch (error) {
    let detached = true;
    if (detachStep !== undefined) {
      try {
        await undo.settle(detachStep);
      } catch (detachError) {
        detached = false; // the journal keeps the step: the next command detaches it
        if (error instanceof MkimageError) {
          error.data.detachError = (detachError as Error).message;
          error.message += `; detaching ${image} failed too: ${(detachError as Error).message}`;
        }
      }
    }
    if (detached) {
      undo.release();
      if (session.attachedByJob) await removeMadeMount();
    }
    throw error;
  }
  if (detachStep !== undefined) await undo.settle(detachStep);
  undo.release();
  if (session.attachedByJob) await removeMadeMount();
  return result;
}

/** The highest directory of `path` that does not exist (undefined when `path` exists). */
function firstMissing(path: string): string | undefined {
  let missing: string | undefined;
  for (let p = path; p !== dirname(p); p = dirname(p)) {
    if (lstatSync(p, { throwIfNoEntry: false })) return missing;
    missing = p;
  }
  return missing;
}
