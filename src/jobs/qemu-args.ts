/**
 * qemu-args: the QEMU options that attach an image as an NVDIMM or a virtio-pmem device, after
 * checking that a guest kernel would accept it (inspect's rules): mkimage never hands out
 * arguments for an image the guest would reject. With a root filesystem (ext4, xfs, erofs) it also
 * gives the kernel command line that boots it as the root; for an image built from a container
 * image (its source record says hasGuestConfig: --from put /.mkimage/init and config.json in it),
 * one that runs the image's entrypoint through /.mkimage/init.
 */
import { resolve } from 'node:path';
import { InvalidImageError, UsageError } from '../errors.js';
import { GUEST_INIT_PATH } from '../guest/image-config.js';
import { MiB, formatSize } from '../layout/units.js';
import { formatCommand } from '../tools/exec.js';
import { nvdimmArgs, rootCmdline, type KernelInit, type PmemDevice } from '../tools/qemu.js';
import { readImageHeader, type ImageReport } from './inspect.js';

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

/**
 * Whether the image boots through /.mkimage/init when the caller does not say: its source record's
 * hasGuestConfig. A damaged record is no answer: the caller must say.
 */
function guestInitOf(path: string, report: ImageReport): boolean {
  const damaged = report.problems.filter((p) => p.field.startsWith('source'));
  if (damaged.length) {
    throw new InvalidImageError(
      `${path}: the source record at byte 1024 is damaged (${damaged.map((p) => `${p.field}: ${p.message}`).join('; ')}), so it cannot say whether the image holds /.mkimage/init: give --guest-init or --no-guest-init`,
      { problems: damaged },
    );
  }
  return report.source?.hasGuestConfig === true;
}

export interface QemuArgsOptions {
  memBytes?: number;
  readOnly?: boolean;
  /** Emulated NVDIMM (default) or virtio-pmem. */
  device?: PmemDevice;
  /**
   * Whether the command line runs init=/.mkimage/init (the image's entrypoint). Default: what the
   * image's source record says (hasGuestConfig: built with --from); true for an image that holds
   * the init otherwise (--populate with guestInitFiles()); false to have the kernel run `init`
   * itself as PID 1 (e.g. systemd in a full OS image built with --from).
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
  /** The command line runs /.mkimage/init, and why: the source record, or the caller's option. */
  guestInit: boolean;
  guestInitFrom: 'source-record' | 'option' | 'none';
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
  if ((o.init || o.guestInit === true) && !fsType) {
    throw new UsageError(`${path}: --init needs a root filesystem (ext4, xfs or erofs) in the image; it holds ${fs?.type ?? 'none'}`, { path });
  }
  // Only a root filesystem gets a command line: only then does the record matter.
  const guestInit = o.guestInit ?? (fsType ? guestInitOf(path, report) : false);
  const init: KernelInit | undefined = guestInit && fsType
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
    guestInit: guestInit && fsType !== undefined,
    guestInitFrom: o.guestInit !== undefined ? 'option' : report.source?.hasGuestConfig ? 'source-record' : 'none',
    mountHint:
      fs?.type === 'zfs'
        ? `zpool import -d /dev/pmem0 ${o.readOnly ? '-o readonly=on ' : ''}${fs.pool}`
        : fsType
          ? `mount -t ${fsType} -o dax${readOnly ? ',ro' : ''} /dev/pmem0 /mnt`
          : 'mkfs on /dev/pmem0 first: the image has no filesystem',
  };
}
