/**
 * Which pool lives in a partition, from its ZFS labels alone (nothing is imported, nothing runs):
 * for `inspect` and for `attach`, which needs the pool's name and guid before it touches anything.
 * Reads the four labels' vdev_phys (112 KiB each) and keeps, as ZFS does, the valid one with the
 * highest txg; a label whose checksum fails is skipped.
 */
import { readAt } from '../file/image-file.js';
import { VDEV_PHYS_BYTES, decodeVdevPhys, vdevPhysOffsets, type VdevPhysResult, type ZfsLabel } from '../layout/zfs-label.js';

export interface LabelRead {
  /** 0..3 */
  index: number;
  /** Offset of the vdev_phys in the partition. */
  offsetBytes: number;
  result: VdevPhysResult;
}

/** Every label of the vdev at [partitionOffsetBytes, +partitionSizeBytes) of `path`. */
export async function readZfsLabels(path: string, partitionOffsetBytes: number, partitionSizeBytes?: number): Promise<LabelRead[]> {
  const out: LabelRead[] = [];
  for (const [index, offsetBytes] of vdevPhysOffsets(partitionSizeBytes).entries()) {
    const buf = await readAt(path, partitionOffsetBytes + offsetBytes, VDEV_PHYS_BYTES);
    out.push({ index, offsetBytes, result: buf.length === VDEV_PHYS_BYTES ? decodeVdevPhys(buf, offsetBytes) : { status: 'absent' } });
  }
  return out;
}

export type DetectedZfsLabel = ZfsLabel & { /** Which label (0..3) was used. */ label: number };

/** The pool in the partition, or undefined when no label is valid. */
export async function detectZfsLabel(path: string, partitionOffsetBytes: number, partitionSizeBytes?: number): Promise<DetectedZfsLabel | undefined> {
  let best: DetectedZfsLabel | undefined;
  for (const l of await readZfsLabels(path, partitionOffsetBytes, partitionSizeBytes)) {
    if (l.result.status !== 'ok') continue;
    if (!best || BigInt(l.result.label.txg) > BigInt(best.txg)) best = { ...l.result.label, label: l.index };
  }
  return best;
}
