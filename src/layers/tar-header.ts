/**
 * One 512-byte tar header, decoded and encoded field by field, and the PAX extended-header records
 * that can precede it. Pure bytes, no I/O. Sources of truth: POSIX pax(1) "ustar Interchange
 * Format" and "pax Extended Header", GNU tar's tar.h (the `ustar  ` magic, base-256 numbers, the
 * `L`/`K` long-name entries), and Go's archive/tar (what Docker and containerd write).
 *
 *   off  size  field      encoding
 *   0    100   name       bytes, NUL-terminated when shorter
 *   100  8     mode       octal
 *   108  8     uid        octal, or GNU base-256 when the top bit of the first byte is set
 *   116  8     gid        "
 *   124  12    size       "
 *   136  12    mtime      " (seconds since the epoch)
 *   148  8     chksum     octal: sum of the 512 header bytes with this field read as 8 spaces
 *   156  1     typeflag   '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir,
 *                         '6' fifo, '7' contiguous file; 'x'/'g' PAX, 'L'/'K' GNU long names
 *   157  100   linkname
 *   257  6     magic      "ustar\0" (POSIX) or "ustar " (GNU, with version " \0")
 *   263  2     version    "00" (POSIX)
 *   265  32    uname
 *   297  32    gname
 *   329  8     devmajor   octal
 *   337  8     devminor   octal
 *   345  155   prefix     POSIX only: name = prefix + "/" + name. GNU uses these bytes for
 *                         atime/ctime, so the prefix is read only under the POSIX magic.
 */
import { LayerError } from '../errors.js';

export const BLOCK = 512;

/** The largest PAX or GNU long-name body read into memory; Linux's PATH_MAX is 4096. */
export const MAX_META_BYTES = 1024 * 1024;

export type TarType =
  | 'file'
  | 'hardlink'
  | 'symlink'
  | 'char'
  | 'block'
  | 'directory'
  | 'fifo'
  | 'pax'
  | 'pax-global'
  | 'gnu-longname'
  | 'gnu-longlink';

const TYPE_BY_FLAG: Readonly<Record<string, TarType>> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
  x: 'pax',
  g: 'pax-global',
  L: 'gnu-longname',
  K: 'gnu-longlink',
};

const FLAG_BY_TYPE: Readonly<Record<string, string>> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
  pax: 'x',
  'pax-global': 'g',
  'gnu-longname': 'L',
  'gnu-longlink': 'K',
};

/** Types whose header is the whole entry: Go's archive/tar reads no data for them whatever `size` says. */
export function isHeaderOnly(type: TarType): boolean {
  return type === 'hardlink' || type === 'symlink' || type === 'char' || type === 'block' || type === 'directory' || type === 'fifo';
}

/** A decoded header, before PAX or GNU long-name entries are applied to it. */
export interface TarHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: TarType;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** 'ustar' (POSIX, prefix read), 'gnu', or 'v7' (no magic). */
  format: 'ustar' | 'gnu' | 'v7';
  /** Set when `name` is not valid UTF-8: thrown only if no PAX path or GNU long name replaces it. */
  nameError?: LayerError;
  /** The same for `linkname`. */
  linknameError?: LayerError;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes UTF-8 strictly: a name that is not valid UTF-8 would be written back as other bytes. */
export function decodeUtf8(bytes: Uint8Array, what: string, at: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new LayerError(`tar header at byte ${at}: ${what} is not valid UTF-8 (hex ${Buffer.from(bytes).subarray(0, 64).toString('hex')}); such names are refused rather than rewritten`, {
      offset: at,
      field: what,
    });
  }
}

function cBytes(block: Buffer, off: number, len: number): Buffer {
  const field = block.subarray(off, off + len);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

/** A name field that is only an error when used: PAX or a GNU long name may replace it. */
function lazyName(bytes: Buffer, what: string, at: number): { text: string; error?: LayerError } {
  try {
    return { text: decodeUtf8(bytes, what, at) };
  } catch (error) {
    return { text: bytes.toString('latin1'), error: error as LayerError };
  }
}

/**
 * A numeric field: octal digits between optional spaces/NULs, or GNU base-256 (top bit of the
 * first byte set; 0xff starts a negative number). Anything else, or a value past 2^53, is refused.
 */
export function decodeNumber(field: Buffer, what: string, at: number): number {
  return decodeNumberAt(field, 0, field.length, what, at);
}

/** decodeNumber of `block[off, off + len)`, without a view of it for the common octal case. */
function decodeNumberAt(block: Buffer, off: number, len: number, what: string, at: number): number {
  if (len && (block[off]! & 0x80) !== 0) {
    const field = block.subarray(off, off + len);
    let v = 0n;
    for (const b of field) v = (v << 8n) | BigInt(b);
    if (field[0] === 0xff) v -= 1n << BigInt(8 * field.length);
    else v &= (1n << BigInt(8 * field.length - 1)) - 1n;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new LayerError(`tar header at byte ${at}: ${what} ${v} (base-256) is out of range`, { offset: at, field: what });
    }
    return Number(v);
  }
  // Octal digits between leading and trailing spaces/NULs, read byte by byte (9 fields a header).
  let start = off;
  let end = off + len;
  while (start < end && (block[start] === 0x20 || block[start] === 0)) start++;
  while (end > start && (block[end - 1] === 0x20 || block[end - 1] === 0)) end--;
  let v = 0;
  for (let i = start; i < end; i++) {
    const digit = block[i]! - 0x30;
    if (digit < 0 || digit > 7) {
      throw new LayerError(`tar header at byte ${at}: ${what} field ${JSON.stringify(block.toString('latin1', start, end))} is not an octal number`, { offset: at, field: what });
    }
    v = v * 8 + digit;
  }
  // Past 2^53 the sum is inexact but stays past it: refused all the same.
  if (!Number.isSafeInteger(v)) {
    throw new LayerError(`tar header at byte ${at}: ${what} ${block.toString('latin1', start, end)} (octal) is out of range`, { offset: at, field: what });
  }
  return v;
}

/** The header checksum: all 512 bytes summed with the chksum field counted as spaces (unsigned and signed). */
export function headerChecksums(block: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  return { unsigned, signed };
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Decodes one non-zero header block; `at` is its byte offset in the stream, for messages. */
export function decodeHeader(block: Buffer, at: number): TarHeader {
  if (block.length !== BLOCK) throw new LayerError(`tar header at byte ${at}: ${block.length} bytes, expected ${BLOCK}`, { offset: at });
  const stored = decodeNumberAt(block, 148, 8, 'chksum', at);
  const sums = headerChecksums(block);
  if (stored !== sums.unsigned && stored !== sums.signed) {
    throw new LayerError(`tar header at byte ${at}: checksum ${stored} does not match the header's ${sums.unsigned}: not a tar archive, or corrupt`, {
      offset: at,
      stored,
      computed: sums.unsigned,
    });
  }
  const magic = block.subarray(257, 263).toString('latin1');
  const version = block.subarray(263, 265).toString('latin1');
  const format = magic === 'ustar\0' ? 'ustar' : magic === 'ustar ' && version === ' \0' ? 'gnu' : 'v7';
  const flag = String.fromCharCode(block[156]!);
  let type = TYPE_BY_FLAG[flag];
  let nameBytes = cBytes(block, 0, 100);
  if (format === 'ustar') {
    const prefix = cBytes(block, 345, 155);
    if (prefix.length) nameBytes = Buffer.concat([prefix, Buffer.from('/'), nameBytes]);
  }
  const name = lazyName(nameBytes, 'name', at);
  const linkname = lazyName(cBytes(block, 157, 100), 'linkname', at);
  if (type === undefined) {
    throw new LayerError(`tar entry ${JSON.stringify(name.text)} at byte ${at}: type ${JSON.stringify(flag)} is not supported (only files, links, directories, devices, fifos, PAX and GNU long names)`, {
      offset: at,
      entry: name.text,
      typeflag: flag,
    });
  }
  // V7 archives mark directories by a trailing slash on a regular entry.
  if (type === 'file' && flag === '\0' && name.text.endsWith('/')) type = 'directory';
  const field = (off: number, len: number, what: string) => decodeNumberAt(block, off, len, what, at);
  const hasDev = format !== 'v7';
  // Owner names are informational (owners are numeric in OCI layers): decoded leniently.
  const owner = (off: number) => (format === 'v7' ? '' : cBytes(block, off, 32).toString('utf8'));
  return {
    name: name.text,
    mode: field(100, 8, 'mode'),
    uid: field(108, 8, 'uid'),
    gid: field(116, 8, 'gid'),
    size: field(124, 12, 'size'),
    mtime: field(136, 12, 'mtime'),
    type,
    linkname: linkname.text,
    uname: owner(265),
    gname: owner(297),
    devmajor: hasDev ? field(329, 8, 'devmajor') : 0,
    devminor: hasDev ? field(337, 8, 'devminor') : 0,
    format,
    ...(name.error ? { nameError: name.error } : {}),
    ...(linkname.error ? { linknameError: linkname.error } : {}),
  };
}

/** The PAX keys mkimage reads; others (atime, ctime, other SCHILY.*, LIBARCHIVE.*) are skipped. */
export interface PaxRecords {
  /** Extended attributes from `SCHILY.xattr.NAME=VALUE` records (GNU tar, Go's archive/tar, Docker):
   * the value is the attribute's raw bytes (security.capability is binary), in record order. */
  xattrs?: Record<string, Buffer>;
  path?: string;
  linkpath?: string;
  size?: number;
  mtime?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
}

/** PAX key prefix of an extended attribute (star's, adopted by GNU tar and Go's archive/tar). */
export const XATTR_PREFIX = 'SCHILY.xattr.';
/** Linux XATTR_NAME_MAX. */
const XATTR_NAME_MAX = 255;

function paxInteger(key: string, value: string, at: number): number {
  if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new LayerError(`PAX header at byte ${at}: ${key}=${JSON.stringify(value.slice(0, 40))} is not a non-negative integer`, { offset: at, key });
  }
  return Number(value);
}

/**
 * Parses the records of a PAX extended header: each is "LEN KEY=VALUE\n" where LEN counts the
 * whole record in bytes. Every length is checked against what is left; a bad record is refused.
 */
export function parsePax(body: Buffer, at: number): PaxRecords {
  const out: PaxRecords = {};
  let pos = 0;
  while (pos < body.length) {
    // Some writers pad the body with NULs.
    if (body[pos] === 0) break;
    const space = body.indexOf(0x20, pos);
    if (space === -1 || space - pos > 20) throw new LayerError(`PAX header at byte ${at}: record at ${pos} has no length`, { offset: at });
    const lenText = body.subarray(pos, space).toString('latin1');
    if (!/^[0-9]+$/.test(lenText)) throw new LayerError(`PAX header at byte ${at}: record length ${JSON.stringify(lenText)} is not a number`, { offset: at });
    const len = Number(lenText);
    const end = pos + len;
    if (len <= space - pos + 1 || end > body.length || body[end - 1] !== 0x0a) {
      throw new LayerError(`PAX header at byte ${at}: record at ${pos} claims ${len} bytes but is malformed or overruns the ${body.length}-byte header`, { offset: at });
    }
    const record = body.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new LayerError(`PAX header at byte ${at}: record at ${pos} has no key=value`, { offset: at });
    const key = record.subarray(0, eq).toString('latin1');
    const valueBytes = record.subarray(eq + 1);
    pos = end;
    if (key.startsWith(XATTR_PREFIX)) {
      const name = decodeUtf8(record.subarray(XATTR_PREFIX.length, eq), 'PAX xattr name', at);
      if (name === '' || Buffer.byteLength(name) > XATTR_NAME_MAX || name.includes('\0')) {
        throw new LayerError(`PAX header at byte ${at}: extended attribute name ${JSON.stringify(name.slice(0, 40))} is empty, holds a NUL or is longer than ${XATTR_NAME_MAX} bytes`, { offset: at, key });
      }
      out.xattrs = { ...(out.xattrs ?? {}), [name]: Buffer.from(valueBytes) };
      continue;
    }
    if (!['path', 'linkpath', 'size', 'mtime', 'uid', 'gid', 'uname', 'gname'].includes(key)) continue;
    const value = decodeUtf8(valueBytes, `PAX ${key}`, at);
    if (value.includes('\0')) throw new LayerError(`PAX header at byte ${at}: ${key} contains a NUL byte`, { offset: at, key });
    switch (key) {
      case 'path':
        out.path = value;
        break;
      case 'linkpath':
        out.linkpath = value;
        break;
      case 'uname':
        out.uname = value;
        break;
      case 'gname':
        out.gname = value;
        break;
      case 'size':
        out.size = paxInteger(key, value, at);
        break;
      case 'uid':
        out.uid = paxInteger(key, value, at);
        break;
      case 'gid':
        out.gid = paxInteger(key, value, at);
        break;
      case 'mtime': {
        if (!/^-?[0-9]{1,16}(\.[0-9]{0,18})?$/.test(value)) {
          throw new LayerError(`PAX header at byte ${at}: mtime=${JSON.stringify(value.slice(0, 40))} is not a decimal number`, { offset: at, key });
        }
        out.mtime = Number(value);
        break;
      }
    }
  }
  return out;
}

/** One PAX record with its self-inclusive length prefix; a Buffer value is written as raw bytes (xattrs). */
function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.from('\n')]);
  const bodyLen = body.length;
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

/** The body of a PAX extended header; keys are written in the order given (callers sort). */
export function encodePax(records: readonly (readonly [string, string | Buffer])[]): Buffer {
  return Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
}

/** What the writer puts in one header (the decoded header's fields, the optional ones optional);
 * every field fixed so the same entry gives the same bytes. */
export type HeaderFields = Pick<TarHeader, 'name' | 'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'type'> &
  Partial<Pick<TarHeader, 'linkname' | 'devmajor' | 'devminor'>>;

/** Largest values the octal fields hold: 7 digits for mode/uid/gid/dev, 11 for size and mtime. */
export const MAX_OCTAL_7 = 0o7777777;
export const MAX_OCTAL_11 = 0o77777777777;

function writeOctal(block: Buffer, off: number, len: number, value: number, what: string): void {
  const digits = len - 1;
  if (!Number.isSafeInteger(value) || value < 0 || value > 8 ** digits - 1) {
    throw new LayerError(`tar writer: ${what} ${value} does not fit a ${digits}-digit octal field`, { field: what, value });
  }
  block.write(value.toString(8).padStart(digits, '0'), off, digits, 'latin1');
  block[off + digits] = 0;
}

function writeString(block: Buffer, off: number, len: number, value: string, what: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > len) throw new LayerError(`tar writer: ${what} ${JSON.stringify(value)} is ${bytes.length} bytes, the field holds ${len}`, { field: what });
  bytes.copy(block, off);
}

/**
 * Splits a name into ustar prefix and name (prefix <= 155 bytes, name <= 100, split at a slash),
 * or returns undefined when it cannot be split (then a PAX path record carries it).
 */
export function splitUstarName(name: string): { prefix: string; name: string } | undefined {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length <= 100) return { prefix: '', name };
  // Go's splitUSTARPath: the last slash within the first 156 bytes, not counting a trailing one.
  // A slash byte never occurs inside a UTF-8 sequence, so splitting bytes there is safe.
  let length = bytes.length;
  if (length > 156) length = 156;
  else if (bytes[length - 1] === 0x2f) length--;
  const i = bytes.subarray(0, length).lastIndexOf(0x2f);
  const nlen = bytes.length - i - 1;
  if (i <= 0 || nlen > 100 || nlen === 0 || i > 155) return undefined;
  return { prefix: bytes.subarray(0, i).toString('utf8'), name: bytes.subarray(i + 1).toString('utf8') };
}

/**
 * Encodes one POSIX ustar header. The caller has already moved into PAX records whatever does not
 * fit (see tar-write.ts): this function refuses values that do not fit rather than truncate them.
 * Fixed fields: magic "ustar\0", version "00", empty uname/gname (owners are numeric), empty
 * devmajor/devminor except for devices. Byte for byte what Python's tarfile writes in
 * USTAR_FORMAT with empty owner names (the unit tests check it).
 */
export function encodeHeader(h: HeaderFields, prefix = ''): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, h.name, 'name');
  writeOctal(block, 100, 8, h.mode & 0o7777, 'mode');
  writeOctal(block, 108, 8, h.uid, 'uid');
  writeOctal(block, 116, 8, h.gid, 'gid');
  writeOctal(block, 124, 12, h.size, 'size');
  writeOctal(block, 136, 12, h.mtime, 'mtime');
  block[156] = FLAG_BY_TYPE[h.type]!.charCodeAt(0);
  writeString(block, 157, 100, h.linkname ?? '', 'linkname');
  block.write('ustar\0', 257, 6, 'latin1');
  block.write('00', 263, 2, 'latin1');
  // Device numbers only for devices; other entries leave the fields empty (as GNU tar and
  // Python's tarfile do).
  if (h.type === 'char' || h.type === 'block') {
    writeOctal(block, 329, 8, h.devmajor ?? 0, 'devmajor');
    writeOctal(block, 337, 8, h.devminor ?? 0, 'devminor');
  }
  writeString(block, 345, 155, prefix, 'prefix');
  const sum = headerChecksums(block).unsigned;
  block.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  block[154] = 0;
  block[155] = 0x20;
  return block;
}

/** Bytes of zero padding after `size` bytes of data, up to the next block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
