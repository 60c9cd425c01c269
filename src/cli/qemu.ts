/**
 * `mkimage qemu-args IMAGE [--mem SIZE] [--readonly] [--device nvdimm|virtio-pmem] [--cmdline]
 *  [--guest-init|--no-guest-init] [--init PATH [-- ARGS...]] [--json]`
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { parseSize } from '../layout/units.js';
import { PMEM_DEVICES, type PmemDevice } from '../tools/qemu.js';
import { printResult, type CliContext } from './context.js';
import { writeRaw } from './output.js';

interface QemuFlags {
  mem: string;
  readonly?: boolean;
  device: string;
  cmdline?: boolean;
  guestInit?: boolean;
  init?: string;
  null?: boolean;
  json?: boolean;
  verbose?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('qemu-args')
    .description('print the QEMU options that attach IMAGE as an NVDIMM or virtio-pmem device (refuses an image a guest would reject)')
    .argument('<image>', 'image file')
    .argument('[args...]', 'with --init: its arguments (after --)')
    .option('--mem <size>', 'guest RAM, for -m and maxmem (at least 64 MiB, plus the struct pages of a --memmap ram image)', '1G')
    .option('--readonly', 'share the image read-only (readonly=on; unarmed=on for an NVDIMM)')
    .option('--device <type>', `how the guest sees the image: ${PMEM_DEVICES.join(' or ')}`, 'nvdimm')
    .option('--cmdline', 'print the kernel command line that boots /dev/pmem0 as the root instead (ext4, xfs, erofs; exit 2 for others)')
    .option('--guest-init', 'boot through /.mkimage/init (runs the config\'s entrypoint) although the image has no source record saying so (made with --populate)')
    .option('--no-guest-init', 'an image built with --from: let the kernel run --init PATH as PID 1 instead of /.mkimage/init')
    .option('--init <path>', 'run PATH (inside the image) instead of the entrypoint, with ARGS after --')
    .option('-0, --null', 'print each argument followed by a NUL byte, for xargs -0 or mapfile -d \'\' (paths with spaces)')
    .option('--json', 'print args, kernel command line and mount hint as JSON')
    .option('-v, --verbose', 'print stacks with errors')
    .action(async (image: string, initArgs: string[], flags: QemuFlags) => {
      if (flags.null && flags.json) throw new UsageError('--null and --json are two output forms: give one');
      if (!PMEM_DEVICES.includes(flags.device as PmemDevice)) {
        throw new UsageError(`--device takes ${PMEM_DEVICES.join(' or ')}, not ${JSON.stringify(flags.device)}`, { device: flags.device });
      }
      if (initArgs.length && !flags.init) {
        throw new UsageError(`arguments after the image (${initArgs.map((a) => JSON.stringify(a)).join(' ')}) are for --init PATH: give --init`, { args: initArgs });
      }
      const { qemuArgs } = await import('../jobs/qemu-args.js');
      const r = await qemuArgs(image, {
        memBytes: parseSize(flags.mem, '--mem'),
        readOnly: flags.readonly,
        device: flags.device as PmemDevice,
        guestInit: flags.guestInit,
        init: flags.init === undefined ? undefined : { path: flags.init, args: initArgs },
      });
      if (flags.cmdline && !flags.json && r.cmdline === undefined) {
        // Nothing on stdout: $(mkimage qemu-args --cmdline IMAGE) must not put a hint on a kernel command line.
        throw new UsageError(`${image} has no ext4, xfs or erofs filesystem to be the guest's root, so there is no root= command line: in the guest, ${r.mountHint}`, { mountHint: r.mountHint });
      }
      if (flags.null) {
        writeRaw(1, flags.cmdline ? `${r.cmdline}\0` : r.args.map((a) => `${a}\0`).join(''));
        return;
      }
      printResult(flags, r, () => (flags.cmdline ? r.cmdline! : r.shell));
    });
}
