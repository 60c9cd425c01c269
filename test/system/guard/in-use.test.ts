/**
 * One image, many hands, through the CLI with real processes: a QEMU process mapping the image as
 * its NVDIMM's memory (memory-backend-file share=on, as a guest's QEMU does; `-machine none -S`
 * runs no guest) makes attach, destroy, create --force and layers list refuse with EBUSY naming it,
 * and leaves the file unchanged; another command holding the image's lock makes a command wait or
 * fail at once (--wait 0); a pool label not cleanly exported is refused and reported by inspect;
 * --force replaces only a regular file that is not attached; an image deleted or moved while
 * attached shows in status and is freed with detach/destroy --pool.
 */
import { execa, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkimage, poolsNamed } from '../helpers/faults.js';
import { REPO, cleanDir, loopsUnder, tempDir } from '../helpers/machine.js';
import { ensureZfsDaemon } from '../helpers/zfs-daemon.js';

let dir: string;
let pools: string[] = [];
const children: ResultPromise[] = [];

const daemon = await ensureZfsDaemon();
afterAll(async () => {
  await daemon.stop();
});

beforeEach(async () => {
  dir = await tempDir('mkimage-inuse-');
  pools = [];
});

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await Promise.allSettled(children);
  const leftPools = await poolsNamed(pools);
  for (const p of leftPools) await execa('zpool', ['export', '-f', p], { reject: false });
  const left = await cleanDir(dir);
  expect({ ...left, pools: leftPools }).toEqual({ loops: [], mounts: [], pools: [] });
});

const pool = () => {
  const p = `mkiu${process.pid % 10000}${Math.random().toString(36).slice(2, 6)}`;
  pools.push(p);
  return p;
};

async function zfsImage(img: string, p: string): Promise<void> {
  const r = await mkimage(['--fs', 'zfs', '--pool', p, '--sparse', '--size', '128M', img]);
  expect(r.exitCode, r.stderr).toBe(0);
}

/** sha256, size and mtime: the file is unchanged when all three are. */
async function fingerprint(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  const st = await stat(path);
  return `${h.digest('hex')} ${st.size} ${st.mtimeMs}`;
}

/** QEMU mapping `img` as a guest's NVDIMM backend does; resolves once the mapping is there. */
async function qemuMapping(img: string): Promise<number> {
  const size = (await stat(img)).size;
  const child = execa(
    'qemu-system-x86_64',
    ['-machine', 'none', '-nodefaults', '-display', 'none', '-S', '-monitor', 'none', '-serial', 'none', '-object', `memory-backend-file,id=mem1,share=on,mem-path=${img},size=${size}`],
    { reject: false },
  );
  children.push(child);
  const { ino } = await stat(img);
  for (let i = 0; i < 200; i++) {
    const maps = await readFile(`/proc/${child.pid}/maps`, 'utf8').catch(() => '');
    if (maps.split('\n').some((l) => l.split(/\s+/)[4] === String(ino))) return child.pid!;
    if (child.exitCode !== undefined && child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`qemu did not map ${img}`);
}

/** A process holding the image's lock (as another mkimage command would) until killed. */
async function lockHolder(img: string): Promise<number> {
  const script = `
    const { lockImage } = await import(${JSON.stringify(join(REPO, 'dist/guard/lock.js'))});
    await lockImage(process.argv[1], { command: 'mkimage attach (test holder)' });
    console.log('locked');
    setInterval(() => undefined, 1000);
  `;
  const child = execa('node', ['--input-type=module', '-e', script, img], { reject: false, buffer: false });
  children.push(child);
  await new Promise<void>((ok, fail) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && ok());
    child.on('exit', () => fail(new Error('holder exited before locking')));
  });
  return child.pid!;
}

function errorOf(stdout: string): { code: string; message: string } {
  return (JSON.parse(stdout) as { error: { code: string; message: string } }).error;
}

describe('in use by another process', () => {
  it('attach, destroy, create --force and layers list refuse an image QEMU maps, naming it; the file is unchanged', async () => {
    const img = join(dir, 'guest.img');
    const p = pool();
    await zfsImage(img, p);
    const before = await fingerprint(img);
    const qemu = await qemuMapping(img);
    for (const args of [
      ['attach', '--json', img],
      ['destroy', '--yes', '--json', img],
      ['--force', '--fs', 'zfs', '--pool', p, '--sparse', '--size', '128M', '--json', img],
      ['layers', 'list', '--json', img],
    ]) {
      const r = await mkimage(args);
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      const e = errorOf(r.stdout);
      expect(e.code).toBe('EBUSY');
      expect(e.message).toContain(`PID ${qemu} (qemu-system-x86_64 -machine none`);
      expect(e.message).toMatch(/mapped/);
    }
    expect(await fingerprint(img)).toBe(before);
    expect(await loopsUnder(dir)).toEqual([]);
    expect(await poolsNamed([p])).toEqual([]);
    // attach --force overrides it for attach only (the user says nothing else uses the pool).
    const forced = await mkimage(['attach', '--force', img]);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect((await mkimage(['detach', img])).exitCode).toBe(0);
    const d = await mkimage(['destroy', '--yes', '--force', img]);
    expect(d.exitCode).toBe(2); // destroy has no --force
    children.pop()!.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    expect((await mkimage(['destroy', '--yes', img])).exitCode).toBe(0);
  });
});

describe('the per-image lock through the CLI', () => {
  it('--wait 0 fails at once with EBUSY naming the holder; a waiting command says whom it waits for, then acts', async () => {
    const img = join(dir, 'locked.img');
    const p = pool();
    await zfsImage(img, p);
    const holder = await lockHolder(img);
    const now = await mkimage(['attach', '--wait', '0', '--json', img]);
    expect(now.exitCode).toBe(1);
    expect(errorOf(now.stdout).code).toBe('EBUSY');
    expect(errorOf(now.stdout).message).toContain(`PID ${holder} (mkimage attach (test holder))`);
    // Another image is not held: no wait.
    const other = join(dir, 'other.img');
    await zfsImage(other, pool());
    expect((await mkimage(['attach', '--wait', '0', other])).exitCode).toBe(0);
    expect((await mkimage(['detach', '--wait', '0', other])).exitCode).toBe(0);
    // A waiter: one line on stderr naming the holder; it attaches once the holder is gone.
    const waiter = mkimage(['attach', '--wait', '30', img]);
    await new Promise((r) => setTimeout(r, 1500));
    children.find((c) => c.pid === holder)!.kill('SIGKILL');
    const w = await waiter;
    expect(w.exitCode, w.stderr).toBe(0);
    expect(w.stderr).toMatch(new RegExp(`^mkimage: waiting up to \\d+ s for PID ${holder} \\(mkimage attach \\(test holder\\)\\)`));
    expect(w.stdout).toContain('ONLINE');
    const bad = await mkimage(['detach', '--wait', 'soon', img]);
    expect(bad.exitCode).toBe(2);
    expect((await mkimage(['destroy', '--yes', img])).exitCode).toBe(0);
    expect((await mkimage(['destroy', '--yes', other])).exitCode).toBe(0);
  });
});

describe('pool state', () => {
  it('a copy of an attached image (label active) is refused by attach unless --force, and inspect says why', async () => {
    const img = join(dir, 'orig.img');
    const copy = join(dir, 'copy.img');
    const p = pool();
    await zfsImage(img, p);
    expect((await mkimage(['attach', img])).exitCode).toBe(0);
    expect((await mkimage(['inspect', img])).exitCode).toBe(0); // active, but attached here
    await execa('cp', ['--sparse=always', img, copy]);
    expect((await mkimage(['detach', img])).exitCode).toBe(0);
    const i = await mkimage(['inspect', copy]);
    expect(i.exitCode).toBe(1);
    expect(i.stdout).toMatch(/problem: zfs\.state: pool \S+ is active, not exported, and not attached here \(last imported by host/);
    const a = await mkimage(['attach', copy]);
    expect(a.exitCode).toBe(1);
    expect(a.stderr).toMatch(/was not cleanly exported: its label says active, last imported by host \S+, hostid [0-9a-f]{8}: .*attach with --force/);
    const f = await mkimage(['attach', '--force', copy]);
    expect(f.exitCode, f.stderr).toBe(0);
    expect((await mkimage(['destroy', '--yes', copy])).exitCode).toBe(0);
    expect((await mkimage(['destroy', '--yes', img])).exitCode).toBe(0);
  });
});

describe('--force replaces only a regular file that is not attached', () => {
  it('a device node or FIFO is refused with or without --force (exit 2, no --force hint); an attached image is refused', async () => {
    await execa('mkfifo', [join(dir, 'fifo')]);
    for (const target of ['/dev/null', join(dir, 'fifo')]) {
      for (const force of [[], ['--force']]) {
        const r = await mkimage([...force, '--size', '64M', target]);
        expect(r.exitCode).toBe(2);
        expect(r.stderr).toMatch(/is a (character device|FIFO \(named pipe\)), not a regular file: mkimage replaces only regular files/);
        expect(r.stderr).not.toContain('--force');
      }
    }
    expect((await stat('/dev/null')).isCharacterDevice()).toBe(true);
    const img = join(dir, 'attached.img');
    const p = pool();
    await zfsImage(img, p);
    expect((await mkimage(['attach', img])).exitCode).toBe(0);
    const before = await fingerprint(img);
    const r = await mkimage(['--force', '--size', '64M', '--json', img]);
    expect(r.exitCode).toBe(1);
    expect(errorOf(r.stdout)).toMatchObject({ code: 'EBUSY' });
    expect(errorOf(r.stdout).message).toMatch(/it is attached \(\/dev\/loop\d+\); detach it first/);
    expect(await fingerprint(img)).toBe(before);
    expect((await mkimage(['destroy', '--yes', img])).exitCode).toBe(0);
  });
});

describe('moved or deleted while attached', () => {
  it('status shows it, detach --pool frees a deleted one, destroy --pool a renamed one (its file removed)', async () => {
    const img = join(dir, 'gone.img');
    const p = pool();
    await zfsImage(img, p);
    expect((await mkimage(['attach', img])).exitCode).toBe(0);
    // Moved to another filesystem: a copy there, the original deleted.
    const elsewhere = await mkdtemp('/dev/shm/mkimage-inuse-');
    try {
      await copyFile(img, join(elsewhere, 'gone.img'));
      await rm(img);
      const s = JSON.parse((await mkimage(['status', '--json'])).stdout) as { images: { file: string; deleted?: boolean; pool?: string }[] };
      expect(s.images.find((i) => i.pool === p)).toMatchObject({ file: `${img} (deleted)`, deleted: true });
      expect((await mkimage(['status'])).stdout).toContain(`free it with mkimage detach --pool ${p}`);
      expect((await mkimage(['detach', join(elsewhere, 'gone.img')])).stdout).toContain('not attached');
      const d = await mkimage(['detach', '--pool', p]);
      expect(d.exitCode, d.stderr).toBe(0);
      expect(await poolsNamed([p])).toEqual([]);
      expect(await loopsUnder(dir)).toEqual([]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
    // Renamed on the same filesystem: status shows the new name; destroy --pool removes that file.
    const img2 = join(dir, 'moved.img');
    const p2 = pool();
    await zfsImage(img2, p2);
    expect((await mkimage(['attach', img2])).exitCode).toBe(0);
    await rename(img2, join(dir, 'moved-again.img'));
    const s2 = JSON.parse((await mkimage(['status', '--json'])).stdout) as { images: { file: string; pool?: string }[] };
    expect(s2.images.find((i) => i.pool === p2)?.file).toBe(join(dir, 'moved-again.img'));
    expect((await mkimage(['destroy', '--pool', p2])).exitCode).toBe(2); // --yes needed
    const x = await mkimage(['destroy', '--pool', p2, '--yes']);
    expect(x.exitCode, x.stderr).toBe(0);
    expect(existsSync(join(dir, 'moved-again.img'))).toBe(false);
    expect(await poolsNamed([p2])).toEqual([]);
    expect((await mkimage(['detach', '--pool', 'mkiu_nosuchpool'])).exitCode).toBe(1);
    expect((await mkimage(['detach'])).exitCode).toBe(2);
  });
});
