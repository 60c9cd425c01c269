import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../../../src/layout/crc32.js';

describe('crc32', () => {
  it('gives the ISO-HDLC check value and the empty input', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    // printf 'a' | gzip -c | tail -c8 | head -c4 | xxd -p -> 43beb7e8 (little-endian 0xe8b7be43)
    expect(crc32(Buffer.from('a'))).toBe(0xe8b7be43);
  });
  it('equals node:zlib crc32 on every length 0..600 of seeded bytes', () => {
    let seed = 7;
    const bytes = Buffer.alloc(600);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let n = 0; n <= bytes.length; n++) expect(crc32(bytes.subarray(0, n))).toBe(zlibCrc32(bytes.subarray(0, n)));
  });
});
