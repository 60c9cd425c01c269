/**
 * Recognising the filesystem at the start of the partition from its superblock. Pure.
 *
 *   ext4: superblock at +1024 (linux fs/ext4/ext4.h struct ext4_super_block):
 *         s_blocks_count_lo @0x04, s_log_block_size @0x18, s_magic 0xEF53 @0x38,
 *         s_uuid @0x68 (16), s_volume_name @0x78 (16)
 *   xfs:  superblock at +0 (fs/xfs/libxfs/xfs_format.h struct xfs_sb, big-endian):
 *         sb_magicnum "XFSB" @0, sb_blocksize @4, sb_dblocks @8 (u64), sb_uuid @32, sb_fname @108 (12)
 *   erofs: superblock at +1024 (fs/erofs/erofs_fs.h struct erofs_super_block, little-endian):
 *         magic 0xE0F5E1E2 @0x00, blkszbits @0x0c (u8), blocks @0x24 (u32), uuid @0x30 (16),
 *         volume_name @0x40 (16)
 */
import { bytesToUuid } from './uuid.js';

/** How many bytes from the partition start detection needs. */
export const FS_MAGIC_PROBE_BYTES = 4096;

export interface DetectedFs {
  type: 'ext4' | 'xfs' | 'erofs';
  uuid: string;
  label: string;
  blockBytes: number;
  sizeBytes: number;
}

/** EROFS_SUPER_MAGIC_V1 (include/uapi/linux/magic.h). */
export const EROFS_SUPER_MAGIC = 0xe0f5e1e2;

const cstr = (b: Buffer) => b.toString('utf8').replace(/\0[\s\S]*$/, '');

export function detectFs(probe: Buffer): DetectedFs | undefined {
  if (probe.length >= 1024 + 0x88 && probe.readUInt16LE(1024 + 0x38) === 0xef53) {
    const sb = probe.subarray(1024);
    const logBlock = sb.readUInt32LE(0x18);
    const blockBytes = logBlock < 7 ? 1024 << logBlock : 0;
    return {
      type: 'ext4',
      uuid: bytesToUuid(sb.subarray(0x68, 0x78)),
      label: cstr(sb.subarray(0x78, 0x88)),
      blockBytes,
      sizeBytes: sb.readUInt32LE(0x04) * blockBytes + (sb.length >= 0x154 ? sb.readUInt32LE(0x150) * 2 ** 32 * blockBytes : 0),
    };
  }
  if (probe.length >= 1024 + 80 && probe.readUInt32LE(1024) === EROFS_SUPER_MAGIC) {
    const sb = probe.subarray(1024);
    const bits = sb[12]!;
    const blockBytes = bits >= 9 && bits <= 16 ? 2 ** bits : 0;
    return { type: 'erofs', uuid: bytesToUuid(sb.subarray(48, 64)), label: cstr(sb.subarray(64, 80)), blockBytes, sizeBytes: sb.readUInt32LE(36) * blockBytes };
  }
  if (probe.length >= 120 && probe.toString('latin1', 0, 4) === 'XFSB') {
    const blockBytes = probe.readUInt32BE(4);
    return {
      type: 'xfs',
      uuid: bytesToUuid(probe.subarray(32, 48)),
      label: cstr(probe.subarray(108, 120)),
      blockBytes,
      sizeBytes: Number(probe.readBigUInt64BE(8)) * blockBytes,
    };
  }
  if (probe.length >= 1024 + 0x50 && probe.readUInt32LE(1024) === EROFS_SUPER_MAGIC_V1) {
    const sb = probe.subarray(1024);
    const bits = sb.readUInt8(0x0c);
    const blockBytes = bits >= 9 && bits <= 16 ? 2 ** bits : 0;
    return {
      type: 'erofs',
      uuid: bytesToUuid(sb.subarray(0x30, 0x40)),
      label: cstr(sb.subarray(0x40, 0x50)),
      blockBytes,
      sizeBytes: sb.readUInt32LE(0x24) * blockBytes,
    };
  }
  return undefined;
}

/** fs/erofs/erofs_fs.h EROFS_SUPER_MAGIC_V1 */
const EROFS_SUPER_MAGIC_V1 = 0xe0f5e1e2;
