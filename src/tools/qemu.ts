/**
 * QEMU's command line for an image as an NVDIMM (QEMU docs/nvdimm.txt, REFERENCE.md section 4):
 *
 *   -machine pc,nvdimm=on -m RAM,slots=2,maxmem=RAM+SIZE
 *   -object memory-backend-file,id=mem1,share=on,mem-path=IMAGE,size=SIZE
 *   -device nvdimm,id=nvdimm1,memdev=mem1
 *
 * - size= must equal the file size exactly, and the file must be a multiple of 2 MiB.
 * - No label-size: labels live at the end of the file and would give the namespace a uuid that
 *   the PFN block's parent_uuid (zero) no longer matches.
 * - share=on: the guest's writes reach the file (without it they go to a private copy).
 * - read-only: readonly=on on the backend and unarmed=on on the device (QEMU refuses an armed
 *   NVDIMM on a read-only backend).
 * Pure: builds arguments; nothing here runs QEMU.
 */
import { MiB, alignUp } from '../layout/units.js';

export interface NvdimmArgsOptions {
  imagePath: string;
  imageSizeBytes: number;
  /** Guest RAM (default 1 GiB). */
  memBytes?: number;
  readOnly?: boolean;
  /** Device id suffix when several images are attached (default 1). */
  index?: number;
  /** QEMU machine type (default pc). */
  machine?: string;
}

/** QEMU option values separate keys with commas: a comma in a path is written twice. */
export function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

/** Sizes as QEMU reads them: whole MiB with an M suffix when exact, else bytes with a B suffix. */
export function qemuSize(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB}M` : `${bytes}B`;
}

export function nvdimmArgs(o: NvdimmArgsOptions): string[] {
  // QEMU reads a bare -m number as MiB: guest RAM is given in whole MiB (rounded up).
  const mem = alignUp(o.memBytes ?? 1024 * MiB, MiB);
  const i = o.index ?? 1;
  const backend = [
    'memory-backend-file',
    `id=mem${i}`,
    'share=on',
    `mem-path=${qemuEscape(o.imagePath)}`,
    `size=${o.imageSizeBytes}`,
    ...(o.readOnly ? ['readonly=on'] : []),
  ];
  const device = ['nvdimm', `id=nvdimm${i}`, `memdev=mem${i}`, ...(o.readOnly ? ['unarmed=on'] : [])];
  return [
    '-machine', `${o.machine ?? 'pc'},nvdimm=on`,
    '-m', `${qemuSize(mem)},slots=2,maxmem=${qemuSize(mem + o.imageSizeBytes)}`,
    '-object', backend.join(','),
    '-device', device.join(','),
  ];
}

/** The kernel command line fragment that mounts /dev/pmem0 as root with DAX. */
export function rootCmdline(fsType: 'ext4' | 'xfs', readOnly = false): string {
  return `root=/dev/pmem0 rootfstype=${fsType} rootflags=dax ${readOnly ? 'ro' : 'rw'}`;
}
