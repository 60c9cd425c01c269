/**
 * `mkimage qemu-args IMAGE [--mem SIZE] [--readonly] [--device nvdimm|virtio-pmem] [--cmdline]
 *  [--guest-init] [--init PATH [-- ARGS...]] [--json]`
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { parseSize } from '../layout/units.js';
import { PMEM_DEVICES, type PmemDevice } from '../tools/qemu.js';
import { printResult, type CliContext } from './context.js';

interface Flags {
  mem: string;
  readonly?: boolean;
  device: string;
  cmdline?: boolean;
  guestInit?: boolean;
  init?: string;
  json?: boolean;
  verbose?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('qemu-args')
    .description('print the QEMU options that attach IMAGE as an NVDIMM or virtio-pmem device (refuses an image a guest would reject)')
    .argument('<image>', 'image file')
    .argument('[args...]', 'with --init: its arguments (after --)')
    .option('--mem <size>', 'guest RAM, for -m and maxmem', '1G')
    .option('--readonly', 'share the image read-only (readonly=on; unarmed=on for an NVDIMM)')
    .option('--device <type>', `how the guest sees the image: ${PMEM_DEVICES.join(' or ')}`, 'nvdimm')
    .option('--cmdline', 'print the kernel command line that boots /dev/pmem0 as the root instead')
    .option('--guest-init', 'the image holds /.mkimage/init and /.mkimage/config.json: the command line runs its entrypoint')
    .option('--init <path>', 'run PATH (inside the image) instead of the entrypoint, with ARGS after --')
    .option('--json', 'print args, kernel command line and mount hint as JSON')
    .option('-v, --verbose', 'print stacks with errors')
    .action(async (image: string, initArgs: string[], flags: Flags) => {
      ctx.out = flags;
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
      printResult(flags, r, () => (flags.cmdline ? (r.cmdline ?? `# ${r.mountHint}`) : r.shell));
    });
}
