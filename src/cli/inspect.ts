/** `mkimage inspect [--json] IMAGE` */
import type { Command } from 'commander';
import { formatSize } from '../layout/units.js';
import type { ImageReport } from '../jobs/inspect.js';
import { printResult, type CliContext } from './context.js';

export function formatReport(r: ImageReport): string {
  const lines = [`${r.path}: ${formatSize(r.sizeBytes)} (${formatSize(r.allocatedBytes)} on disk), ${r.table.type.toUpperCase()}${r.table.diskSignature ? ` disk signature ${r.table.diskSignature}` : ''}${r.table.diskGuid ? ` disk guid ${r.table.diskGuid}` : ''}`];
  for (const p of r.partitions) {
    lines.push(`  partition ${p.index + 1}: start ${formatSize(p.offsetBytes)} (LBA ${p.startLba}), ${formatSize(p.sizeBytes)}, type ${p.type}${p.name ? ` "${p.name}"` : ''}`);
  }
  if (r.pfn) {
    const f = r.pfn;
    lines.push(`  PFN info block: ${f.signature} v${f.versionMajor}.${f.versionMinor}, uuid ${f.uuid}, mode ${f.mode}, dataoff ${formatSize(f.dataOffBytes)}, align ${formatSize(f.effectiveAlignBytes)}, npfns ${f.npfns}, checksum ${f.checksum}`);
  } else {
    lines.push('  PFN info block: none');
  }
  if (r.filesystem) {
    const fs = r.filesystem;
    lines.push(fs.type === 'zfs' ? `  filesystem: zfs pool "${fs.pool}" guid ${fs.guid}${r.pool ? `, ${r.pool.state}${r.pool.attachedHere ? ` (attached here: ${r.pool.loopDevices.join(', ')})` : ''}` : ''}` : `  filesystem: ${fs.type} ${formatSize(fs.sizeBytes)}, uuid ${fs.uuid}${fs.label ? `, label "${fs.label}"` : ''}`);
  } else {
    lines.push('  filesystem: none found at the data offset');
  }
  if (r.source) lines.push(`  source: ${r.source.reference ?? '(unnamed: layer tars)'}${r.source.manifestDigest ? ` ${r.source.manifestDigest}` : ''}${r.source.configDigest ? `, config ${r.source.configDigest}` : ''}${r.source.hasGuestConfig ? ', boots /.mkimage/init' : ''}`);
  lines.push(r.guest.accepts ? `  guest: /dev/pmem0 of ${formatSize(r.guest.pmemSizeBytes!)} in fsdax mode` : `  guest: rejects the PFN info block (${r.guest.namespaceMode === 'raw' ? 'raw /dev/pmem0 of the whole file, no DAX' : 'no /dev/pmem0'})`);
  for (const p of r.problems) lines.push(`  problem: ${p.field}: ${p.message}`);
  lines.push(r.ok ? '  verdict: ok' : `  verdict: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
  return lines.join('\n');
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('inspect')
    .description('decode the MBR/GPT and PFN info block, apply the kernel\'s rules, detect the filesystem (exit 1 if a guest would reject it)')
    .argument('<image>', 'image file')
    .option('--json', 'print the report as one JSON document')
    .option('-q, --quiet', 'print nothing; the exit status tells')
    .option('-v, --verbose', 'print stacks with errors')
    .action(async (image: string, flags: { json?: boolean; quiet?: boolean; verbose?: boolean }) => {
      const { inspectImage } = await import('../jobs/inspect.js');
      const report = await inspectImage(image);
      printResult(flags, report, () => formatReport(report));
      if (!report.ok) ctx.exitCode = 1;
    });
}
