import { describe, expect, it } from 'vitest';
import {
  DAX_SIG,
  ND_PFN_SB,
  PFN_MODE_PMEM,
  PFN_MODE_RAM,
  checkPfnInfo,
  decodePfnInfo,
  encodePfnInfo,
  fletcher64,
  makePfnInfo,
  pfnChecksum,
  pmemDataOffBytes,
  withChecksum,
  type NdPfnSb,
} from '../../../src/layout/pfn.js';
import { GiB, MiB } from '../../../src/layout/units.js';

/** The block pmem-csi (pkg/imagefile) and kata (image-builder nsdax.gpl.c) write: version 0.2,
 * dataoff = align = 2 MiB, mode RAM, every other field zero. Checksum from REFERENCE.md §3. */
function pmemCsiBlock(): NdPfnSb {
  return {
    signature: Buffer.from('NVDIMM_PFN_INFO\0', 'latin1'),
    uuid: Buffer.alloc(16),
    parentUuid: Buffer.alloc(16),
    flags: 0,
    versionMajor: 0,
    versionMinor: 2,
    dataOff: 2n * 1024n * 1024n,
    npfns: 0n,
    mode: PFN_MODE_RAM,
    startPad: 0,
    endTrunc: 0,
    align: 2 * MiB,
    pageSize: 0,
    pageStructSize: 0,
    padding: Buffer.alloc(3994),
    checksum: 0n,
  };
}

const UUID = Buffer.from('0b3c6f1e8d2a4c5e9f7a1b2c3d4e5f60', 'hex');

describe('struct nd_pfn_sb layout', () => {
  it('has the kernel offsets (drivers/nvdimm/pfn.h)', () => {
    expect(ND_PFN_SB.span).toBe(4096);
    const offsets = Object.fromEntries(
      ['signature', 'uuid', 'parentUuid', 'flags', 'versionMajor', 'versionMinor', 'dataOff', 'npfns', 'mode', 'startPad', 'endTrunc', 'align', 'pageSize', 'pageStructSize', 'padding', 'checksum'].map(
        (f) => [f, ND_PFN_SB.offsetOf(f as keyof NdPfnSb)],
      ),
    );
    expect(offsets).toEqual({
      signature: 0x00, uuid: 0x10, parentUuid: 0x20, flags: 0x30, versionMajor: 0x34, versionMinor: 0x36,
      dataOff: 0x38, npfns: 0x40, mode: 0x48, startPad: 0x4c, endTrunc: 0x50, align: 0x54, pageSize: 0x58,
      pageStructSize: 0x5c, padding: 0x5e, checksum: 0xff8,
    });
  });
});

describe('nd_fletcher64', () => {
  it('gives the checksum pmem-csi and kata write: 0x685b032be3943830', () => {
    expect(pfnChecksum(encodePfnInfo(pmemCsiBlock()))).toBe(0x685b032be3943830n);
  });
  it('sums little-endian u32 words: lo wraps at 2^32, hi accumulates lo', () => {
    // words 0xffffffff, 0x00000002: lo = 0xffffffff then 0x1; hi = 0xffffffff + 0x1
    const b = Buffer.from('ffffffff02000000', 'hex');
    expect(fletcher64(b)).toBe((0x100000000n << 32n) % (1n << 64n) | 1n);
    expect(fletcher64(Buffer.alloc(4096))).toBe(0n);
  });
});

describe('encode and decode', () => {
  it('encodes known bytes for the block mkimage writes', () => {
    const sb = makePfnInfo({ uuid: UUID, dataOffBytes: 2 * MiB, namespaceSizeBytes: 1 * GiB });
    const buf = encodePfnInfo(sb);
    expect(buf.subarray(0, 0x60).toString('hex')).toBe(
      '4e5644494d4d5f50464e5f494e464f00' + // "NVDIMM_PFN_INFO\0"
        '0b3c6f1e8d2a4c5e9f7a1b2c3d4e5f60' + // uuid
        '00000000000000000000000000000000' + // parent_uuid
        '00000000' + '0100' + '0400' + // flags, version 1.4
        '0000200000000000' + // dataoff 2 MiB
        '00fe030000000000' + // npfns (1 GiB - 2 MiB) / 4096 = 0x3fe00
        '01000000' + '00000000' + '00000000' + // mode RAM, start_pad, end_trunc
        '00002000' + '00100000' + '4000' + '0000', // align 2 MiB, page_size 4096, page_struct_size 64, padding
    );
    expect(buf.readBigUInt64LE(0xff8)).toBe(pfnChecksum(buf));
  });
  it('round-trips every field, 64-bit values beyond 2^53 included', () => {
    const sb = withChecksum({ ...makePfnInfo({ uuid: UUID, dataOffBytes: 2 * MiB, namespaceSizeBytes: GiB }), npfns: 0xfedcba9876543210n });
    const back = decodePfnInfo(encodePfnInfo(sb));
    expect(back).toEqual(sb);
    expect(encodePfnInfo(back).equals(encodePfnInfo(sb))).toBe(true);
  });
  it('decodes the pmem-csi block from bytes', () => {
    const bytes = encodePfnInfo(withChecksum(pmemCsiBlock()));
    const sb = decodePfnInfo(bytes);
    expect(sb.versionMinor).toBe(2);
    expect(sb.checksum).toBe(0x685b032be3943830n);
    expect(bytes.subarray(0xff8).toString('hex')).toBe('303894e32b035b68');
  });
});

describe('kernel rules (nd_pfn_validate)', () => {
  const ns = { sizeBytes: 1 * GiB };
  const good = () => makePfnInfo({ uuid: UUID, dataOffBytes: 2 * MiB, namespaceSizeBytes: ns.sizeBytes });
  const fields = (sb: NdPfnSb, n = ns) => checkPfnInfo(sb, n).map((p) => p.field);

  it('accepts the block mkimage writes, and the pmem-csi block', () => {
    expect(checkPfnInfo(good(), ns)).toEqual([]);
    expect(checkPfnInfo(withChecksum(pmemCsiBlock()), ns)).toEqual([]);
  });
  it('rejects a wrong signature (raw namespace)', () => {
    const sb = good();
    sb.signature = Buffer.from('NVDIMM_BTT_INFO\0', 'latin1');
    expect(fields(withChecksum(sb))).toEqual(['signature']);
  });
  it('rejects a checksum that does not match', () => {
    const sb = good();
    sb.checksum ^= 1n;
    expect(fields(sb)).toEqual(['checksum']);
  });
  it('rejects a flipped byte anywhere in the block through the checksum', () => {
    const buf = encodePfnInfo(good());
    buf[0x40]! ^= 0x01;
    expect(fields(decodePfnInfo(buf))).toEqual(['checksum']);
  });
  it('rejects a parent_uuid that is not the namespace uuid', () => {
    expect(fields(withChecksum({ ...good(), parentUuid: Buffer.alloc(16, 1) }))).toEqual(['parentUuid']);
  });
  it('rejects a mode other than RAM or PMEM', () => {
    expect(fields(withChecksum({ ...good(), mode: 3 }))).toEqual(['mode']);
  });
  it('rejects page_size above PAGE_SIZE and a small page_struct_size in PMEM mode only', () => {
    const pmem = makePfnInfo({ uuid: UUID, dataOffBytes: pmemDataOffBytes(GiB), namespaceSizeBytes: GiB, mode: PFN_MODE_PMEM });
    expect(checkPfnInfo(pmem, ns)).toEqual([]);
    expect(fields(withChecksum({ ...pmem, pageSize: 8192 }))).toEqual(['pageSize']);
    expect(fields(withChecksum({ ...pmem, pageStructSize: 56 }))).toEqual(['pageStructSize']);
    expect(fields(withChecksum({ ...good(), pageSize: 8192, pageStructSize: 56 }))).toEqual([]);
  });
  it('ignores page_size and page_struct_size below version 1.4', () => {
    const pmem = makePfnInfo({ uuid: UUID, dataOffBytes: pmemDataOffBytes(GiB), namespaceSizeBytes: GiB, mode: PFN_MODE_PMEM });
    expect(fields(withChecksum({ ...pmem, versionMinor: 3, pageSize: 8192 }))).toEqual([]);
  });
  it('rejects a devdax alignment the kernel does not support', () => {
    expect(fields(withChecksum({ ...good(), signature: Buffer.from(DAX_SIG, 'latin1'), align: 64 * 1024, dataOff: BigInt(2 * MiB) }))).toEqual(['align']);
  });
  it('rejects align above the namespace size', () => {
    expect(fields(withChecksum({ ...good(), align: 2 * GiB, dataOff: BigInt(2 * MiB) }), ns)).toContain('align');
  });
  it('reads align as 0 (then 1 << ilog2(dataoff)) below version 1.2', () => {
    // align garbage is ignored at version 1.1; dataoff 2 MiB gives align 2 MiB
    expect(fields(withChecksum({ ...good(), versionMinor: 1, align: 12345 }))).toEqual([]);
  });
  it('rejects dataoff at or beyond the namespace size', () => {
    expect(fields(withChecksum({ ...good(), dataOff: BigInt(GiB) }))).toContain('dataOff');
  });
  it('rejects a dataoff not aligned to align or to 4 KiB', () => {
    expect(fields(withChecksum({ ...good(), dataOff: BigInt(3 * MiB) }))).toEqual(['dataOff']);
    expect(fields(withChecksum({ ...good(), dataOff: BigInt(2 * MiB + 512), align: 512 }))).toContain('dataOff');
  });
  it('rejects an end that is not 2 MiB aligned (end_trunc or namespace size)', () => {
    expect(fields(withChecksum({ ...good(), endTrunc: 4096 }))).toEqual(['endTrunc']);
    expect(fields(good(), { sizeBytes: GiB + 4096 })).toEqual(['endTrunc']);
  });
  it('rejects a start_pad that misaligns the start', () => {
    expect(fields(withChecksum({ ...good(), startPad: 4096 }))).toContain('startPad');
  });
  it('rejects an align that is not a power of two (dataoff a multiple of it, so only this rule fails)', () => {
    expect(fields(withChecksum({ ...good(), align: 3 * MiB, dataOff: BigInt(6 * MiB) }))).toEqual(['align']);
  });
  it('reads start_pad and end_trunc as 0 below version 1.1', () => {
    expect(fields(withChecksum({ ...good(), versionMinor: 0, startPad: 4096, endTrunc: 4096 }))).toEqual([]);
    expect(fields(withChecksum({ ...good(), versionMinor: 1, startPad: 4096, endTrunc: 0 }))).toContain('startPad');
  });
  it('rejects a dataoff below the 8 KiB info block reserve', () => {
    expect(fields(withChecksum({ ...good(), dataOff: 4096n, align: 4096 }))).toEqual(['dataOff']);
  });
  it('rejects PMEM mode when dataoff cannot hold the struct pages (1 GiB needs 18 MiB)', () => {
    expect(pmemDataOffBytes(GiB)).toBe(18 * MiB);
    expect(fields(withChecksum({ ...good(), mode: PFN_MODE_PMEM }))).toEqual(['dataOff']);
  });
});
