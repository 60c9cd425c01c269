/**
 * ZFS snapshots and streams of an image's pool: `snapshot`, `snapshots`, `send`, `receive`.
 * Each attaches the image when needed and leaves it as found.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { SnapshotInfo } from '../jobs/snapshots.js';
import { printResult, waitFlags, waitOption, type CliContext, type OutputOptions } from './context.js';
import { isTerminal, writeErr } from './output.js';

interface Common extends OutputOptions {
  mount?: string;
  wait?: number;
}

const common = (c: Command) =>
  waitOption(c)
    .option('--mount <dir>', 'the altroot to import with when the image is not attached')
    .option('--json', 'print the result as one JSON document')
    .option('-q, --quiet', 'print nothing on success')
    .option('-v, --verbose', 'print stacks with errors');

export function formatSnapshots(pool: string, list: SnapshotInfo[]): string {
  if (!list.length) return `pool ${pool}: no snapshots`;
  return list.map((s) => `${s.name}\tused ${s.used}\treferenced ${s.referenced}`).join('\n');
}

export function register(program: Command, ctx: CliContext): void {
  common(
    program
      .command('snapshot')
      .description('snapshot a dataset of a ZFS image (and its descendants, unless --no-recursive)')
      .argument('<image>', 'image made with --fs zfs')
      .argument('<name>', 'snapshot name (after @)')
      .option('--dataset <path>', "the dataset below the pool (default: the pool's root)")
      .option('--no-recursive', 'only the dataset itself, not its descendants'),
  ).action(async (image: string, name: string, flags: Common & { dataset?: string; recursive: boolean }) => {
    const { snapshotImage } = await import('../jobs/snapshots.js');
    const r = await snapshotImage(image, name, { dataset: flags.dataset, recursive: flags.recursive, mount: flags.mount, signal: ctx.signal, ...waitFlags(flags) });
    printResult(flags, r, () => r.snapshots.join('\n'));
  });

  common(program.command('snapshots').description("list the snapshots in a ZFS image's pool, oldest first").argument('<image>', 'image made with --fs zfs')).action(
    async (image: string, flags: Common) => {
      const { listSnapshots } = await import('../jobs/snapshots.js');
      const r = await listSnapshots(image, { mount: flags.mount, signal: ctx.signal, ...waitFlags(flags) });
      printResult(flags, r, () => formatSnapshots(r.pool, r.snapshots));
    },
  );

  common(
    program
      .command('send')
      .description('write a replication stream (zfs send -R) of DATASET@SNAP: full, or incremental with --from')
      .argument('<image>', 'image made with --fs zfs')
      .argument('<snapshot>', "DATASET@SNAP (DATASET below the pool; @SNAP: the pool's root)")
      .option('--from <snap>', 'incremental from this earlier snapshot of the same dataset')
      .requiredOption('-o, --output <file>', 'the stream file (written whole or not at all), or - for stdout (not a terminal)'),
  ).action(async (image: string, what: string, flags: Common & { from?: string; output: string }) => {
    const toStdout = flags.output === '-';
    if (toStdout && isTerminal(1)) throw new UsageError('-o -: standard output is a terminal; redirect it to a file or a pipe (a stream is binary)');
    if (toStdout && flags.json) throw new UsageError('--json and -o - both want standard output: give -o FILE');
    const { sendImage } = await import('../jobs/snapshots.js');
    const r = await sendImage(image, what, toStdout ? 1 : flags.output, { from: flags.from, mount: flags.mount, signal: ctx.signal, ...waitFlags(flags) });
    if (toStdout) {
      if (!flags.quiet) writeErr(`mkimage: sent ${r.from ? `${r.from} .. ` : ''}${r.snapshot}`);
      return;
    }
    printResult(flags, r, () => `${r.output}: ${r.from ? `incremental ${r.from} .. ` : 'full '}${r.snapshot}, ${r.bytes} bytes`);
  });

  common(
    program
      .command('receive')
      .description('receive a stream from mkimage send (or zfs send) into a ZFS image, as DATASET (default: the sent name); a bad stream changes nothing')
      .argument('<image>', 'image made with --fs zfs')
      .argument('[dataset]', 'the dataset below the pool to receive as (a full stream: must not exist; incremental: must)')
      .requiredOption('-i, --input <file>', 'the stream file, or - for stdin (not a terminal)'),
  ).action(async (image: string, dataset: string | undefined, flags: Common & { input: string }) => {
    const fromStdin = flags.input === '-';
    if (fromStdin && isTerminal(0)) throw new UsageError('-i -: standard input is a terminal; pipe or redirect a stream into it');
    const { receiveImage } = await import('../jobs/snapshots.js');
    const r = await receiveImage(image, dataset, fromStdin ? process.stdin : flags.input, { mount: flags.mount, signal: ctx.signal, ...waitFlags(flags) });
    printResult(flags, r, () => `${r.dataset}: received ${r.incremental ? 'incremental' : 'full'} stream of ${r.stream.toName}${r.snapshots.length ? `; new snapshots ${r.snapshots.join(' ')}` : ''}`);
  });
}
