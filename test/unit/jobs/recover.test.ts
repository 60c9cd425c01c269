/**
 * Recovery from journals (jobs/recover.ts) with files and directories in a private directory: a dead
 * job's journal (a PID with another start time) is replayed newest step first when the command's
 * scope relates to it (same image, path or pool) and left alone otherwise; a live job's journal is
 * never touched; a step that fails keeps the journal for the next try. Loop, pool and mount records
 * need the real tools: test/system/guard/crash.test.ts.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { processStartTime, type JournalData } from '../../../src/guard/journal.js';
import { listLeftovers, recoverDeadJobs } from '../../../src/jobs/recover.js';

let dir: string;
let jobs: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-recover-'));
  jobs = join(dir, 'jobs');
  process.env.MKIMAGE_JOURNAL_DIR = jobs;
});
afterAll(async () => {
  delete process.env.MKIMAGE_JOURNAL_DIR;
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await rm(jobs, { recursive: true, force: true });
  await mkdir(jobs, { recursive: true });
});

const me = () => processStartTime(process.pid)!;

async function journal(name: string, d: Partial<JournalData>): Promise<void> {
  const data: JournalData = { version: 1, pid: process.pid, startTime: `${me()}9`, command: 'mkimage test', since: 'T', steps: [], ...d };
  await mkdir(jobs, { recursive: true });
  await writeFile(join(jobs, name), JSON.stringify(data));
}

describe('recoverDeadJobs', () => {
  it("replays a dead job's steps newest first when the scope relates, and removes its journal", async () => {
    const temp = join(dir, '.a.img.mkimage-1-x.tmp');
    const build = join(dir, 'mkimage-zpool-x');
    await writeFile(temp, 'half an image');
    await mkdir(join(build, 'pool', 'empty'), { recursive: true });
    await journal('1-1-1.json', {
      target: join(dir, 'a.img'),
      pools: ['tank'],
      steps: [
        { id: 1, what: 'temporary file', record: { kind: 'file', path: temp } },
        { id: 2, what: 'build directory', record: { kind: 'dir', path: build } },
      ],
    });
    expect(listLeftovers().map((l) => l.steps.map((s) => s.what))).toEqual([['temporary file', 'build directory']]);
    // Another target, another image, another pool: not this command's business.
    expect(await recoverDeadJobs({ paths: [join(dir, 'b.img')], pools: ['other'], image: { dev: 1, ino: 2 } })).toEqual([]);
    expect(existsSync(temp)).toBe(true);
    // The same pool name is.
    const r = await recoverDeadJobs({ pools: ['tank'] });
    expect(r.map((j) => [j.target, j.failures])).toEqual([[join(dir, 'a.img'), []]]);
    expect(existsSync(temp)).toBe(false);
    expect(existsSync(build)).toBe(false);
    expect(await readdir(jobs).catch(() => [])).toEqual([]);
  });

  it("never touches a live job's journal", async () => {
    const kept = join(dir, 'kept');
    await writeFile(kept, 'x');
    await journal('2-2-1.json', { startTime: me(), target: join(dir, 'c.img'), steps: [{ id: 1, what: 'file', record: { kind: 'file', path: kept } }] });
    expect(listLeftovers()).toEqual([]);
    expect(await recoverDeadJobs('all')).toEqual([]);
    expect(existsSync(kept)).toBe(true);
    expect(await readdir(jobs)).toEqual(['2-2-1.json']);
  });

  it('keeps the steps that fail in the journal for the next try', async () => {
    const full = join(dir, 'full');
    await mkdir(full, { recursive: true });
    await writeFile(join(full, 'data'), 'not ours to remove');
    const temp = join(dir, 'temp2');
    await writeFile(temp, 'x');
    await journal('3-3-1.json', {
      target: join(dir, 'd.img'),
      steps: [
        { id: 1, what: 'temporary file', record: { kind: 'file', path: temp } },
        { id: 2, what: 'mount', record: { kind: 'mount', path: join(dir, 'not-mounted') } },
        { id: 3, what: 'loop devices', record: { kind: 'loop', file: temp } },
        { id: 4, what: 'directory', record: { kind: 'dir', path: full } },
      ],
    });
    const r = await recoverDeadJobs({ paths: [join(dir, 'd.img')] }, { run: async () => ({ command: [], exitCode: 0, stdout: '{"loopdevices": []}', stderr: '' }) });
    expect(r[0]!.failures).toEqual([]);
    // A directory that is not empty stays (never removed with data in it); the file went.
    expect(existsSync(join(full, 'data'))).toBe(true);
    expect(existsSync(temp)).toBe(false);
    const failing = join(dir, 'failing');
    await journal('4-4-1.json', { target: join(dir, 'e.img'), steps: [{ id: 1, what: 'loop devices', record: { kind: 'loop', file: failing } }] });
    const f = await recoverDeadJobs({ paths: [join(dir, 'e.img')] }, { run: async () => Promise.reject(new Error('losetup: no')) });
    expect(f[0]!.failures).toEqual([{ what: 'loop devices', error: 'losetup: no' }]);
    expect(await readdir(jobs)).toEqual(['4-4-1.json']);
    expect(listLeftovers().map((l) => l.steps.map((s) => s.what))).toEqual([['loop devices']]);
  });
});
