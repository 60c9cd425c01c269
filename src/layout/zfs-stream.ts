/**
 * The first record of a ZFS send stream (`dmu_replay_record` of type DRR_BEGIN): enough to tell a
 * stream from anything else, full from incremental, and which snapshot it carries. Pure.
 * Source of truth: OpenZFS include/sys/zfs_ioctl.h (`struct dmu_replay_record`, `drr_begin`),
 * the same in zfs-fuse 0.7. Written in the sender's byte order: the magic tells which.
 *
 *   off size field
 *   0   4    drr_type            0 = DRR_BEGIN
 *   4   4    drr_payloadlen      (nvlist of a replication stream's properties follows)
 *   8   8    drr_magic           DMU_BACKUP_MAGIC 0x2F5bacbac
 *   16  8    drr_versioninfo     stream format and feature flags
 *   24  8    drr_creation_time
 *   32  4    drr_type (objset)   2 = ZFS filesystem
 *   36  4    drr_flags
 *   40  8    drr_toguid
 *   48  8    drr_fromguid        0: a full stream
 *   56  256  drr_toname          "pool/dataset@snapshot" (NUL-terminated)
 *   312 payloadlen               a replication stream (send -R): an XDR-packed nvlist, "fromsnap"
 *                                (incremental only), "tosnap", "fss" (every dataset); its own
 *                                BEGIN record says fromguid 0 even when incremental
 * Seen in zfs-fuse 0.7's `send -R` and `send -R -i`: the nvlist is XDR (encoding byte 1).
 */
import { decodeNvlist, nvGet } from './zfs-label.js';

export const DRR_BEGIN = 0;
export const DMU_BACKUP_MAGIC = 0x2f5bacbacn;
export const STREAM_HEAD_BYTES = 56 + 256;
/** A replication stream's header nvlist larger than this is refused rather than read. */
export const MAX_STREAM_PAYLOAD_BYTES = 16 * 1024 * 1024;

export interface StreamBegin {
  littleEndian: boolean;
  toGuid: bigint;
  fromGuid: bigint;
  /** The snapshot the stream brings, as named on the sender: "pool/dataset@snapshot". */
  toName: string;
  /** Bytes of the header nvlist after the record (replication streams). */
  payloadBytes: number;
  /** Applies over an earlier snapshot the receiver must have (fromguid, or the nvlist's fromsnap). */
  incremental: boolean;
  /** Replication stream: the snapshot it starts from (short name), when incremental. */
  fromSnap?: string;
}

/** Decodes the BEGIN record; undefined when `head` is not the start of a ZFS send stream. */
export function decodeStreamBegin(head: Buffer): StreamBegin | undefined {
  if (head.length < STREAM_HEAD_BYTES) return undefined;
  for (const le of [true, false]) {
    const u32 = (o: number) => (le ? head.readUInt32LE(o) : head.readUInt32BE(o));
    const u64 = (o: number) => (le ? head.readBigUInt64LE(o) : head.readBigUInt64BE(o));
    if (u32(0) !== DRR_BEGIN || u64(8) !== DMU_BACKUP_MAGIC) continue;
    const nameBytes = head.subarray(56, 56 + 256);
    const end = nameBytes.indexOf(0);
    const toName = nameBytes.subarray(0, end < 0 ? 256 : end).toString('utf8');
    const fromGuid = u64(48);
    return { littleEndian: le, toGuid: u64(40), fromGuid, toName, payloadBytes: u32(4), incremental: fromGuid !== 0n };
  }
  return undefined;
}

/** Adds what a replication stream's header nvlist says (`payload`: the bytes after the record). */
export function withStreamPayload(begin: StreamBegin, payload: Buffer): StreamBegin {
  if (!payload.length) return begin;
  const nv = decodeNvlist(payload);
  const from = nvGet(nv, 'fromsnap');
  return typeof from === 'string' && from !== '' ? { ...begin, incremental: true, fromSnap: from } : begin;
}
