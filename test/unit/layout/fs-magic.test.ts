import { describe, expect, it } from 'vitest';
import { FS_MAGIC_PROBE_BYTES, detectFs } from '../../../src/layout/fs-magic.js';

/**
 * ext4: the start of the superblock mke2fs 1.47.0 wrote with the arguments ext4Args builds
 * (a 60 MiB filesystem at offset 2 MiB of a 64 MiB file):
 *   truncate -s 64M ext4.img
 *   E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -t ext4 -b 4096 -U 6e5c1a2b-3d4f-4a6b-8c7d-9e0f1a2b3c4d \
 *     -E offset=2097152,nodiscard,assume_storage_prezeroed=1,hash_seed=11111111-2222-4333-8444-555555555555 \
 *     -L mkimage-ext4 -- ext4.img 15360
 *   dd if=ext4.img bs=1 skip=2097152 count=4096 status=none > ext4.head
 *   xxd -s 1024 -l 352 -c 32 -p ext4.head
 * Bytes 0..1023 of the partition are zero; the superblock's later bytes (0x160..0x3ff) are left
 * out here (zero below): detection reads nothing past 0x154.
 * dumpe2fs -h: Block count 15360, Block size 4096, UUID 6e5c1a2b-..., volume name mkimage-ext4.
 */
const EXT4_SB_HEAD = [
  '003c0000003c0000000300002f340000f53b0000000000000200000002000000', // 0x00 s_blocks_count_lo 0x3c00, s_log_block_size 2 @0x18
  '0080000000800000003c00000000000000f153650000ffff53ef010001000000', // 0x20 s_magic 53 ef @0x38
  '00f15365000000000000000001000000000000000b000000000100003c000000',
  'c20200006b0400006e5c1a2b3d4f4a6b8c7d9e0f1a2b3c4d6d6b696d6167652d', // 0x60 s_uuid @0x68, s_volume_name @0x78
  '6578743400000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000070000000000000000000000000000000000',
  '0800000000000000000000001111111122224333844455555555555501014000', // 0xe0 s_hash_seed @0xec
  '0c0000000000000000f153650af303000400000000000000000000000a000000',
  '0f0000000a0000000f0000001a00000019000000e7030000ea03000000000000',
  '0000000000000000000000000000400000000000000000000000000020002000', // 0x140 s_blocks_count_hi @0x150 = 0
].join('');

/**
 * xfs: the superblock (sector 0) mkfs.xfs 6.1.0 wrote with the arguments xfsArgs builds, on a
 * 512 MiB file:
 *   truncate -s 512M xfs.img
 *   mkfs.xfs -q -f -K -b size=4096 -m reflink=0,uuid=7f6d2b3c-4e5a-4b7c-9d8e-0f1a2b3c4d5e -L mkimage-xfs -- xfs.img
 *   xxd -l 232 -c 32 -p xfs.img          # the rest of sector 0 is zero
 *   xxd -s $((1024+0x30)) -l 16 -p xfs.img   # inside the AGI (sector 2): ff x 16
 * xfs_db -r -c 'sb 0' -c 'p blocksize dblocks uuid fname': 4096, 131072, 7f6d2b3c-..., "mkimage-xfs\000".
 */
const XFS_SB = [
  '5846534200001000000000000002000000000000000000000000000000000000', // "XFSB", sb_blocksize 0x1000, sb_dblocks 0x20000 (BE)
  '7f6d2b3c4e5a4b7c9d8e0f1a2b3c4d5e00000000000100050000000000000080', // sb_uuid @32
  '0000000000000081000000000000008200000001000080000000000400000000',
  '00004000b4a50200020000086d6b696d6167652d786673000c0909030f000019', // sb_fname @108 (12 bytes)
  '0000000000000040000000000000003d000000000001bfe40000000000000000',
  '0000000000000000000000000000000000000000000000080000000000000000',
  '00000000000000010000018a0000018a00000000000000090000000b00000000',
  'ebe1d71400000004',
].join('');
const XFS_AGI_AT_0X430 = 'ff'.repeat(16);

/** The first 4 KiB of the ext4 partition: zeros, the superblock at 1024. */
function ext4Probe(): Buffer {
  const b = Buffer.alloc(FS_MAGIC_PROBE_BYTES);
  Buffer.from(EXT4_SB_HEAD, 'hex').copy(b, 1024);
  return b;
}

/** The first 4 KiB of the xfs filesystem as far as detection is concerned. */
function xfsProbe(): Buffer {
  const b = Buffer.alloc(FS_MAGIC_PROBE_BYTES);
  Buffer.from(XFS_SB, 'hex').copy(b, 0);
  b.write('XAGI', 1024, 'latin1');
  Buffer.from(XFS_AGI_AT_0X430, 'hex').copy(b, 1024 + 0x30); // covers where ext4's magic would be
  return b;
}

describe('detectFs', () => {
  it('probes 4 KiB', () => {
    expect(FS_MAGIC_PROBE_BYTES).toBe(4096);
  });
  it('recognises the ext4 mkfs.ext4 wrote: uuid, label, 4 KiB blocks, 15360 blocks', () => {
    expect(detectFs(ext4Probe())).toEqual({
      type: 'ext4',
      uuid: '6e5c1a2b-3d4f-4a6b-8c7d-9e0f1a2b3c4d',
      label: 'mkimage-ext4',
      blockBytes: 4096,
      sizeBytes: 15360 * 4096,
    });
  });
  it('recognises the xfs mkfs.xfs wrote: uuid, label, 4 KiB blocks, 512 MiB', () => {
    expect(detectFs(xfsProbe())).toEqual({
      type: 'xfs',
      uuid: '7f6d2b3c-4e5a-4b7c-9d8e-0f1a2b3c4d5e',
      label: 'mkimage-xfs',
      blockBytes: 4096,
      sizeBytes: 512 * 1024 * 1024,
    });
  });
  it('adds ext4 s_blocks_count_hi (64bit filesystems beyond 16 TiB)', () => {
    const b = ext4Probe();
    b.writeUInt32LE(1, 1024 + 0x150);
    expect(detectFs(b)!.sizeBytes).toBe((2 ** 32 + 15360) * 4096);
  });
  it('reads a 16-byte ext4 label and a 12-byte xfs label that fill their fields (no NUL)', () => {
    const e = ext4Probe();
    e.write('abcdefghijklmnop', 1024 + 0x78, 'latin1');
    expect(detectFs(e)!.label).toBe('abcdefghijklmnop');
    const x = xfsProbe();
    x.write('abcdefghijkl', 108, 'latin1');
    expect(detectFs(x)!.label).toBe('abcdefghijkl');
  });
  it('reads an empty label as ""', () => {
    const e = ext4Probe();
    e.fill(0, 1024 + 0x78, 1024 + 0x88);
    expect(detectFs(e)!.label).toBe('');
  });
  it('reads ext4 block sizes 1 KiB to 64 KiB from s_log_block_size', () => {
    for (const [log, bytes] of [[0, 1024], [1, 2048], [2, 4096], [6, 65536]] as const) {
      const b = ext4Probe();
      b.writeUInt32LE(log, 1024 + 0x18);
      expect(detectFs(b)!.blockBytes).toBe(bytes);
    }
  });
  it('finds nothing in zeros, in a flipped magic, or in a probe too short to hold a superblock', () => {
    expect(detectFs(Buffer.alloc(4096))).toBeUndefined();
    const e = ext4Probe();
    e[1024 + 0x38]! ^= 0x01;
    expect(detectFs(e)).toBeUndefined();
    const x = xfsProbe();
    x.write('XFSC', 0, 'latin1');
    expect(detectFs(x)).toBeUndefined();
    expect(detectFs(ext4Probe().subarray(0, 1024 + 0x87))).toBeUndefined();
    expect(detectFs(xfsProbe().subarray(0, 119))).toBeUndefined();
    expect(detectFs(Buffer.alloc(0))).toBeUndefined();
  });
  it('needs no more than the superblock fields: 1024 + 0x88 bytes for ext4, 120 for xfs', () => {
    expect(detectFs(ext4Probe().subarray(0, 1024 + 0x88))).toMatchObject({ type: 'ext4', sizeBytes: 15360 * 4096 });
    expect(detectFs(xfsProbe().subarray(0, 120))).toMatchObject({ type: 'xfs', label: 'mkimage-xfs' });
  });

  it('recognises the erofs mkfs.erofs 1.5 wrote: magic at 1024, uuid, 4 KiB blocks, size from blocks', () => {
    // mkfs.erofs --quiet -U 12345678-1234-1234-1234-123456789abc e.img DIR   (one file, 3 bytes)
    // xxd -s 1024 -l 96 -c 16 -p e.img; bytes 4..7 (checksum) and 24..35 (build time) vary by run.
    const sb = Buffer.from(
      [
        'e2e1f5e048cdda48030000000c002400', // magic e0f5e1e2 LE, checksum, feature_compat 3, blkszbits 0x0c
        '020000000000000054c10d6b00000000', // inos 2, build_time
        '799b0c00010000000000000000000000', // build_time_nsec, blocks 1 @36
        '12345678123412341234123456789abc', // uuid @48
        '00000000000000000000000000000000', // volume_name @64: empty
        '00000000000000000000000000000000',
      ].join(''),
      'hex',
    );
    const probe = Buffer.alloc(FS_MAGIC_PROBE_BYTES);
    sb.copy(probe, 1024);
    expect(detectFs(probe)).toEqual({ type: 'erofs', uuid: '12345678-1234-1234-1234-123456789abc', label: '', blockBytes: 4096, sizeBytes: 4096 });
    probe[1024] ^= 1;
    expect(detectFs(probe)).toBeUndefined();
  });
});

/**
 * erofs: the first 64 bytes of the superblock mkfs.erofs 1.5 (Debian 12) wrote for a directory
 * holding one 3-byte file (bytes 0..1023 of the image are zero; the superblock is at 1024):
 *   mkdir et && echo hi > et/a
 *   mkfs.erofs --all-root -T1700000000 -U 6e5c1a2b-3d4f-4a6b-8c7d-9e0f1a2b3c4d --quiet erofs.img et
 *   xxd -s 1024 -l 64 -c 32 -p erofs.img
 * (the image is 4096 bytes: blocks 1 of 4096 bytes; volume_name @0x40 is empty: 1.5 cannot set it)
 */
const EROFS_SB_HEAD = [
  'e2e1f5e042c4126f030000000c002400020000000000000000f1536500000000', // magic @0, checksum @4, blkszbits 0x0c @0x0c, root_nid 0x24
  '000000000100000000000000000000006e5c1a2b3d4f4a6b8c7d9e0f1a2b3c4d', // blocks 1 @0x24, uuid @0x30
].join('');
function erofsProbe(): Buffer {
  const b = Buffer.alloc(FS_MAGIC_PROBE_BYTES);
  Buffer.from(EROFS_SB_HEAD, 'hex').copy(b, 1024);
  return b;
}

describe('detectFs: erofs', () => {
  it('reads the magic, block size, size and uuid mkfs.erofs wrote', () => {
    expect(detectFs(erofsProbe())).toEqual({ type: 'erofs', uuid: '6e5c1a2b-3d4f-4a6b-8c7d-9e0f1a2b3c4d', label: '', blockBytes: 4096, sizeBytes: 4096 });
  });
  it('reads volume_name at 0x40 as the label', () => {
    const b = erofsProbe();
    b.write('rootfs\0', 1024 + 0x40, 'latin1');
    expect(detectFs(b)!.label).toBe('rootfs');
  });
  it('finds nothing with a flipped magic or a probe shorter than 1024 + 0x50', () => {
    const b = erofsProbe();
    b[1024]! ^= 0x01;
    expect(detectFs(b)).toBeUndefined();
    expect(detectFs(erofsProbe().subarray(0, 1024 + 0x4f))).toBeUndefined();
  });
});
