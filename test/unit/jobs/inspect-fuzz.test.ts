/**
 * Hostile headers: 10,000 seeded mutations of valid images (MBR + ext4, GPT + xfs, MBR + ZFS
 * labels, PMEM memmap without a filesystem) given to `inspectImage` in-process. Every outcome must
 * be a report (with `ok` agreeing with its problems, printable as text and JSON) or a MkimageError;
 * nothing else (no TypeError, RangeError, no unhandled rejection) and no call may hang.
 *
 * Reproduce a failure: FUZZ_SEED=<seed> FUZZ_ITERATIONS=<n> npx vitest run test/unit/jobs/inspect-fuzz.test.ts
 * (the message names the base, the iteration and the mutation steps).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatReport } from '../../../src/cli/inspect.js';
import { MkimageError } from '../../../src/errors.js';
import { inspectImage, type ImageReport } from '../../../src/jobs/inspect.js';
import { GiB, MiB } from '../../../src/layout/units.js';
import { PFN_MODE_PMEM, encodePfnInfo, makePfnInfo, withChecksum, type NdPfnSb } from '../../../src/layout/pfn.js';
import { Rng, WorkImage, baseImage, mutate, type BaseImage } from '../helpers/header-fuzz.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261122);
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 10_000);
const CALL_TIMEOUT_MS = 5_000;
const LABEL = gunzipSync(readFileSync(join(import.meta.dirname, '../../fixtures/zfs-label0-vdev-phys.bin.gz')));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mkimage-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function bases(): BaseImage[] {
  return [
    baseImage({ name: 'mbr-ext4-64M', size: 64 * MiB, fs: 'ext4' }),
    baseImage({ name: 'gpt-xfs-400M', size: 400 * MiB, fs: 'xfs', table: 'gpt' }),
    baseImage({ name: 'mbr-zfs-130M', size: 130 * MiB, fs: 'zfs', zfsLabel: LABEL }),
    baseImage({ name: 'mbr-pmem-none-1G', size: GiB, fs: 'none', memmap: 'pmem' }),
  ];
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`hang: ${what} did not settle in ${ms} ms`)), ms);
    }),
  ]);
}

/** What a report must satisfy whatever the bytes were. */
function checkReport(r: ImageReport): string | undefined {
  if (!Array.isArray(r.problems)) return 'problems is not an array';
  if (r.ok !== (r.problems.length === 0)) return `ok is ${r.ok} with ${r.problems.length} problems`;
  for (const p of r.problems) if (typeof p.field !== 'string' || typeof p.message !== 'string' || !p.message) return `malformed problem ${JSON.stringify(p)}`;
  const pfnFields = r.problems.filter((p) => p.field.startsWith('pfn.')).map((p) => p.field);
  if (new Set(pfnFields).size !== pfnFields.length) return `a PFN field reported twice: ${pfnFields.join(', ')}`;
  if (!Number.isSafeInteger(r.sizeBytes) || r.sizeBytes < 0) return `sizeBytes ${r.sizeBytes}`;
  for (const p of r.partitions) {
    for (const k of ['offsetBytes', 'sizeBytes', 'startLba', 'sectorCount'] as const) {
      if (typeof p[k] !== 'number' || Number.isNaN(p[k])) return `partition ${p.index} ${k} is ${p[k]}`;
    }
  }
  formatReport(r);
  JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  return undefined;
}

describe('inspect against hostile headers', () => {
  it(`${ITERATIONS} seeded mutations (seed ${SEED}): a report or a MkimageError, never a crash or a hang`, async () => {
    const rng = new Rng(SEED);
    const all = bases();
    const works = all.map((b) => new WorkImage(join(dir, `${b.name}.img`), b));
    for (const w of works) await w.reset();
    // The bases themselves are valid images.
    for (const w of works) {
      const r = await inspectImage(w.path);
      expect(r.problems, w.base.name).toEqual([]);
    }

    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    for (let i = 0; i < ITERATIONS; i++) {
      const w = works[i % works.length]!;
      const m = mutate(w.base, rng);
      await w.apply(m);
      const where = `${w.base.name} #${i}: ${m.steps.join('; ')}`;
      try {
        const r = await withTimeout(inspectImage(w.path), CALL_TIMEOUT_MS, where);
        const bad = checkReport(r);
        if (bad) failures.push(`${where}: ${bad}`);
        count(r.ok ? 'report ok' : 'report with problems');
        for (const p of r.problems) count(`problem ${p.field.replace(/\[\d+\]/g, '[]')}`);
        if (r.filesystem) count(`filesystem ${r.filesystem.type}`);
      } catch (e) {
        if (e instanceof MkimageError) count(`error ${e.code}`);
        else failures.push(`${where}: ${(e as Error)?.stack ?? e}`);
      }
      await w.restore();
    }
    for (const w of works) await w.close();
    expect(failures.slice(0, 10), `${failures.length} of ${ITERATIONS} mutations crashed or hung`).toEqual([]);

    // The mutations reached past the checksums into the rules behind them.
    const seen = [...outcomes.keys()];
    for (const want of ['report ok', 'report with problems', 'error EINVALIDIMAGE', 'problem pfn.checksum', 'problem pfn.dataOff', 'problem pfn.mode', 'problem gpt.headerCrc32', 'problem mbr.partitions[].sectorCount', 'filesystem zfs']) {
      expect(seen, `no mutation produced "${want}": ${JSON.stringify(Object.fromEntries(outcomes))}`).toContain(want);
    }
  });
});

describe('a PFN block whose checksum matches but whose fields are out of range', () => {
  const SIZE = 64 * MiB;

  async function inspectWithPfn(sb: NdPfnSb): Promise<ImageReport> {
    const base = baseImage({ name: 'pfn', size: SIZE, fs: 'ext4' });
    const head = base.regions[0]!;
    encodePfnInfo(withChecksum(sb)).copy(head.data, 4096);
    const w = new WorkImage(join(dir, 'pfn.img'), base);
    await w.reset();
    await w.close();
    return inspectImage(w.path);
  }

  const good = () => makePfnInfo({ uuid: Buffer.alloc(16, 7), dataOffBytes: 2 * MiB, namespaceSizeBytes: SIZE });

  it('is reported field by field: one problem per bad field, each naming its value', async () => {
    const sb = { ...good(), parentUuid: Buffer.alloc(16, 0xab), mode: 7, endTrunc: 4096 };
    const r = await inspectWithPfn(sb);
    expect(r.problems.map((p) => p.field).sort()).toEqual(['pfn.endTrunc', 'pfn.mode', 'pfn.parentUuid']);
    expect(r.problems.find((p) => p.field === 'pfn.mode')!.message).toMatch(/mode is 7/);
    expect(r.problems.find((p) => p.field === 'pfn.endTrunc')!.message).toMatch(/end_trunc 0x1000/);
    expect(r.problems.find((p) => p.field === 'pfn.parentUuid')!.message).toMatch(/abab/);
    // parent_uuid and mode are checked first and make the kernel fall back to the raw namespace.
    expect(r.guest).toEqual({ accepts: false, namespaceMode: 'raw' });
    const probeFails = await inspectWithPfn({ ...good(), endTrunc: 4096 });
    expect(probeFails.guest).toEqual({ accepts: false, namespaceMode: 'none' });
  });

  it('PMEM mode: page_size and page_struct_size each reported', async () => {
    const pmem = makePfnInfo({ uuid: Buffer.alloc(16, 7), dataOffBytes: 4 * MiB, namespaceSizeBytes: SIZE, mode: PFN_MODE_PMEM });
    const r = await inspectWithPfn({ ...pmem, pageSize: 65536, pageStructSize: 32 });
    expect(r.problems.map((p) => p.field).sort()).toEqual(['pfn.pageSize', 'pfn.pageStructSize']);
  });

  it('dataoff beyond the namespace, align not a power of two, start_pad misaligned: every field named', async () => {
    const sb = { ...good(), dataOff: BigInt(SIZE + 2 * MiB), align: 3 * MiB, startPad: 4096 };
    const r = await inspectWithPfn(sb);
    const fields = [...new Set(r.problems.map((p) => p.field))].sort();
    expect(fields).toEqual(['pfn.align', 'pfn.dataOff', 'pfn.startPad']);
    // One problem per bad field: a field breaking several rules is still reported once.
    expect(r.problems.map((p) => p.field).sort()).toEqual(fields);
  });

  it('version 1.1 ignores align (read as 0, then derived from dataoff): no align problem for a junk align', async () => {
    const r = await inspectWithPfn({ ...good(), versionMinor: 1, align: 12345 });
    expect(r.problems).toEqual([]);
  });
});
