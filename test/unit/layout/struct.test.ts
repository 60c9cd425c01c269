import { describe, expect, it } from 'vitest';
import { blob, defineStruct, seq, struct, u16, u32, u64, u8 } from '../../../src/layout/struct.js';

interface Pair {
  a: number;
  b: number;
}
interface Sample {
  tag: Buffer;
  small: number;
  half: number;
  word: number;
  big: bigint;
  pairs: Pair[];
}

/**
 * 4 + 1 + 2 + 4 + 8 + 2 x 3 = 25 bytes, little-endian:
 *   tag 'MKIM', small 0x7f, half 0xbeef, word 0xdeadbeef, big 2^63 + 1 (above 2^53: a double would
 *   round it), pairs [{a 1, b 0x0302}, {a 0xff, b 0}].
 */
const SAMPLE_HEX = '4d4b494d' + '7f' + 'efbe' + 'efbeadde' + '0100000000000080' + '01' + '0203' + 'ff' + '0000';
const SAMPLE = defineStruct<Sample>([
  blob(4, 'tag'),
  u8('small'),
  u16('half'),
  u32('word'),
  u64('big'),
  seq(struct<Pair>([u8('a'), u16('b')]), 2, 'pairs'),
]);
const VALUE: Sample = {
  tag: Buffer.from('MKIM'),
  small: 0x7f,
  half: 0xbeef,
  word: 0xdeadbeef,
  big: 2n ** 63n + 1n,
  pairs: [
    { a: 1, b: 0x0302 },
    { a: 0xff, b: 0 },
  ],
};

describe('defineStruct', () => {
  it('lays fields out in declaration order: span, offsetOf, spanOf', () => {
    expect(SAMPLE.span).toBe(25);
    expect(SAMPLE.offsetOf('tag')).toBe(0);
    expect(SAMPLE.offsetOf('small')).toBe(4);
    expect(SAMPLE.offsetOf('half')).toBe(5);
    expect(SAMPLE.offsetOf('word')).toBe(7);
    expect(SAMPLE.offsetOf('big')).toBe(11);
    expect(SAMPLE.offsetOf('pairs')).toBe(19);
    expect(SAMPLE.spanOf('pairs')).toBe(6);
    expect(SAMPLE.spanOf('big')).toBe(8);
    expect(() => SAMPLE.offsetOf('nope' as keyof Sample & string)).toThrow(/no field nope/);
  });

  it('encodes known bytes and decodes them back (64-bit exact above 2^53)', () => {
    expect(SAMPLE.encode(VALUE).toString('hex')).toBe(SAMPLE_HEX);
    expect(SAMPLE.decode(Buffer.from(SAMPLE_HEX, 'hex'))).toEqual(VALUE);
  });

  it('decodes at an offset, and a decoded blob is a copy, not a view of the input', () => {
    const buf = Buffer.concat([Buffer.from('ffff', 'hex'), Buffer.from(SAMPLE_HEX, 'hex')]);
    const v = SAMPLE.decode(buf, 2);
    expect(v).toEqual(VALUE);
    buf[2] = 0;
    expect(v.tag.toString()).toBe('MKIM');
  });

  it('refuses a buffer too short, saying how many bytes it needs', () => {
    expect(() => SAMPLE.decode(Buffer.alloc(24))).toThrow(/need 25 bytes at offset 0, have 24/);
    expect(() => SAMPLE.decode(Buffer.alloc(25), 1)).toThrow(/need 25 bytes at offset 1, have 24/);
  });

  it('leaves missing fields and missing seq elements zero', () => {
    const partial = { small: 1, pairs: [{ a: 2, b: 3 }] } as unknown as Sample;
    expect(SAMPLE.encode(partial).toString('hex')).toBe('00000000' + '01' + '0000' + '00000000' + '0000000000000000' + '02' + '0300' + '00' + '0000');
  });

  it('refuses values that do not fit, naming the field', () => {
    expect(() => SAMPLE.encode({ ...VALUE, small: 256 })).toThrow(RangeError);
    expect(() => SAMPLE.encode({ ...VALUE, word: -1 })).toThrow(RangeError);
    expect(() => SAMPLE.encode({ ...VALUE, big: 2n ** 64n })).toThrow(RangeError);
    expect(() => SAMPLE.encode({ ...VALUE, tag: Buffer.from('MKIMAGE') })).toThrow(/blob \(field tag\) needs a Buffer of 4 bytes, got 7 bytes/);
    expect(() => SAMPLE.encode({ ...VALUE, pairs: [...VALUE.pairs, { a: 0, b: 0 }] })).toThrow(/seq \(field pairs\) holds 2 elements, got 3/);
  });
});
