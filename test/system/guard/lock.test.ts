/**
 * The per-image lock with real processes and real flock(1): a second holder waits or gets EBUSY
 * naming the first, a SIGKILLed holder leaves nothing that blocks, the key follows the file's
 * identity (rename, hard link) and not its name. Runs as any user (no root needed).
 */
import { execa, type ResultPromise } from 'execa';
import { link, mkdir, mkdtemp, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusyError } from '../../../src/errors.js';
import { lockImage, readLockHolder, withImageLock } from '../../../src/guard/lock.js';
import { REPO } from '../helpers/machine.js';

let dir: string;
let locks: string;
const children: ResultPromise[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-lock-'));
  locks = join(dir, 'locks');
  process.env.MKIMAGE_LOCK_DIR = locks;
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.allSettled(children);
  delete process.env.MKIMAGE_LOCK_DIR;
  await rm(dir, { recursive: true, force: true });
});

/** Another process that takes the lock on `image`, says "locked", and holds it for `holdMs`. */
async function holder(image: string, holdMs: number): Promise<{ child: ResultPromise }> {
  const script = `
    const { lockImage } = await import(${JSON.stringify(join(REPO, 'dist/guard/lock.js'))});
    const lock = await lockImage(process.argv[1], { command: 'test holder' });
    console.log('locked');
    setTimeout(async () => { await lock.release(); process.exit(0); }, ${holdMs});
  `;
  const child = execa('node', ['--input-type=module', '-e', script, image], { env: { MKIMAGE_LOCK_DIR: locks }, reject: false, buffer: false });
  children.push(child);
  await new Promise<void>((ok, fail) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && ok());
    child.on('exit', () => fail(new Error('holder exited before locking')));
  });
  return { child }; // wrapped: an execa child is a thenable, and returning it would wait for it
}

describe('per-image lock', () => {
  it('a second command fails at once with EBUSY naming the holder, or waits until it is done', async () => {
    const image = join(dir, 'a.img');
    await writeFile(image, 'x');
    const { child } = await holder(image, 1500);
    const e = await lockImage(image, { waitSeconds: 0 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BusyError);
    expect((e as BusyError).code).toBe('EBUSY');
    expect((e as BusyError).message).toContain(`PID ${child.pid}`);
    expect((e as BusyError).message).toContain('test holder');
    expect((await readLockHolder(image))?.pid).toBe(child.pid);
    let waitedFor: number | undefined;
    const lock = await lockImage(image, { waitSeconds: 30, onWait: (h) => (waitedFor = h?.pid) });
    expect(waitedFor).toBe(child.pid);
    expect((await child).exitCode).toBe(0);
    await lock.release();
    expect(await readdir(locks)).toEqual([]); // released locks leave no file
  });

  it('a SIGKILLed holder leaves nothing that blocks the next command', async () => {
    const image = join(dir, 'b.img');
    await writeFile(image, 'x');
    const { child } = await holder(image, 60_000);
    child.kill('SIGKILL');
    await child;
    const lock = await lockImage(image, { waitSeconds: 0 });
    await lock.release();
  });

  it('is keyed by the file, not its name: a renamed or hard-linked image is the same image', async () => {
    const image = join(dir, 'c.img');
    await writeFile(image, 'x');
    const { child } = await holder(image, 60_000);
    await rename(image, join(dir, 'c2.img'));
    await link(join(dir, 'c2.img'), join(dir, 'c3.img'));
    for (const name of ['c2.img', 'c3.img']) {
      await expect(lockImage(join(dir, name), { waitSeconds: 0 })).rejects.toBeInstanceOf(BusyError);
    }
    // Another file at the old name is another image.
    await writeFile(image, 'y');
    await withImageLock(image, { waitSeconds: 0 }, async () => undefined);
    child.kill('SIGKILL');
    await child;
  });

  it('a path not created yet is keyed by its directory\'s real path: two spellings of it are one lock', async () => {
    const real = join(dir, 'real');
    await mkdir(real);
    await symlink(real, join(dir, 'via'));
    const { child } = await holder(join(dir, 'via', 'new.img'), 60_000);
    await expect(lockImage(join(real, 'new.img'), { waitSeconds: 0 })).rejects.toBeInstanceOf(BusyError);
    await expect(lockImage(join(dir, 'via', '..', 'real', 'new.img'), { waitSeconds: 0 })).rejects.toBeInstanceOf(BusyError);
    await withImageLock(join(real, 'other.img'), { waitSeconds: 0 }, async () => undefined);
    child.kill('SIGKILL');
    await child;
  });

  it('nests within one process (create --mount calling attach) and fails at once for another image never', async () => {
    const a = join(dir, 'd.img');
    const b = join(dir, 'e.img');
    await writeFile(a, 'x');
    await writeFile(b, 'x');
    await withImageLock(a, { waitSeconds: 0 }, async () => {
      await withImageLock(a, { waitSeconds: 0 }, async () => undefined);
      await withImageLock(b, { waitSeconds: 0 }, async () => undefined);
    });
  });
});
