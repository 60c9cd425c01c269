import { describe, expect, it } from 'vitest';
import {
  formatDiskSignature,
  EMPTY_ENTRY,
  MBR,
  MBR_PARTITION_ENTRY,
  MBR_TYPE_GPT_PROTECTIVE,
  MBR_TYPE_LINUX,
  checkMbr,
  decodeMbr,
  encodeMbr,
  lbaToChs,
  makeMbr,
  makePartitionEntry,
  type Mbr,
  type MbrPartitionEntry,
} from '../../../src/layout/mbr.js';
import { GiB, MiB, TiB } from '../../../src/layout/units.js';

/**
 * Bytes 440..511 of the MBR sfdisk (util-linux 2.38.1) writes for a 1 GiB file:
 *   truncate -s 1G t.img
 *   printf 'label: dos\nlabel-id: 0x12345678\nstart=4096, type=83\n' | sfdisk -q t.img
 *   xxd -s 440 -l 72 -p t.img
 * (bytes 0..439 are all zero). sfdisk uses the 255 heads / 63 sectors geometry for a file:
 * first CHS 41 02 00 = head 65, sector 2, cylinder 0 (LBA 4096 = 65 * 63 + 1);
 * last CHS 8a 08 82 = head 138, sector 8, cylinder 130 (LBA 2097151).
 */
const SFDISK_1G_TAIL =
  '78563412' + // disk signature 0x12345678, little-endian
  '0000' + // reserved
  '00' + '410200' + '83' + '8a0882' + '00100000' + '00f01f00' + // entry 1: start 4096, count 2093056
  '00'.repeat(48) + // entries 2..4 unused
  '55aa';

/** Entry 1 as sfdisk writes it for other disk sizes, same script (start=4096, type=83). */
const SFDISK_ENTRIES: Array<{ what: string; lastLba: number; hex: string }> = [
  // truncate -s 12M: last LBA 24575 = cylinder 1, head 135, sector 6
  { what: '12 MiB', lastLba: 24575, hex: '00410200838706010010000000500000' },
  // truncate -s 1000M: cylinder 127
  { what: '1000 MiB', lastLba: 2047999, hex: '00410200837a3b7f0010000000301f00' },
  // truncate -s 2467750912 (last LBA 300 * 16065 + 5 * 63 + 10): cylinder 300 = 0x12c, its bits 8-9
  // go to the top of the sector byte: 0x0b | 0x40
  { what: 'cylinder 300', lastLba: 300 * 16065 + 5 * 63 + 10, hex: '0041020083054b2c00100000727b4900' },
  // truncate -s 8422686720 (last LBA 1024 * 16065 - 1): cylinder 1023, head 254, sector 63 exactly
  { what: 'last CHS address', lastLba: 1024 * 16065 - 1, hex: '0041020083feffff0010000000f4fa00' },
  // truncate -s 8422687232: cylinder 1024, beyond CHS: FE FF FF
  { what: 'first LBA beyond CHS', lastLba: 1024 * 16065, hex: '0041020083feffff0010000001f4fa00' },
  // truncate -s 20G
  { what: '20 GiB', lastLba: 20 * 2 * 1024 * 1024 - 1, hex: '0041020083feffff0010000000f07f02' },
  // truncate -s 2T: the largest disk an MBR describes; sfdisk warns, then writes count 0xfffff000
  { what: '2 TiB', lastLba: 2 ** 32 - 1, hex: '0041020083feffff0010000000f0ffff' },
];

describe('MBR layout', () => {
  it('has the PC MBR offsets: signature at 440, entries at 446, 0x55AA at 510', () => {
    expect(MBR.span).toBe(512);
    expect(MBR.offsetOf('bootCode')).toBe(0);
    expect(MBR.offsetOf('diskSignature')).toBe(440);
    expect(MBR.offsetOf('reserved')).toBe(444);
    expect(MBR.offsetOf('partitions')).toBe(446);
    expect(MBR.spanOf('partitions')).toBe(64);
    expect(MBR.offsetOf('bootSignature')).toBe(510);
  });
  it('has 16-byte entries: status, CHS, type, CHS, start LBA at 8, count at 12', () => {
    expect(MBR_PARTITION_ENTRY.span).toBe(16);
    const offsets = Object.fromEntries(
      (['status', 'firstChs', 'type', 'lastChs', 'startLba', 'sectorCount'] as const).map((f) => [f, MBR_PARTITION_ENTRY.offsetOf(f)]),
    );
    expect(offsets).toEqual({ status: 0, firstChs: 1, type: 4, lastChs: 5, startLba: 8, sectorCount: 12 });
  });
});

describe('CHS addresses (255 heads, 63 sectors, as sfdisk computes them for a file)', () => {
  it('encodes head, sector (from 1) and cylinder', () => {
    expect(lbaToChs(0).toString('hex')).toBe('000100'); // head 0, sector 1, cylinder 0
    expect(lbaToChs(1).toString('hex')).toBe('000200'); // what sfdisk writes as the protective MBR's first CHS
    expect(lbaToChs(62).toString('hex')).toBe('003f00'); // sector 63
    expect(lbaToChs(63).toString('hex')).toBe('010100'); // next head
    expect(lbaToChs(16064).toString('hex')).toBe('fe3f00'); // head 254, sector 63
    expect(lbaToChs(16065).toString('hex')).toBe('000101'); // cylinder 1
  });
  it('puts cylinder bits 8-9 in the top two bits of the sector byte', () => {
    expect(lbaToChs(256 * 16065).toString('hex')).toBe('004100'); // cylinder 0x100
    expect(lbaToChs(768 * 16065).toString('hex')).toBe('00c100'); // cylinder 0x300
  });
  it('writes FE FF FF from cylinder 1024 on', () => {
    expect(lbaToChs(1024 * 16065 - 1).toString('hex')).toBe('feffff'); // the last real CHS address
    expect(lbaToChs(1024 * 16065).toString('hex')).toBe('feffff');
    expect(lbaToChs(2 ** 32 - 1).toString('hex')).toBe('feffff');
  });
});

describe('encode and decode', () => {
  const oneGiB = () => makeMbr(0x12345678, makePartitionEntry(MBR_TYPE_LINUX, 4096, 2093056));

  it('encodes the bytes sfdisk writes for the same disk (1 GiB, start 4096, type 83), CHS included', () => {
    const buf = encodeMbr(oneGiB());
    expect(buf.length).toBe(512);
    expect(buf.subarray(0, 440).equals(Buffer.alloc(440))).toBe(true);
    expect(buf.subarray(440).toString('hex')).toBe(SFDISK_1G_TAIL);
  });
  for (const { what, lastLba, hex } of SFDISK_ENTRIES) {
    it(`encodes the entry sfdisk writes for a ${what} disk`, () => {
      const entry = makePartitionEntry(MBR_TYPE_LINUX, 4096, lastLba - 4096 + 1);
      expect(encodeMbr(makeMbr(0x12345678, entry)).subarray(446, 462).toString('hex')).toBe(hex);
    });
  }
  it('decodes the sfdisk bytes field by field', () => {
    const buf = Buffer.concat([Buffer.alloc(440), Buffer.from(SFDISK_1G_TAIL, 'hex')]);
    const mbr = decodeMbr(buf);
    expect(mbr.diskSignature).toBe(0x12345678);
    expect(formatDiskSignature(mbr.diskSignature)).toBe('0x12345678'); // sfdisk's label-id above
    expect(formatDiskSignature(0xab)).toBe('0x000000ab');
    expect(mbr.reserved).toBe(0);
    expect(mbr.bootSignature).toBe(0xaa55);
    const p = mbr.partitions[0]!;
    expect(p.status).toBe(0);
    expect(p.type).toBe(0x83);
    expect(p.firstChs.toString('hex')).toBe('410200');
    expect(p.lastChs.toString('hex')).toBe('8a0882');
    expect(p.startLba).toBe(4096);
    expect(p.sectorCount).toBe(2093056);
    expect(mbr.partitions.slice(1)).toEqual([EMPTY_ENTRY, EMPTY_ENTRY, EMPTY_ENTRY]);
    expect(checkMbr(mbr, GiB)).toEqual([]);
  });
  it('round-trips: decode(encode(x)) equals x and re-encodes to the same bytes', () => {
    const mbr: Mbr = {
      ...oneGiB(),
      bootCode: Buffer.alloc(440, 0xcc),
      diskSignature: 0xfedcba98,
      partitions: [
        { ...makePartitionEntry(MBR_TYPE_LINUX, 4096, 2048), status: 0x80 },
        makePartitionEntry(0xbf, 8192, 0xffffffff - 8192),
        EMPTY_ENTRY,
        EMPTY_ENTRY,
      ],
    };
    const buf = encodeMbr(mbr);
    const back = decodeMbr(buf);
    expect(back).toEqual(mbr);
    expect(encodeMbr(back).equals(buf)).toBe(true);
  });
  it('decodes into buffers it owns (changing the input afterwards changes nothing)', () => {
    const buf = encodeMbr(oneGiB());
    const mbr = decodeMbr(buf);
    buf.fill(0xff);
    expect(mbr.partitions[0]!.firstChs.toString('hex')).toBe('410200');
    expect(mbr.bootCode.equals(Buffer.alloc(440))).toBe(true);
  });
  it('refuses a buffer shorter than 512 bytes', () => {
    expect(() => decodeMbr(Buffer.alloc(511))).toThrow(RangeError);
  });
});

describe('protective MBR for a GPT', () => {
  /**
   * Bytes 440..511 sfdisk writes for `label: gpt` on a 64 MiB file (see gpt.test.ts for the
   * command): status 0, first CHS 00 02 00, type EE, last CHS FF FF FF, start 1, count 131071.
   */
  const SFDISK_PMBR_64M =
    '00000000' + '0000' + '00' + '000200' + 'ee' + 'ffffff' + '01000000' + 'ffff0100' + '00'.repeat(48) + '55aa';

  it('matches sfdisk in every field but the last CHS, which sfdisk always writes as FF FF FF', () => {
    const ours = encodeMbr(makeMbr(0, makePartitionEntry(MBR_TYPE_GPT_PROTECTIVE, 1, 131071)));
    const theirs = Buffer.from(SFDISK_PMBR_64M, 'hex');
    // libfdisk's gpt_mknew_pmbr sets end head/sector/track to 0xFF; we write the real CHS of
    // LBA 131071 (cylinder 8, head 40, sector 32), which the UEFI spec also allows for a disk CHS
    // can address. Readers ignore it either way.
    expect(ours.subarray(446 + 5, 446 + 8).toString('hex')).toBe('28' + '20' + '08');
    ours.fill(0xff, 446 + 5, 446 + 8);
    expect(ours.subarray(440).toString('hex')).toBe(theirs.toString('hex'));
  });
});

describe('rules (checkMbr)', () => {
  const good = () => makeMbr(0x12345678, makePartitionEntry(MBR_TYPE_LINUX, 4096, 2093056));
  const withEntry = (i: number, e: Partial<MbrPartitionEntry>): Mbr => {
    const m = good();
    m.partitions = m.partitions.map((p, j) => (j === i ? { ...p, ...e } : p));
    return m;
  };
  const fields = (m: Mbr, size: number | undefined = GiB) => checkMbr(m, size).map((p) => p.field);

  it('accepts the MBR mkimage writes, with or without a disk size', () => {
    expect(checkMbr(good(), GiB)).toEqual([]);
    expect(checkMbr(good())).toEqual([]);
  });
  it('rejects a boot signature other than 55 AA (and says nothing else)', () => {
    expect(fields({ ...good(), bootSignature: 0x55aa, partitions: [{ ...EMPTY_ENTRY, type: 0x83, status: 7 }, EMPTY_ENTRY, EMPTY_ENTRY, EMPTY_ENTRY] })).toEqual(['bootSignature']);
  });
  it('rejects a status other than 0x00 or 0x80', () => {
    expect(fields(withEntry(0, { status: 0x80 }))).toEqual([]);
    expect(fields(withEntry(0, { status: 0x01 }))).toEqual(['partitions[0].status']);
  });
  it('rejects a used entry with no sectors', () => {
    expect(fields(withEntry(0, { sectorCount: 0 }))).toEqual(['partitions[0].sectorCount']);
  });
  it('rejects a partition that ends past the disk', () => {
    expect(fields(withEntry(0, { sectorCount: 2093057 }))).toEqual(['partitions[0].sectorCount']);
    expect(fields(good(), GiB - 512)).toEqual(['partitions[0].sectorCount']);
  });
  it('lets a protective 0xEE entry claim more than the disk', () => {
    expect(fields(withEntry(0, { type: MBR_TYPE_GPT_PROTECTIVE, startLba: 1, sectorCount: 0xffffffff }))).toEqual([]);
  });
  it('rejects overlapping partitions, naming the later one', () => {
    const m = withEntry(1, makePartitionEntry(MBR_TYPE_LINUX, 2093056 + 4096 - 1, 1));
    expect(fields(m)).toEqual(['partitions[1]']);
    expect(checkMbr(m, GiB)[0]!.message).toMatch(/partitions 1 and 2 overlap/);
    // adjacent is fine
    expect(fields(withEntry(1, makePartitionEntry(MBR_TYPE_LINUX, 2048, 2048)))).toEqual([]);
  });
  it('ignores unused entries (type 0), whatever they hold', () => {
    expect(fields(withEntry(3, { type: 0, status: 0x42, startLba: 4096, sectorCount: 0 }))).toEqual([]);
  });
  it('describes 2 TiB exactly: start 4096, count 0xfffff000 ends at the last u32 LBA', () => {
    const m = makeMbr(1, makePartitionEntry(MBR_TYPE_LINUX, 4096, 2 ** 32 - 4096));
    expect(checkMbr(m, 2 * TiB)).toEqual([]);
    expect(encodeMbr(m).subarray(446 + 8, 446 + 16).toString('hex')).toBe('00100000' + '00f0ffff');
    expect(fields(m, 2 * TiB - 2 * MiB)).toEqual(['partitions[0].sectorCount']);
  });
});
