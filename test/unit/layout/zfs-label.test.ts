import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StructError } from '../../../src/errors.js';
import {
  VDEV_PHYS_BYTES,
  decodeNvlist,
  decodeVdevPhys,
  labelChecksum,
  nvGet,
  sealVdevPhys,
  storedChecksum,
  vdevPhysOffsets,
  type NvList,
} from '../../../src/layout/zfs-label.js';

/** Label 0's vdev_phys of a zfs-fuse pool (test/fixtures/README.md says how it was made). */
const FIXTURE = gunzipSync(readFileSync(join(import.meta.dirname, '../../fixtures/zfs-label0-vdev-phys.bin.gz')));
const LABEL0_OFFSET = 16 * 1024;

/** A small XDR writer for hand-made (and hostile) nvlists. */
class W {
  parts: Buffer[] = [];
  int(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    this.parts.push(b);
    return this;
  }
  str(s: string) {
    const data = Buffer.from(s);
    this.int(data.length);
    this.parts.push(Buffer.concat([data, Buffer.alloc((4 - (data.length % 4)) % 4)]));
    return this;
  }
  raw(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  get bytes() {
    return Buffer.concat(this.parts);
  }
}

const HEADER = Buffer.from([1, 1, 0, 0]);
/** One pair with correct sizes around `value`. */
function pair(name: string, type: number, nelem: number, value: Buffer): Buffer {
  const body = new W().str(name).int(type).int(nelem).raw(value).bytes;
  return new W().int(8 + body.length).int(64).raw(body).bytes;
}
const list = (...pairs: Buffer[]) => new W().int(0).int(1).raw(Buffer.concat(pairs)).int(0).int(0).bytes;
const packed = (...pairs: Buffer[]) => Buffer.concat([HEADER, list(...pairs)]);

describe('the label of a real zfs-fuse pool', () => {
  it('verifies its SHA-256 against the offset verifier, as ZFS does', () => {
    expect(FIXTURE.length).toBe(VDEV_PHYS_BYTES);
    const stored = storedChecksum(FIXTURE, 'le');
    expect(labelChecksum(FIXTURE, LABEL0_OFFSET, 'le')).toEqual(stored);
    // The same bytes are not a valid label 1: the verifier is the offset.
    expect(labelChecksum(FIXTURE, LABEL0_OFFSET + 256 * 1024, 'le')).not.toEqual(stored);
  });

  it('decodes what zdb -l printed', () => {
    const r = decodeVdevPhys(FIXTURE, LABEL0_OFFSET);
    expect(r.status).toBe('ok');
    if (r.status !== 'ok') return;
    expect(r.label).toEqual({
      pool: 'fixture',
      guid: '15296604384597250630',
      vdevGuid: '3649188838330870031',
      version: 23,
      state: 'exported',
      txg: '20',
      hostname: 'vm',
      hostid: '007f0100',
      path: '/dev/loop0',
      ashift: 12,
    });
    const tree = nvGet(r.config, 'vdev_tree') as NvList;
    expect(nvGet(tree, 'type')).toBe('disk');
    expect(nvGet(tree, 'asize')).toBe(129499136n);
    expect(r.config.pairs.map((p) => p.name)).toEqual([
      'version', 'name', 'state', 'txg', 'pool_guid', 'hostid', 'hostname', 'top_guid', 'guid', 'vdev_children', 'vdev_tree',
    ]);
  });

  it('refuses a label whose checksum does not match, and reports both', () => {
    const bad = Buffer.from(FIXTURE);
    bad[100] ^= 1;
    const r = decodeVdevPhys(bad, LABEL0_OFFSET);
    expect(r.status).toBe('bad-checksum');
  });

  it('a label re-sealed for label 2 of a 128 MiB vdev reads there', () => {
    const offsets = vdevPhysOffsets(128 * 1024 * 1024);
    expect(offsets).toEqual([16384, 278528, 128 * 1024 * 1024 - 512 * 1024 + 16384, 128 * 1024 * 1024 - 256 * 1024 + 16384]);
    const l2 = sealVdevPhys(FIXTURE, offsets[2]!);
    expect(decodeVdevPhys(l2, offsets[2]).status).toBe('ok');
    expect(decodeVdevPhys(l2, offsets[0]).status).toBe('bad-checksum');
    // A big-endian writer's label reads too.
    const be = sealVdevPhys(FIXTURE, offsets[0]!, 'be');
    expect(decodeVdevPhys(be, offsets[0]).status).toBe('ok');
  });

  it('a vdev size not a multiple of 256 KiB puts labels 2 and 3 at the rounded-down end', () => {
    const size = 100 * 1024 * 1024 - 33 * 512; // a GPT partition: the backup table takes 33 sectors
    const psize = Math.floor(size / (256 * 1024)) * 256 * 1024;
    expect(vdevPhysOffsets(size).slice(2)).toEqual([psize - 512 * 1024 + 16384, psize - 256 * 1024 + 16384]);
    expect(vdevPhysOffsets(undefined)).toEqual([16384, 278528]);
  });

  it('zeroes are no label; a wrong length is invalid', () => {
    expect(decodeVdevPhys(Buffer.alloc(VDEV_PHYS_BYTES), LABEL0_OFFSET)).toEqual({ status: 'absent' });
    expect(decodeVdevPhys(Buffer.alloc(100)).status).toBe('invalid');
  });
});

describe('nvlist decoding', () => {
  it('every value type nvpair.c packs', () => {
    const nv = decodeNvlist(
      packed(
        pair('flag', 1, 0, Buffer.alloc(0)),
        pair('b', 2, 1, new W().int(0xab).bytes),
        pair('i16', 3, 1, new W().int(-2).bytes),
        pair('u16', 4, 1, new W().int(65535).bytes),
        pair('i32', 5, 1, new W().int(-5).bytes),
        pair('u32', 6, 1, Buffer.from([0xff, 0xff, 0xff, 0xfe])),
        pair('i64', 7, 1, Buffer.from('fffffffffffffff9', 'hex')),
        pair('u64', 8, 1, new W().u64(2n ** 64n - 1n).bytes),
        pair('s', 9, 1, new W().str('héllo').bytes),
        pair('bytes', 10, 5, Buffer.from([1, 2, 3, 4, 5, 0, 0, 0])),
        pair('u64s', 16, 2, new W().int(2).u64(1n).u64(2n).bytes),
        pair('strs', 17, 2, new W().str('a').str('bc').bytes),
        pair('child', 19, 1, list(pair('x', 8, 1, new W().u64(7n).bytes))),
        pair('kids', 20, 2, Buffer.concat([list(), list(pair('y', 21, 1, new W().int(1).bytes))])),
        pair('i8', 22, 1, new W().int(-1).bytes),
        pair('u8s', 26, 3, new W().int(3).int(1).int(2).int(255).bytes),
      ),
    );
    const v = Object.fromEntries(nv.pairs.map((p) => [p.name, p.value]));
    expect(v).toMatchObject({
      flag: true, b: 0xab, i16: -2, u16: 65535, i32: -5, u32: 0xfffffffe, i64: -7n, u64: 2n ** 64n - 1n, s: 'héllo',
      bytes: Buffer.from([1, 2, 3, 4, 5]), u64s: [1n, 2n], strs: ['a', 'bc'], i8: -1, u8s: [1, 2, 255],
    });
    expect(nvGet(v.child as NvList, 'x')).toBe(7n);
    expect((v.kids as NvList[]).map((k) => k.pairs.length)).toEqual([0, 1]);
    expect(nvGet((v.kids as NvList[])[1]!, 'y')).toBe(true);
  });

  it('skips nothing and trusts nothing: pair sizes bound every read', () => {
    // A string that claims to be longer than its pair.
    const longName = Buffer.concat([new W().int(40).int(64).int(1000).bytes, Buffer.alloc(28)]);
    const cases: Array<[string, Buffer]> = [
      ['too short', Buffer.from([1, 1, 0, 0, 0, 0])],
      ['native encoding', Buffer.concat([Buffer.from([0, 1, 0, 0]), list()])],
      ['bad version', Buffer.concat([HEADER, new W().int(7).int(1).int(0).int(0).bytes])],
      ['no end marker', Buffer.concat([HEADER, new W().int(0).int(1).bytes])],
      ['pair larger than the buffer', Buffer.concat([HEADER, new W().int(0).int(1).int(0x7fffffff).int(64).bytes])],
      ['negative pair size', Buffer.concat([HEADER, new W().int(0).int(1).int(-8).int(64).bytes])],
      ['pair size below five words', Buffer.concat([HEADER, new W().int(0).int(1).int(12).int(64).int(0).bytes])],
      ['name longer than its pair', Buffer.concat([HEADER, new W().int(0).int(1).raw(longName).int(0).int(0).bytes])],
      ['unknown type', packed(pair('x', 99, 1, new W().int(0).bytes))],
      ['negative nelem', packed(pair('x', 8, -1, new W().u64(0n).bytes))],
      ['u64 cut short', packed(pair('x', 8, 1, new W().int(0).bytes))],
      ['array count 2^31', packed(pair('x', 16, 1, new W().int(0x7fffffff).u64(1n).bytes))],
      ['array count unlike nelem', packed(pair('x', 16, 1, new W().int(2).u64(1n).u64(2n).bytes))],
      ['string array of 2^30 strings', packed(pair('x', 17, 0x40000000, new W().str('a').bytes))],
      ['byte array larger than its pair', packed(pair('x', 10, 4096, Buffer.alloc(8)))],
      ['nvlist array of 2^31 lists', packed(pair('x', 20, 0x7fffffff, list()))],
    ];
    for (const [what, buf] of cases) {
      expect(() => decodeNvlist(buf), what).toThrow(StructError);
    }
  });

  it('refuses nesting deeper than the kernel allows (20), without recursing further', () => {
    let inner = list();
    for (let i = 0; i < 25; i++) inner = list(pair('n', 19, 1, inner));
    expect(() => decodeNvlist(Buffer.concat([HEADER, inner]))).toThrow(/nested deeper than 20/);
    let ok = list();
    for (let i = 0; i < 19; i++) ok = list(pair('n', 19, 1, ok));
    expect(() => decodeNvlist(Buffer.concat([HEADER, ok]))).not.toThrow();
  });

  it('any single corrupted byte of a real label gives a result or a StructError, nothing else', () => {
    const body = FIXTURE.subarray(0, 0x300); // the nvlist ends at 0x2e0
    const base = Buffer.from(FIXTURE.subarray(0, 4096));
    for (let i = 0; i < body.length; i++) {
      for (const v of [0x00, 0xff, 0x7f, 0x80]) {
        const b = Buffer.from(base);
        b[i] = v;
        try {
          decodeNvlist(b);
        } catch (e) {
          if (!(e instanceof StructError)) throw new Error(`byte ${i} = ${v}: ${String(e)}`);
        }
      }
    }
  });
});
