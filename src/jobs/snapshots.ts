/**
 * ZFS snapshots and replication streams of an image's pool, attaching the image as needed and
 * leaving it as found (jobs/pool-session.ts), each under the image's lock:
 *
 *   snapshotImage   mkimage snapshot IMAGE NAME [--dataset D] [--no-recursive]
 *   listSnapshots   mkimage snapshots IMAGE
 *   sendImage       mkimage send IMAGE DATASET@SNAP [--from SNAP] -o FILE|-
 *   receiveImage    mkimage receive IMAGE [DATASET] -i FILE|-
 *
 * Streams never pass through memory: `zfs send` writes to the output file's descriptor, `zfs
 * receive` reads the input file's descriptor (or stdin piped through after its first record was
 * read to learn what it carries). send writes FILE under a temporary name and renames it when
 * complete, so a failed send leaves no partial stream.
 *
 * A truncated or corrupt stream leaves the target as it was:
 * - full stream: received under a temporary dataset next to the target and renamed into place
 *   when complete (a replication stream cut short leaves its first datasets received: seen with
 *   zfs-fuse 0.7); on failure the temporary dataset is destroyed;
 * - incremental stream (-F, since a mounted dataset counts as modified): every dataset of the
 *   target's tree is rolled back to the snapshot that was its latest, and datasets the stream
 *   created are destroyed (zfs-fuse applies a replication stream dataset by dataset: the first
 *   ones are changed when a later one fails).
 */
import { randomHex } from '../file/random.js';
import { tempPathFor } from '../file/image-file.js';
import { constants, promises as fs } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { PoolError, UsageError, type ToolFailedError } from '../errors.js';
import { MAX_STREAM_PAYLOAD_BYTES, STREAM_HEAD_BYTES, decodeStreamBegin, withStreamPayload, type StreamBegin } from '../layout/zfs-stream.js';
import {
  checkDatasetPath,
  retryBusy,
  checkSnapshotName,
  zfsCreateArgs,
  zfsDestroyArgs,
  zfsListSnapshotsArgs,
  zfsReceiveArgs,
  zfsRenameArgs,
  zfsRollbackArgs,
  zfsSendArgs,
  zfsSnapshotArgs,
  type Zfs,
} from '../tools/zfs.js';
import { withUndo } from '../undo.js';
import { withPool, type PoolJobOptions } from './pool-session.js';

export interface SnapshotInfo {
  /** pool/dataset@name */
  name: string;
  dataset: string;
  snapshot: string;
  /** As ZFS prints them: bytes with OpenZFS (-p), "88K" with zfs-fuse. */
  used: string;
  referenced: string;
  createtxg: string;
}

/** A dataset path below the pool, or the pool's root ('' or the pool's own name). */
function datasetOf(pool: string, path: string | undefined, what: string): string {
  if (path === undefined || path === '' || path === pool) return pool;
  const rel = path.startsWith(`${pool}/`) ? path.slice(pool.length + 1) : path;
  checkDatasetPath(rel, pool, what);
  return `${pool}/${rel}`;
}

async function listSnaps(zfs: Zfs, root: string): Promise<SnapshotInfo[]> {
  const out = (await zfs.zfs(zfsListSnapshotsArgs(zfs.flavour, root))).stdout;
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [name = '', used = '', referenced = '', createtxg = ''] = l.split('\t');
      const at = name.indexOf('@');
      return { name, dataset: name.slice(0, at), snapshot: name.slice(at + 1), used, referenced, createtxg };
    });
}

async function datasetExists(zfs: Zfs, name: string): Promise<boolean> {
  try {
    await zfs.zfs(['list', '-H', '-o', 'name', name]);
    return true;
  } catch (e) {
    if (/does not exist/.test(String((e as ToolFailedError).data?.stderr ?? ''))) return false;
    throw e;
  }
}

async function filesystemsUnder(zfs: Zfs, root: string): Promise<string[]> {
  return (await zfs.zfs(['list', '-H', '-r', '-t', 'filesystem', '-o', 'name', root])).stdout.split('\n').filter(Boolean);
}

export interface SnapshotOptions extends PoolJobOptions {
  /** The dataset below the pool (default: the pool's root). */
  dataset?: string;
  /** Every descendant too (default true). */
  recursive?: boolean;
}

export async function snapshotImage(image: string, name: string, o: SnapshotOptions = {}): Promise<{ pool: string; snapshots: string[] }> {
  checkSnapshotName(name);
  return withPool(image, { ...o, command: o.command ?? `mkimage snapshot ${image} ${name}` }, async ({ zfs, pool }) => {
    const dataset = datasetOf(pool, o.dataset, '--dataset');
    if (!(await datasetExists(zfs, dataset))) throw new UsageError(`${image} has no dataset ${dataset}`, { dataset });
    const recursive = o.recursive ?? true;
    const taken = (await listSnaps(zfs, dataset)).filter((s) => s.snapshot === name && (recursive || s.dataset === dataset));
    if (taken.length) throw new UsageError(`snapshot ${taken[0]!.name} exists already in ${image}: choose another name`, { snapshot: taken[0]!.name });
    await zfs.zfs(zfsSnapshotArgs(`${dataset}@${name}`, recursive));
    const made = (await listSnaps(zfs, dataset)).filter((s) => s.snapshot === name && (recursive || s.dataset === dataset));
    return { pool, snapshots: made.map((s) => s.name) };
  });
}

export async function listSnapshots(image: string, o: PoolJobOptions = {}): Promise<{ pool: string; snapshots: SnapshotInfo[] }> {
  return withPool(image, { ...o, command: o.command ?? `mkimage snapshots ${image}` }, async ({ zfs, pool }) => ({ pool, snapshots: await listSnaps(zfs, pool) }));
}

export interface SendOptions extends PoolJobOptions {
  /** Incremental from this snapshot of the same dataset ("SNAP", "@SNAP" or "DATASET@SNAP"). */
  from?: string;
}

export interface SendResult {
  pool: string;
  snapshot: string;
  from?: string;
  /** Bytes written (a file; undefined for a descriptor such as stdout). */
  bytes?: number;
  output: string;
}

/** Splits "DATASET@SNAP" (DATASET relative to the pool, or starting with its name; "@SNAP": the root). */
function parseSnapshotArg(pool: string, text: string): { dataset: string; snapshot: string } {
  const at = text.indexOf('@');
  if (at < 0) throw new UsageError(`${JSON.stringify(text)} is not DATASET@SNAPSHOT (mkimage snapshots IMAGE lists them)`, { snapshot: text });
  const snapshot = text.slice(at + 1);
  checkSnapshotName(snapshot);
  return { dataset: datasetOf(pool, text.slice(0, at), 'DATASET@SNAP'), snapshot };
}

/** `out`: a path (written under a temporary name, renamed when complete) or an open descriptor. */
export async function sendImage(image: string, what: string, out: string | number, o: SendOptions = {}): Promise<SendResult> {
  return withPool(image, { ...o, command: o.command ?? `mkimage send ${image} ${what}` }, async ({ zfs, pool }) => {
    const { dataset, snapshot } = parseSnapshotArg(pool, what);
    const full = `${dataset}@${snapshot}`;
    const snaps = await listSnaps(zfs, dataset);
    if (!snaps.some((s) => s.name === full)) throw new UsageError(`${image} has no snapshot ${full} (mkimage snapshots ${image} lists them)`, { snapshot: full });
    let from: string | undefined;
    if (o.from !== undefined) {
      const f = o.from.includes('@') ? parseSnapshotArg(pool, o.from.startsWith('@') ? `${dataset.slice(pool.length + 1)}${o.from}` : o.from) : { dataset, snapshot: o.from };
      checkSnapshotName(f.snapshot);
      if (f.dataset !== dataset) throw new UsageError(`--from ${o.from} is a snapshot of ${f.dataset}, not of ${dataset}: an incremental stream starts from a snapshot of the same dataset`, { from: o.from });
      from = `${dataset}@${f.snapshot}`;
      const a = snaps.find((s) => s.name === from);
      const b = snaps.find((s) => s.name === full)!;
      if (!a) throw new UsageError(`${image} has no snapshot ${from} to send from`, { from });
      if (BigInt(a.createtxg || '0') >= BigInt(b.createtxg || '0')) throw new UsageError(`--from ${from} is not older than ${full}`, { from, snapshot: full });
    }
    if (typeof out === 'number') {
      await zfs.zfs(zfsSendArgs(full, from), { stdout: out });
      return { pool, snapshot: full, from, output: '-' };
    }
    const target = resolve(out);
    const temp = tempPathFor(target);
    return withUndo(o.signal, async (undo) => {
      undo.push(`temporary file ${temp}`, () => fs.rm(temp, { force: true }));
      const fh = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await zfs.zfs(zfsSendArgs(full, from), { stdout: fh.fd });
        await fh.sync();
      } finally {
        await fh.close();
      }
      const bytes = (await fs.stat(temp)).size;
      await fs.rename(temp, target);
      undo.commit();
      return { pool, snapshot: full, from, bytes, output: out };
    });
  });
}

/** Reads exactly `n` bytes from the start of a stream (fewer at its end) and puts them back. */
async function peek(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  for (;;) {
    const chunk = stream.read() as Buffer | null;
    if (chunk) {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= n) break;
      continue;
    }
    if (stream.readableEnded) break;
    const ended = await new Promise<boolean>((res, rej) => {
      const cleanup = () => {
        stream.off('readable', onReadable);
        stream.off('end', onEnd);
        stream.off('error', onError);
      };
      const onReadable = () => (cleanup(), res(false));
      const onEnd = () => (cleanup(), res(true));
      const onError = (e: Error) => (cleanup(), rej(e));
      stream.on('readable', onReadable);
      stream.on('end', onEnd);
      stream.on('error', onError);
    });
    if (ended) break;
  }
  const all = Buffer.concat(chunks);
  if (all.length) stream.unshift(all);
  return all.subarray(0, n);
}

export interface ReceiveResult {
  pool: string;
  /** The dataset the stream was received as. */
  dataset: string;
  incremental: boolean;
  /** What the stream carried, as named on the sender. */
  stream: { toName: string; fromSnap?: string };
  /** Snapshots the target has now that it did not have before. */
  snapshots: string[];
}

/** The input: a path, or a readable stream (stdin). */
export type ReceiveInput = string | Readable;

async function readBegin(input: ReceiveInput): Promise<{ begin: StreamBegin; stdin: number | Readable; close: () => Promise<void> }> {
  const bad = (why: string) => new UsageError(`${typeof input === 'string' ? input : 'standard input'} is not a ZFS send stream: ${why}`, { input: typeof input === 'string' ? input : '-' });
  const parse = async (read: (offset: number, n: number) => Promise<Buffer>) => {
    const head = await read(0, STREAM_HEAD_BYTES);
    const begin = decodeStreamBegin(head);
    if (!begin) throw bad(head.length < STREAM_HEAD_BYTES ? `it is ${head.length} bytes, shorter than a stream's first record` : 'no BEGIN record with the ZFS backup magic at its start');
    if (begin.payloadBytes > MAX_STREAM_PAYLOAD_BYTES) throw bad(`its header claims ${begin.payloadBytes} bytes of properties`);
    const payload = begin.payloadBytes ? await read(STREAM_HEAD_BYTES, begin.payloadBytes) : Buffer.alloc(0);
    if (payload.length < begin.payloadBytes) throw bad('it ends inside its header');
    try {
      return withStreamPayload(begin, payload);
    } catch (e) {
      throw bad(`its header's property list does not decode (${(e as Error).message})`);
    }
  };
  if (typeof input === 'string') {
    const fh = await fs.open(input, constants.O_RDONLY).catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${input}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, { input });
    });
    try {
      const begin = await parse(async (offset, n) => {
        const buf = Buffer.alloc(n);
        const { bytesRead } = await fh.read(buf, 0, n, offset);
        return buf.subarray(0, bytesRead);
      });
      return { begin, stdin: fh.fd, close: () => fh.close() };
    } catch (e) {
      await fh.close();
      throw e;
    }
  }
  const head = await peek(input, STREAM_HEAD_BYTES);
  const b0 = decodeStreamBegin(head);
  const all = b0 && b0.payloadBytes <= MAX_STREAM_PAYLOAD_BYTES ? await peek(input, STREAM_HEAD_BYTES + b0.payloadBytes) : head;
  const begin = await parse(async (offset, n) => all.subarray(offset, offset + n));
  return { begin, stdin: input, close: async () => undefined };
}

export interface ReceiveOptions extends PoolJobOptions {}

export async function receiveImage(image: string, dataset: string | undefined, input: ReceiveInput, o: ReceiveOptions = {}): Promise<ReceiveResult> {
  const { begin, stdin, close } = await readBegin(input);
  try {
    return await withPool(image, { ...o, command: o.command ?? `mkimage receive ${image}` }, async ({ zfs, pool }) => {
      const sentDataset = begin.toName.split('@')[0]!;
      const sentRel = sentDataset.includes('/') ? sentDataset.slice(sentDataset.indexOf('/') + 1) : '';
      if (dataset === undefined && sentRel === '') {
        throw new UsageError(`the stream carries the root of pool ${sentDataset} (${begin.toName}): name the dataset to receive it as (mkimage receive ${image} DATASET -i ...)`, { stream: begin.toName });
      }
      const target = datasetOf(pool, dataset ?? sentRel, 'DATASET');
      if (target === pool) throw new UsageError(`a stream cannot be received as the root of pool ${pool}: name a dataset below it`, { target });
      const exists = await datasetExists(zfs, target);
      const before = exists ? await listSnaps(zfs, target) : [];
      return withUndo(o.signal, async (undo) => {
        if (!begin.incremental) {
          if (exists) {
            throw new UsageError(`${image} has a dataset ${target} already: a full stream makes a new one (name another DATASET, or send an incremental stream with --from)`, { target });
          }
          // The parents, made as needed (and removed again if the receive fails).
          const parts = target.split('/');
          for (let i = 2; i < parts.length; i++) {
            const parent = parts.slice(0, i).join('/');
            if (await datasetExists(zfs, parent)) continue;
            undo.push(`dataset ${parent}`, async () => void (await zfs.forCleanup().zfs(zfsDestroyArgs(parent)).catch(() => undefined)));
            await zfs.zfs(zfsCreateArgs(parent));
          }
          const temp = `${dirname(target)}/mkimage-recv-${process.pid}-${randomHex(3)}`;
          undo.push(`temporary dataset ${temp}`, async () => {
            const c = zfs.forCleanup();
            if (await datasetExists(c, temp)) await c.zfs(zfsDestroyArgs(temp));
          });
          await receive(zfs, zfsReceiveArgs(temp), stdin, input);
          // zfs-fuse holds a dataset it just received and mounted for a moment: "dataset is busy".
          await retryBusy(() => zfs.zfs(zfsRenameArgs(temp, target)));
        } else {
          if (!exists) {
            throw new UsageError(`the stream is incremental (from @${begin.fromSnap ?? '?'}): ${image} has no dataset ${target} to apply it to (receive the full stream first)`, { target });
          }
          const fromSnap = begin.fromSnap;
          if (fromSnap && !before.some((s) => s.dataset === target && s.snapshot === fromSnap)) {
            throw new UsageError(`the stream is incremental from @${fromSnap}, which ${target} in ${image} does not have (its snapshots: ${before.filter((s) => s.dataset === target).map((s) => `@${s.snapshot}`).join(' ') || 'none'})`, { target, fromSnap });
          }
          // Savepoint: each dataset's latest snapshot now; restored if the receive fails.
          const datasets = await filesystemsUnder(zfs, target);
          const latest = new Map<string, string>();
          for (const s of before) latest.set(s.dataset, s.name); // sorted by createtxg: the last wins
          undo.push(`datasets under ${target} as they were`, async () => {
            const c = zfs.forCleanup();
            const now = await filesystemsUnder(c, target).catch(() => [] as string[]);
            for (const d of now.filter((d) => !datasets.includes(d)).sort((a, b) => a.length - b.length)) {
              if (await datasetExists(c, d)) await c.zfs(zfsDestroyArgs(d));
            }
            for (const d of datasets) {
              const snap = latest.get(d);
              if (snap && (await datasetExists(c, snap))) await c.zfs(zfsRollbackArgs(snap));
            }
          });
          await receive(zfs, zfsReceiveArgs(target, true), stdin, input);
        }
        const after = await listSnaps(zfs, target);
        const had = new Set(before.map((s) => s.name));
        undo.commit();
        return { pool, dataset: target, incremental: begin.incremental, stream: { toName: begin.toName, fromSnap: begin.fromSnap }, snapshots: after.map((s) => s.name).filter((n) => !had.has(n)) };
      });
    });
  } finally {
    await close();
  }
}

/** zfs receive, its failure said in terms of the stream. */
async function receive(zfs: Zfs, args: string[], stdin: number | Readable, input: ReceiveInput): Promise<void> {
  try {
    await zfs.zfs(args, { stdin });
  } catch (e) {
    const stderr = String((e as ToolFailedError).data?.stderr ?? '');
    if (/invalid backup stream|checksum mismatch|bad magic|stream.*(truncated|incomplete)|premature/i.test(stderr)) {
      throw new PoolError(
        `${typeof input === 'string' ? input : 'the stream on standard input'} is truncated or corrupt (zfs receive: ${stderr.trim().split('\n').pop()}); the target is unchanged`,
        { stderr },
        { cause: e },
      );
    }
    throw e;
  }
}
