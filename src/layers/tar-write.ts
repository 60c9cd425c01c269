/**
 * A deterministic tar writer: the same entries always give the same bytes, so the sha256 of the
 * output (an OCI layer's diff_id) names the content and nothing else.
 *
 * - POSIX ustar headers with fixed fields: magic "ustar\0" version "00", empty uname/gname (owners
 *   are numeric), mode without file-type bits, mtime in whole seconds (what Docker writes: moby
 *   truncates layer mtimes to the second), devmajor/devminor zero except for devices.
 * - Names longer than 100 bytes are split into ustar prefix + name when a slash allows it (as Go's
 *   archive/tar does); only what still does not fit goes into a PAX extended header (path,
 *   linkpath, size, uid, gid, mtime) or holds extended attributes (SCHILY.xattr.*), with records sorted by key and the fixed name
 *   "././@PaxHeader", mode 0644, owner 0, mtime 0.
 * - Data padded to 512 bytes; the archive ends with two zero blocks and no record padding.
 */
import { LayerError } from '../errors.js';
import { BLOCK, MAX_OCTAL_11, MAX_OCTAL_7, encodeHeader, encodePax, padding, XATTR_PREFIX, splitUstarName, type HeaderFields } from './tar-header.js';
import type { EntryType } from './tar-read.js';

export interface WriteEntry {
  /** Relative path, '/'-separated, without a leading './' or '/'; directories without a trailing slash. */
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch; the fraction is dropped. */
  mtime: number;
  /** Data bytes: files only. */
  size?: number;
  /** Symlink target, or for a hard link the path of an earlier entry of this archive. */
  linkpath?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, written as PAX `SCHILY.xattr.NAME` records (sorted with the others). */
  xattrs?: Record<string, Buffer>;
  /** Exactly `size` bytes for files (the writer checks the count). */
  body?: () => AsyncIterable<Uint8Array>;
}

const PAX_NAME = '././@PaxHeader';

/** The longest prefix of `s` that is at most `max` UTF-8 bytes, cut at a character boundary. */
export function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let bytes = 0;
  let out = '';
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    bytes += n;
    out += ch;
  }
  return out;
}

/** The header block(s) for one entry: a PAX header first when some field does not fit ustar. */
export function encodeEntryHeader(e: WriteEntry): Buffer {
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  const mtime = Math.floor(e.mtime);
  const name = e.type === 'directory' ? `${e.path}/` : e.path;
  const linkpath = e.type === 'symlink' || e.type === 'hardlink' ? (e.linkpath ?? '') : '';
  if (name === '' || name === '/') throw new LayerError('tar writer: an entry has an empty name', {});
  const pax: [string, string | Buffer][] = [];
  const split = splitUstarName(name);
  if (!split) pax.push(['path', name]);
  if (Buffer.byteLength(linkpath) > 100) pax.push(['linkpath', linkpath]);
  if (size > MAX_OCTAL_11) pax.push(['size', String(size)]);
  if (e.uid > MAX_OCTAL_7) pax.push(['uid', String(e.uid)]);
  if (e.gid > MAX_OCTAL_7) pax.push(['gid', String(e.gid)]);
  if (mtime < 0 || mtime > MAX_OCTAL_11) pax.push(['mtime', String(mtime)]);
  for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push([`${XATTR_PREFIX}${k}`, v]);
  const fields: HeaderFields = {
    name: split ? split.name : truncateUtf8(name, 100),
    mode: e.mode & 0o7777,
    uid: e.uid > MAX_OCTAL_7 ? 0 : e.uid,
    gid: e.gid > MAX_OCTAL_7 ? 0 : e.gid,
    size: size > MAX_OCTAL_11 ? 0 : size,
    mtime: mtime < 0 || mtime > MAX_OCTAL_11 ? 0 : mtime,
    type: e.type,
    linkname: truncateUtf8(linkpath, 100),
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  };
  const header = encodeHeader(fields, split ? split.prefix : '');
  if (!pax.length) return header;
  pax.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const body = encodePax(pax);
  const paxHeader = encodeHeader({ name: PAX_NAME, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, type: 'pax' });
  return Buffer.concat([paxHeader, body, Buffer.alloc(padding(body.length)), header]);
}

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/**
 * The bytes of an archive holding `entries`, in the order given. A file's body must yield exactly
 * its size: fewer or more bytes is a LayerError (the file changed while it was being read).
 */
export async function* writeTar(entries: AsyncIterable<WriteEntry> | Iterable<WriteEntry>): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    yield encodeEntryHeader(e);
    if (e.type !== 'file') continue;
    const size = e.size ?? 0;
    let written = 0;
    if (size > 0) {
      if (!e.body) throw new LayerError(`tar writer: ${JSON.stringify(e.path)} has ${size} bytes but no body`, { entry: e.path });
      for await (const chunk of e.body()) {
        written += chunk.length;
        if (written > size) break;
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    }
    if (written !== size) {
      throw new LayerError(`tar writer: ${JSON.stringify(e.path)} gave ${written > size ? 'more than' : written} bytes where its header says ${size}: it changed while being read`, {
        entry: e.path,
        size,
        written,
      });
    }
    const pad = padding(size);
    if (pad) yield Buffer.alloc(pad);
  }
  yield END_OF_ARCHIVE;
}
