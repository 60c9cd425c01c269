import { describe, expect, it } from 'vitest';
import {
  SOURCE_RECORD_BYTES,
  SOURCE_RECORD_MAX_JSON_BYTES,
  checkSourceRecord,
  decodeSourceRecord,
  encodeSourceRecord,
} from '../../../src/layout/source-record.js';

/**
 * Known bytes: the header of a record for reference "debian:12", manifest sha256:aaa...a and a
 * guest config. The JSON is 138 bytes (0x8a); its CRC-32 0x84e07217 was computed independently
 * with Python: zlib.crc32(b'{"reference":"debian:12","manifestDigest":"sha256:' + b'a'*64 +
 * b'","hasGuestConfig":true}').
 */
const HEADER_HEX =
  '4d4b494d47535243' + // magic "MKIMGSRC"
  '01000000' + // version 1
  '8a000000' + // length 138
  '1772e084' + // crc32 0x84e07217, little-endian
  '000000000000000000000000'; // reserved
const JSON_TEXT = `{"reference":"debian:12","manifestDigest":"sha256:${'a'.repeat(64)}","hasGuestConfig":true}`;

describe('source record (image bytes 1024..4095)', () => {
  it('encodes to known bytes, zero-padded to 3072', () => {
    const buf = encodeSourceRecord({ hasGuestConfig: true, manifestDigest: `sha256:${'a'.repeat(64)}`, reference: 'debian:12' });
    expect(buf.length).toBe(SOURCE_RECORD_BYTES);
    expect(buf.subarray(0, 32).toString('hex')).toBe(HEADER_HEX);
    expect(buf.subarray(32, 32 + 138).toString('utf8')).toBe(JSON_TEXT);
    expect(buf.subarray(32 + 138).every((b) => b === 0)).toBe(true);
  });

  it('decodes known bytes', () => {
    const buf = Buffer.alloc(SOURCE_RECORD_BYTES);
    Buffer.from(HEADER_HEX, 'hex').copy(buf, 0);
    Buffer.from(JSON_TEXT).copy(buf, 32);
    expect(decodeSourceRecord(buf)).toEqual({ present: true, record: { reference: 'debian:12', manifestDigest: `sha256:${'a'.repeat(64)}`, hasGuestConfig: true }, problems: [] });
  });

  it('a minimal record: only hasGuestConfig (plain layer tars have no reference or digests)', () => {
    const buf = encodeSourceRecord({ hasGuestConfig: false });
    expect(buf.subarray(0, 32).toString('hex')).toBe('4d4b494d47535243' + '01000000' + '18000000' + 'b9dcc475' + '00'.repeat(12));
    expect(decodeSourceRecord(buf)).toEqual({ present: true, record: { hasGuestConfig: false }, problems: [] });
  });

  it('zero bytes (an image made without --from): no record', () => {
    expect(decodeSourceRecord(Buffer.alloc(SOURCE_RECORD_BYTES))).toEqual({ present: false });
  });

  it('a flipped JSON byte fails the CRC; a bad version and an overlong length are problems', () => {
    const buf = encodeSourceRecord({ hasGuestConfig: true, reference: 'debian:12' });
    const flipped = Buffer.from(buf);
    flipped[40] ^= 0x01;
    expect((decodeSourceRecord(flipped) as { problems: { field: string }[] }).problems.map((p) => p.field)).toContain('source.crc32');
    const v2 = Buffer.from(buf);
    v2.writeUInt32LE(2, 8);
    expect((decodeSourceRecord(v2) as { problems: { field: string }[] }).problems.map((p) => p.field)).toEqual(['source.version']);
    const long = Buffer.from(buf);
    long.writeUInt32LE(SOURCE_RECORD_MAX_JSON_BYTES + 1, 12);
    expect((decodeSourceRecord(long) as { problems: { field: string }[] }).problems.map((p) => p.field)).toEqual(['source.length']);
  });

  it('check: digests must be sha256, the JSON must fit; encode refuses what check refuses', () => {
    expect(checkSourceRecord({ hasGuestConfig: true, configDigest: 'md5:x' }).map((p) => p.field)).toEqual(['source.configDigest']);
    expect(checkSourceRecord({ hasGuestConfig: true, reference: 'r'.repeat(4000) }).map((p) => p.field)).toEqual(['source']);
    expect(() => encodeSourceRecord({ hasGuestConfig: true, reference: 'r'.repeat(4000) })).toThrow(/more than the 3040 the record holds/);
  });
});
