/**
 * The BEGIN record of a ZFS send stream, with known bytes: the first 120 bytes of a `zfs send -R
 * pool/a@s1` stream made by zfs-fuse 0.7 on this machine (xxd), the record padded to its 312
 * bytes, and a replication header nvlist (XDR) written out by hand in the layout zfs-fuse's
 * incremental stream had at offset 312: "fromsnap"="s1", "tosnap"="s3".
 */
import { describe, expect, it } from 'vitest';
import { STREAM_HEAD_BYTES, decodeStreamBegin, withStreamPayload } from '../../../src/layout/zfs-stream.js';

const FIRST_120 = Buffer.from(
  '00000000ac030000accbbaf502000000' +
    '02000000000000000000000000000000' +
    '00000000000000000000000000000000' +
    '0000000000000000693132733132333' +
    '7352f6140733100000000000000000000' +
    '00000000000000000000000000000000' +
    '00000000000000000000000000000000' +
    '0000000000000000',
  'hex',
);

function record(first: Buffer): Buffer {
  const b = Buffer.alloc(STREAM_HEAD_BYTES);
  first.copy(b);
  return b;
}

/** One XDR nvpair of a string: sizes, name, DATA_TYPE_STRING (9), one element, the value. */
function xdrString(name: string, value: string, decodedSize?: number): Buffer {
  const str = (s: string) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(s.length);
    return Buffer.concat([len, Buffer.from(s), Buffer.alloc((4 - (s.length % 4)) % 4)]);
  };
  const body = Buffer.concat([str(name), Buffer.from('0000000900000001', 'hex'), str(value)]);
  const sizes = Buffer.alloc(8);
  sizes.writeUInt32BE(body.length + 8, 0);
  sizes.writeUInt32BE(decodedSize ?? body.length + 8, 4);
  return Buffer.concat([sizes, body]);
}

const NVLIST_HEAD = Buffer.from('01010000' + '00000000' + '00000001', 'hex');
const NVLIST_END = Buffer.alloc(8);

describe('decodeStreamBegin', () => {
  it('reads the BEGIN record zfs-fuse wrote (little-endian): the snapshot and the payload size', () => {
    const b = decodeStreamBegin(record(FIRST_120));
    expect(b).toMatchObject({ littleEndian: true, toName: 'i12s12375/a@s1', fromGuid: 0n, payloadBytes: 0x3ac, incremental: false });
  });

  it('the same record in big-endian order (a sender on another architecture)', () => {
    const be = record(FIRST_120);
    be.writeUInt32BE(0x3ac, 4);
    be.writeBigUInt64BE(0x2f5bacbacn, 8);
    be.writeBigUInt64BE(7n, 48); // a fromguid: incremental
    expect(decodeStreamBegin(be)).toMatchObject({ littleEndian: false, payloadBytes: 0x3ac, fromGuid: 7n, incremental: true });
  });

  it('anything else is not a stream: wrong magic, wrong record type, too short', () => {
    const bad = record(FIRST_120);
    bad[8] = 0;
    expect(decodeStreamBegin(bad)).toBeUndefined();
    const notBegin = record(FIRST_120);
    notBegin[0] = 1;
    expect(decodeStreamBegin(notBegin)).toBeUndefined();
    expect(decodeStreamBegin(FIRST_120)).toBeUndefined();
  });
});

describe('withStreamPayload', () => {
  it('a replication header with "fromsnap" makes the stream incremental (its own record says fromguid 0)', () => {
    const begin = decodeStreamBegin(record(FIRST_120))!;
    const incremental = Buffer.concat([NVLIST_HEAD, xdrString('fromsnap', 's1', 0x28), xdrString('tosnap', 's3'), NVLIST_END]);
    // Byte for byte what zfs-fuse wrote at offset 312 of its incremental stream (xxd).
    expect(incremental.subarray(0, 48).toString('hex')).toBe('010100000000000000000001000000240000002800000008' + '66726f6d736e6170' + '0000000900000001' + '00000002' + '73310000');
    expect(withStreamPayload(begin, incremental)).toMatchObject({ incremental: true, fromSnap: 's1' });
    const full = Buffer.concat([NVLIST_HEAD, xdrString('tosnap', 's1'), NVLIST_END]);
    expect(withStreamPayload(begin, full)).toMatchObject({ incremental: false });
    expect(withStreamPayload(begin, Buffer.alloc(0))).toBe(begin);
  });
});
