/**
 * A streaming tar reader: ustar, GNU (long names `L`/`K`, base-256 numbers) and PAX extended `x`
 * headers (path, linkpath, size, mtime, uid, gid, uname, gname). Global `g` headers are checked
 * and skipped, as Go's archive/tar (what Docker and containerd use) skips them: applied, a global
 * `path` would give every later entry the same name. It reads from any
 * async iterable of bytes and yields one entry at a time; an entry's data is streamed by `body()`
 * and skipped if the caller does not read it. Nothing is buffered but one header or one
 * PAX/long-name body (at most MAX_META_BYTES).
 *
 * Hostile input is a LayerError, never a crash or a hang: every header checksum is verified,
 * every number is range-checked, every length is checked before anything is read for it, and a
 * stream that ends inside a header or a body is "truncated".
 */
import { promises as fs } from 'node:fs';
import { LayerError } from '../errors.js';
import {
  BLOCK,
  MAX_META_BYTES,
  decodeHeader,
  decodeUtf8,
  isHeaderOnly,
  isZeroBlock,
  padding,
  parsePax,
  type PaxRecords,
  type TarHeader,
  type TarType,
} from './tar-header.js';

export type EntryType = Exclude<TarType, 'pax' | 'pax-global' | 'gnu-longname' | 'gnu-longlink'>;

export interface TarEntryHeader {
  /** The name as stored (after PAX and GNU long names), not yet checked or normalized. */
  path: string;
  type: EntryType;
  /** Permission bits with setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow (0 for header-only types whatever the header says). */
  size: number;
  /** Seconds since the epoch; fractional when a PAX record says so. */
  mtime: number;
  /** Symlink target, or the hard link's target path inside the archive. */
  linkpath: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** Byte offset of this entry's header in the (uncompressed) stream, for messages. */
  offset: number;
  /** Byte offset of its data in the stream (an uncompressed archive file: where to pread it). */
  dataOffset: number;
  /** Extended attributes (PAX SCHILY.xattr.*), raw values; empty when none. */
  xattrs: Record<string, Buffer>;
}

export interface TarEntry extends TarEntryHeader {
  /** The entry's data, exactly `size` bytes; may be called once, before the next entry is taken. */
  body(): AsyncIterable<Buffer>;
}

/**
 * An uncompressed archive file read at positions: the walker reads its headers and skips bodies
 * without reading them (indexing a 200 MB `docker save` archive reads a few hundred KB).
 */
export interface RandomAccessTar {
  /** Fills `buf` from `position`; returns the bytes read (0 at the end). */
  read(buf: Buffer, position: number): Promise<number>;
  /** Bytes in the file: a body that runs past it is "truncated" without being read. */
  size: number;
}

/** Opens an archive file for `readTar` by position; `close()` when done. */
export async function openTarFile(path: string): Promise<RandomAccessTar & { close(): Promise<void> }> {
  const fh = await fs.open(path, 'r');
  const { size } = await fh.stat();
  return {
    size,
    read: async (buf, position) => (await fh.read(buf, 0, buf.length, position)).bytesRead,
    close: () => fh.close(),
  };
}

const FILE_CHUNK_BYTES = 64 * 1024;

function isRandomAccess(input: AsyncIterable<Uint8Array> | RandomAccessTar): input is RandomAccessTar {
  return typeof (input as RandomAccessTar).read === 'function' && !(Symbol.asyncIterator in input);
}

/** Pulls exact byte counts out of an async iterable of chunks, or out of a file by position. */
class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private ended = false;
  /** Bytes consumed so far. */
  offset = 0;
  /** The file read by position, when the input is one. */
  private readonly file?: RandomAccessTar;

  constructor(input: AsyncIterable<Uint8Array> | RandomAccessTar) {
    if (isRandomAccess(input)) {
      const file = input;
      this.file = file;
      const self = this;
      this.it = (async function* () {
        for (;;) {
          const chunk = Buffer.alloc(FILE_CHUNK_BYTES);
          const n = await file.read(chunk, self.offset + (self.buf.length - self.pos));
          if (n === 0) return;
          yield chunk.subarray(0, n);
        }
      })();
    } else {
      this.it = input[Symbol.asyncIterator]();
    }
  }

  private async fill(): Promise<boolean> {
    while (this.pos >= this.buf.length) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      const v = r.value;
      this.buf = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.pos = 0;
    }
    return true;
  }

  /** Exactly n bytes; null when the stream ends before the first byte; throws when it ends inside. */
  async readExact(n: number, what: string): Promise<Buffer | null> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) {
        if (got === 0) return null;
        throw truncated(what, this.offset, n - got);
      }
      const take = Math.min(n - got, this.buf.length - this.pos);
      parts.push(this.buf.subarray(this.pos, this.pos + take));
      this.pos += take;
      this.offset += take;
      got += take;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /** Yields the next n bytes as they arrive. */
  async *chunks(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw truncated(what, this.offset, left);
      const take = Math.min(left, this.buf.length - this.pos);
      const chunk = this.buf.subarray(this.pos, this.pos + take);
      this.pos += take;
      this.offset += take;
      left -= take;
      yield chunk;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    const buffered = this.buf.length - this.pos;
    if (this.file && n > buffered) {
      if (this.offset + n > this.file.size) throw truncated(what, this.file.size, this.offset + n - this.file.size);
      // Past what is buffered: move the position; the end is found by the next header's read.
      this.buf = Buffer.alloc(0);
      this.pos = 0;
      this.offset += n;
      return;
    }
    for await (const _ of this.chunks(n, what)) {
      /* discard */
    }
  }

  /** Gives the underlying iterator a chance to release its resources. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function truncated(what: string, offset: number, missing: number): LayerError {
  return new LayerError(`tar stream truncated: ${what} ends at byte ${offset}, ${missing} more bytes expected`, { offset, missing });
}

/**
 * What the walkers share: the PAX and GNU long-name records waiting for their entry, and the
 * checks of every header. The walkers differ only in how bytes arrive (async or sync).
 */
class HeaderState {
  private pax: PaxRecords | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;

  /** At a zero block or the end of input: throws when a PAX or long-name header has no entry. */
  end(at: number, next: Buffer | null | undefined): void {
    if (next !== undefined && next !== null && !isZeroBlock(next)) {
      throw new LayerError(`tar stream: a zero block at byte ${at} is followed by data, not a second zero block: corrupt archive`, { offset: at });
    }
    if (this.pax !== undefined || this.longName !== undefined || this.longLink !== undefined) {
      throw new LayerError(`tar stream: a PAX or GNU long-name header ends the archive at byte ${at} with no entry after it`, { offset: at });
    }
  }

  /** The byte count of a metadata header's body (PAX, GNU long name), checked; -1 for an entry. */
  static metaSize(h: TarHeader, at: number): number {
    if (h.type !== 'pax' && h.type !== 'pax-global' && h.type !== 'gnu-longname' && h.type !== 'gnu-longlink') return -1;
    if (h.size > MAX_META_BYTES) {
      throw new LayerError(`tar stream: ${h.type} header at byte ${at} claims ${h.size} bytes, more than the ${MAX_META_BYTES} allowed`, { offset: at, size: h.size });
    }
    return h.size;
  }

  /** Takes in a metadata header's body (already read, padding not needed). */
  meta(h: TarHeader, body: Buffer, at: number): void {
    if (h.type === 'pax') {
      const r = parsePax(body, at);
      const pax = this.pax;
      this.pax = { ...(pax ?? {}), ...r, ...(r.xattrs || pax?.xattrs ? { xattrs: { ...(pax?.xattrs ?? {}), ...(r.xattrs ?? {}) } } : {}) };
    } else if (h.type === 'pax-global') parsePax(body, at); // checked, not applied
    else {
      const nul = body.indexOf(0);
      const text = decodeUtf8(nul === -1 ? body : body.subarray(0, nul), h.type === 'gnu-longname' ? 'GNU long name' : 'GNU long link name', at);
      if (h.type === 'gnu-longname') this.longName = text;
      else this.longLink = text;
    }
  }

  /** An entry's header, with the records before it applied (and forgotten), checked. */
  entry(h: TarHeader, at: number, dataOffset: number): TarEntryHeader {
    const pax = this.pax;
    const type = h.type as EntryType;
    const size = pax?.size ?? h.size;
    const dataSize = isHeaderOnly(type) ? 0 : size;
    const path = pax?.path ?? this.longName;
    const linkpath = pax?.linkpath ?? this.longLink;
    if (path === undefined && h.nameError) throw h.nameError;
    if (linkpath === undefined && h.linknameError && (type === 'hardlink' || type === 'symlink')) throw h.linknameError;
    const header: TarEntryHeader = {
      path: path ?? h.name,
      type,
      mode: h.mode & 0o7777,
      uid: pax?.uid ?? h.uid,
      gid: pax?.gid ?? h.gid,
      size: dataSize,
      mtime: pax?.mtime ?? h.mtime,
      linkpath: type === 'hardlink' || type === 'symlink' ? (linkpath ?? h.linkname) : '',
      uname: pax?.uname ?? h.uname,
      gname: pax?.gname ?? h.gname,
      devmajor: h.devmajor,
      devminor: h.devminor,
      offset: at,
      dataOffset,
      xattrs: pax?.xattrs ?? {},
    };
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    if (header.path === '') throw new LayerError(`tar entry at byte ${at} has an empty name`, { offset: at });
    if (header.uid < 0 || header.gid < 0) throw new LayerError(`tar entry ${JSON.stringify(header.path)}: negative uid/gid ${header.uid}/${header.gid}`, { offset: at, entry: header.path });
    if (dataSize < 0) throw new LayerError(`tar entry ${JSON.stringify(header.path)}: negative size ${dataSize}`, { offset: at, entry: header.path });
    return header;
  }
}

/**
 * The one tar header walker: reads entries from an uncompressed stream (see compression.ts for
 * .tar.gz and .tar.zst) or from an archive file by position (`openTarFile`). Stops at the
 * end-of-archive marker (two zero blocks) or at end of input on a header boundary, as GNU tar
 * and Go's archive/tar do; bytes after the marker are left unread.
 */
export async function* readTar(input: AsyncIterable<Uint8Array> | RandomAccessTar): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(input);
  const state = new HeaderState();
  try {
    for (;;) {
      const at = reader.offset;
      const block = await reader.readExact(BLOCK, 'a header');
      if (block === null || isZeroBlock(block)) {
        state.end(at, block === null ? undefined : await reader.readExact(BLOCK, 'the end-of-archive marker'));
        return;
      }
      const h = decodeHeader(block, at);
      const metaSize = HeaderState.metaSize(h, at);
      if (metaSize !== -1) {
        const body = metaSize === 0 ? Buffer.alloc(0) : await reader.readExact(metaSize, `the ${h.type} header at byte ${at}`);
        if (body === null) throw truncated(`the ${h.type} header at byte ${at}`, reader.offset, metaSize);
        await reader.skip(padding(metaSize), `the padding of the ${h.type} header at byte ${at}`);
        state.meta(h, body, at);
        continue;
      }
      const header = state.entry(h, at, reader.offset);
      const dataSize = header.size;
      let left = dataSize;
      let taken = false;
      let current = true;
      const what = `the data of ${JSON.stringify(header.path)}`;
      const entry: TarEntry = {
        ...header,
        body: () => {
          if (taken) throw new LayerError(`tar entry ${JSON.stringify(header.path)}: body() read twice`, { entry: header.path });
          taken = true;
          return (async function* () {
            const chunks = reader.chunks(left, what);
            for (;;) {
              if (!current) throw new LayerError(`tar entry ${JSON.stringify(header.path)}: body read after the next entry was taken`, { entry: header.path });
              const r = await chunks.next();
              if (r.done) return;
              left -= r.value.length;
              yield r.value;
            }
          })();
        },
      };
      yield entry;
      taken = true;
      current = false;
      await reader.skip(left, what);
      left = 0;
      await reader.skip(padding(dataSize), `the padding of ${JSON.stringify(header.path)}`);
    }
  } finally {
    await reader.close();
  }
}

/**
 * A source of an uncompressed tar that may also be read synchronously (an uncompressed file):
 * `readSync()` gives an iterator of its chunks, each valid until the next is taken, or undefined
 * when it cannot (compressed, not a file): then it is iterated asynchronously. One or the other.
 */
export interface SyncTarSource {
  readSync?(): Iterator<Buffer> | undefined;
}

/** ByteReader's synchronous twin, over chunks that may be reused: a chunk is valid until the next is taken. */
class SyncByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private ended = false;
  offset = 0;

  constructor(private readonly it: Iterator<Buffer>) {}

  private fill(): boolean {
    while (this.pos >= this.buf.length) {
      if (this.ended) return false;
      const r = this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      this.buf = r.value;
      this.pos = 0;
    }
    return true;
  }

  /**
   * Exactly n bytes; null when the input ends before the first byte. The result is a view of the
   * current chunk (valid until the next read) unless it spans chunks, then a copy.
   */
  readExact(n: number, what: string): Buffer | null {
    if (!this.fill()) return null;
    if (this.buf.length - this.pos >= n) {
      const out = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    // Spans chunks: copied, since the source may reuse its chunk's memory for the next.
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!this.fill()) throw truncated(what, this.offset, n - got);
      const take = Math.min(n - got, this.buf.length - this.pos);
      this.buf.copy(out, got, this.pos, this.pos + take);
      this.pos += take;
      this.offset += take;
      got += take;
    }
    return out;
  }

  /** The next piece of at most n bytes (n > 0): a view valid until the next read. */
  chunk(n: number, what: string): Buffer {
    if (!this.fill()) throw truncated(what, this.offset, n);
    const take = Math.min(n, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + take);
    this.pos += take;
    this.offset += take;
    return out;
  }

  skip(n: number, what: string): void {
    while (n > 0) n -= this.chunk(n, what).length;
  }

  close(): void {
    this.it.return?.();
  }
}

/** A tar entry read synchronously: `bodySync()` instead of `body()`. */
export interface SyncTarEntry extends TarEntryHeader {
  /**
   * The entry's data, exactly `size` bytes, as views that are valid only until the next chunk is
   * taken (write each before taking the next); may be called once, before the next entry.
   */
  bodySync(): Iterable<Buffer>;
  body(): AsyncIterable<Buffer>;
}

/**
 * readTar over chunks that arrive synchronously (an uncompressed file read with readSync): the
 * same walker (HeaderState), but no promise per header or per body chunk. The input may reuse
 * one buffer for every chunk: whatever outlives a chunk is copied.
 */
export function* readTarSync(input: Iterator<Buffer>): Generator<SyncTarEntry> {
  const reader = new SyncByteReader(input);
  const state = new HeaderState();
  try {
    for (;;) {
      const at = reader.offset;
      const block = reader.readExact(BLOCK, 'a header');
      if (block === null || isZeroBlock(block)) {
        state.end(at, block === null ? undefined : reader.readExact(BLOCK, 'the end-of-archive marker'));
        return;
      }
      const h = decodeHeader(block, at);
      const metaSize = HeaderState.metaSize(h, at);
      if (metaSize !== -1) {
        let body = metaSize === 0 ? Buffer.alloc(0) : reader.readExact(metaSize, `the ${h.type} header at byte ${at}`);
        if (body === null) throw truncated(`the ${h.type} header at byte ${at}`, reader.offset, metaSize);
        body = Buffer.from(body); // its records outlive the chunk
        reader.skip(padding(metaSize), `the padding of the ${h.type} header at byte ${at}`);
        state.meta(h, body, at);
        continue;
      }
      const header = state.entry(h, at, reader.offset) as SyncTarEntry;
      const dataSize = header.size;
      let left = dataSize;
      let taken = false;
      let current = true;
      const what = `the data of ${JSON.stringify(header.path)}`;
      const take = (): void => {
        if (taken) throw new LayerError(`tar entry ${JSON.stringify(header.path)}: body() read twice`, { entry: header.path });
        taken = true;
      };
      function* chunks(): Generator<Buffer> {
        for (;;) {
          if (!current) throw new LayerError(`tar entry ${JSON.stringify(header.path)}: body read after the next entry was taken`, { entry: header.path });
          if (left <= 0) return;
          const c = reader.chunk(left, what);
          left -= c.length;
          yield c;
        }
      }
      header.bodySync = () => {
        take();
        return chunks();
      };
      header.body = () => {
        take();
        // Copies: an async consumer may hold a chunk while the next is read.
        return (async function* () {
          for (const c of chunks()) yield Buffer.from(c);
        })();
      };
      yield header;
      taken = true;
      current = false;
      reader.skip(left, what);
      left = 0;
      reader.skip(padding(dataSize), `the padding of ${JSON.stringify(header.path)}`);
    }
  } finally {
    reader.close();
  }
}
