/** `mkimage [create] --size SIZE [options] IMAGE` */
import { Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import { FS_TYPES, MEMMAP_MODES, TABLE_TYPES, minimumImageBytes } from '../layout/plan.js';
import { formatSize, parseSize } from '../layout/units.js';
import { printResult, progressPrinter, waitFlags, waitOption, type CliContext } from './context.js';
import { writeErr } from './output.js';
import { formatImport, importCreateOption, importProgress, xattrWarning } from './layers.js';
import { zfsCreateOptions, zfsCreateRequest, type ZfsCreateFlags } from './zfs.js';

interface CreateFlags extends ZfsCreateFlags {
  size: string;
  fs: (typeof FS_TYPES)[number];
  sparse?: boolean;
  memmap: (typeof MEMMAP_MODES)[number];
  table: (typeof TABLE_TYPES)[number];
  align?: string;
  maxSize?: string;
  label?: string;
  uuid?: string;
  seed?: string;
  populate?: string;
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  import?: string[];
  from?: string[];
  ref?: string;
  wait?: number;
}

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`SOURCE_DATE_EPOCH="${v}" is not a whole number of seconds since 1970`);
  return Number(v);
}

export function register(program: Command, ctx: CliContext): void {
  const command = program
    .command('create', { isDefault: true })
    .description('create an image file (the default command)')
    .argument('<image>', 'path of the image file to create')
    .requiredOption('-s, --size <size>', 'image size: bytes or K/M/G/T (powers of 1024), "max" for all free space, or "auto" (with --from) for the content plus headroom; rounded up to the alignment')
    .addOption(new Option('--fs <type>', 'filesystem in the partition').choices(FS_TYPES).default('ext4'))
    .option('--sparse', 'thin image: do not reserve the blocks (default: preallocated with fallocate)')
    .addOption(new Option('--memmap <where>', "where the guest keeps struct pages: ram, or pmem (on the device: larger data offset)").choices(MEMMAP_MODES).default('ram'))
    .addOption(new Option('--table <type>', 'partition table: mbr, or gpt (needed above 2 TiB)').choices(TABLE_TYPES).default('mbr'))
    .option('--align <size>', 'round the image size up to this (default 2M; 128M suits memory hot-plug)')
    .option('--max-size <size>', '--memmap pmem: reserve a data offset large enough to resize the image up to this size later')
    .option('--label <label>', 'filesystem label (ext4: 16 bytes, xfs: 12) and GPT partition name')
    .option('--uuid <uuid>', 'uuid of the PFN info block and the filesystem')
    .option('--seed <string>', 'derive every uuid and signature from this string, any string (with SOURCE_DATE_EPOCH: byte-identical builds)')
    .option('--populate <dir>', 'copy this directory tree into the new filesystem')
    .option('--from <source>', 'flatten a container image into the filesystem: an OCI layout directory, a docker save archive, or layer tars (repeat, bottom first)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--ref <name|digest>', '--from: the image to use when the sources hold several (a reference name, a RepoTag, or sha256:DIGEST of its manifest)')
    .option('-f, --force', 'replace an existing IMAGE, a regular file neither attached nor in use (without it an existing file is never touched)')
    .option('--json', 'print one JSON document describing the result on stdout')
    .option('-q, --quiet', 'print nothing on success')
    .option('-v, --verbose', 'print stacks with errors');
  importCreateOption(zfsCreateOptions(waitOption(command))).action(async (image: string, flags: CreateFlags) => {
      const zfs = zfsCreateRequest(flags.fs, flags);
      if (flags.ref !== undefined && !flags.from) throw new UsageError('--ref chooses among the images of --from: give --from SOURCE');
      const { createImage } = await import('../jobs/create.js');
      const alignBytes = flags.align === undefined ? undefined : parseSize(flags.align, '--align');
      const result = await createImage({
        path: image,
        size: flags.size === 'max' || flags.size === 'auto' ? flags.size : parseSize(flags.size, '--size', minimumImageBytes(flags.fs, flags.memmap, flags.table, alignBytes)),
        fs: flags.fs,
        sparse: flags.sparse,
        memmap: flags.memmap,
        table: flags.table,
        alignBytes,
        maxSizeBytes: flags.maxSize === undefined ? undefined : parseSize(flags.maxSize, '--max-size'),
        label: flags.label,
        uuid: flags.uuid,
        seed: flags.seed,
        sourceDateEpoch: sourceDateEpoch(),
        populateDir: flags.populate,
        from: flags.from ? { sources: flags.from, ref: flags.ref } : undefined,
        force: flags.force,
        zfs,
        import: flags.import,
        onImportEvent: importProgress(flags),
        signal: ctx.signal,
        onProgress: progressPrinter(flags),
        ...waitFlags(flags),
      });
      const imported = result.imported;
      const warning = imported && xattrWarning(imported);
      if (warning && !flags.quiet) writeErr(warning);
      printResult(flags, result, () => {
        const lines = [
          `${result.path}: ${formatSize(result.sizeBytes)} ${result.fs === 'none' ? 'image without filesystem' : result.fs}, ${result.sparse ? 'sparse' : 'preallocated'} (${formatSize(result.allocatedBytes)} on disk), ${result.table.toUpperCase()}`,
          `  partition ${formatSize(result.layout.partitionOffsetBytes)} .. end (${formatSize(result.layout.partitionSizeBytes)}), guest /dev/pmem0 ${formatSize(result.layout.pmemSizeBytes)} fsdax (${result.memmap} memmap)`,
          `  PFN uuid ${result.ids.pfnUuid}${result.fs === 'ext4' || result.fs === 'xfs' || result.fs === 'erofs' ? `, filesystem uuid ${result.ids.fsUuid}` : ''}`,
        ];
        if (result.from) {
          const f = result.from;
          lines.push(`  from ${f.reference ?? 'layer tars'}${f.manifestDigest ? ` ${f.manifestDigest}` : ''}: ${f.layers} layer${f.layers === 1 ? '' : 's'}, ${f.entries} entries, ${formatSize(f.contentBytes)} of file data${f.autoSize ? `; --size auto chose ${formatSize(result.sizeBytes)}` : ''}`);
        }
        if (result.zfs) {
          lines.push(`  zfs pool ${result.zfs.pool} (guid ${result.zfs.guid}, ${result.zfs.flavour}${result.zfs.format.includes(String(result.zfs.flavour).split(' ')[0]!) ? '' : `, ${result.zfs.format}`}): ${result.zfs.datasets.length} datasets${result.zfs.snapshots.length ? `, snapshots ${result.zfs.snapshots.join(' ')}` : ''}`);
          lines.push(result.zfs.attached ? `  attached: ${result.zfs.attached.loopDevice}, mounted under ${result.zfs.attached.mountpoints[0]?.mountpoint ?? '(nothing mounted)'}` : `  exported; the guest imports it with: zpool import -d /dev/pmem0 ${result.zfs.pool}`);
        }
        if (imported) lines.push(...formatImport(imported).split('\n').map((l) => `  imported ${l}`));
        if (result.roundedUpBytes > 0) {
          lines.push(`  size rounded up from ${result.requestedBytes} to ${result.sizeBytes} bytes: images are a multiple of ${formatSize(result.alignBytes)}`);
        }
        return lines.join('\n');
      });
    });
}
