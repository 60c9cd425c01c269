import { describe, expect, it } from 'vitest';
import { randomBytes, randomHex } from '../../../src/file/random.js';

describe('random bytes', () => {
  it('gives the asked length, fresh buffers, and no two equal draws', () => {
    const a = randomBytes(16);
    const b = randomBytes(16);
    expect(a.length).toBe(16);
    expect(a.equals(b)).toBe(false);
    a.fill(0);
    expect(b.equals(Buffer.alloc(16))).toBe(false); // not a view of one shared buffer
  });
  it('serves draws larger than its 256-byte pool and across refills', () => {
    const big = randomBytes(1000);
    expect(big.length).toBe(1000);
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) seen.add(randomHex(8));
    expect(seen.size).toBe(100);
    expect([...seen].every((h) => /^[0-9a-f]{16}$/.test(h))).toBe(true);
  });
  it('is not all zeros (bytes from /dev/urandom, not the zero-filled pool)', () => {
    // 64 zero bytes from a CSPRNG: probability 2^-512.
    expect(randomBytes(64).equals(Buffer.alloc(64))).toBe(false);
  });
});
