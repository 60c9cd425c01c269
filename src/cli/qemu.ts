/** `mkimage qemu-args IMAGE [--mem SIZE] [--readonly] [--cmdline] [--json]` */
import type { Command } from 'commander';
import { parseSize } from '../layout/units.js';
import { printResult, type CliContext } from './context.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('qemu-args')
    .description('print the QEMU options that attach IMAGE as an NVDIMM (refuses an image a guest would reject)')
    .argument('<image>', 'image file')
    .option('--mem <size>', 'guest RAM, for -m and maxmem', '1G')
    .option('--readonly', 'share the image read-only (readonly=on, unarmed=on)')
    .option('--cmdline', 'print the kernel command line for root=/dev/pmem0 instead')
    .option('--json', 'print args, kernel command line and mount hint as JSON')
    .option('-v, --verbose', 'print stacks with errors')
    .action(async (image: string, flags: { mem: string; readonly?: boolean; cmdline?: boolean; json?: boolean; verbose?: boolean }) => {
      const { qemuArgs } = await import('../jobs/qemu-args.js');
      const r = await qemuArgs(image, { memBytes: parseSize(flags.mem, '--mem'), readOnly: flags.readonly });
      printResult(flags, r, () => (flags.cmdline ? (r.cmdline ?? `# ${r.mountHint}`) : r.shell));
    });
}
