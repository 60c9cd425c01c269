/** `mkimage qemu-args IMAGE [--mem SIZE] [--readonly] [--cmdline] [-0] [--json]` */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { parseSize } from '../layout/units.js';
import { printResult, type CliContext } from './context.js';

interface QemuFlags {
  mem: string;
  readonly?: boolean;
  cmdline?: boolean;
  null?: boolean;
  json?: boolean;
  verbose?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('qemu-args')
    .description('print the QEMU options that attach IMAGE as an NVDIMM (refuses an image a guest would reject)')
    .argument('<image>', 'image file')
    .option('--mem <size>', 'guest RAM, for -m and maxmem (at least 64 MiB, plus the struct pages of a --memmap ram image)', '1G')
    .option('--readonly', 'share the image read-only (readonly=on, unarmed=on)')
    .option('--cmdline', 'print the kernel command line for root=/dev/pmem0 instead (ext4 and xfs images; exit 2 for others)')
    .option('-0, --null', 'print each argument followed by a NUL byte, for xargs -0 or mapfile -d \'\' (paths with spaces)')
    .option('--json', 'print args, kernel command line and mount hint as JSON')
    .option('-v, --verbose', 'print stacks with errors')
    .action(async (image: string, flags: QemuFlags) => {
      if (flags.null && flags.json) throw new UsageError('--null and --json are two output forms: give one');
      const { qemuArgs } = await import('../jobs/qemu-args.js');
      const r = await qemuArgs(image, { memBytes: parseSize(flags.mem, '--mem'), readOnly: flags.readonly });
      if (flags.cmdline && !flags.json && r.cmdline === undefined) {
        // Nothing on stdout: $(mkimage qemu-args --cmdline IMAGE) must not put a hint on a kernel command line.
        throw new UsageError(`${image} has no ext4 or xfs filesystem to be the guest's root, so there is no root= command line: in the guest, ${r.mountHint}`, { mountHint: r.mountHint });
      }
      if (flags.null) {
        process.stdout.write(flags.cmdline ? `${r.cmdline}\0` : r.args.map((a) => `${a}\0`).join(''));
        return;
      }
      printResult(flags, r, () => (flags.cmdline ? r.cmdline! : r.shell));
    });
}
