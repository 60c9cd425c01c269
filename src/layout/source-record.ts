/**
 * The source record: where an image built with `--from` came from, in the image's own header so
 * that `inspect` (and `qemu-args`) can show it without mounting anything. mkimage's own format.
 *
 * It lives in bytes 1024..4095 of the image file, free in both layouts mkimage writes:
 *
 *   0     512   MBR (or protective MBR)
 *   512   512   GPT header (LBA 1; GPT layout only)
 *   1024  3072  source record (this file), zero when the image has none
 *   4096  4096  PFN info block (struct nd_pfn_sb)
 *   8192  ...   GPT entries from LBA 16 (GPT layout only), then zero up to dataoff
 *
 * The guest never sees it (its /dev/pmem0 starts at dataoff), and no host tool reads these bytes
 * (fdisk and sfdisk read LBA 0, 1 and the entry array; the kernel's PFN probe reads 4096).
 *
 *   off  size  field
 *   0    8     magic       "MKIMGSRC"
 *   8    4     version     u32 LE, 1
 *   12   4     length      u32 LE, bytes of JSON that follow the header (1 .. 3040)
 *   16   4     crc32       u32 LE, CRC-32 (ISO-HDLC, zlib's) of those JSON bytes
 *   20   12    reserved    zero
 *   32   len   json        UTF-8 compact JSON: SourceRecord below; the rest of the 3072 bytes zero
 */
import { crc32 } from './crc32.js';
import type { Problem } from '../errors.js';
import { blob, defineStruct, u32 } from './struct.js';

export const SOURCE_RECORD_OFFSET_BYTES = 1024;
/** The whole area: up to the PFN info block at 4096. */
export const SOURCE_RECORD_BYTES = 3072;
export const SOURCE_RECORD_MAGIC = Buffer.from('MKIMGSRC', 'latin1');
export const SOURCE_RECORD_VERSION = 1;

/** What the record says (the JSON part). */
export interface SourceRecord {
  /** The image reference the source named (e.g. "docker.io/library/debian:bookworm"), if any. */
  reference?: string;
  /** "sha256:..." of the image manifest, if the source had one. */
  manifestDigest?: string;
  /** "sha256:..." of the image config blob, if any. */
  configDigest?: string;
  /**
   * The filesystem holds /.mkimage/config.json (image-config.ts), /.mkimage/init and its mount
   * points (guest/init.ts): `qemu-args --cmdline` then boots it with init=/.mkimage/init.
   */
  hasGuestConfig: boolean;
}

interface RecordHeader {
  magic: Buffer;
  version: number;
  length: number;
  crc32: number;
  reserved: Buffer;
}

const HEADER = defineStruct<RecordHeader>([blob(8, 'magic'), u32('version'), u32('length'), u32('crc32'), blob(12, 'reserved')]);
export const SOURCE_RECORD_HEADER_BYTES = HEADER.span;
export const SOURCE_RECORD_MAX_JSON_BYTES = SOURCE_RECORD_BYTES - HEADER.span;

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function checkSourceRecord(r: SourceRecord): Problem[] {
  const problems: Problem[] = [];
  for (const key of ['manifestDigest', 'configDigest'] as const) {
    const v = r[key];
    if (v !== undefined && !DIGEST_RE.test(v)) problems.push({ field: `source.${key}`, message: `${JSON.stringify(v)} is not sha256:<64 hex digits>` });
  }
  if (r.reference !== undefined && (typeof r.reference !== 'string' || r.reference === '')) problems.push({ field: 'source.reference', message: 'an empty reference is written as none' });
  if (typeof r.hasGuestConfig !== 'boolean') problems.push({ field: 'source.hasGuestConfig', message: 'must be true or false' });
  const json = jsonOf(r);
  if (json.length > SOURCE_RECORD_MAX_JSON_BYTES) problems.push({ field: 'source', message: `${json.length} bytes of JSON, more than the ${SOURCE_RECORD_MAX_JSON_BYTES} the record holds` });
  return problems;
}

/** Compact JSON with the keys in a fixed order (the same record gives the same bytes). */
function jsonOf(r: SourceRecord): Buffer {
  const ordered: SourceRecord = {
    ...(r.reference !== undefined ? { reference: r.reference } : {}),
    ...(r.manifestDigest !== undefined ? { manifestDigest: r.manifestDigest } : {}),
    ...(r.configDigest !== undefined ? { configDigest: r.configDigest } : {}),
    hasGuestConfig: r.hasGuestConfig,
  };
  return Buffer.from(JSON.stringify(ordered), 'utf8');
}

/** The 3072 bytes written at SOURCE_RECORD_OFFSET_BYTES. Throws on a record that breaks a rule. */
export function encodeSourceRecord(r: SourceRecord): Buffer {
  const problems = checkSourceRecord(r);
  if (problems.length) throw new RangeError(`source record: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
  const json = jsonOf(r);
  const out = Buffer.alloc(SOURCE_RECORD_BYTES);
  HEADER.encode({ magic: SOURCE_RECORD_MAGIC, version: SOURCE_RECORD_VERSION, length: json.length, crc32: crc32(json), reserved: Buffer.alloc(12) }).copy(out, 0);
  json.copy(out, HEADER.span);
  return out;
}

export type DecodedSourceRecord = { present: false } | { present: true; record: SourceRecord; problems: Problem[] };

/**
 * Decodes the 3072 bytes at 1024. All zero (or another magic): no record. A record whose
 * version, length, CRC or JSON is wrong is reported with problems and whatever could be read.
 */
export function decodeSourceRecord(buf: Buffer): DecodedSourceRecord {
  if (buf.length < HEADER.span) throw new RangeError(`source record: need ${HEADER.span} bytes, have ${buf.length}`);
  const h = HEADER.decode(buf);
  if (!h.magic.equals(SOURCE_RECORD_MAGIC)) return { present: false };
  const problems: Problem[] = [];
  if (h.version !== SOURCE_RECORD_VERSION) problems.push({ field: 'source.version', message: `version ${h.version}, this mkimage reads ${SOURCE_RECORD_VERSION}` });
  if (h.length === 0 || h.length > SOURCE_RECORD_MAX_JSON_BYTES || HEADER.span + h.length > buf.length) {
    problems.push({ field: 'source.length', message: `${h.length} bytes of JSON do not fit the ${SOURCE_RECORD_MAX_JSON_BYTES} of the record` });
    return { present: true, record: { hasGuestConfig: false }, problems };
  }
  const json = buf.subarray(HEADER.span, HEADER.span + h.length);
  const crc = crc32(json);
  if (crc !== h.crc32) problems.push({ field: 'source.crc32', message: `stored 0x${h.crc32.toString(16).padStart(8, '0')}, computed 0x${crc.toString(16).padStart(8, '0')}` });
  let record: SourceRecord = { hasGuestConfig: false };
  try {
    const v = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    record = {
      ...(typeof v.reference === 'string' ? { reference: v.reference } : {}),
      ...(typeof v.manifestDigest === 'string' ? { manifestDigest: v.manifestDigest } : {}),
      ...(typeof v.configDigest === 'string' ? { configDigest: v.configDigest } : {}),
      hasGuestConfig: v.hasGuestConfig === true,
    };
    problems.push(...checkSourceRecord(record));
  } catch (e) {
    problems.push({ field: 'source.json', message: `not valid JSON (${(e as Error).message})` });
  }
  return { present: true, record, problems };
}
