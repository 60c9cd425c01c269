/**
 * The ZFS vdev label: how `inspect` and `attach` learn which pool lives in a partition without
 * importing it. Pure: bytes in, values out; every length read from the bytes is bounded before it
 * is used, so hostile input gives a StructError, never a crash, a huge allocation or a loop.
 *
 * Sources of truth (OpenZFS): include/sys/vdev_impl.h (vdev_label_t, vdev_phys_t), module/zfs/
 * vdev_label.c (vdev_label_offset), include/sys/zio.h and module/zfs/zio_checksum.c (zio_eck_t,
 * the embedded SHA-256 label checksum and its offset verifier), module/nvpair/nvpair.c (the XDR
 * packing of an nvlist), include/sys/nvpair.h (data_type_t), include/sys/fs/zfs.h
 * (ZPOOL_CONFIG_* names, pool_state_t).
 *
 * A vdev carries four 256 KiB labels, two at its start and two at its end:
 *
 *   0      256K     ...      psize-512K  psize-256K  psize       (psize: vdev size, rounded down to 256 KiB)
 *   | L0    | L1     | data ... | L2        | L3        |
 *
 *   label: off   size   what
 *          0     8K     blank (room for a VTOC/disk label)
 *          8K    8K     boot environment header
 *          16K   112K   vdev_phys: XDR-packed nvlist, then a 40-byte zio_eck_t at its end
 *          128K  128K   uberblock ring
 *
 *   zio_eck_t (the last 40 bytes of vdev_phys, in the writer's byte order):
 *          zec_magic 0x0210da7ab10c7a11, zec_cksum[4]: SHA-256 of the whole 112 KiB with zec_cksum
 *          set to the verifier {offset of this vdev_phys in the vdev, 0, 0, 0}; each word is 8
 *          digest bytes read big-endian.
 *
 *   packed nvlist: nvs_header (encoding 1 = XDR, endian, 2 reserved), then XDR (big-endian, 4-byte
 *   units): int32 nvl_version (0), uint32 nvl_nvflag, pairs, two zero int32s at the end. A pair:
 *   int32 encoded size (of the whole pair, from this field), int32 decoded size, string name
 *   (uint32 length, bytes, padding to 4), int32 type, int32 nelem, value. Embedded nvlists are
 *   version, flag, pairs, end marker again (no nvs_header).
 */
import { sha256 } from './digest.js';
import { StructError } from '../errors.js';
import { KiB } from './units.js';

export const VDEV_LABEL_BYTES = 256 * KiB;
export const VDEV_LABELS = 4;
/** Offset of vdev_phys in a label: 8 KiB blank + 8 KiB boot header. */
export const VDEV_PHYS_OFFSET = 16 * KiB;
export const VDEV_PHYS_BYTES = 112 * KiB;
/** zio_eck_t: zec_magic (8) + zec_cksum (4 x 8). */
export const ZIO_ECK_BYTES = 40;
export const ZEC_MAGIC = 0x0210da7ab10c7a11n;
/** The smallest vdev ZFS accepts (SPA_MINDEVSIZE). */
export const SPA_MINDEVSIZE = 64 * 1024 * 1024;
/** nvpair.c: nvpair_max_recursion in the kernel. */
export const NV_MAX_DEPTH = 20;
export const NV_ENCODE_XDR = 1;
export const NV_VERSION = 0;

/** include/sys/nvpair.h data_type_t. */
export const NV_TYPES = [
  'unknown', 'boolean', 'byte', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'string',
  'byte_array', 'int16_array', 'uint16_array', 'int32_array', 'uint32_array', 'int64_array', 'uint64_array',
  'string_array', 'hrtime', 'nvlist', 'nvlist_array', 'boolean_value', 'int8', 'uint8', 'boolean_array',
  'int8_array', 'uint8_array', 'double',
] as const;
export type NvTypeName = (typeof NV_TYPES)[number];

export type NvValue = boolean | number | bigint | string | Buffer | NvList | NvValue[];
export interface NvPair {
  name: string;
  type: NvTypeName;
  value: NvValue;
}
export interface NvList {
  version: number;
  flags: number;
  pairs: NvPair[];
}

/** pool_state_t, include/sys/fs/zfs.h. */
export const POOL_STATES = ['active', 'exported', 'destroyed', 'spare', 'l2cache', 'uninitialized', 'unavail', 'potentially-active'] as const;
export type PoolState = (typeof POOL_STATES)[number] | 'unknown';

/** Offsets, within the vdev, of the four labels' vdev_phys (labels 2 and 3 need the vdev size). */
export function vdevPhysOffsets(vdevSizeBytes?: number): number[] {
  const front = [0, 1].map((l) => l * VDEV_LABEL_BYTES + VDEV_PHYS_OFFSET);
  if (vdevSizeBytes === undefined || vdevSizeBytes < VDEV_LABELS * VDEV_LABEL_BYTES) return front;
  const psize = Math.floor(vdevSizeBytes / VDEV_LABEL_BYTES) * VDEV_LABEL_BYTES;
  return [...front, ...[2, 3].map((l) => l * VDEV_LABEL_BYTES + VDEV_PHYS_OFFSET + psize - VDEV_LABELS * VDEV_LABEL_BYTES)];
}

// ---------------------------------------------------------------------------------------------
// XDR reader: every read checks its bounds first.

class Xdr {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    public end: number,
  ) {
    this.pos = start;
  }

  fail(what: string): never {
    throw new StructError(`ZFS label nvlist: ${what} at byte ${this.pos}`, { offset: this.pos });
  }

  need(bytes: number, what: string): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || this.pos + bytes > this.end) {
      this.fail(`${what} needs ${bytes} bytes, ${Math.max(0, this.end - this.pos)} are left`);
    }
  }

  int32(what = 'int32'): number {
    this.need(4, what);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint32(what = 'uint32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  int64(): bigint {
    this.need(8, 'int64');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uint64(): bigint {
    this.need(8, 'uint64');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  double(): number {
    this.need(8, 'double');
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Opaque bytes padded to a multiple of 4. */
  opaque(length: number, what: string): Buffer {
    const padded = Math.ceil(length / 4) * 4;
    this.need(padded, what);
    const b = Buffer.from(this.buf.subarray(this.pos, this.pos + length));
    this.pos += padded;
    return b;
  }

  string(what: string): string {
    const length = this.uint32(`${what} length`);
    const bytes = this.opaque(length, what);
    const nul = bytes.indexOf(0);
    return (nul >= 0 ? bytes.subarray(0, nul) : bytes).toString('utf8');
  }

  /** An element count, bounded by what the rest of the stream can hold at `minBytes` each. */
  count(n: number, minBytes: number, what: string): number {
    if (n < 0 || n * minBytes > this.end - this.pos) this.fail(`${what} claims ${n} elements, more than the ${this.end - this.pos} bytes left hold`);
    return n;
  }
}

function decodeValue(x: Xdr, type: number, nelem: number, depth: number): NvValue {
  const ints = (read: () => number | bigint, size: number, what: string) => {
    const n = x.count(x.uint32(`${what} count`), size, what);
    if (n !== nelem) x.fail(`${what} holds ${n} elements, the pair says ${nelem}`);
    return Array.from({ length: n }, read);
  };
  switch (NV_TYPES[type]) {
    case 'boolean':
      return true;
    case 'byte':
    case 'uint8':
      return x.uint32('uint8') & 0xff;
    case 'int8':
      return (x.int32('int8') << 24) >> 24;
    case 'int16':
      return (x.int32('int16') << 16) >> 16;
    case 'uint16':
      return x.uint32('uint16') & 0xffff;
    case 'int32':
      return x.int32();
    case 'uint32':
      return x.uint32();
    case 'boolean_value':
      return x.int32('boolean') !== 0;
    case 'int64':
    case 'hrtime':
      return x.int64();
    case 'uint64':
      return x.uint64();
    case 'double':
      return x.double();
    case 'string':
      return x.string('string value');
    case 'byte_array':
      return x.opaque(x.count(nelem, 1, 'byte array'), 'byte array');
    case 'int8_array':
    case 'uint8_array':
    case 'int16_array':
    case 'uint16_array':
    case 'int32_array':
    case 'boolean_array':
      return ints(() => x.int32(), 4, NV_TYPES[type]!);
    case 'uint32_array':
      return ints(() => x.uint32(), 4, 'uint32 array');
    case 'int64_array':
      return ints(() => x.int64(), 8, 'int64 array');
    case 'uint64_array':
      return ints(() => x.uint64(), 8, 'uint64 array');
    case 'string_array':
      return Array.from({ length: x.count(nelem, 4, 'string array') }, () => x.string('string array element'));
    case 'nvlist':
      return decodeNvlistBody(x, depth + 1);
    case 'nvlist_array':
      return Array.from({ length: x.count(nelem, 16, 'nvlist array') }, () => decodeNvlistBody(x, depth + 1));
    default:
      return x.fail(`unknown nvpair type ${type}`);
  }
}

function decodeNvlistBody(x: Xdr, depth: number): NvList {
  if (depth > NV_MAX_DEPTH) x.fail(`nvlists nested deeper than ${NV_MAX_DEPTH}`);
  const version = x.int32('nvl_version');
  if (version !== NV_VERSION) x.fail(`nvl_version is ${version}, not ${NV_VERSION}`);
  const flags = x.uint32('nvl_nvflag');
  const pairs: NvPair[] = [];
  for (;;) {
    const start = x.pos;
    const encoded = x.int32('encoded size');
    const decoded = x.int32('decoded size');
    if (encoded === 0 && decoded === 0) break;
    // 5 words at least: two sizes, name length, type, nelem. The pair ends where it says: each
    // pair moves the cursor forward by at least 20 bytes, so the loop ends with the buffer.
    if (encoded < 20 || decoded < 0 || start + encoded > x.end) {
      x.pos = start;
      x.fail(`nvpair encoded size ${encoded} does not fit the ${x.end - start} bytes left`);
    }
    const outer = x.end;
    x.end = start + encoded;
    const name = x.string('nvpair name');
    const type = x.int32('nvpair type');
    const nelem = x.int32('nvpair nelem');
    if (type <= 0 || type >= NV_TYPES.length) x.fail(`nvpair ${JSON.stringify(name)} has type ${type}`);
    if (nelem < 0) x.fail(`nvpair ${JSON.stringify(name)} has ${nelem} elements`);
    const value = nelem === 0 && NV_TYPES[type] !== 'boolean' ? [] : decodeValue(x, type, nelem, depth);
    x.end = outer;
    x.pos = start + encoded;
    pairs.push({ name, type: NV_TYPES[type]!, value });
  }
  return { version, flags, pairs };
}

/** A packed nvlist (nvs_header + XDR stream), as nvlist_unpack reads it. */
export function decodeNvlist(buf: Buffer): NvList {
  if (buf.length < 4 + 8 + 8) throw new StructError(`packed nvlist is ${buf.length} bytes: too short for a header and an empty list`, { length: buf.length });
  const encoding = buf[0]!;
  if (encoding !== NV_ENCODE_XDR) {
    throw new StructError(`packed nvlist encoding is ${encoding}: only XDR (1), what vdev labels use, is read`, { encoding });
  }
  return decodeNvlistBody(new Xdr(buf, 4, buf.length), 0);
}

export function nvGet(list: NvList, name: string): NvValue | undefined {
  return list.pairs.find((p) => p.name === name)?.value;
}

function nvString(list: NvList, name: string): string | undefined {
  const v = nvGet(list, name);
  return typeof v === 'string' ? v : undefined;
}

function nvU64(list: NvList, name: string): bigint | undefined {
  const v = nvGet(list, name);
  return typeof v === 'bigint' ? v : undefined;
}

function isNvList(v: NvValue | undefined): v is NvList {
  return typeof v === 'object' && v !== null && !Buffer.isBuffer(v) && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------
// The label checksum

export type ByteOrder = 'le' | 'be';

/** The byte order the label was written in, from zec_magic; undefined when there is no label. */
export function labelByteOrder(vdevPhys: Buffer): ByteOrder | undefined {
  if (vdevPhys.length !== VDEV_PHYS_BYTES) return undefined;
  const at = VDEV_PHYS_BYTES - ZIO_ECK_BYTES;
  if (vdevPhys.readBigUInt64LE(at) === ZEC_MAGIC) return 'le';
  if (vdevPhys.readBigUInt64BE(at) === ZEC_MAGIC) return 'be';
  return undefined;
}

/** The four checksum words of `vdevPhys` as found at `offset` in the vdev. */
export function labelChecksum(vdevPhys: Buffer, offset: number, order: ByteOrder = 'le'): bigint[] {
  const copy = Buffer.from(vdevPhys);
  const at = VDEV_PHYS_BYTES - ZIO_ECK_BYTES + 8;
  const verifier = [BigInt(offset), 0n, 0n, 0n];
  verifier.forEach((w, i) => (order === 'le' ? copy.writeBigUInt64LE(w, at + 8 * i) : copy.writeBigUInt64BE(w, at + 8 * i)));
  const digest = sha256(copy);
  return [0, 1, 2, 3].map((i) => digest.readBigUInt64BE(8 * i));
}

export function storedChecksum(vdevPhys: Buffer, order: ByteOrder): bigint[] {
  const at = VDEV_PHYS_BYTES - ZIO_ECK_BYTES + 8;
  return [0, 1, 2, 3].map((i) => (order === 'le' ? vdevPhys.readBigUInt64LE(at + 8 * i) : vdevPhys.readBigUInt64BE(at + 8 * i)));
}

/** Writes magic and a correct checksum for `offset` (tests build labels at other offsets with it). */
export function sealVdevPhys(vdevPhys: Buffer, offset: number, order: ByteOrder = 'le'): Buffer {
  const out = Buffer.from(vdevPhys);
  const at = VDEV_PHYS_BYTES - ZIO_ECK_BYTES;
  if (order === 'le') out.writeBigUInt64LE(ZEC_MAGIC, at);
  else out.writeBigUInt64BE(ZEC_MAGIC, at);
  labelChecksum(out, offset, order).forEach((w, i) => (order === 'le' ? out.writeBigUInt64LE(w, at + 8 + 8 * i) : out.writeBigUInt64BE(w, at + 8 + 8 * i)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The label

export interface ZfsLabel {
  /** The pool's name on disk. */
  pool: string;
  /** pool_guid, decimal (a 64-bit number: as zpool prints it). */
  guid: string;
  /** This vdev's guid. */
  vdevGuid: string;
  /** Pool version: 1..28 legacy, 5000 feature flags. */
  version: number;
  state: PoolState;
  txg: string;
  hostname?: string;
  /** hostid as 8 hex digits (what hostid(1) prints). */
  hostid?: string;
  /** The vdev's path when the pool was last imported (a host's device name, for information only). */
  path?: string;
  ashift?: number;
  /** Feature flags a reader needs (pool version 5000). */
  featuresForRead?: string[];
}

/** The facts mkimage uses, from a decoded label config. Throws StructError when one is missing. */
export function labelFromConfig(config: NvList): ZfsLabel {
  const pool = nvString(config, 'name');
  const guid = nvU64(config, 'pool_guid');
  const version = nvU64(config, 'version');
  const missing = [pool === undefined && 'name', guid === undefined && 'pool_guid', version === undefined && 'version'].filter(Boolean);
  if (missing.length) throw new StructError(`ZFS label has no ${missing.join(', ')}: not a pool member (a spare or cache device, or damaged)`, { missing });
  const state = nvU64(config, 'state');
  const hostid = nvU64(config, 'hostid');
  const tree = nvGet(config, 'vdev_tree');
  const features = nvGet(config, 'features_for_read');
  const label: ZfsLabel = {
    pool: pool!,
    guid: guid!.toString(),
    vdevGuid: (nvU64(config, 'guid') ?? 0n).toString(),
    version: Number(version),
    state: state !== undefined && state < BigInt(POOL_STATES.length) ? POOL_STATES[Number(state)]! : 'unknown',
    txg: (nvU64(config, 'txg') ?? 0n).toString(),
  };
  const hostname = nvString(config, 'hostname');
  if (hostname !== undefined) label.hostname = hostname;
  if (hostid !== undefined) label.hostid = hostid.toString(16).padStart(8, '0');
  if (isNvList(tree)) {
    const path = nvString(tree, 'path');
    const ashift = nvU64(tree, 'ashift');
    if (path !== undefined) label.path = path;
    if (ashift !== undefined) label.ashift = Number(ashift);
  }
  if (isNvList(features)) label.featuresForRead = features.pairs.map((p) => p.name);
  return label;
}

export type VdevPhysResult =
  | { status: 'ok'; label: ZfsLabel; config: NvList }
  /** No zec_magic: nothing was ever written here (or not ZFS). */
  | { status: 'absent' }
  | { status: 'bad-checksum'; expected: string; found: string }
  | { status: 'invalid'; error: StructError };

/**
 * Decodes one vdev_phys (112 KiB). With `offset` (its place in the vdev) the embedded SHA-256 is
 * verified first, as ZFS does; a label failing it is not read.
 */
export function decodeVdevPhys(vdevPhys: Buffer, offset?: number): VdevPhysResult {
  if (vdevPhys.length !== VDEV_PHYS_BYTES) {
    return { status: 'invalid', error: new StructError(`vdev_phys is ${vdevPhys.length} bytes, not ${VDEV_PHYS_BYTES}`, { length: vdevPhys.length }) };
  }
  const order = labelByteOrder(vdevPhys);
  if (!order) return { status: 'absent' };
  if (offset !== undefined) {
    const want = labelChecksum(vdevPhys, offset, order);
    const have = storedChecksum(vdevPhys, order);
    if (want.some((w, i) => w !== have[i])) {
      const hex = (ws: bigint[]) => ws.map((w) => w.toString(16).padStart(16, '0')).join(':');
      return { status: 'bad-checksum', expected: hex(want), found: hex(have) };
    }
  }
  try {
    const config = decodeNvlist(vdevPhys.subarray(0, VDEV_PHYS_BYTES - ZIO_ECK_BYTES));
    return { status: 'ok', label: labelFromConfig(config), config };
  } catch (e) {
    if (e instanceof StructError) return { status: 'invalid', error: e };
    throw e;
  }
}
