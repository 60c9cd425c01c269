import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  GPT_ENTRY,
  GPT_ENTRY_ARRAY_BYTES,
  GPT_HEADER,
  GPT_PRIMARY_ENTRIES_LBA,
  GPT_TYPE_LINUX,
  GPT_TYPE_ZFS,
  checkGptHeader,
  crc32,
  decodeGptEntries,
  decodeGptHeader,
  decodePartitionName,
  describeGptEntry,
  encodeGptHeader,
  encodePartitionName,
  gptGeometry,
  gptHeaderCrc,
  makeGpt,
  type GptHeader,
} from '../../../src/layout/gpt.js';

/**
 * A GPT made by sfdisk (util-linux 2.38.1) on a 64 MiB file (131072 sectors):
 *   truncate -s 64M g.img
 *   printf 'label: gpt\nlabel-id: 01234567-89AB-CDEF-0123-456789ABCDEF\nstart=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="mkimage"\n' | sfdisk -q g.img
 *   xxd -s 512 -l 92 -p g.img                         # SFDISK_PRIMARY
 *   xxd -s 1024 -l 128 -p g.img                        # SFDISK_ENTRY0 (LBA 2; entries 1..127 are zero)
 *   xxd -s $((64*1024*1024-512)) -l 92 -p g.img        # SFDISK_BACKUP
 * `sfdisk --dump g.img` shows first-lba 2048 (sfdisk aligns it to its 1 MiB grain), last-lba 131038,
 * the partition start=4096 size=124928; `sfdisk --verify g.img`: "No errors detected".
 */
const SFDISK_PRIMARY =
  '4546492050415254' + // "EFI PART"
  '00000100' + // revision 1.0
  '5c000000' + // header size 92
  '3ae9e4ab' + // header crc32 0xabe4e93a
  '00000000' + // reserved
  '0100000000000000' + // my LBA 1
  'ffff010000000000' + // alternate LBA 131071
  '0008000000000000' + // first usable 2048
  'deff010000000000' + // last usable 131038
  '67452301ab89efcd0123456789abcdef' + // disk GUID 01234567-89AB-CDEF-0123-456789ABCDEF, mixed-endian
  '0200000000000000' + // entries at LBA 2
  '80000000' + // 128 entries
  '80000000' + // of 128 bytes
  'a18cb704'; // entry array crc32 0x04b78ca1
const SFDISK_BACKUP =
  '4546492050415254' + '00000100' + '5c000000' +
  'ff25e825' + // header crc32 0x25e825ff
  '00000000' +
  'ffff010000000000' + // my LBA 131071
  '0100000000000000' + // alternate LBA 1
  '0008000000000000' + 'deff010000000000' + '67452301ab89efcd0123456789abcdef' +
  'dfff010000000000' + // backup entries at LBA 131039
  '80000000' + '80000000' + 'a18cb704';
const SFDISK_ENTRY0 =
  'af3dc60f838472478e793d69d8477de4' + // type 0FC63DAF-8483-4772-8E79-3D69D8477DE4 (Linux filesystem)
  '28732ac11ff8d211ba4b00a0c93ec93b' + // unique C12A7328-F81F-11D2-BA4B-00A0C93EC93B
  '0010000000000000' + // first LBA 4096
  'fff7010000000000' + // last LBA 129023 (inclusive)
  '0000000000000000' + // attributes
  '6d006b0069006d006100670065000000' + '00'.repeat(56); // "mkimage" in UTF-16LE, zero-padded to 72
const TOTAL = 131072;
const DISK_GUID = '01234567-89AB-CDEF-0123-456789ABCDEF';
const PART_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

const sfdiskEntries = (): Buffer => {
  const b = Buffer.alloc(GPT_ENTRY_ARRAY_BYTES);
  Buffer.from(SFDISK_ENTRY0, 'hex').copy(b);
  return b;
};
const header = (hex: string) => decodeGptHeader(Buffer.from(hex, 'hex'));
const sameDiskAsSfdisk = () =>
  makeGpt(TOTAL, DISK_GUID, { typeGuid: GPT_TYPE_LINUX, uniqueGuid: PART_GUID, startingLba: 4096, endingLba: 129023, name: 'mkimage' });

describe('GPT layout (UEFI 2.10 section 5.3)', () => {
  it('has the header offsets of table 5-5', () => {
    expect(GPT_HEADER.span).toBe(92);
    const fields = ['signature', 'revision', 'headerSize', 'headerCrc32', 'reserved', 'myLba', 'alternateLba', 'firstUsableLba', 'lastUsableLba', 'diskGuid', 'partitionEntryLba', 'numberOfPartitionEntries', 'sizeOfPartitionEntry', 'partitionEntryArrayCrc32'] as const;
    expect(Object.fromEntries(fields.map((f) => [f, GPT_HEADER.offsetOf(f)]))).toEqual({
      signature: 0, revision: 8, headerSize: 12, headerCrc32: 16, reserved: 20, myLba: 24, alternateLba: 32,
      firstUsableLba: 40, lastUsableLba: 48, diskGuid: 56, partitionEntryLba: 72, numberOfPartitionEntries: 80,
      sizeOfPartitionEntry: 84, partitionEntryArrayCrc32: 88,
    });
  });
  it('has the entry offsets of table 5-6', () => {
    expect(GPT_ENTRY.span).toBe(128);
    const fields = ['partitionTypeGuid', 'uniquePartitionGuid', 'startingLba', 'endingLba', 'attributes', 'partitionName'] as const;
    expect(Object.fromEntries(fields.map((f) => [f, GPT_ENTRY.offsetOf(f)]))).toEqual({
      partitionTypeGuid: 0, uniquePartitionGuid: 16, startingLba: 32, endingLba: 40, attributes: 48, partitionName: 56,
    });
    expect(GPT_ENTRY.spanOf('partitionName')).toBe(72);
  });
  it('uses the standard CRC-32 (the check value of "123456789" is 0xcbf43926)', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.from('EFI PART'))).toBeGreaterThanOrEqual(0); // unsigned, never negative
  });
  it('agrees with zlib\'s CRC-32 on every length up to a full entry array and on empty input', () => {
    expect(crc32(new Uint8Array(0))).toBe(0);
    const data = Buffer.alloc(16384);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    for (const n of [1, 2, 3, 92, 128, 511, 512, 4096, 16384]) expect(crc32(data.subarray(0, n))).toBe(zlibCrc32(data.subarray(0, n)) >>> 0);
  });
});

describe('decoding what sfdisk wrote', () => {
  it('decodes the primary header field by field, both CRCs verified', () => {
    const h = header(SFDISK_PRIMARY);
    expect(h.signature.toString('latin1')).toBe('EFI PART');
    expect(h.revision).toBe(0x00010000);
    expect(h.headerSize).toBe(92);
    expect(h.headerCrc32).toBe(0xabe4e93a);
    expect(gptHeaderCrc(h)).toBe(0xabe4e93a);
    expect(h.myLba).toBe(1n);
    expect(h.alternateLba).toBe(131071n);
    expect(h.firstUsableLba).toBe(2048n);
    expect(h.lastUsableLba).toBe(131038n);
    expect(h.partitionEntryLba).toBe(2n);
    expect(h.numberOfPartitionEntries).toBe(128);
    expect(h.sizeOfPartitionEntry).toBe(128);
    expect(h.partitionEntryArrayCrc32).toBe(0x04b78ca1);
    expect(crc32(sfdiskEntries())).toBe(0x04b78ca1);
    expect(checkGptHeader(h, sfdiskEntries(), TOTAL, 1)).toEqual([]);
  });
  it('decodes the backup header at the last LBA, both CRCs verified', () => {
    const h = header(SFDISK_BACKUP);
    expect(h.headerCrc32).toBe(gptHeaderCrc(h));
    expect(h.myLba).toBe(131071n);
    expect(h.alternateLba).toBe(1n);
    expect(h.partitionEntryLba).toBe(BigInt(gptGeometry(TOTAL).backupEntriesLba));
    expect(checkGptHeader(h, sfdiskEntries(), TOTAL, 131071)).toEqual([]);
  });
  it('decodes the entry: GUIDs in mixed-endian order, inclusive end, UTF-16LE name', () => {
    const entries = decodeGptEntries(sfdiskEntries());
    expect(entries).toHaveLength(1); // empty slots (type GUID zero) are skipped
    expect(describeGptEntry(entries[0]!)).toEqual({
      typeGuid: GPT_TYPE_LINUX,
      uniqueGuid: PART_GUID,
      startingLba: 4096,
      endingLba: 129023,
      name: 'mkimage',
    });
  });
  it('reads the disk GUID sfdisk was given', () => {
    expect(header(SFDISK_PRIMARY).diskGuid.toString('hex')).toBe('67452301ab89efcd0123456789abcdef');
  });
});

describe('encoding (makeGpt) against sfdisk', () => {
  it('writes the same entry array as sfdisk for the same partition, so the same array CRC', () => {
    const g = sameDiskAsSfdisk();
    expect(g.entries.equals(sfdiskEntries())).toBe(true);
    expect(g.primary.partitionEntryArrayCrc32).toBe(0x04b78ca1);
  });
  it('writes sfdisk\'s primary header but for first usable LBA (48, not 2048) and entries LBA (16, not 2)', () => {
    const ours = sameDiskAsSfdisk().primary;
    expect(ours.firstUsableLba).toBe(48n); // 16 + 32 sectors of entries
    expect(ours.partitionEntryLba).toBe(BigInt(GPT_PRIMARY_ENTRIES_LBA));
    const asSfdisk: GptHeader = { ...ours, firstUsableLba: 2048n, partitionEntryLba: 2n };
    asSfdisk.headerCrc32 = gptHeaderCrc(asSfdisk);
    expect(encodeGptHeader(asSfdisk).subarray(0, 92).toString('hex')).toBe(SFDISK_PRIMARY);
  });
  it('writes sfdisk\'s backup header but for the first usable LBA', () => {
    const ours = sameDiskAsSfdisk().backup;
    const asSfdisk: GptHeader = { ...ours, firstUsableLba: 2048n };
    asSfdisk.headerCrc32 = gptHeaderCrc(asSfdisk);
    expect(encodeGptHeader(asSfdisk).subarray(0, 92).toString('hex')).toBe(SFDISK_BACKUP);
  });
  it('encodes our own primary header as known bytes', () => {
    expect(encodeGptHeader(sameDiskAsSfdisk().primary).subarray(0, 92).toString('hex')).toBe(
      '4546492050415254' + '00000100' + '5c000000' +
        crcHex(sameDiskAsSfdisk().primary) +
        '00000000' + '0100000000000000' + 'ffff010000000000' +
        '3000000000000000' + // first usable 48
        'deff010000000000' + '67452301ab89efcd0123456789abcdef' +
        '1000000000000000' + // entries at LBA 16 (8 KiB): past the PFN block at LBA 8..15
        '80000000' + '80000000' + 'a18cb704',
    );
  });
  it('puts the header in a zeroed 512-byte sector', () => {
    const sector = encodeGptHeader(sameDiskAsSfdisk().primary);
    expect(sector.length).toBe(512);
    expect(sector.subarray(92).equals(Buffer.alloc(420))).toBe(true);
  });
  it('round-trips a header, 64-bit LBAs beyond 2^53 included', () => {
    const h: GptHeader = { ...sameDiskAsSfdisk().primary, alternateLba: 0xfedcba9876543210n };
    h.headerCrc32 = gptHeaderCrc(h);
    const back = decodeGptHeader(encodeGptHeader(h));
    expect(back).toEqual(h);
    expect(encodeGptHeader(back).equals(encodeGptHeader(h))).toBe(true);
  });
  it('uses the ZFS type GUID OpenZFS uses', () => {
    const g = makeGpt(TOTAL, DISK_GUID, { typeGuid: GPT_TYPE_ZFS, uniqueGuid: PART_GUID, startingLba: 4096, endingLba: 129023, name: 'z' });
    // 6A898CC3-1DD2-11B2-99A6-080020736631, mixed-endian
    expect(g.entries.subarray(0, 16).toString('hex')).toBe('c38c896ad21db21199a6080020736631');
  });
});

function crcHex(h: GptHeader): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(gptHeaderCrc(h));
  return b.toString('hex');
}

describe('geometry', () => {
  it('keeps 33 sectors at the end: backup entries at last-32, backup header at last', () => {
    expect(gptGeometry(TOTAL)).toEqual({ lastLba: 131071, backupEntriesLba: 131039, firstUsableLba: 48, lastUsableLba: 131038 });
    // the same last usable LBA sfdisk chose
    expect(BigInt(gptGeometry(TOTAL).lastUsableLba)).toBe(header(SFDISK_PRIMARY).lastUsableLba);
  });
  it('places the primary entry array at LBA 16..47, clear of the PFN block at 4 KiB..8 KiB', () => {
    expect(GPT_PRIMARY_ENTRIES_LBA * 512).toBe(8192);
    expect(GPT_PRIMARY_ENTRIES_LBA * 512 + GPT_ENTRY_ARRAY_BYTES).toBe(48 * 512);
  });
});

describe('partition names', () => {
  it('encodes UTF-16LE, zero-padded to 72 bytes', () => {
    expect(encodePartitionName('mkimage').toString('hex')).toBe('6d006b0069006d0061006700650000' + '00'.repeat(57));
    expect(encodePartitionName('é').subarray(0, 4).toString('hex')).toBe('e9000000');
  });
  it('trims to 36 code units and decodes up to the first NUL', () => {
    const long = 'x'.repeat(40);
    const b = encodePartitionName(long);
    expect(b.length).toBe(72);
    expect(decodePartitionName(b)).toBe('x'.repeat(36));
    expect(decodePartitionName(encodePartitionName(''))).toBe('');
    expect(decodePartitionName(encodePartitionName('pool\u00e9'))).toBe('pool\u00e9');
  });
});

describe('rules (checkGptHeader): one flipped field each', () => {
  const good = () => sameDiskAsSfdisk();
  /** A header with `change` applied and its CRC recomputed, so only the flipped rule can fail. */
  const flip = (change: Partial<GptHeader>): GptHeader => {
    const h = { ...good().primary, ...change };
    return { ...h, headerCrc32: gptHeaderCrc(h) };
  };
  /** `entries` null: check the header alone. */
  const fields = (h: GptHeader, entries: Buffer | null = good().entries, myLba = 1) => checkGptHeader(h, entries ?? undefined, TOTAL, myLba).map((p) => p.field);

  it('accepts what makeGpt writes, primary and backup', () => {
    const g = good();
    expect(checkGptHeader(g.primary, g.entries, TOTAL, 1)).toEqual([]);
    expect(checkGptHeader(g.backup, g.entries, TOTAL, TOTAL - 1)).toEqual([]);
  });
  it('rejects a wrong signature (and stops there)', () => {
    expect(fields(flip({ signature: Buffer.from('EFI PARU', 'latin1'), sizeOfPartitionEntry: 7 }))).toEqual(['signature']);
  });
  it('rejects a header size below 92 or above the sector', () => {
    expect(fields(flip({ headerSize: 91 }))).toEqual(['headerSize']);
    expect(fields(flip({ headerSize: 513 }))).toEqual(['headerSize']);
  });
  it('rejects a header CRC that does not match', () => {
    expect(fields({ ...good().primary, headerCrc32: good().primary.headerCrc32 ^ 1 })).toEqual(['headerCrc32']);
  });
  it('rejects a flipped byte anywhere in the header through its CRC', () => {
    const buf = encodeGptHeader(good().primary);
    buf[56]! ^= 0x01; // a disk GUID byte
    expect(fields(decodeGptHeader(buf))).toEqual(['headerCrc32']);
  });
  it('rejects my_lba that is not where the header was read', () => {
    expect(fields(good().primary, good().entries, 2)).toEqual(['myLba']);
    expect(fields(good().backup, good().entries, 1)).toEqual(['myLba']);
  });
  it('rejects an entry size other than 128', () => {
    expect(fields(flip({ sizeOfPartitionEntry: 256 }), null)).toEqual(['sizeOfPartitionEntry']);
  });
  it('rejects a first usable LBA past the last usable LBA', () => {
    expect(fields(flip({ firstUsableLba: 131039n }), null)).toEqual(['firstUsableLba']);
  });
  it('rejects a last usable LBA past the disk', () => {
    expect(fields(flip({ lastUsableLba: BigInt(TOTAL) }), null)).toEqual(['lastUsableLba']);
  });
  it('rejects an entry array CRC that does not match (one flipped byte in the array)', () => {
    const entries = good().entries;
    entries[200]! ^= 0x01; // in entry 1, which is unused
    expect(fields(good().primary, entries)).toEqual(['partitionEntryArrayCrc32']);
  });
  it('rejects a partition outside the usable LBAs, or ending before it starts', () => {
    const withEntry = (startingLba: bigint, endingLba: bigint) => {
      const entries = Buffer.from(good().entries);
      GPT_ENTRY.encode({ ...decodeGptEntries(entries)[0]!, startingLba, endingLba }).copy(entries, 0);
      return { h: flip({ partitionEntryArrayCrc32: crc32(entries) }), entries };
    };
    for (const [start, end] of [[47n, 129023n], [4096n, 131039n], [5000n, 4999n]] as const) {
      const { h, entries } = withEntry(start, end);
      expect(fields(h, entries)).toEqual(['entries[0]']);
    }
    const { h, entries } = withEntry(48n, 131038n); // the whole usable range is fine
    expect(fields(h, entries)).toEqual([]);
  });
});

describe('problems name the entry by its slot in the array', () => {
  // Regression: checkGptHeader once numbered the used entries only, so a bad partition in slot 5
  // after five empty slots was reported as entries[0].
  it('names a bad partition in slot 5 entries[5]', () => {
    const g = sameDiskAsSfdisk();
    const entries = Buffer.alloc(GPT_ENTRY_ARRAY_BYTES);
    g.entries.copy(entries, 5 * 128, 0, 128);
    GPT_ENTRY.encode({ ...decodeGptEntries(g.entries)[0]!, startingLba: 10n }).copy(entries, 5 * 128);
    const h = { ...g.primary, partitionEntryArrayCrc32: crc32(entries) };
    h.headerCrc32 = gptHeaderCrc(h);
    expect(checkGptHeader(h, entries, TOTAL, 1).map((p) => p.field)).toEqual(['entries[5]']);
  });
});
