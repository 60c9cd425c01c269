/** `mkimage resize IMAGE --size SIZE|+DELTA [--sparse|--preallocate] [--align SIZE] [--wait SECONDS]` */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { formatSize, parseSize } from '../layout/units.js';
import type { ResizeRequest, ResizeResult } from '../jobs/resize.js';
import { printResult, progressPrinter, waitFlags, waitOption, type CliContext } from './context.js';

interface ResizeFlags {
  size: string;
  sparse?: boolean;
  preallocate?: boolean;
  align?: string;
  wait?: number;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** SIZE or +DELTA. */
export function parseResizeSize(text: string): ResizeRequest {
  const t = text.trim();
  if (t.startsWith('+')) return { deltaBytes: parseSize(t.slice(1), '--size +DELTA') };
  if (t.startsWith('-')) throw new UsageError(`--size ${text}: resize only grows an image (shrinking is not supported)`, { size: text });
  return { sizeBytes: parseSize(t, '--size') };
}

export function formatResize(r: ResizeResult): string {
  if (!r.steps.length) return `${r.path}: ${formatSize(r.sizeBytes)} already, its ${r.fs === 'none' ? 'partition' : r.fs} fills it: nothing to do`;
  const fsLine =
    r.fs === 'none'
      ? '  no filesystem to grow'
      : r.fs === 'zfs'
        ? `  pool ${r.filesystem.grown ? `expanded: ${r.filesystem.size ?? '?'}` : 'unchanged'}`
        : `  ${r.fs} ${r.filesystem.oldSizeBytes !== undefined ? `${formatSize(r.filesystem.oldSizeBytes)} -> ` : ''}${formatSize(r.filesystem.sizeBytes ?? 0)}`;
  const lines = [
    `${r.path}: ${formatSize(r.oldSizeBytes)} -> ${formatSize(r.sizeBytes)}, ${r.sparse ? 'sparse' : 'preallocated'} (${formatSize(r.allocatedBytes)} on disk), ${r.table.toUpperCase()}`,
    `  partition ${formatSize(r.partition.offsetBytes)} .. end: ${formatSize(r.partition.oldSizeBytes)} -> ${formatSize(r.partition.sizeBytes)}, guest /dev/pmem0 ${formatSize(r.pmemSizeBytes)}`,
    fsLine,
  ];
  if (r.fileSizeBytes > r.oldSizeBytes) lines.push(`  completed an interrupted resize (the file was ${r.fileSizeBytes} bytes, its headers described ${r.oldSizeBytes})`);
  if (r.roundedUpBytes > 0) lines.push(`  size rounded up by ${r.roundedUpBytes} bytes to a multiple of the alignment`);
  return lines.join('\n');
}

export function register(program: Command, ctx: CliContext): void {
  waitOption(program
    .command('resize'))
    .description('grow an image in place: file, partition table, PFN block and filesystem (ext4, xfs, zfs pool); never shrinks')
    .argument('<image>', 'image file')
    .requiredOption('-s, --size <size>', 'new size (bytes or K/M/G/T), or +DELTA to grow by; rounded up to the alignment')
    .option('--sparse', 'grow thin: do not reserve the new blocks (default: as the image was made)')
    .option('--preallocate', 'reserve the new blocks with fallocate (default: as the image was made)')
    .option('--align <size>', 'round the new size up to this (default 2M)')
    .option('--json', 'print one JSON document describing the result on stdout')
    .option('-q, --quiet', 'print nothing on success')
    .option('-v, --verbose', 'print stacks with errors')
    .action(async (image: string, flags: ResizeFlags) => {
      if (flags.sparse && flags.preallocate) throw new UsageError('--sparse and --preallocate exclude each other');
      const size = parseResizeSize(flags.size);
      const { resizeImage } = await import('../jobs/resize.js');
      const r = await resizeImage({
        path: image,
        size,
        sparse: flags.sparse ? true : flags.preallocate ? false : undefined,
        alignBytes: flags.align === undefined ? undefined : parseSize(flags.align, '--align'),
        signal: ctx.signal,
        ...waitFlags(flags),
        onProgress: progressPrinter(flags),
      });
      printResult(flags, r, () => formatResize(r));
    });
}
