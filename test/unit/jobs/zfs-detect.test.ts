import { mkdtemp, open, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectZfsLabel, readZfsLabels } from '../../../src/jobs/zfs-detect.js';
import { sealVdevPhys, vdevPhysOffsets } from '../../../src/layout/zfs-label.js';

const FIXTURE = gunzipSync(readFileSync(join(import.meta.dirname, '../../fixtures/zfs-label0-vdev-phys.bin.gz')));
/** Where the fixture's txg (20) sits: the uint64 after the "txg" pair header (zdb: txg: 20). */
const TXG_AT = FIXTURE.indexOf(Buffer.from('txg\0', 'latin1')) + 4 + 8;
const PART = 2 * 1024 * 1024;
const SIZE = 64 * 1024 * 1024;

function withTxg(txg: bigint, offset: number): Buffer {
  const b = Buffer.from(FIXTURE);
  b.writeBigUInt64BE(txg, TXG_AT);
  return sealVdevPhys(b, offset);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function image(name: string, labels: Array<Buffer | undefined>): Promise<string> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  await fh.truncate(PART + SIZE);
  const offsets = vdevPhysOffsets(SIZE);
  for (const [i, b] of labels.entries()) if (b) await fh.write(b, 0, b.length, PART + offsets[i]!);
  await fh.close();
  return path;
}

describe('detectZfsLabel', () => {
  it('the fixture at label 0 of a partition: the pool', async () => {
    expect(FIXTURE.readBigUInt64BE(TXG_AT)).toBe(20n);
    const p = await image('l0.img', [FIXTURE]);
    expect(await detectZfsLabel(p, PART, SIZE)).toMatchObject({ pool: 'fixture', guid: '15296604384597250630', state: 'exported', label: 0 });
  });

  it('a damaged label 0 falls back to another; the highest txg wins', async () => {
    const offsets = vdevPhysOffsets(SIZE);
    const broken = Buffer.from(FIXTURE);
    broken[50] ^= 0xff;
    const p = await image('fallback.img', [broken, withTxg(21n, offsets[1]!), withTxg(25n, offsets[2]!), withTxg(22n, offsets[3]!)]);
    const d = await detectZfsLabel(p, PART, SIZE);
    expect(d).toMatchObject({ pool: 'fixture', txg: '25', label: 2 });
    const reads = await readZfsLabels(p, PART, SIZE);
    expect(reads.map((r) => r.result.status)).toEqual(['bad-checksum', 'ok', 'ok', 'ok']);
  });

  it('a label copied to the wrong place does not count (the checksum binds it to its offset)', async () => {
    const p = await image('moved.img', [undefined, FIXTURE]);
    expect(await detectZfsLabel(p, PART, SIZE)).toBeUndefined();
  });

  it('an image without a pool, and a file shorter than a label: undefined', async () => {
    expect(await detectZfsLabel(await image('empty.img', []), PART, SIZE)).toBeUndefined();
    const short = join(dir, 'short.img');
    const fh = await open(short, 'w');
    await fh.truncate(PART + 1000);
    await fh.close();
    expect(await detectZfsLabel(short, PART, 1000)).toBeUndefined();
  });
});
