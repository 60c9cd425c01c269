/**
 * The one place compression is recognised: by the stream's first bytes, never by a file name or a
 * media type (a `docker save` layer.tar may be gzip whatever its name says).
 *
 *   gzip  1f 8b            RFC 1952 section 2.3.1 (ID1, ID2)
 *   zstd  28 b5 2f fd      RFC 8878 section 3.1.1 (Magic_Number 0xFD2FB528, little-endian)
 *
 * gzip is inflated by node:zlib; Node 20 has no zstd, so zstd streams go through Debian's
 * `zstd -dc` (src/tools/exec.ts runFilter): bytes in on its stdin, the tar out of its stdout.
 */
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { LayerError, MkimageError, ToolFailedError } from '../errors.js';
import { runFilter } from '../tools/exec.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** How many leading bytes `detectCompression` needs to decide. */
export const COMPRESSION_PROBE_BYTES = 4;

const MAGIC: readonly [Exclude<Compression, 'none'>, readonly number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
];

/** What the first bytes of a stream say it is. Fewer bytes than a magic: not that compression. */
export function detectCompression(head: Uint8Array): Compression {
  for (const [kind, magic] of MAGIC) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return kind;
  }
  return 'none';
}

/** A failed read of a layer (a blob gone, EIO) as a LayerError naming it; LayerErrors pass as they are. */
export function readError(error: unknown, what: string): unknown {
  if (error instanceof MkimageError) return error;
  const e = error as NodeJS.ErrnoException;
  return new LayerError(`${what}: cannot read the layer (${e?.message ?? String(error)})`, { what, code: e?.code }, { cause: error });
}

const asBuffer = (v: Uint8Array): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

/**
 * The uncompressed bytes of `input`: passed through when plain, gunzipped or un-zstd'ed when its
 * magic says so. Corrupt or truncated compressed data is a LayerError naming `what`.
 */
export async function* decompress(input: AsyncIterable<Uint8Array>, what = 'layer', signal?: AbortSignal): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]();
  const next = async () => {
    try {
      return await it.next();
    } catch (error) {
      throw readError(error, what);
    }
  };
  let head = Buffer.alloc(0);
  let done = false;
  while (head.length < COMPRESSION_PROBE_BYTES && !done) {
    const r = await next();
    if (r.done) done = true;
    else head = Buffer.concat([head, asBuffer(r.value)]);
  }
  const rest = async function* (): AsyncGenerator<Buffer> {
    try {
      if (head.length) yield head;
      if (done) return;
      for (;;) {
        const r = await next();
        if (r.done) return;
        yield asBuffer(r.value);
      }
    } finally {
      // Stopped early: let the source close its file.
      await it.return?.();
    }
  };
  const kind = detectCompression(head);
  if (kind === 'none') {
    yield* rest();
    return;
  }
  if (kind === 'zstd') {
    try {
      yield* runFilter('zstd', ['-dc', '-q'], rest(), { signal });
    } catch (error) {
      if (error instanceof ToolFailedError) {
        throw new LayerError(`${what}: zstd data is corrupt or truncated (${error.message})`, { what, compression: 'zstd' }, { cause: error });
      }
      throw error;
    }
    return;
  }
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  const source = Readable.from(rest());
  pipeline(source, gunzip, () => {
    /* errors surface through the iteration below */
  });
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (error) {
    if (error instanceof MkimageError) throw error;
    const e = error as NodeJS.ErrnoException;
    throw new LayerError(`${what}: gzip data is corrupt or truncated (${e.code ?? ''} ${e.message})`, { code: e.code }, { cause: error });
  } finally {
    gunzip.destroy();
    source.destroy();
  }
}
