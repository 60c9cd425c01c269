/**
 * ZFS commands: `attach`, `detach`, `destroy`, `status`, and the options `create --fs zfs` takes
 * (`zfsCreateOptions` adds them to the create command, `zfsCreateRequest` reads them back).
 */
import { Option, type Command } from 'commander';
import { UsageError } from '../errors.js';
import type { AttachedImage, StatusReport } from '../jobs/attach.js';
import { collect, printResult, waitFlags, waitOption, type CliContext, type OutputOptions } from './context.js';

interface Out extends OutputOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  wait?: number;
}

const outputOptions = (c: Command) =>
  c
    .option('--json', 'print the result as one JSON document')
    .option('-q, --quiet', 'print nothing on success')
    .option('-v, --verbose', 'print stacks with errors');

export function formatAttached(r: AttachedImage): string {
  const lines = [
    `${r.file}: pool ${r.pool} (guid ${r.guid}) ${r.alreadyAttached ? 'was attached already' : 'imported'} from ${r.loopDevice}, ${r.health} (${r.flavour})`,
  ];
  for (const m of r.mountpoints) lines.push(`  ${m.dataset}  ${m.mountpoint}`);
  if (!r.mountpoints.length) lines.push('  (no dataset mounted)');
  return lines.join('\n');
}

export function formatStatus(s: StatusReport): string {
  const zfs = s.zfs.flavour ?? `not available: ${s.zfs.error}`;
  const lines: string[] = [];
  for (const c of s.cleaned ?? []) {
    lines.push(`cleaned: what PID ${c.pid} (${c.command}) left: ${c.steps.map((st) => st.what).join(', ') || 'nothing'}${c.failures.length ? `; failed: ${c.failures.map((f) => `${f.what}: ${f.error}`).join('; ')}` : ''}`);
  }
  if (!s.images.length) lines.push(`no image attached (ZFS: ${zfs})`);
  for (const i of s.images) {
    lines.push(`${i.file}: ${i.loopDevice}${i.pool ? `, pool ${i.pool} ${i.health}` : s.zfs.flavour ? ', no pool imported from it' : ', pool unknown (ZFS not available)'}`);
    if (i.deleted && i.pool) lines.push(`  the image file was deleted or moved to another filesystem while attached: free it with mkimage detach --pool ${i.pool}`);
    for (const m of i.mountpoints) lines.push(`  ${m.dataset}  ${m.mountpoint}`);
  }
  for (const l of s.leftovers) {
    lines.push(`leftover of PID ${l.pid} (${l.command}, no longer running; started ${l.since}): ${l.steps.map((st) => st.what).join(', ') || 'nothing'} (mkimage status --clean removes it)`);
  }
  if (s.images.length) lines.push(`ZFS: ${zfs}`);
  return lines.join('\n');
}

/** IMAGE or --pool NAME, exactly one. */
function imageOrPool(command: string, image: string | undefined, pool: string | undefined): void {
  if (image === undefined && pool === undefined) throw new UsageError(`${command} needs IMAGE, or --pool NAME for an image deleted or moved while attached`);
  if (image !== undefined && pool !== undefined) throw new UsageError(`${command} takes IMAGE or --pool NAME, not both`);
}

export function register(program: Command, ctx: CliContext): void {
  outputOptions(waitOption(
    program
      .command('attach')
      .description('attach a ZFS image: loop device of its partition, pool imported (after a reboot, or any time; does nothing if attached)')
      .argument('<image>', 'image made with --fs zfs')
      .option('--mount <dir>', "import with this altroot: datasets appear under DIR (the pool's root at DIR/<pool>); default /run/mkimage/pools/<pool>")
      .option('--owner <user[:group]>', 'chown -R the mounted datasets to this owner')
      .option('-f, --force', 'attach although the pool was not cleanly exported, or another process has the image open (only if no other system uses it)')),
  ).action(async (image: string, flags: Out & { mount?: string; owner?: string; force?: boolean }) => {
    const { attachImage } = await import('../jobs/attach.js');
    const r = await attachImage(image, { mount: flags.mount, owner: flags.owner, force: flags.force, signal: ctx.signal, ...waitFlags(flags) });
    printResult(flags, r, () => formatAttached(r));
  });

  outputOptions(waitOption(
    program
      .command('detach')
      .description('detach a ZFS image: unmount, export the pool, detach the loop device (does nothing if not attached)')
      .argument('[image]', 'image file')
      .option('--pool <name>', 'instead of IMAGE: the pool of an image deleted or moved while attached (mkimage status shows it)')),
  ).action(async (image: string | undefined, flags: Out & { pool?: string }) => {
    imageOrPool('detach', image, flags.pool);
    const { detachImage, detachPool } = await import('../jobs/attach.js');
    const o = { signal: ctx.signal, ...waitFlags(flags) };
    const r = image !== undefined ? await detachImage(image, o) : await detachPool(flags.pool!, o);
    printResult(flags, r, () =>
      r.wasAttached
        ? `${r.file}: ${r.exported ? `pool ${r.pool} exported, ` : ''}${r.loopDevices.join(', ')} detached`
        : `${r.file}: not attached, nothing to do`,
    );
  });

  outputOptions(waitOption(
    program
      .command('destroy')
      .description('destroy a ZFS image: pool destroyed, loop device detached, file removed')
      .argument('[image]', 'image file')
      .option('--pool <name>', 'instead of IMAGE: the pool of an image deleted or moved while attached (its file, if still there, is removed too)')
      .option('--yes', 'confirm: the image and everything in it are gone for good')),
  ).action(async (image: string | undefined, flags: Out & { yes?: boolean; pool?: string }) => {
    imageOrPool('destroy', image, flags.pool);
    const { destroyImage, destroyPoolByName } = await import('../jobs/attach.js');
    const o = { yes: flags.yes, signal: ctx.signal, ...waitFlags(flags) };
    const r = image !== undefined ? await destroyImage(image, o) : await destroyPoolByName(flags.pool!, o);
    printResult(flags, r, () => `${r.file}: ${r.poolDestroyed ? `pool ${r.pool} destroyed, ` : ''}${r.loopDevices.length ? `${r.loopDevices.join(', ')} detached, ` : ''}${r.removed ? 'file removed' : 'no file to remove'}`);
  });

  outputOptions(
    waitOption(
      program
        .command('status')
        .description('list attached images: file, loop device, pool, health, mountpoints; which ZFS this host runs; what killed mkimage commands left')
        .option('--clean', 'remove what killed mkimage commands left (temporary images, loop devices, pools, directories), never what a live one owns'),
    ),
  ).action(async (flags: Out & { clean?: boolean }) => {
    const { statusImages } = await import('../jobs/attach.js');
    const r = await statusImages({ signal: ctx.signal, clean: flags.clean, ...waitFlags(flags) });
    printResult(flags, r, () => formatStatus(r));
  });
}

/** The create command's ZFS options (used with --fs zfs). */
export function zfsCreateOptions(command: Command): Command {
  return command
    .option('--pool <name>', '--fs zfs: the pool name, which the guest imports (zpool import -d /dev/pmem0 NAME); required with --fs zfs')
    .addOption(new Option('--layout <tree>', '--fs zfs: dataset tree: calldown (default: storage, storage/empty@extracted, runtime), dlite (dhyve, images, containers), none').choices(['calldown', 'dlite', 'none']))
    .option('--dataset <path>', '--fs zfs: one more dataset below the pool (nested paths create their parents; repeatable)', collect, [])
    .option('--mount <dir>', '--fs zfs: leave the image attached, the pool imported with altroot DIR (its root at DIR/<pool>)')
    .option('--owner <user[:group]>', '--fs zfs with --mount: chown -R the mounted datasets')
    .option('--zpool-option <key=value>', '--fs zfs: a pool property for zpool create -o (repeatable)', collect, [])
    .option('--zfs-option <key=value>', '--fs zfs: a file system property for zpool create -O, inherited by the tree (repeatable)', collect, [])
    .option('--compatibility <set>', '--fs zfs on OpenZFS 2.1+: feature set (default openzfs-2.1-linux; legacy, off, grub2, ...), or vN for a legacy pool version (v28; zfs-fuse up to v23)');
}

export interface ZfsCreateFlags {
  pool?: string;
  layout?: 'calldown' | 'dlite' | 'none';
  dataset?: string[];
  mount?: string;
  owner?: string;
  zpoolOption?: string[];
  zfsOption?: string[];
  compatibility?: string;
}

/** What create needs for --fs zfs: the buildPool request, and --mount/--owner for the attach after it. */
export interface ZfsCreateRequest {
  pool: string;
  layout?: 'calldown' | 'dlite' | 'none';
  datasets: string[];
  zpoolOptions: string[];
  zfsOptions: string[];
  compatibility?: string;
  mount?: string;
  owner?: string;
}

/** The ZFS options of create, checked for consistency; undefined for another --fs. UsageError when misused. */
export function zfsCreateRequest(fs: string, f: ZfsCreateFlags): ZfsCreateRequest | undefined {
  const given = [
    f.pool !== undefined && '--pool',
    f.layout !== undefined && '--layout',
    !!f.dataset?.length && '--dataset',
    f.mount !== undefined && '--mount',
    f.owner !== undefined && '--owner',
    !!f.zpoolOption?.length && '--zpool-option',
    !!f.zfsOption?.length && '--zfs-option',
    f.compatibility !== undefined && '--compatibility',
  ].filter((x): x is string => !!x);
  if (fs !== 'zfs') {
    if (given.length) throw new UsageError(`${given.join(', ')} only ${given.length === 1 ? 'applies' : 'apply'} to --fs zfs`, { options: given });
    return undefined;
  }
  if (f.pool === undefined) throw new UsageError('--fs zfs needs --pool NAME: the name the guest imports (zpool import -d /dev/pmem0 NAME)');
  if (f.owner !== undefined && f.mount === undefined) throw new UsageError('--owner needs --mount DIR: it sets the owner of the mounted datasets');
  return {
    pool: f.pool,
    layout: f.layout,
    datasets: f.dataset ?? [],
    zpoolOptions: f.zpoolOption ?? [],
    zfsOptions: f.zfsOption ?? [],
    compatibility: f.compatibility,
    mount: f.mount,
    owner: f.owner,
  };
}
