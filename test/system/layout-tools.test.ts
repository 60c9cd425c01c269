/**
 * The byte-level layer against the real tools, without the CLI and without loop devices: the
 * headers buildHeader writes are read back by sfdisk, sfdisk's own tables decode with ours, and
 * detectFs recognises what mkfs.ext4 and mkfs.xfs write with the arguments ext4Args/xfsArgs build.
 * The unit tests hold the same bytes pasted as hex; these runs show they still come from the tools.
 */
import { open, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readAt } from '../../src/file/image-file.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkGptHeader, decodeGptHeader, GPT_ENTRY_ARRAY_BYTES } from '../../src/layout/gpt.js';
import { buildHeader, type HeaderIds } from '../../src/layout/header.js';
import { FS_MAGIC_PROBE_BYTES, detectFs } from '../../src/layout/fs-magic.js';
import { encodeMbr, makeMbr, makePartitionEntry } from '../../src/layout/mbr.js';
import { planLayout, type PlanOptions } from '../../src/layout/plan.js';
import { GiB, MiB, TiB } from '../../src/layout/units.js';
import { fallocate } from '../../src/tools/fallocate.js';
import { ext4Args, ext4Env, xfsArgs } from '../../src/tools/mkfs.js';
import { cleanDir, sh, tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  expect(await cleanDir(dir)).toEqual({ loops: [], mounts: [] });
});

const IDS: HeaderIds = {
  pfnUuid: '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60',
  diskSignature: 0x12345678,
  diskGuid: '01234567-89AB-CDEF-0123-456789ABCDEF',
  partitionGuid: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  partitionName: 'mkimage',
};


/** A sparse image holding only what buildHeader writes. */
async function writeHeaderImage(name: string, o: PlanOptions): Promise<string> {
  const plan = planLayout(o);
  const file = join(dir, name);
  await writeFile(file, '');
  await truncate(file, plan.sizeBytes);
  const fh = await open(file, 'r+');
  try {
    for (const w of buildHeader(plan, IDS)) await fh.write(w.data, 0, w.data.length, w.offsetBytes);
  } finally {
    await fh.close();
  }
  return file;
}

async function sfdiskVerify(file: string) {
  const r = await sh('sfdisk', ['--verify', file]);
  expect(r.stdout).toContain('No errors detected');
  expect(r.exitCode).toBe(0);
}

async function sfdiskJson(file: string) {
  const r = await sh('sfdisk', ['--json', file]);
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout).partitiontable;
}

describe('MBR and GPT against sfdisk', () => {
  it('our MBR equals the one sfdisk writes for the same disk, CHS included', async () => {
    const theirs = join(dir, 'sfdisk.img');
    await writeFile(theirs, '');
    await truncate(theirs, GiB);
    const r = await sh('sfdisk', ['-q', theirs], { input: 'label: dos\nlabel-id: 0x12345678\nstart=4096, type=83\n' });
    expect(r.exitCode).toBe(0);
    const ours = encodeMbr(makeMbr(0x12345678, makePartitionEntry(0x83, 4096, GiB / 512 - 4096)));
    expect((await readAt(theirs, 0, 512)).toString('hex')).toBe(ours.toString('hex'));
  });

  it('sfdisk verifies and reads our 1 GiB MBR image', async () => {
    const file = await writeHeaderImage('mbr.img', { sizeBytes: GiB, fs: 'ext4' });
    await sfdiskVerify(file);
    const pt = await sfdiskJson(file);
    expect(pt.label).toBe('dos');
    expect(pt.id).toBe('0x12345678');
    expect(pt.partitions).toEqual([expect.objectContaining({ start: 4096, size: GiB / 512 - 4096, type: '83' })]);
  });

  it('sfdisk verifies and reads our 1 GiB GPT image (entries at LBA 16, first usable 48)', async () => {
    const file = await writeHeaderImage('gpt.img', { sizeBytes: GiB, fs: 'ext4', table: 'gpt' });
    await sfdiskVerify(file);
    const pt = await sfdiskJson(file);
    expect(pt).toMatchObject({ label: 'gpt', id: IDS.diskGuid, firstlba: 48, lastlba: GiB / 512 - 34 });
    expect(pt.partitions).toEqual([
      expect.objectContaining({ start: 4096, size: GiB / 512 - 4096 - 4096, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', uuid: IDS.partitionGuid, name: 'mkimage' }),
    ]);
  });

  it('sfdisk verifies our 3 TiB sparse GPT image (beyond the MBR limit)', async () => {
    const file = await writeHeaderImage('big.img', { sizeBytes: 3 * TiB, fs: 'zfs', table: 'gpt' });
    await sfdiskVerify(file);
    const pt = await sfdiskJson(file);
    expect(pt.partitions[0]).toMatchObject({ start: 4096, size: (3 * TiB) / 512 - 4096 - 4096 });
  });

  it('our decoder reads a GPT sfdisk wrote, both CRCs verified, primary and backup', async () => {
    const file = join(dir, 'sfgpt.img');
    await writeFile(file, '');
    await truncate(file, 64 * MiB);
    const script = `label: gpt\nlabel-id: ${IDS.diskGuid}\nstart=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${IDS.partitionGuid}, name="mkimage"\n`;
    expect((await sh('sfdisk', ['-q', file], { input: script })).exitCode).toBe(0);
    const total = (64 * MiB) / 512;
    const primary = decodeGptHeader(await readAt(file, 512, 512));
    const entries = await readAt(file, Number(primary.partitionEntryLba) * 512, GPT_ENTRY_ARRAY_BYTES);
    expect(checkGptHeader(primary, entries, total, 1)).toEqual([]);
    const backup = decodeGptHeader(await readAt(file, (total - 1) * 512, 512));
    const backupEntries = await readAt(file, Number(backup.partitionEntryLba) * 512, GPT_ENTRY_ARRAY_BYTES);
    expect(checkGptHeader(backup, backupEntries, total, total - 1)).toEqual([]);
  });
});

describe('detectFs against mkfs', () => {
  it('recognises mkfs.ext4 run with ext4Args at the partition offset of a file', async () => {
    const file = join(dir, 'e.img');
    await writeFile(file, '');
    await truncate(file, 64 * MiB);
    const uuid = '6e5c1a2b-3d4f-4a6b-8c7d-9e0f1a2b3c4d';
    const args = ext4Args({ target: file, offsetBytes: 2 * MiB, sizeBytes: 62 * MiB, uuid, hashSeed: '11111111-2222-4333-8444-555555555555', label: 'mkimage-ext4' });
    const { execa } = await import('execa');
    const r = await execa('mkfs.ext4', args, { reject: false, env: ext4Env(1700000000) });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(detectFs(await readAt(file, 2 * MiB, FS_MAGIC_PROBE_BYTES))).toEqual({
      type: 'ext4', uuid, label: 'mkimage-ext4', blockBytes: 4096, sizeBytes: 62 * MiB,
    });
  });

  it('recognises mkfs.xfs run with xfsArgs on a file', async () => {
    const file = join(dir, 'x.img');
    await writeFile(file, '');
    await truncate(file, 512 * MiB);
    const uuid = '7f6d2b3c-4e5a-4b7c-9d8e-0f1a2b3c4d5e';
    const r = await sh('mkfs.xfs', xfsArgs({ device: file, uuid, label: 'mkimage-xfs' }));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(detectFs(await readAt(file, 0, FS_MAGIC_PROBE_BYTES))).toEqual({
      type: 'xfs', uuid, label: 'mkimage-xfs', blockBytes: 4096, sizeBytes: 512 * MiB,
    });
  });
});

describe('fallocate', () => {
  it('the real fallocate reserves exactly [offset, offset + length): a name like an option, an offset beyond 2^32', async () => {
    const { stat } = await import('node:fs/promises');
    const file = join(dir, '-x.img');
    await writeFile(file, '');
    await truncate(file, 6 * GiB);
    await fallocate(file, 2 * MiB, 4 * MiB);
    expect((await stat(file)).blocks * 512).toBe(4 * MiB);
    await fallocate(file, 5 * GiB, 2 * MiB); // --offset 5368709120: whole digits, never 5.36e9
    const st = await stat(file);
    expect(st.blocks * 512).toBe(6 * MiB);
    expect(st.size).toBe(6 * GiB);
  });
});
