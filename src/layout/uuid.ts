/**
 * UUIDs as the disk formats store them. Pure, no I/O.
 *
 * - RFC 4122 byte order (the string's hex digits in order): the PFN info block's uuid, as ndctl's
 *   uuid_parse and the kernel's %pUb write it.
 * - GUID mixed-endian order (first three groups little-endian): every GUID in a GPT (UEFI spec 2.10,
 *   appendix A).
 *
 * `deriveUuid(seed, purpose)` makes the uuids and signatures of a `--seed` build: the same seed
 * and purpose give the same value, different purposes unrelated ones.
 */
import { sha256 } from './digest.js';
import { UsageError } from '../errors.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID_RE.test(text);
}

/** RFC 4122 order: 16 bytes, the hex digits of the string in order. */
export function uuidToBytes(uuid: string): Buffer {
  if (!isUuid(uuid)) {
    throw new UsageError(`"${uuid}" is not a uuid: expected 8-4-4-4-12 hex digits, e.g. 0b3c6f1e-...`, { uuid });
  }
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

export function bytesToUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.subarray(0, 16)).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** GUID order: the first three groups little-endian, the rest as written. */
export function guidToBytes(guid: string): Buffer {
  const b = uuidToBytes(guid);
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

export function bytesToGuid(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return bytesToUuid(b).toUpperCase();
}

/** Sets the RFC 4122 version 4 and variant bits so derived values are valid random-style uuids. */
function asVersion4(bytes: Buffer): string {
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return bytesToUuid(bytes);
}

/** A uuid from `--seed`: sha256("mkimage\0<seed>\0<purpose>"), version 4 bits set. */
export function deriveUuid(seed: string, purpose: string): string {
  return asVersion4(sha256(`mkimage\0${seed}\0${purpose}`).subarray(0, 16));
}

/** 32 bits from `--seed` (the MBR disk signature). */
export function deriveU32(seed: string, purpose: string): number {
  return sha256(`mkimage\0${seed}\0${purpose}`).readUInt32LE(0);
}

/** A version 4 uuid from 16 random bytes (the caller's: layout/ does no I/O; file/random.ts gives them). */
export function uuidFromRandom(bytes: Uint8Array): string {
  if (bytes.length < 16) throw new RangeError(`a uuid needs 16 random bytes, got ${bytes.length}`);
  return asVersion4(Buffer.from(bytes.subarray(0, 16)));
}

/** A uuid for `purpose`: from the seed when there is one, else from `random` (16 bytes). */
export function makeUuid(seed: string | undefined, purpose: string, random: (n: number) => Uint8Array): string {
  return seed === undefined ? uuidFromRandom(random(16)) : deriveUuid(seed, purpose);
}
