/**
 * Container layer commands on a ZFS image (calldown layout): `layers import|list|export` and
 * `runtime create|commit|rm`; and `--import` for create (`importCreateOption`, `importAfterCreate`).
 * Each attaches the image when it is not attached and leaves it as it found it.
 */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { formatSize } from '../layout/units.js';
import type { ImportResult, LayerJobOptions } from '../jobs/layers.js';
import type { ImportEvent, LayerInfo } from '../layers/store.js';
import { collect, parseWait, printResult, waitFlags, type CliContext, type OutputOptions } from './context.js';
import { DEFAULT_LOCK_WAIT_SECONDS } from '../guard/lock.js';

interface Out extends OutputOptions {
  mount?: string;
  base?: string;
  wait?: number;
}

const common = (c: Command) =>
  c
    .option('--mount <dir>', 'if the image is not attached: import its pool with this altroot while the command runs (default /run/mkimage/pools/<pool>)')
    .option('--base <dataset>', 'the dataset below the pool holding storage/ and runtime/ (default: the pool itself)')
    .option('--wait <seconds>', `how long to wait while another mkimage command uses the image (default ${DEFAULT_LOCK_WAIT_SECONDS}; 0: fail at once with EBUSY)`, parseWait)
    .option('--json', 'print the result as one JSON document')
    .option('-q, --quiet', 'print nothing on success')
    .option('-v, --verbose', 'print stacks with errors');

function jobOptions(flags: Out, ctx: CliContext): LayerJobOptions {
  return { signal: ctx.signal, mount: flags.mount, base: flags.base, ...waitFlags(flags) };
}

const short = (digest: string) => (digest === 'empty' ? 'empty' : digest.slice(0, 12));

/** Progress lines on stderr for a person watching: each layer's start and end, bytes every 64 MiB. */
export function importProgress(out: OutputOptions): ((e: ImportEvent) => void) | undefined {
  if (out.quiet || out.json || !process.stderr.isTTY) return undefined;
  let started = 0;
  let nextReport = 0;
  return (e) => {
    if (e.kind === 'layer-start') {
      started = Date.now();
      nextReport = 64 * 1024 * 1024;
      process.stderr.write(`mkimage: ${e.image}: layer ${e.index + 1}/${e.total} ${short(e.digest ?? '?')}${e.size ? ` (${formatSize(e.size)} stored)` : ''}\n`);
    } else if (e.kind === 'layer-bytes' && e.bytes >= nextReport) {
      nextReport += 64 * 1024 * 1024;
      process.stderr.write(`mkimage:   ${formatSize(e.bytes)} extracted${e.size ? `, ${Math.floor((100 * e.storedBytes) / e.size)}% read` : ''}\n`);
    } else if (e.kind === 'layer-done') {
      const s = (Date.now() - started) / 1000;
      process.stderr.write(
        e.status === 'present'
          ? `mkimage:   present already\n`
          : `mkimage:   extracted ${formatSize(e.bytes)} in ${s.toFixed(1)} s (${(e.bytes / 1048576 / Math.max(s, 0.001)).toFixed(1)} MiB/s)\n`,
      );
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

export function formatLayers(layers: readonly LayerInfo[]): string {
  const rows = [['LAYER', 'PARENT', 'USED', 'REFERENCES', 'RUNTIMES']];
  for (const l of layers) rows.push([short(l.digest), l.parent ? short(l.parent) : '-', formatSize(l.usedBytes), l.refs.join(',') || '-', l.runtimes.join(',') || '-']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
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
    ctx.out = flags;
    const { importLayers } = await import('../jobs/layers.js');
    const r = await importLayers(image, sources, { ...jobOptions(flags, ctx), onEvent: importProgress(flags) });
    printResult(flags, r, () => formatImport(r));
  });

  common(layers.command('list').description('the layers: digest, parent, space used, image references, runtimes').argument('<image>', 'image file')).action(
    async (image: string, flags: Out) => {
      ctx.out = flags;
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
      .requiredOption('-o, --output <file>', 'the tar to write ("-" for stdout)'),
  ).action(async (image: string, digest: string, flags: Out & { output: string }) => {
    ctx.out = flags;
    const toStdout = flags.output === '-';
    if (toStdout && process.stdout.isTTY) throw new UsageError('-o - would write a tar to the terminal: redirect stdout to a file or pipe');
    if (!toStdout && (await fs.stat(flags.output).catch(() => undefined))?.isDirectory()) throw new UsageError(`-o ${flags.output} is a directory: give a file name`);
    const { exportLayer } = await import('../jobs/layers.js');
    const r = await exportLayer(image, digest, toStdout ? process.stdout : flags.output, jobOptions(flags, ctx));
    const { layer, ...rest } = r;
    const result = { ...rest, layer: layer.digest, dataset: layer.dataset, parent: layer.parent, output: flags.output };
    if (!toStdout) printResult(flags, result, () => `${flags.output}: layer ${short(layer.digest)} on ${layer.parent ? short(layer.parent) : '-'}: ${r.entries} entries (${r.whiteouts} whiteouts), ${formatSize(r.bytes)}, sha256 ${r.digest}`);
  });

  const runtime = program.command('runtime').description('container roots in a ZFS image: writable clones of a layer (calldown: <pool>/runtime/<id>)');

  common(
    runtime
      .command('create')
      .description('clone a layer into <pool>/runtime/<id>')
      .argument('<image>', 'image file')
      .requiredOption('--layer <digest>', 'the layer to start from (digest, unique prefix, or "empty")')
      .requiredOption('--name <id>', 'the runtime id'),
  ).action(async (image: string, flags: Out & { layer: string; name: string }) => {
    ctx.out = flags;
    const { createRuntime } = await import('../jobs/layers.js');
    const r = await createRuntime(image, flags.layer, flags.name, jobOptions(flags, ctx));
    printResult(flags, r, () =>
      `runtime ${r.id}: ${r.dataset} from layer ${short(r.layer)}${r.attachedByJob ? ` (the image is detached again: mkimage attach ${image} to work in it)` : r.mountpoint ? `, mounted at ${r.mountpoint}` : ''}`,
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
    ctx.out = flags;
    const { commitRuntime } = await import('../jobs/layers.js');
    const r = await commitRuntime(image, id, { ...jobOptions(flags, ctx), remove: flags.rm });
    printResult(flags, r, () =>
      `runtime ${r.id}: ${r.created ? 'new layer' : 'same as layer'} ${r.digest} on ${short(r.parent)} (${r.entries} entries, ${r.whiteouts} whiteouts)${r.runtimeRemoved ? '; runtime removed' : ''}`,
    );
  });

  common(runtime.command('rm').description('destroy a runtime').argument('<image>', 'image file').argument('<id>', 'runtime id')).action(
    async (image: string, id: string, flags: Out) => {
      ctx.out = flags;
      const { removeRuntime } = await import('../jobs/layers.js');
      const r = await removeRuntime(image, id, jobOptions(flags, ctx));
      printResult(flags, r, () => `runtime ${id}: ${r.dataset} destroyed`);
    },
  );
}

/** create's --import option. */
export function importCreateOption(command: Command): Command {
  return command.option('--import <source>', '--fs zfs: after creating, import this image or layer tar into the pool (as mkimage layers import; repeatable, in order)', collect, []);
}

/**
 * Checks --import sources before create makes anything (a bad source leaves no image behind).
 * Returns undefined when there is nothing to import.
 */
export async function checkCreateImport(fsType: string, sources: readonly string[] | undefined): Promise<void> {
  if (!sources?.length) return;
  if (fsType !== 'zfs') throw new UsageError('--import needs --fs zfs: layers live in the pool');
  const { readSources } = await import('../layers/source.js');
  await readSources(sources);
}

/** create --import after the image was made: imports, or removes the new image if that fails. */
export async function importAfterCreate(image: string, sources: readonly string[], flags: OutputOptions & { mount?: string; wait?: number }, ctx: CliContext): Promise<ImportResult | undefined> {
  if (!sources.length) return undefined;
  const { importLayers } = await import('../jobs/layers.js');
  try {
    return await importLayers(image, sources, { signal: ctx.signal, mount: flags.mount, onEvent: importProgress(flags), ...waitFlags(flags) });
  } catch (e) {
    const { destroyImage } = await import('../jobs/attach.js');
    await destroyImage(image, { yes: true }).catch(() => undefined);
    throw e;
  }
}
