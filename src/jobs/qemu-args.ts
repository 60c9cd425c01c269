/**
 * qemu-args: the QEMU options that attach an image as an NVDIMM or a virtio-pmem device, after
 * checking that a guest kernel would accept it (inspect's rules): mkimage never hands out
 * arguments for an image the guest would reject. With a root filesystem (ext4, xfs, erofs) it also
 * gives the kernel command line that boots it as the root; for an image built from a container
 * image (`guestInit`), one that runs the image's entrypoint through /.mkimage/init.
 */
import { resolve } from 'node:path';
import { InvalidImageError, UsageError } from '../errors.js';
import { GUEST_INIT_PATH } from '../guest/image-config.js';
import { MiB, formatSize } from '../layout/units.js';
import { formatCommand } from '../tools/exec.js';
import { nvdimmArgs, rootCmdline, type KernelInit, type PmemDevice } from '../tools/qemu.js';
import { readImageHeader } from './inspect.js';

/**
 * The least guest RAM qemu-args hands out: a floor for a kernel and its initramfs (the test guest,
 * a Debian kernel, boots in 256 MiB; below 64 MiB no stock distribution kernel does), plus, for a
 * PFN block in ram mode, the struct pages the guest keeps in RAM: 64 B per 4 KiB page of the
 * device (Documentation/driver-api/nvdimm). `--mem 3K` was accepted and gave QEMU 2 MiB.
 */
export const MIN_GUEST_RAM_BYTES = 64 * MiB;

/** The guest RAM an image needs at least: MIN_GUEST_RAM_BYTES and its struct pages in RAM mode. */
export function minimumMemBytes(pfn: { mode: string | number; npfns: number } | undefined): number {
  return MIN_GUEST_RAM_BYTES + (pfn?.mode === 'ram' ? pfn.npfns * 64 : 0);
}

export interface QemuArgsOptions {
  memBytes?: number;
  readOnly?: boolean;
  /** Emulated NVDIMM (default) or virtio-pmem. */
  device?: PmemDevice;
  /**
   * The image carries /.mkimage/init and /.mkimage/config.json (built with --from): the command
   * line runs init=/.mkimage/init. The seam until the image header records it: the caller decides.
   */
  guestInit?: boolean;
  /**
   * Run this instead of the entrypoint: with guestInit, /.mkimage/init runs it (with the config's
   * Env, WorkingDir and User) from the words after `--`; without, the kernel runs it as PID 1.
   */
  init?: KernelInit;
}

export interface QemuArgsResult {
  image: string;
  sizeBytes: number;
  pmemSizeBytes: number;
  device: PmemDevice;
  args: string[];
  /** The args as one shell-quoted line. */
  shell: string;
  /** Kernel command line for root on /dev/pmem0 (ext4/xfs/erofs), absent for other contents. */
  cmdline?: string;
  /** What to run in the guest when /dev/pmem0 is not the root filesystem. */
  mountHint: string;
}

export async function qemuArgs(path: string, o: QemuArgsOptions = {}): Promise<QemuArgsResult> {
  const report = await readImageHeader(path);
  if (!report.guest.accepts) {
    const why = report.problems.filter((p) => p.field.startsWith('pfn.')).map((p) => `${p.field}: ${p.message}`).join('; ');
    throw new InvalidImageError(`${path}: a guest kernel would reject this image (${why || 'no valid PFN info block'}); see mkimage inspect ${path}`, { problems: report.problems });
  }
  const minimum = minimumMemBytes(report.pfn);
  if (o.memBytes !== undefined && o.memBytes < minimum) {
    const pages = report.pfn?.mode === 'ram' ? ` and ${formatSize(minimum - MIN_GUEST_RAM_BYTES)} for the struct pages of /dev/pmem0: 64 B per 4 KiB page with --memmap ram` : '';
    throw new UsageError(`--mem ${formatSize(o.memBytes)} is too little guest RAM for ${path}: give at least ${formatSize(minimum)} (${formatSize(MIN_GUEST_RAM_BYTES)} for the kernel${pages})`, {
      memBytes: o.memBytes,
      minimumBytes: minimum,
    });
  }
  const device = o.device ?? 'nvdimm';
  const args = nvdimmArgs({ imagePath: resolve(path), imageSizeBytes: report.sizeBytes, memBytes: o.memBytes, readOnly: o.readOnly, device });
  const fs = report.filesystem;
  const fsType = fs && (fs.type === 'ext4' || fs.type === 'xfs' || fs.type === 'erofs') ? fs.type : undefined;
  if ((o.init || o.guestInit) && !fsType) {
    throw new UsageError(`${path}: --init needs a root filesystem (ext4, xfs or erofs) in the image; it holds ${fs?.type ?? 'none'}`, { path });
  }
  const init: KernelInit | undefined = o.guestInit
    ? { path: GUEST_INIT_PATH, args: o.init ? [o.init.path, ...(o.init.args ?? [])] : [] }
    : o.init;
  const readOnly = o.readOnly || fsType === 'erofs';
  return {
    image: path,
    sizeBytes: report.sizeBytes,
    pmemSizeBytes: report.guest.pmemSizeBytes!,
    device,
    args,
    shell: formatCommand(args),
    cmdline: fsType ? rootCmdline(fsType, o.readOnly, init) : undefined,
    mountHint:
      fs?.type === 'zfs'
        ? `zpool import -d /dev/pmem0 ${o.readOnly ? '-o readonly=on ' : ''}${fs.pool}`
        : fsType
          ? `mount -t ${fsType} -o dax${readOnly ? ',ro' : ''} /dev/pmem0 /mnt`
          : 'mkfs on /dev/pmem0 first: the image has no filesystem',
  };
}
