/**
 * `create --from`: a container image flattened into the image's filesystem, without root for ext4
 * and erofs.
 *
 *   sources -> choose the image (--ref) -> stage: every layer applied with the OCI rules into a
 *   temporary directory next to the target, as an ordinary user would (StagedTree: what each path
 *   must be is recorded, not applied) -> /.mkimage/config.json, /.mkimage/init and the mount
 *   points /dev /proc /sys /run /tmp where missing (guestStagedFiles), extra files -> walk the staged
 *   tree (content size for --size auto, the fixes) -> the filesystem:
 *
 *   ext4   mkfs.ext4 -d STAGE at the partition offset, then ONE `debugfs -w -f SCRIPT` run sets
 *          owners, modes, mtimes, device nodes and fifos, and xattrs where the staged copy differs
 *          from what the layers say. No loop device, no mount, no chown: the same path as root.
 *          As an ordinary user mke2fs runs inside a faked daemon (tools/fakeroot.ts), which shows
 *          it every staged file as owned by 0:0: a root filesystem's owners then need no
 *          correction (a Debian rootfs: ~20 debugfs lines instead of ~17,500).
 *   erofs  the staged tree is corrected on the host (chown, chmod, mknod: for real as root, under
 *          one fakeroot session as an ordinary user), mkfs.erofs FILE STAGE (in fakeroot) builds
 *          the filesystem into a temporary file, which is copied into the partition. One live
 *          faked daemon serves every step, so mkfs.erofs sees the faked owners, devices and
 *          xattrs (security.capability included).
 *   xfs    root only: the same host fixes for real, then the tree is copied into the mounted
 *          filesystem (cp -a keeps owners, devices, xattrs).
 */
import { createHash } from 'node:crypto';
import { constants, lstatSync, promises as fs, readdirSync, rmSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { LayerError, NoSpaceError, UsageError } from '../errors.js';
import { GUEST_CONFIG_PATH, GUEST_DIR, type GuestConfigFile, type ImageConfig, type ImageSource } from '../guest/image-config.js';
import { guestInitFiles } from '../guest/init.js';
import { applyLayer, type EntryMeta, type StagedTree } from '../layers/apply.js';
import { openLayer, readSources, sourceLabel, type LayerBlob, type SourceImage } from '../layers/source.js';
import { FS_BLOCK_BYTES, MiB, formatSize } from '../layout/units.js';
import type { SourceRecord } from '../layout/source-record.js';
import { debugfsScript, runDebugfs, type InodeFix } from '../tools/debugfs.js';
import type { Runner } from '../tools/exec.js';
import { checkAborted, type Undo } from '../undo.js';

export interface FromOptions {
  /** OCI layout directories, `docker save` archives, layer tars (bottom first), in order. */
  sources: string[];
  /** Which image of the sources: a reference name (either index annotation, or a RepoTag) or a manifest digest. */
  ref?: string;
  /**
   * More files for the image's tree, written after the layers and after what every --from image
   * gets (/.mkimage/config.json, the guest init and its mount points: guestStagedFiles()).
   */
  files?: StagedFile[];
}

/**
 * A file added to the staged tree with exactly these attributes, or (`type: 'dir'`) a directory
 * made only where the layers left nothing at its path (a mount point).
 */
export interface StagedFile {
  /** Absolute inside the image: "/.mkimage/init". */
  path: string;
  /** Default 'file'. */
  type?: 'file' | 'dir';
  mode: number;
  uid: number;
  gid: number;
  /** The file's bytes (files only). */
  bytes?: Buffer;
}

export interface ResolvedFrom {
  layers: LayerBlob[];
  source: ImageSource;
  config: ImageConfig;
}

function matches(image: SourceImage, ref: string): boolean {
  return image.names.includes(ref) || (image.refs ?? []).includes(ref) || image.manifestDigest === ref || (ref.length >= 13 && ref.startsWith('sha256:') && (image.manifestDigest ?? '').startsWith(ref));
}

function describeImage(image: SourceImage): string {
  return `${[...new Set([...image.names, ...(image.refs ?? [])])].join(', ') || '(unnamed)'} ${image.manifestDigest ?? ''}`.trim();
}

const stringList = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);

/** The part of the OCI config a runtime uses (image-config.ts), from the config blob's `config`. */
export function imageConfigOf(c: Record<string, unknown> | undefined): ImageConfig {
  if (!c) return {};
  return {
    ...(stringList(c.Entrypoint) ? { Entrypoint: stringList(c.Entrypoint) } : {}),
    ...(stringList(c.Cmd) ? { Cmd: stringList(c.Cmd) } : {}),
    ...(stringList(c.Env) ? { Env: stringList(c.Env) } : {}),
    ...(typeof c.WorkingDir === 'string' && c.WorkingDir !== '' ? { WorkingDir: c.WorkingDir } : {}),
    ...(typeof c.User === 'string' && c.User !== '' ? { User: c.User } : {}),
  };
}

/**
 * The layers to flatten, bottom first: the chosen image's, followed by those of later sources
 * (plain layer tars stack on top). A source holding several images needs --ref.
 */
export async function resolveFrom(o: FromOptions): Promise<ResolvedFrom> {
  if (!o.sources.length) throw new UsageError('--from needs a source: an OCI image layout directory, a docker save archive, or layer tars');
  const images = await readSources(o.sources);
  let chosen: SourceImage[];
  if (o.ref !== undefined) {
    const hit = images.filter((i) => matches(i, o.ref!));
    if (hit.length !== 1) {
      const offered = images.filter((i) => i.kind !== 'layer-tars').map(describeImage);
      throw new UsageError(
        `--ref ${o.ref} ${hit.length ? `matches ${hit.length} images` : 'matches no image'} of ${o.sources.join(' ')}${offered.length ? `: the sources hold ${offered.join('; ')}` : ': the sources hold only plain layer tars'}`,
        { ref: o.ref, offered },
      );
    }
    // The chosen image, and plain layer tars given after it.
    const at = images.indexOf(hit[0]!);
    chosen = [hit[0]!, ...images.slice(at + 1).filter((i) => i.kind === 'layer-tars')];
  } else {
    const named = images.filter((i) => i.kind !== 'layer-tars');
    if (named.length > 1) {
      throw new UsageError(`the sources hold ${named.length} images: choose one with --ref NAME or --ref sha256:DIGEST (${named.map(describeImage).join('; ')})`, { offered: named.map(describeImage) });
    }
    chosen = images;
  }
  const top = chosen.find((i) => i.kind !== 'layer-tars');
  const layers = chosen.flatMap((i) => i.layers);
  if (!layers.length) throw new LayerError(`${o.sources.join(' ')}: the image has no layers`, { sources: o.sources });
  const reference = top ? (o.ref !== undefined && !o.ref.startsWith('sha256:') ? o.ref : (top.names[0] ?? top.refs?.[0])) : undefined;
  return {
    layers,
    source: {
      ...(reference ? { reference } : {}),
      ...(top?.manifestDigest ? { manifestDigest: top.manifestDigest } : {}),
      ...(top?.configDigest ? { configDigest: top.configDigest } : {}),
      diffIds: [],
    },
    config: imageConfigOf(top?.runConfig),
  };
}

/** Applies the layers into `dir` (staging: nothing needs root) and checks every digest. */
export async function stageLayers(layers: readonly LayerBlob[], dir: string, o: { signal?: AbortSignal; onLayer?: (i: number, label: string) => void } = {}): Promise<{ tree: StagedTree; diffIds: string[] }> {
  const tree: StagedTree = { meta: new Map() };
  const diffIds: string[] = [];
  for (const [i, blob] of layers.entries()) {
    checkAborted(o.signal, 'layers');
    o.onLayer?.(i, blob.origin);
    const s = openLayer(blob);
    try {
      await applyLayer(s.tar, dir, { stage: tree, signal: o.signal });
      diffIds.push((await s.finish()).diffId);
    } catch (e) {
      // A corrupt blob usually breaks the tar before its end: its digest names the real cause.
      const digestError = await s.finish().then(
        () => undefined,
        (d: unknown) => (d instanceof LayerError && d.data.expected !== undefined ? d : undefined),
      );
      await s.close();
      throw digestError ?? e;
    }
  }
  return { tree, diffIds };
}

/**
 * Adds files to the staged tree, replacing whatever the layers put at their paths and at their
 * parents (a parent that is not a real directory is removed: nothing is written through a link).
 */
export async function addStagedFiles(dir: string, tree: StagedTree, files: readonly StagedFile[]): Promise<void> {
  for (const f of files) {
    const parts = f.path.split('/').filter((c) => c !== '' && c !== '.');
    if (!parts.length || parts.includes('..') || !f.path.startsWith('/')) throw new UsageError(`extra file ${JSON.stringify(f.path)} must be an absolute path inside the image`, { path: f.path });
    let rel = '';
    for (const c of parts.slice(0, -1)) {
      rel = rel ? `${rel}/${c}` : c;
      const st = await fs.lstat(join(dir, rel)).catch(() => null);
      if (st && !st.isDirectory()) await fs.rm(join(dir, rel), { recursive: true, force: true });
      if (!st || !st.isDirectory()) {
        await fs.mkdir(join(dir, rel), 0o755);
        await fs.chmod(join(dir, rel), 0o755);
        tree.meta.set(rel, { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: Math.floor(Date.now() / 1000), devmajor: 0, devminor: 0, xattrs: {} });
      }
    }
    rel = parts.join('/');
    if (f.type === 'dir') {
      // Whatever the layers put there (a directory, a symlink to one) stays as they made it.
      if (await fs.lstat(join(dir, rel)).catch(() => null)) continue;
      await fs.mkdir(join(dir, rel), 0o700);
      await fs.chmod(join(dir, rel), (f.mode & 0o7777) | 0o700);
      tree.meta.set(rel, { type: 'directory', mode: f.mode & 0o7777, uid: f.uid, gid: f.gid, mtime: Math.floor(Date.now() / 1000), devmajor: 0, devminor: 0, xattrs: {} });
      continue;
    }
    await fs.rm(join(dir, rel), { recursive: true, force: true });
    const fh = await fs.open(join(dir, rel), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(f.bytes ?? Buffer.alloc(0));
      await fh.chmod((f.mode & 0o7777) | 0o600);
    } finally {
      await fh.close();
    }
    const st = await fs.lstat(join(dir, rel));
    tree.meta.set(rel, { type: 'file', mode: f.mode & 0o7777, uid: f.uid, gid: f.gid, mtime: Math.floor(st.mtimeMs / 1000), devmajor: 0, devminor: 0, xattrs: {} });
  }
}

/** /.mkimage/config.json (image-config.ts): mode 0444, owner 0:0. */
export function guestConfigFile(source: ImageSource, config: ImageConfig): StagedFile {
  const body: GuestConfigFile = { schemaVersion: 1, source, config };
  return { path: GUEST_CONFIG_PATH, mode: 0o444, uid: 0, gid: 0, bytes: Buffer.from(`${JSON.stringify(body, null, 2)}\n`) };
}

/**
 * What every image built with --from gets besides its config: the guest init (/.mkimage/init)
 * and the mount points it needs where the image has none (src/guest/init.ts), owner 0:0. With
 * them the root boots with `init=/.mkimage/init`, and the source record says so (hasGuestConfig).
 */
export async function guestStagedFiles(): Promise<StagedFile[]> {
  return (await guestInitFiles()).map((g) => ({ path: g.path, type: g.type, mode: g.mode, uid: g.uid, gid: g.gid, ...(g.data ? { bytes: g.data } : {}) }));
}

export interface StagedEntry {
  /** Relative to the staged root, '' for the root. */
  rel: string;
  st: Stats;
  meta: EntryMeta;
}

export interface StagedWalk {
  entries: StagedEntry[];
  /** Data blocks of files and long symlinks, 4 KiB each. */
  dataBlocks: number;
  /** Directory blocks, estimated from names. */
  dirBlocks: number;
  /** Entries holding xattrs too large for the inode (one block each, at most). */
  xattrBlocks: number;
  inodes: number;
  /** Bytes of file data. */
  bytes: number;
}

const TYPE_BITS: Record<EntryMeta['type'], number> = { file: 0o100000, directory: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

function typeOfStat(st: Stats): EntryMeta['type'] {
  return st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'file';
}

/** Every path of the staged tree with what it must be (the layers' word; defaults for the rest). */
export async function walkStaged(dir: string, tree: StagedTree): Promise<StagedWalk> {
  const out: StagedWalk = { entries: [], dataBlocks: 0, dirBlocks: 0, xattrBlocks: 0, inodes: 0, bytes: 0 };
  const seenInodes = new Set<number>();
  const visit = async (rel: string, st: Stats): Promise<void> => {
    const meta = tree.meta.get(rel) ?? { type: typeOfStat(st), mode: st.mode & 0o7777, uid: 0, gid: 0, mtime: Math.floor(st.mtimeMs / 1000), devmajor: 0, devminor: 0, xattrs: {} };
    out.entries.push({ rel, st, meta });
    if (!seenInodes.has(st.ino)) {
      seenInodes.add(st.ino);
      out.inodes++;
      if (st.isFile()) {
        out.dataBlocks += Math.ceil(st.size / FS_BLOCK_BYTES);
        out.bytes += st.size;
      } else if (st.isSymbolicLink() && st.size >= 60) out.dataBlocks++;
      const xattrBytes = Object.entries(meta.xattrs).reduce((n, [k, v]) => n + k.length + v.length + 16, 0);
      if (xattrBytes > 96) out.xattrBlocks += Math.ceil(xattrBytes / FS_BLOCK_BYTES);
    }
    if (!st.isDirectory()) return;
    const names = readdirSync(join(dir, rel));
    // ext4 directory entries: 8 bytes + the name, 4-byte aligned; '.' and '..' included.
    const dirBytes = 24 + names.reduce((n, name) => n + 8 + Math.ceil(Buffer.byteLength(name) / 4) * 4, 0);
    out.dirBlocks += Math.ceil(dirBytes / FS_BLOCK_BYTES);
    names.sort();
    for (const name of names) {
      const child = rel ? `${rel}/${name}` : name;
      await visit(child, lstatSync(join(dir, child)));
    }
  };
  await visit('', lstatSync(dir));
  return out;
}

/** What `--size auto` leaves free in an ext4 filesystem, beyond its metadata: 10% of the content + 16 MiB. */
export const AUTO_HEADROOM_FRACTION = 0.1;
export const AUTO_HEADROOM_BYTES = 16 * MiB;

/** mke2fs's journal size for a filesystem of `blocks` 4 KiB blocks (ext2fs_default_journal_size). */
export function ext4JournalBlocks(blocks: number): number {
  if (blocks < 2048) return 0;
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  if (blocks < 8192 * 1024) return 32768;
  if (blocks < 16384 * 1024) return 65536;
  if (blocks < 32768 * 1024) return 131072;
  return 262144;
}

/**
 * The blocks an ext4 filesystem of `fsBytes` (mke2fs defaults for 4 KiB blocks: 256-byte inodes,
 * one inode per 16 KiB, 32768 blocks a group) keeps for itself: inode tables, bitmaps, group
 * descriptors and reserved GDT blocks (about 1/16 of a group's first block each), the journal.
 */
export function ext4OverheadBlocks(fsBytes: number): number {
  const blocks = Math.floor(fsBytes / FS_BLOCK_BYTES);
  const groups = Math.ceil(blocks / 32768);
  const inodeTable = Math.ceil(fsBytes / 16384) * 256 / FS_BLOCK_BYTES;
  return Math.ceil(inodeTable + groups * 2 + Math.ceil(groups / 64) * 2 + 256 + ext4JournalBlocks(blocks) + 64);
}

/** Whether an ext4 filesystem of `fsBytes` holds the walked content (no headroom). */
export function ext4Holds(fsBytes: number, w: Pick<StagedWalk, 'dataBlocks' | 'dirBlocks' | 'xattrBlocks' | 'inodes'>): boolean {
  const blocks = Math.floor(fsBytes / FS_BLOCK_BYTES);
  // Extent tree blocks for very fragmented or huge files: 1 per 340 extents; ~1% is generous.
  const need = w.dataBlocks + Math.ceil(w.dataBlocks / 100) + w.dirBlocks + w.xattrBlocks;
  return blocks - ext4OverheadBlocks(fsBytes) >= need && Math.floor(fsBytes / 16384) >= w.inodes + 16;
}

/** The smallest ext4 filesystem size (4 KiB steps of 1 MiB) that holds the content, plus `headroom`. */
export function ext4BytesFor(w: Pick<StagedWalk, 'dataBlocks' | 'dirBlocks' | 'xattrBlocks' | 'inodes'>, headroom: boolean): number {
  const content = (w.dataBlocks + w.dirBlocks + w.xattrBlocks) * FS_BLOCK_BYTES;
  const extra = headroom ? Math.ceil(content * AUTO_HEADROOM_FRACTION) + AUTO_HEADROOM_BYTES : 0;
  let fsBytes = Math.max(8 * MiB, Math.ceil((content + extra) / MiB) * MiB);
  const inodesExtra = headroom ? Math.ceil(w.inodes * AUTO_HEADROOM_FRACTION) : 0;
  while (!ext4Holds(fsBytes - extra, { ...w, inodes: w.inodes + inodesExtra })) fsBytes += MiB;
  return fsBytes;
}

/**
 * The fixes that make the ext4 written by mkfs.ext4 -d from the staged tree say what the layers
 * say: mkfs copies the staged files' owners, modes, mtimes and (none staged) xattrs.
 */
export async function ext4Fixes(walk: StagedWalk, valueDir: string, seenOwner?: { uid: number; gid: number }): Promise<InodeFix[]> {
  const fixes: InodeFix[] = [];
  const values = new Map<string, string>();
  let n = 0;
  const done = new Set<number>();
  for (const { rel, st, meta } of walk.entries) {
    const path = `/${rel}`;
    const dev = meta.type === 'char' || meta.type === 'block' || meta.type === 'fifo';
    // Hard links share an inode: its fixes are made once, through the first path.
    if (done.has(st.ino)) continue;
    done.add(st.ino);
    if (dev) fixes.push({ op: 'mknod', path, kind: meta.type === 'char' ? 'c' : meta.type === 'block' ? 'b' : 'p', major: meta.devmajor, minor: meta.devminor });
    const stagedType = typeOfStat(st);
    // The owner mke2fs wrote: the staged file's, or 0:0 when it ran under fakeroot.
    const uid = seenOwner?.uid ?? st.uid;
    const gid = seenOwner?.gid ?? st.gid;
    if (dev || meta.uid !== uid || meta.gid !== gid) fixes.push({ op: 'owner', path, uid: dev || meta.uid !== uid ? meta.uid : undefined, gid: dev || meta.gid !== gid ? meta.gid : undefined });
    if (dev || (stagedType !== 'symlink' && (st.mode & 0o7777) !== meta.mode)) fixes.push({ op: 'mode', path, mode: TYPE_BITS[meta.type] | meta.mode });
    if (dev || Math.floor(st.mtimeMs / 1000) !== Math.floor(meta.mtime)) fixes.push({ op: 'mtime', path, mtime: meta.mtime });
    for (const [name, value] of Object.entries(meta.xattrs)) {
      const key = createHash('sha256').update(value).digest('hex');
      let file = values.get(key);
      if (!file) {
        file = join(valueDir, `xattr-${n++}`);
        await fs.writeFile(file, value);
        values.set(key, file);
      }
      fixes.push({ op: 'xattr', path, name, valueFile: file });
    }
  }
  return fixes;
}

/** Writes the script and runs debugfs once on the filesystem at `offsetBytes` of `image`. */
export async function fixExt4(image: string, offsetBytes: number, walk: StagedWalk, workDir: string, signal?: AbortSignal, seenOwner?: { uid: number; gid: number }): Promise<number> {
  const fixes = await ext4Fixes(walk, workDir, seenOwner);
  if (!fixes.length) return 0;
  const script = join(workDir, 'debugfs.script');
  await fs.writeFile(script, debugfsScript(fixes));
  await runDebugfs(image, offsetBytes, script, signal);
  return fixes.length;
}

const ARG_BATCH_BYTES = 64 * 1024;

async function batched(run: Runner, file: string, head: readonly string[], paths: readonly string[], signal?: AbortSignal): Promise<void> {
  let batch: string[] = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length) await run(file, [...head, '--', ...batch], { signal });
    batch = [];
    bytes = 0;
  };
  for (const p of paths) {
    batch.push(p);
    bytes += Buffer.byteLength(p) + 1;
    if (bytes > ARG_BATCH_BYTES) await flush();
  }
  await flush();
}

/** getfattr's dump format for `setfattr --restore`: octal escapes for what is not printable. */
function escapeDumpPath(p: string): string {
  return Array.from(Buffer.from(p, 'utf8'))
    .map((b) => (b < 0x21 || b > 0x7e || b === 0x5c || b === 0x3d || b === 0x22 ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b)))
    .join('');
}

/**
 * Corrects the staged tree itself (erofs, xfs): device nodes and fifos made, owners and modes set,
 * xattrs set, directory mtimes restored last. Through `run`: the plain runner as root, a
 * fakeroot session's (tools/fakeroot.ts) as an ordinary user.
 */
export async function fixHostTree(dir: string, walk: StagedWalk, run: Runner, workDir: string, signal?: AbortSignal): Promise<void> {
  const abs = (rel: string) => (rel ? join(dir, rel) : dir);
  const done = new Set<number>();
  const owners = new Map<string, string[]>();
  const modes = new Map<number, string[]>();
  for (const { rel, st, meta } of walk.entries) {
    if (done.has(st.ino)) continue;
    done.add(st.ino);
    const path = abs(rel);
    const dev = meta.type === 'char' || meta.type === 'block' || meta.type === 'fifo';
    if (dev) {
      await fs.unlink(path);
      const kind = meta.type === 'char' ? ['c', String(meta.devmajor), String(meta.devminor)] : meta.type === 'block' ? ['b', String(meta.devmajor), String(meta.devminor)] : ['p'];
      await run('mknod', ['-m', meta.mode.toString(8), '--', path, ...kind], { signal });
    }
    if (dev || meta.uid !== st.uid || meta.gid !== st.gid) {
      const key = `${meta.uid}:${meta.gid}`;
      owners.set(key, [...(owners.get(key) ?? []), path]);
    }
    // chown clears setuid/setgid: those modes are set again after it.
    if (meta.type !== 'symlink' && (dev || (st.mode & 0o7777) !== meta.mode || (meta.mode & 0o6000) !== 0)) modes.set(meta.mode, [...(modes.get(meta.mode) ?? []), path]);
  }
  for (const [owner, paths] of owners) await batched(run, 'chown', ['-h', owner], paths, signal);
  // xattrs before modes: setting them may need write permission, which a 0400 mode takes away.
  const withXattrs = walk.entries.filter((e) => Object.keys(e.meta.xattrs).length);
  if (withXattrs.length) {
    const dump = withXattrs
      .map((e) => `# file: ${escapeDumpPath(abs(e.rel))}\n${Object.entries(e.meta.xattrs).map(([k, v]) => `${k}=0x${v.toString('hex')}`).join('\n')}\n`)
      .join('\n');
    const file = join(workDir, 'xattrs.dump');
    await fs.writeFile(file, `${dump}\n`);
    await run('setfattr', ['-h', `--restore=${file}`], { signal });
  }
  for (const [mode, paths] of modes) await batched(run, 'chmod', [mode.toString(8)], paths, signal);
  // Making nodes changed their directories' mtimes: every mtime the layers give is set again.
  for (const { rel, meta, st } of walk.entries) {
    if (!st.isDirectory() && !(meta.type === 'char' || meta.type === 'block' || meta.type === 'fifo')) continue;
    await fs.lutimes(abs(rel), meta.mtime, meta.mtime);
  }
}

/** The source record written at byte 1024 of the image. */
export function sourceRecordOf(source: ImageSource, hasGuestConfig: boolean): SourceRecord {
  return {
    ...(source.reference ? { reference: source.reference } : {}),
    ...(source.manifestDigest ? { manifestDigest: source.manifestDigest } : {}),
    ...(source.configDigest ? { configDigest: source.configDigest } : {}),
    hasGuestConfig,
  };
}

export interface PreparedFrom {
  stageDir: string;
  workDir: string;
  walk: StagedWalk;
  source: ImageSource;
  record: SourceRecord;
  layers: number;
  /** The undo step removing the staging directory: settled once the filesystem is built. */
  cleanup: number;
}

/**
 * Stages the image next to `target` (a temporary directory removed by `undo`): sources read,
 * layers applied and checked, /.mkimage/config.json and extra files added, the tree walked.
 */
export async function prepareFrom(o: FromOptions, target: string, undo: Undo, signal?: AbortSignal, progress?: (message: string) => void): Promise<PreparedFrom> {
  // First: a missing init (mkimage not built) is refused before any layer is read.
  const guest = await guestStagedFiles();
  const resolved = await resolveFrom(o);
  const base = await fs.mkdtemp(join(dirname(target), `.mkimage-from-${process.pid}-`));
  // rmSync: ~9,000 entries removed without a thread-pool round trip each (3 s less on a rootfs).
  const cleanup = undo.push(`staging directory ${base}`, async () => rmSync(base, { recursive: true, force: true }), { kind: 'dir', path: base, recursive: true });
  const stageDir = join(base, 'root');
  const workDir = join(base, 'work');
  await fs.mkdir(stageDir, 0o755);
  await fs.mkdir(workDir, 0o700);
  const { tree, diffIds } = await stageLayers(resolved.layers, stageDir, {
    signal,
    onLayer: (i, origin) => progress?.(`layer ${i + 1}/${resolved.layers.length} ${origin}`),
  });
  const source: ImageSource = { ...resolved.source, diffIds };
  await addStagedFiles(stageDir, tree, [guestConfigFile(source, resolved.config), ...guest, ...(o.files ?? [])]);
  // The root of the image: 0755 root-owned unless a layer said otherwise.
  if (!tree.meta.has('')) tree.meta.set('', { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: Math.floor(Date.now() / 1000), devmajor: 0, devminor: 0, xattrs: {} });
  if (!tree.meta.has(GUEST_DIR.slice(1))) tree.meta.set(GUEST_DIR.slice(1), { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: Math.floor(Date.now() / 1000), devmajor: 0, devminor: 0, xattrs: {} });
  const walk = await walkStaged(stageDir, tree);
  return { stageDir, workDir, walk, source, record: sourceRecordOf(source, true), layers: resolved.layers.length, cleanup };
}

/** A --size too small for the content: what is needed, and what --size auto would choose. */
export function tooSmall(fs: string, fsBytes: number, neededFsBytes: number, autoImageBytes: number): NoSpaceError {
  return new NoSpaceError(
    `the ${fs} filesystem of ${formatSize(fsBytes)} cannot hold the content of the sources: it needs at least ${formatSize(neededFsBytes)}; give --size ${formatSize(autoImageBytes)} or more (what --size auto chooses), nothing was created`,
    { fsBytes, neededFsBytes, neededImageBytes: autoImageBytes },
  );
}
