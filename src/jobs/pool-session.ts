/**
 * A job on an image's pool: hold the image's lock, attach the image when it is not attached
 * (loop device, zpool import under a private altroot), run, and leave the image as found
 * (detached again, or still attached when it was). The snapshot, send, receive and layer
 * housekeeping commands run through it.
 */
import { promises as fs } from 'node:fs';
import { MkimageError } from '../errors.js';
import { withImageLock, type LockOptions } from '../guard/lock.js';
import { Undo } from '../undo.js';
import { run as defaultRun, type Runner } from '../tools/exec.js';
import { Zfs, detectFlavour, type ZfsFlavour } from '../tools/zfs.js';
import { attachImage, detachImage, type AttachedImage } from './attach.js';

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
  return withImageLock(image, { waitSeconds: o.waitSeconds, onWait: o.onWait, command: o.command, signal: o.signal }, async () => {
    const run = o.run ?? defaultRun;
    const flavour = o.flavour ?? (await detectFlavour(run, { signal: o.signal }));
    const attached = await attachImage(image, { signal: o.signal, run, flavour, mount: o.mount, mountIfDetached: true, runtimeDir: o.runtimeDir });
    const session: PoolSession = { zfs: new Zfs(flavour, run, o.signal), pool: attached.pool, attached, attachedByJob: !attached.alreadyAttached };
    // Journaled as the layer jobs do: a job killed while it has the image attached for itself
    // leaves it to be detached by the next command (jobs/recover.ts), not attached for good.
    const st = await fs.stat(attached.file);
    const undo = new Undo({ journal: { image: { path: attached.file, dev: st.dev, ino: st.ino }, pools: [attached.pool] } });
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
      if (detached) undo.release();
      throw error;
    }
    if (detachStep !== undefined) await undo.settle(detachStep);
    undo.release();
    return result;
  });
}
