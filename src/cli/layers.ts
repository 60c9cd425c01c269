/**
 * Container layer commands on a ZFS image (calldown layout): `layers import|list|export` and
 * `runtime create|commit|rm`; and create's `--import` option (`importCreateOption`; createImage imports).
 * Each attaches the image when it is not attached and leaves it as it found it.
 */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { TargetExistsError, UsageError } from '../errors.js';
import { formatSize, parseSize } from '../layout/units.js';
import type { ImportResult, LayerJobOptions } from '../jobs/layers.js';
import type { ImportEvent, LayerInfo } from '../layers/store.js';
import { collect, printResult, waitFlags, waitOption, type CliContext, type OutputOptions } from './context.js';
import { byteStdout, isTerminal, writeErr } from './output.js';

interface Out extends OutputOptions {
  mount?: string;
  base?: string;
  wait?: number;
}

const common = (c: Command) =>
  waitOption(c)
    .option('--mount <dir>', 'if the image is not attached: import its pool with this altroot while the command runs (default /run/mkimage/pools/<pool>)')
    .option('--base <dataset>', 'the dataset below the pool holding storage/ and runtime/ (default: the pool itself)')
    .option('--json', 'print the result as one JSON document')
    .option('-q, --quiet', 'print nothing on success')
    .option('-v, --verbose', 'print stacks with errors');

function jobOptions(flags: Out, ctx: CliContext): LayerJobOptions {
  return { signal: ctx.signal, mount: flags.mount, base: flags.base, ...waitFlags(flags) };
}

const short = (digest: string) => (digest === 'empty' ? 'empty' : digest.slice(0, 12));

/** Progress lines on stderr for a person watching: each layer's start and end, bytes every 64 MiB. */
export function importProgress(out: OutputOptions): ((e: ImportEvent) => void) | undefined {
  if (out.quiet || out.json || !isTerminal(2)) return undefined;
  let started = 0;
  let nextReport = 0;
  return (e) => {
    if (e.kind === 'layer-start') {
      started = Date.now();
      nextReport = 64 * 1024 * 1024;
      writeErr(`mkimage: ${e.image}: layer ${e.index + 1}/${e.total} ${short(e.digest ?? '?')}${e.size ? ` (${formatSize(e.size)} stored)` : ''}`);
    } else if (e.kind === 'layer-bytes' && e.bytes >= nextReport) {
      nextReport += 64 * 1024 * 1024;
      writeErr(`mkimage:   ${formatSize(e.bytes)} extracted${e.size ? `, ${Math.floor((100 * e.storedBytes) / e.size)}% read` : ''}`);
    } else if (e.kind === 'layer-done') {
      const s = (Date.now() - started) / 1000;
      writeErr(e.status === 'present' ? 'mkimage:   present already' : `mkimage:   extracted ${formatSize(e.bytes)} in ${s.toFixed(1)} s (${(e.bytes / 1048576 / Math.max(s, 0.001)).toFixed(1)} MiB/s)`);
    }
  };
}

export function formatImport(r: ImportResult): string {
  const lines = r.images.map((i) => {
    const extracted = i.layers.filter((l) => l.status === 'extracted');
    return `${i.names.join(', ') || i.source}: ${i.layers.length} layers, ${extracted.length} extracted (${formatSize(extracted.reduce((n, l) => n + l.bytes, 0))}), ${i.layers.length - extracted.length} present already; top ${short(i.top)}`;
  });
  return lines.join('\n');
}

/** The warning for extended attributes a pool could not hold: every file named (--json: the count and the list). */
export function xattrWarning(r: Pick<ImportResult, 'xattrsDropped' | 'xattrsDroppedFiles'>): string | undefined {
  if (!r.xattrsDropped) return undefined;
  const files = r.xattrsDroppedFiles.map((f) => `  ${f.path}: ${f.names.join(', ')} (layer ${short(f.layer)})`);
  return [`mkimage: warning: ${r.xattrsDropped} extended attribute${r.xattrsDropped === 1 ? '' : 's'} dropped: this pool's ZFS (zfs-fuse) holds none; OpenZFS would keep them. Files:`, ...files].join('\n');
}

/**
 * The layer table. When a digest is stored twice (the same diff_id on two parents: the second
 * dataset is named by its chain id), a STORED AS column names each dataset and PARENT names the
 * parent's dataset, so every row and every parent is unambiguous.
 */
export function formatLayers(layers: readonly LayerInfo[]): string {
  const seen = new Set<string>();
  const twice = layers.some((l) => seen.size === seen.add(l.digest).size);
  const stored = (dataset: string) => short(dataset.split('/').pop() ?? dataset);
  const rows = [['LAYER', ...(twice ? ['STORED AS'] : []), 'PARENT', 'USED', 'REFERENCES', 'RUNTIMES']];
  for (const l of layers) {
    const parent = twice ? (l.parentDataset ? stored(l.parentDataset) : '-') : l.parent ? short(l.parent) : '-';
    rows.push([short(l.digest), ...(twice ? [stored(l.dataset)] : []), parent, formatSize(l.usedBytes), l.refs.join(',') || '-', l.runtimes.join(',') || '-']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
  return twice ? `${table}\n(a layer stored twice, on two parents: STORED AS and PARENT name datasets, by chain id)` : table;
}

export function register(program: Command, ctx: CliContext): void {
  const layers = program.command('layers').description('container image layers in a ZFS image (calldown: <pool>/storage/<digest>@extracted)');

  common(
    layers
      .command('import')
      .description('extract images into the pool, one dataset per layer; layers already present are skipped')
      .argument('<image>', 'image made with --fs zfs')
      .argument('<source...>', 'OCI image layout directory, docker save archive, or layer tars (.tar/.tar.gz, bottom first)'),
  ).action(async (image: string, sources: string[], flags: Out) => {
    const { importLayers } = await import('../jobs/layers.js');
    const r = await importLayers(image, sources, { ...jobOptions(flags, ctx), onEvent: importProgress(flags) });
    printResult(flags, r, () => formatImport(r));
    const warning = xattrWarning(r);
    if (warning && !flags.quiet) writeErr(warning);
  });

  common(layers.command('list').description('the layers: digest, parent, space used, image references, runtimes').argument('<image>', 'image file')).action(
    async (image: string, flags: Out) => {
      const { listLayers } = await import('../jobs/layers.js');
      const r = await listLayers(image, jobOptions(flags, ctx));
      printResult(flags, r, () => formatLayers(r.layers));
    },
  );

  common(
    layers
      .command('export')
      .description('write a layer as an OCI layer tar: its changes against its parent, deletions as .wh. whiteouts')
      .argument('<image>', 'image file')
      .argument('<digest>', 'layer digest (or a unique prefix of 6+ hex digits)')
      .requiredOption('-o, --output <file>', 'the tar to write ("-" for stdout)')
      .option('-f, --force', 'replace an existing FILE'),
  ).action(async (image: string, digest: string, flags: Out & { output: string; force?: boolean }) => {
    const toStdout = flags.output === '-';
    if (toStdout && flags.json) throw new UsageError('-o - writes the tar on stdout, which leaves no room for --json: write to a file (-o FILE --json) or drop --json');
    if (toStdout && isTerminal(1)) throw new UsageError('-o - would write a tar to the terminal: redirect stdout to a file or pipe');
    const existing = toStdout ? undefined : await fs.stat(flags.output).catch(() => undefined);
    if (existing?.isDirectory()) throw new UsageError(`-o ${flags.output} is a directory: give a file name`);
    if (existing && !flags.force) throw new TargetExistsError(flags.output);
    const { exportLayer } = await import('../jobs/layers.js');
    const r = await exportLayer(image, digest, toStdout ? byteStdout() : flags.output, jobOptions(flags, ctx));
    const { layer, ...rest } = r;
    const result = { ...rest, layer: layer.digest, dataset: layer.dataset, parent: layer.parent, output: flags.output };
    if (!toStdout) printResult(flags, result, () => `${flags.output}: layer ${short(layer.digest)} on ${layer.parent ? short(layer.parent) : '-'}: ${r.entries} entries (${r.whiteouts} whiteouts), ${formatSize(r.bytes)}, sha256 ${r.digest}`);
  });

  common(
    layers
      .command('rm')
      .description('remove a layer; refused while layers are built on it or runtimes were cloned from it')
      .argument('<image>', 'image file')
      .argument('<digest>', 'layer digest (or a unique prefix of 6+ hex digits)'),
  ).action(async (image: string, digest: string, flags: Out) => {
    const { removeLayer } = await import('../jobs/layers.js');
    const r = await removeLayer(image, digest, jobOptions(flags, ctx));
    printResult(flags, { layer: r.layer.digest, dataset: r.layer.dataset, droppedRefs: r.droppedRefs, attachedByJob: r.attachedByJob }, () =>
      `layer ${short(r.layer.digest)}: ${r.layer.dataset} destroyed${r.droppedRefs.length ? `; image references gone with it: ${r.droppedRefs.join(', ')}` : ''}`,
    );
  });

  common(
    layers
      .command('prune')
      .description('remove the layers no image reference or runtime uses, and what killed imports or commits left')
      .argument('<image>', 'image file')
      .option('-n, --dry-run', 'only list what would be removed'),
  ).action(async (image: string, flags: Out & { dryRun?: boolean }) => {
    const { pruneLayers } = await import('../jobs/layers.js');
    const r = await pruneLayers(image, { ...jobOptions(flags, ctx), dryRun: flags.dryRun });
    const result = { dryRun: r.dryRun, layers: r.layers.map((l) => ({ digest: l.digest, dataset: l.dataset, usedBytes: l.usedBytes })), leftovers: r.leftovers, attachedByJob: r.attachedByJob };
    printResult(flags, result, () => {
      const verb = r.dryRun ? 'would remove' : 'removed';
      if (!r.layers.length && !r.leftovers.length) return 'nothing to prune';
      return [...r.layers.map((l) => `${verb} layer ${short(l.digest)} (${formatSize(l.usedBytes)})`), ...r.leftovers.map((x) => `removed leftover ${x}`)].join('\n');
    });
  });

  const runtime = program.command('runtime').description('container roots in a ZFS image: writable clones of a layer (calldown: <pool>/runtime/<id>)');

  common(
    runtime
      .command('create')
      .description('clone a layer into <pool>/runtime/<id>')
      .argument('<image>', 'image file')
      .requiredOption('--layer <digest>', 'the layer to start from (digest, unique prefix, or "empty")')
      .requiredOption('--name <id>', 'the runtime id')
      .option('--quota <size>', 'the most the container may write (ZFS quota on its clone; K/M/G/T)'),
  ).action(async (image: string, flags: Out & { layer: string; name: string; quota?: string }) => {
    const quotaBytes = flags.quota === undefined ? undefined : parseSize(flags.quota, '--quota');
    const { createRuntime } = await import('../jobs/layers.js');
    const r = await createRuntime(image, flags.layer, flags.name, { ...jobOptions(flags, ctx), quotaBytes });
    printResult(flags, r, () =>
      `runtime ${r.id}: ${r.dataset} from layer ${short(r.layer)}${r.quotaBytes !== undefined ? `, quota ${formatSize(r.quotaBytes)}` : ''}${r.attachedByJob ? ` (the image is detached again: mkimage attach ${image} to work in it)` : r.mountpoint ? `, mounted at ${r.mountpoint}` : ''}`,
    );
  });

  common(
    runtime
      .command('commit')
      .description("make a runtime's changes a new layer, named by the sha256 of its tar")
      .argument('<image>', 'image file')
      .argument('<id>', 'runtime id')
      .option('--rm', 'destroy the runtime after committing it'),
  ).action(async (image: string, id: string, flags: Out & { rm?: boolean }) => {
    const { commitRuntime } = await import('../jobs/layers.js');
    const r = await commitRuntime(image, id, { ...jobOptions(flags, ctx), remove: flags.rm });
    printResult(flags, r, () =>
      `runtime ${r.id}: ${r.created ? 'new layer' : 'same as layer'} ${r.digest} on ${short(r.parent)} (${r.entries} entries, ${r.whiteouts} whiteouts)${r.runtimeRemoved ? '; runtime removed' : ''}`,
    );
  });

  common(runtime.command('rm').description('destroy a runtime').argument('<image>', 'image file').argument('<id>', 'runtime id')).action(
    async (image: string, id: string, flags: Out) => {
      const { removeRuntime } = await import('../jobs/layers.js');
      const r = await removeRuntime(image, id, jobOptions(flags, ctx));
      printResult(flags, r, () => `runtime ${id}: ${r.dataset} destroyed`);
    },
  );
}

/** create's --import option (createImage's `import`: checked first, imported last, the image removed if it fails). */
export function importCreateOption(command: Command): Command {
  return command.option('--import <source>', '--fs zfs: after creating, import this image or layer tar into the pool (as mkimage layers import; repeat the option for several, imported in order)', collect, []);
}
