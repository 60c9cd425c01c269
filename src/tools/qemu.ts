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
 *
 * virtio-pmem (QEMU docs/system/devices/virtio-pmem.rst, REFERENCE.md section 9) instead of an
 * emulated NVDIMM: no `nvdimm=on` machine option, the same memory backend, and
 *
 *   -device virtio-pmem-pci,memdev=mem1,id=vpmem1
 *
 * The guest (virtio_pmem, nd_pmem) sees one region per device, honours the PFN info block there
 * too (fsdax: /dev/pmem0 = the partition, `-o dax` works) and flushes through the host: fsync
 * becomes a virtio request ("unable to guarantee persistence of writes" in the kernel log).
 *
 * Pure: builds arguments; nothing here runs QEMU.
 */
import { UsageError } from '../errors.js';
import { MiB, alignUp } from '../layout/units.js';

/** How the image reaches the guest. */
export type PmemDevice = 'nvdimm' | 'virtio-pmem';
export const PMEM_DEVICES: readonly PmemDevice[] = ['nvdimm', 'virtio-pmem'];

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
  /** Emulated NVDIMM (default) or virtio-pmem. */
  device?: PmemDevice;
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
  const virtio = o.device === 'virtio-pmem';
  const device = virtio
    ? ['virtio-pmem-pci', `memdev=mem${i}`, `id=vpmem${i}`]
    : ['nvdimm', `id=nvdimm${i}`, `memdev=mem${i}`, ...(o.readOnly ? ['unarmed=on'] : [])];
  return [
    '-machine', virtio ? (o.machine ?? 'pc') : `${o.machine ?? 'pc'},nvdimm=on`,
    '-m', `${qemuSize(mem)},slots=2,maxmem=${qemuSize(mem + o.imageSizeBytes)}`,
    '-object', backend.join(','),
    '-device', device.join(','),
  ];
}

/** Filesystems a guest can mount from /dev/pmem0 as its root with DAX. */
export type RootFsType = 'ext4' | 'xfs' | 'erofs';

/** The program the kernel starts as PID 1 (init=) and the words after `--` (its arguments). */
export interface KernelInit {
  path: string;
  args?: string[];
}

/**
 * Linux limits (init/main.c): init gets at most MAX_INIT_ARGS (CONFIG_INIT_ENV_ARG_LIMIT = 32)
 * argv entries including argv[0]; x86's COMMAND_LINE_SIZE is 2048 bytes with the NUL.
 */
export const KERNEL_MAX_INIT_ARGS = 32;
export const KERNEL_CMDLINE_MAX_BYTES = 2047;

/**
 * One word of the kernel command line, as the kernel's next_arg() splits it (lib/cmdline.c,
 * kernel/params.c): a word with whitespace, or an empty one, is wrapped in double quotes, which
 * the kernel removes. A double quote or a control character cannot be carried at all (the kernel
 * has no escape): refused with the word named.
 */
export function kernelWord(word: string, what = 'argument'): string {
  if (/["\x00-\x08\x0a-\x1f\x7f]/.test(word)) {
    throw new UsageError(`the kernel command line cannot carry the ${what} ${JSON.stringify(word)}: it has a double quote or a control character (the kernel has no escape for them); put it in the image's config instead`, { word });
  }
  return word === '' || /\s/.test(word) ? `"${word}"` : word;
}

/**
 * The kernel command line that mounts /dev/pmem0 as root with DAX and, with `init`, runs
 * init.path as PID 1 with init.args after `--`. erofs is read-only: always `ro`.
 */
export function rootCmdline(fsType: RootFsType, readOnly = false, init?: KernelInit): string {
  const ro = readOnly || fsType === 'erofs';
  const words = [`root=/dev/pmem0`, `rootfstype=${fsType}`, 'rootflags=dax', ro ? 'ro' : 'rw'];
  if (init) {
    if (!init.path.startsWith('/')) throw new UsageError(`--init takes an absolute path inside the image, not ${JSON.stringify(init.path)}`, { path: init.path });
    words.push(`init=${kernelWord(init.path, 'init path')}`);
    const args = init.args ?? [];
    if (args.length + 1 > KERNEL_MAX_INIT_ARGS) {
      throw new UsageError(`the kernel passes init at most ${KERNEL_MAX_INIT_ARGS - 1} arguments; ${args.length} were given`, { count: args.length });
    }
    if (args.length) words.push('--', ...args.map((a) => kernelWord(a)));
  }
  const line = words.join(' ');
  if (Buffer.byteLength(line) > KERNEL_CMDLINE_MAX_BYTES) {
    throw new UsageError(`the kernel command line would be ${Buffer.byteLength(line)} bytes; x86 Linux takes at most ${KERNEL_CMDLINE_MAX_BYTES}`, { bytes: Buffer.byteLength(line) });
  }
  return line;
}
