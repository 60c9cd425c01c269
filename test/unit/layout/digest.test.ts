import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../../src/layout/digest.js';

describe('sha256', () => {
  it('gives the FIPS 180-2 test vector and equals node:crypto for bytes and strings', () => {
    expect(sha256('abc').toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    expect(sha256(bytes).equals(createHash('sha256').update(bytes).digest())).toBe(true);
  });
});
