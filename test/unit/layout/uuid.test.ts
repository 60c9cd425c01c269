import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import {
  bytesToGuid,
  bytesToUuid,
  deriveU32,
  deriveUuid,
  guidToBytes,
  isUuid,
  makeUuid,
  uuidFromRandom,
  uuidToBytes,
} from '../../../src/layout/uuid.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('RFC 4122 byte order (PFN block uuid)', () => {
  it('keeps the hex digits in order', () => {
    expect(uuidToBytes('0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60').toString('hex')).toBe('0b3c6f1e8d2a4c5e9f7a1b2c3d4e5f60');
    expect(bytesToUuid(Buffer.from('0b3c6f1e8d2a4c5e9f7a1b2c3d4e5f60', 'hex'))).toBe('0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60');
  });
  it('accepts upper case and prints lower case', () => {
    expect(bytesToUuid(uuidToBytes('0B3C6F1E-8D2A-4C5E-9F7A-1B2C3D4E5F60'))).toBe('0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60');
  });
  it('reads the first 16 bytes of a longer buffer', () => {
    expect(bytesToUuid(Buffer.alloc(32, 0xab))).toBe('abababab-abab-abab-abab-abababababab');
  });
  it('rejects what is not 8-4-4-4-12 hex digits (UsageError, exit 2)', () => {
    for (const bad of ['', 'not-a-uuid', '0b3c6f1e8d2a4c5e9f7a1b2c3d4e5f60', '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f6', '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60x', '{0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60}', 'gb3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60']) {
      expect(isUuid(bad)).toBe(false);
      expect(() => uuidToBytes(bad)).toThrow(UsageError);
    }
    expect(isUuid('0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60')).toBe(true);
  });
});

describe('GUID mixed-endian byte order (GPT)', () => {
  it('stores TimeLow, TimeMid and TimeHighAndVersion little-endian, the rest as written (UEFI 2.10 appendix A)', () => {
    // Appendix A's table: TimeLow @0 (4 bytes), TimeMid @4 (2), TimeHighAndVersion @6 (2),
    // ClockSeqHighAndReserved @8, ClockSeqLow @9, Node @10 (6); the first three little-endian.
    expect(guidToBytes('00112233-4455-6677-8899-aabbccddeeff').toString('hex')).toBe('33221100' + '5544' + '7766' + '8899' + 'aabbccddeeff');
  });
  it('gives the bytes sfdisk writes for the Linux filesystem and EFI system GUIDs', () => {
    // from the GPT entry sfdisk wrote (see gpt.test.ts for the command)
    expect(guidToBytes('0FC63DAF-8483-4772-8E79-3D69D8477DE4').toString('hex')).toBe('af3dc60f838472478e793d69d8477de4');
    expect(guidToBytes('C12A7328-F81F-11D2-BA4B-00A0C93EC93B').toString('hex')).toBe('28732ac11ff8d211ba4b00a0c93ec93b');
    expect(guidToBytes('01234567-89AB-CDEF-0123-456789ABCDEF').toString('hex')).toBe('67452301ab89efcd0123456789abcdef');
  });
  it('decodes back to the upper-case GUID sfdisk prints', () => {
    expect(bytesToGuid(Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex'))).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    expect(bytesToGuid(guidToBytes('00112233-4455-6677-8899-aabbccddeeff'))).toBe('00112233-4455-6677-8899-AABBCCDDEEFF');
  });
  it('does not change the input buffer when decoding', () => {
    const b = Buffer.from('33221100554477668899aabbccddeeff', 'hex');
    bytesToGuid(b);
    expect(b.toString('hex')).toBe('33221100554477668899aabbccddeeff');
  });
  it('rejects a malformed GUID', () => {
    expect(() => guidToBytes('0FC63DAF-8483-4772-8E79')).toThrow(UsageError);
  });
});

describe('uuids from --seed', () => {
  it('is sha256("mkimage\\0<seed>\\0<purpose>") with the version 4 and variant bits set', () => {
    // printf '%s\0%s\0%s' mkimage 042 pfn | sha256sum
    //   40fb26b1df35d6b5d2cf9e8d57225b16d766d67796e8bbe824176cd10d6c2360
    // first 16 bytes; byte 6 d6 -> 46 (version 4), byte 8 d2 -> 92 (variant 10)
    expect(deriveUuid('042', 'pfn')).toBe('40fb26b1-df35-46b5-92cf-9e8d57225b16');
    // printf '%s\0%s\0%s' mkimage 042 gpt-disk | sha256sum
    //   0ac6d17674230446dcb2210f6d811feab8e418b9ee424ddaac3c27e8b398c4c0
    expect(deriveUuid('042', 'gpt-disk')).toBe('0ac6d176-7423-4446-9cb2-210f6d811fea');
  });
  it('is stable: the same seed and purpose always give the same uuid', () => {
    expect(deriveUuid('7', 'fs')).toBe(deriveUuid('7', 'fs'));
    expect(makeUuid('7', 'fs', () => { throw new Error('a seeded uuid takes no random bytes'); })).toBe(deriveUuid('7', 'fs'));
  });
  it('is distinct per purpose and per seed, and the separators keep seed and purpose apart', () => {
    const all = ['pfn', 'fs', 'ext4-hash-seed', 'gpt-disk', 'gpt-partition'].map((p) => deriveUuid('7', p));
    all.push(deriveUuid('8', 'pfn'), deriveUuid('1', '2x'), deriveUuid('12', 'x'));
    expect(new Set(all).size).toBe(all.length);
  });
  it('always sets version 4 and the RFC 4122 variant', () => {
    for (let seed = 0; seed < 64; seed++) expect(deriveUuid(String(seed), 'pfn')).toMatch(V4);
  });
  it('derives a u32 disk signature: the first 4 hash bytes, little-endian', () => {
    // printf '%s\0%s\0%s' mkimage 042 mbr-disk-signature | sha256sum
    //   dafadcc19787992ece619958d34e932c372782a9a657394dbb2670fbff50b135
    expect(deriveU32('042', 'mbr-disk-signature')).toBe(0xc1dcfada);
    expect(deriveU32('042', 'mbr-disk-signature')).toBe(deriveU32('042', 'mbr-disk-signature'));
    expect(deriveU32('043', 'mbr-disk-signature')).not.toBe(deriveU32('042', 'mbr-disk-signature'));
  });
});

describe('random uuids', () => {
  it('set the version 4 and variant bits on the random bytes and keep the rest', () => {
    // 16 bytes 0xff: version nibble 4, variant bits 10.
    expect(uuidFromRandom(Buffer.alloc(16, 0xff))).toBe('ffffffff-ffff-4fff-bfff-ffffffffffff');
    expect(uuidFromRandom(Buffer.from('00112233445566778899aabbccddeeff', 'hex'))).toBe('00112233-4455-4677-8899-aabbccddeeff');
    expect(() => uuidFromRandom(Buffer.alloc(15))).toThrow(/16 random bytes, got 15/);
  });
  it('makeUuid without a seed takes 16 bytes from the random source; with one it never asks', () => {
    const asked: number[] = [];
    const source = (n: number) => (asked.push(n), Buffer.alloc(n, 0x11));
    expect(makeUuid(undefined, 'pfn', source)).toBe('11111111-1111-4111-9111-111111111111');
    expect(asked).toEqual([16]);
    expect(makeUuid('7', 'fs', source)).toBe(deriveUuid('7', 'fs'));
    expect(asked).toEqual([16]);
  });
});
