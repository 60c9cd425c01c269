/**
 * The job journal (guard/journal.ts) and Undo writing it: /proc/PID/stat's start time (field 22,
 * after a command that may hold spaces and parentheses), and what the journal file holds as steps
 * are pushed, settled, committed and unwound. Files in a private directory ($MKIMAGE_JOURNAL_DIR).
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, parseStartTime, processStartTime, readJournals } from '../../../src/guard/journal.js';
import { Undo, withUndo } from '../../../src/undo.js';

// `cat /proc/self/stat` on this machine (start time 150062), and the same with a hostile command name.
const STAT = '10863 (cat) R 10773 10773 12365 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 150062 3133440 390 18446744073709551615 93910309666816 0';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-journal-'));
  process.env.MKIMAGE_JOURNAL_DIR = dir;
});
afterAll(async () => {
  delete process.env.MKIMAGE_JOURNAL_DIR;
  await rm(dir, { recursive: true, force: true });
});

const only = async () => {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.length ? JSON.parse(await readFile(join(dir, names[0]!), 'utf8')) : undefined;
};

describe('process start time', () => {
  it('is field 22 of /proc/PID/stat, whatever the command name holds', () => {
    expect(parseStartTime(STAT)).toBe('150062');
    expect(parseStartTime(STAT.replace('(cat)', '(a) b (c) d)'))).toBe('150062');
    expect(parseStartTime('garbage')).toBeUndefined();
  });
  it('tells this process alive and a reused PID (other start time) dead', () => {
    const start = processStartTime(process.pid)!;
    expect(start).toMatch(/^\d+$/);
    expect(isAlive({ pid: process.pid, startTime: start })).toBe(true);
    expect(isAlive({ pid: process.pid, startTime: `${start}1` })).toBe(false);
    expect(isAlive({ pid: 2 ** 22 + 1, startTime: start })).toBe(false);
  });
});

describe('Undo keeps the journal', () => {
  it('writes steps with records when pushed, drops them when settled, removes the file on commit', async () => {
    const undo = new Undo({ journal: { target: '/x/a.img', pools: ['tank'] } });
    undo.push('no record', async () => undefined);
    expect(await only()).toBeUndefined(); // nothing worth recovering yet: no file
    const a = undo.push('temporary file /x/.a.tmp', async () => undefined, { kind: 'file', path: '/x/.a.tmp' });
    undo.push('loop devices of /x/.a.tmp', async () => undefined, { kind: 'loop', file: '/x/.a.tmp' });
    const j = await only();
    expect(j).toMatchObject({ version: 1, pid: process.pid, startTime: processStartTime(process.pid), target: '/x/a.img', pools: ['tank'] });
    expect(j.steps.map((s: { id: number; record: { kind: string } }) => s.record.kind)).toEqual(['file', 'loop']);
    await undo.settle(a);
    expect((await only()).steps.map((s: { what: string }) => s.what)).toEqual(['loop devices of /x/.a.tmp']);
    expect(readJournals()).toHaveLength(1);
    undo.commit();
    expect(await readdir(dir).catch(() => [])).toEqual([]);
  });

  it('unwinding removes the journal; a step that fails stays in it for recovery', async () => {
    await expect(
      withUndo(
        undefined,
        async (undo) => {
          undo.push('dir /x/d', async () => undefined, { kind: 'dir', path: '/x/d' });
          undo.push('mount /x/m', async () => {
            throw new Error('umount: busy');
          }, { kind: 'mount', path: '/x/m' });
          throw new Error('job failed');
        },
        { journal: { target: '/x/b.img' } },
      ),
    ).rejects.toThrow('job failed');
    const j = await only();
    expect(j.steps.map((s: { what: string }) => s.what)).toEqual(['mount /x/m']);
    await rm(join(dir, (await readdir(dir))[0]!));
    await withUndo(undefined, async (undo) => void undo.push('f', async () => undefined, { kind: 'file', path: '/x/f' }), { journal: {} });
    expect(await readdir(dir).catch(() => [])).toEqual([]); // a job that ended keeps no journal
  });
});
