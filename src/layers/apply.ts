/**
 * Applies one OCI layer (a tar changeset) over a directory, as containerd and Docker do, but
 * without a chroot: every path is resolved by hand, component by component, with lstat.
 *
 * Rules (OCI image-spec layer.md, "Representing Changes"; REFERENCE.md section 8):
 * - `.wh.NAME` deletes NAME from the lower layers; `.wh..wh..opq` hides every lower child of its
 *   directory. Both act on lower content only: what this layer itself wrote, before or after the
 *   marker, stays (so the marker's place in the archive does not matter). Other `.wh..wh.*`
 *   names are aufs metadata and are skipped, as Docker does.
 * - Regular files, directories, symlinks, hard links (type 1, target inside the root), modes with
 *   setuid/setgid/sticky, numeric uid/gid (when root), mtimes (directories after their contents),
 *   device nodes and fifos (when root only).
 * - An entry replaces what is at its path, except a directory over a directory, whose content is
 *   merged (Docker's rule).
 *
 * Safety: an entry path must be relative and free of `..`. Its parent directories are walked from
 * the root with lstat: a real directory is entered; a symlink is followed only when its target is
 * relative and stays inside the root (`lib -> usr/lib`), since then it means the same place on the
 * host and in the guest; an absolute target is resolved from the root of the tree being built
 * (`var/run -> /run` leads to `run`), as runtimes resolve it in the container; a `..` that climbs
 * above the root is refused.
 * The last component is never followed: what is there is removed first, files are created with
 * O_CREAT|O_EXCL|O_NOFOLLOW, and metadata is set on the open descriptor or with l* calls. A hard
 * link's target is resolved by the same rules and must exist and not be a directory. Any refusal
 * is a LayerError naming the entry and the rule; what was applied before it stays (the caller
 * destroys the half-made dataset).
 *
 * Speed (a Debian rootfs is ~9,000 entries, most of them small; on zfs-fuse every system call is a
 * round trip to the daemon): the calls for one entry are synchronous, made one after the other on
 * this thread like tar's, not promises handed to libuv's thread pool and awaited one by one. An
 * uncompressed layer file is also read synchronously (tar.readSync: 1 MiB reads into one buffer,
 * the synchronous tar walker), so an entry costs no promise at all. Per regular file: open
 * (O_EXCL, with the file's permission bits: whatever is in the way is found by EEXIST and removed,
 * then open again, instead of an lstat before every create), write, fchown, fchmod, futimes,
 * close, where fchown is left out when it would change nothing (root:root made by root in a
 * directory of group root, checked once per layer with fstat) and fchmod when open gave the mode
 * already (the umask took none of its bits, no setuid/setgid/sticky); mkdir and symlink likewise
 * go first and look only on EEXIST. Fewer calls than tar -x makes.
 */
import { chmodSync, closeSync, constants, fchmodSync, fchownSync, fstatSync, futimesSync, lchownSync, lstatSync, lutimesSync, mkdirSync, openSync, promises as fs, symlinkSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { LayerError, MkimageError, NoSpaceError } from '../errors.js';
import { checkAborted } from '../undo.js';
import { run, type Runner } from '../tools/exec.js';
import { decompress } from './compression.js';
import { readTar, readTarSync, type SyncTarEntry, type SyncTarSource, type TarEntry } from './tar-read.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
/** Prefix of aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): never materialised. */
export const WHITEOUT_META_PREFIX = '.wh..wh.';

const NAME_MAX = 255;
const PATH_MAX = 4095;
/** Symlinks followed while resolving one path before giving up (Linux's MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

/** What an entry of the merged tree is, as the layers say (the staged copy may differ: see StagedTree). */
export interface EntryMeta {
  type: 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo';
  /** Permission bits with setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, Buffer>;
}

/**
 * Staging for a filesystem builder that corrects inodes afterwards (mkfs -d + debugfs, or
 * fakeroot + mkfs.erofs): layers are applied as an ordinary user would, and `meta` records what
 * each path must be. On disk: no owners set, files at least 0600 and directories at least 0700
 * (so that later layers and mkfs can read and write them), device nodes and fifos as empty
 * placeholder files, no xattrs. `meta` is keyed by the path relative to the root ('' = the root);
 * hard links share their target's record.
 */
export interface StagedTree {
  meta: Map<string, EntryMeta>;
}

export interface ApplyOptions {
  /** Record owners, modes, devices and xattrs in this tree instead of applying them (see StagedTree). */
  stage?: StagedTree;
  /** Set owners, create devices and fifos. Default: whether this process runs as uid 0. */
  isRoot?: boolean;
  signal?: AbortSignal;
  /** Runs mknod for device nodes and fifos (Node has no mknod). Default: the real runner. */
  runner?: Runner;
  /** Called after each entry with the bytes of file data written so far. */
  onProgress?: (p: { entries: number; bytes: number }) => void;
  /**
   * What to do with an entry's extended attributes (SCHILY.xattr.* records, `entry.xattrs`):
   * 'apply' where the target holds them (OpenZFS, ext4), 'drop' where it holds none (zfs-fuse:
   * listxattr is EOPNOTSUPP): each dropped one is counted and its file named in the stats.
   */
  xattrs?: 'apply' | 'drop';
}

/** A file whose extended attributes were not applied, and which. */
export interface DroppedXattrs {
  path: string;
  names: string[];
}

export interface ApplyStats {
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  whiteouts: number;
  opaques: number;
  /** Entries skipped as aufs metadata. */
  skipped: number;
  /** Bytes of file data written. */
  bytes: number;
  /** Extended attributes set (ApplyOptions.xattrs 'apply'). */
  xattrsApplied: number;
  /** Extended attributes not applied (ApplyOptions.xattrs 'drop'), and the files that had them. */
  xattrsDropped: number;
  xattrsDroppedFiles: DroppedXattrs[];
}

export type RefusalRule =
  | 'empty-name'
  | 'absolute-path'
  | 'parent-reference'
  | 'name-too-long'
  | 'bad-whiteout'
  | 'inside-whiteout'
  | 'symlink-escape'
  | 'symlink-loop'
  | 'parent-not-directory'
  | 'replace-root'
  | 'hardlink-outside'
  | 'hardlink-missing'
  | 'hardlink-directory'
  | 'bad-symlink-target'
  | 'device-not-root';

function refuse(entry: Pick<TarEntry, 'path' | 'offset'>, rule: RefusalRule, why: string, extra: Record<string, unknown> = {}): LayerError {
  return new LayerError(`layer entry ${JSON.stringify(entry.path)} refused (${rule}): ${why}`, { entry: entry.path, offset: entry.offset, rule, ...extra });
}

/**
 * An archive path as components: relative, without '' and '.', refused when absolute, when it
 * holds '..', or when a component or the whole path is longer than Linux allows.
 */
export function splitEntryPath(entry: Pick<TarEntry, 'path' | 'offset'>, path = entry.path, what = 'the path'): string[] {
  if (path === '') throw refuse(entry, 'empty-name', `${what} is empty`);
  if (path.includes('\0')) throw refuse(entry, 'empty-name', `${what} contains a NUL byte`);
  if (path.startsWith('/')) throw refuse(entry, 'absolute-path', `${what} ${JSON.stringify(path)} is absolute; layer paths are relative to the root`);
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw refuse(entry, 'parent-reference', `${what} ${JSON.stringify(path)} contains "..", which could leave the root`);
  // A UTF-16 code unit is at most 3 bytes of UTF-8: short strings need no counting.
  if (path.length * 3 > PATH_MAX && Buffer.byteLength(path) > PATH_MAX) throw refuse(entry, 'name-too-long', `${what} is ${Buffer.byteLength(path)} bytes, more than ${PATH_MAX}`);
  for (const c of parts) {
    if (c.length * 3 > NAME_MAX && Buffer.byteLength(c) > NAME_MAX) throw refuse(entry, 'name-too-long', `component ${JSON.stringify(c.slice(0, 40))}... is ${Buffer.byteLength(c)} bytes, more than ${NAME_MAX}`);
  }
  return parts;
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Synchronous like the other per-entry calls (see the 'file' case in apply). */
function lstatOrNull(path: string): Stats | null {
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

/** Linux's major/minor split of a dev_t (glibc gnu_dev_makedev). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

/** A directory resolved inside the root: its components and their relative path ('' = the root). */
interface ResolvedDir {
  parts: string[];
  rel: string;
  /** Its group now, when known (lstat, or made here under a directory of group egid). */
  gid?: number;
}

interface DirMeta {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  entry: string;
}

class Applier {
  readonly stats: ApplyStats = { entries: 0, files: 0, directories: 0, symlinks: 0, hardlinks: 0, devices: 0, whiteouts: 0, opaques: 0, skipped: 0, bytes: 0, xattrsApplied: 0, xattrsDropped: 0, xattrsDroppedFiles: [] };
  /**
   * Archive directory path -> its resolved components (every one a real directory) and their
   * relative path; a directory entry made or kept by this layer goes in too, so that its
   * children find their parent without an lstat. Cleared whenever something is removed.
   */
  private dirCache = new Map<string, ResolvedDir>();
  /** Resolved paths this layer wrote ('a/b'), and every ancestor of one. */
  private written = new Set<string>();
  private writtenBelow = new Set<string>();
  /** What open(2) takes from a new file's mode (read once; process.umask() only reads it). */
  private readonly umask = process.umask();
  /** Directory metadata, set at the end so that creating their contents does not undo it. */
  private dirMeta = new Map<string, DirMeta>();

  constructor(
    private readonly root: string,
    private readonly isRoot: boolean,
    private readonly runner: Runner,
    private readonly stage?: StagedTree,
    /** Set each entry's extended attributes (ApplyOptions.xattrs 'apply'). */
    private readonly setXattrs = false,
    /** The root directory's group. */
    private readonly rootGid?: number,
  ) {}

  /** Who creates: a new file is owned by euid, and by egid or its directory's group. */
  private readonly euid = process.geteuid?.() ?? -1;
  private readonly egid = process.getegid?.() ?? -1;
  /**
   * Whether a file this process creates in a directory of group egid is owned by euid:egid
   * already, so that chown to those ids can be left out: learned from the first file (fstat),
   * since a filesystem may say otherwise (NFS root squash, an idmapped mount).
   */
  private ownsNew: boolean | undefined;

  /** Whether chown to the entry's owner would change nothing on what was just made in `dir`. */
  private ownedAlready(entry: TarEntry, dir: ResolvedDir): boolean {
    // The group of a new entry is its directory's (setgid, or a grpid mount) or egid: the same
    // when the directory's group is egid.
    return this.ownsNew === true && entry.uid === this.euid && entry.gid === this.egid && dir.gid === this.egid;
  }

  /** The group a directory made here gets, when known: its parent's or egid, the same when the parent's is egid. */
  private newDirGid(parentGid: number | undefined): number | undefined {
    return parentGid === this.egid ? this.egid : undefined;
  }

  /** Records what `rel` must be (staging only). */
  private record(rel: string, entry: TarEntry, type: EntryMeta['type']): void {
    this.stage?.meta.set(rel, { type, mode: entry.mode & 0o7777, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, devmajor: entry.devmajor, devminor: entry.devminor, xattrs: entry.xattrs });
  }

  /** Forgets `rel` and everything below it (staging only): it was removed. */
  private forget(rel: string, isDir = true): void {
    const meta = this.stage?.meta;
    if (!meta) return;
    meta.delete(rel);
    if (!isDir) return;
    const prefix = `${rel}/`;
    for (const k of meta.keys()) if (k.startsWith(prefix)) meta.delete(k);
  }

  private abs(parts: readonly string[]): string {
    return this.absRel(parts.join('/'));
  }

  /**
   * The host path of a relative path whose components are plain names (none '', '.' or '..':
   * splitEntryPath and resolveDir make them so), by concatenation: path.join would normalize
   * what is normal already.
   */
  private absRel(rel: string): string {
    if (rel === '') return this.root;
    return this.root === '/' ? `/${rel}` : `${this.root}/${rel}`;
  }

  /**
   * Resolves a directory path inside the root: every component lstat'ed; directories entered;
   * relative symlinks that stay inside followed; anything else refused. Missing directories are
   * created (mode 0755, like Docker) when `create`, else the result is null.
   */
  async resolveDir(entry: TarEntry, parts: readonly string[], create: boolean): Promise<ResolvedDir | null> {
    const key = parts.join('/');
    return this.dirCache.get(key) ?? this.walkDir(entry, key, parts, create);
  }

  private async walkDir(entry: TarEntry, key: string, parts: readonly string[], create: boolean): Promise<ResolvedDir | null> {
    const resolved: string[] = [];
    // The group of each resolved directory, when known (see ownedAlready); [0] is the root's.
    const gids: (number | undefined)[] = [this.rootGid];
    const queue = [...parts];
    let links = 0;
    while (queue.length) {
      const c = queue.shift()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        // Only symlink targets bring '..' here: entry paths with it were refused.
        if (!resolved.length) throw refuse(entry, 'symlink-escape', `a symlink among its parent directories (${JSON.stringify(key)}) points above the root`);
        resolved.pop();
        gids.pop();
        continue;
      }
      const here = [...resolved, c];
      const st = lstatOrNull(this.abs(here));
      if (st === null) {
        if (!create) return null;
        // Explicit chmod: the result must not depend on the umask.
        mkdirSync(this.abs(here), 0o755);
        chmodSync(this.abs(here), 0o755);
        this.forget(here.join('/'));
        this.stage?.meta.set(here.join('/'), { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: entry.mtime, devmajor: 0, devminor: 0, xattrs: {} });
        gids.push(this.newDirGid(gids[gids.length - 1]));
        resolved.push(c);
        continue;
      }
      if (st.isDirectory()) {
        gids.push(st.gid);
        resolved.push(c);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) throw refuse(entry, 'symlink-loop', `more than ${MAX_SYMLINKS} symlinks while resolving ${JSON.stringify(key)}`);
        const target = await fs.readlink(this.abs(here));
        // An absolute target names a place in the image's own root (`var/run -> /run`), as an
        // OCI runtime resolves it (chroot semantics): start again from the root, never the host's.
        if (target.startsWith('/')) {
          resolved.length = 0;
          gids.length = 1;
        }
        queue.unshift(...target.split('/'));
        continue;
      }
      throw refuse(entry, 'parent-not-directory', `parent ${JSON.stringify(here.join('/'))} exists and is not a directory`);
    }
    const dir = { parts: resolved, rel: resolved.join('/'), gid: gids[gids.length - 1] };
    this.dirCache.set(key, dir);
    return dir;
  }

  private markWritten(rel: string): void {
    this.written.add(rel);
    let i = rel.lastIndexOf('/');
    while (i > 0) {
      const up = rel.slice(0, i);
      if (this.writtenBelow.has(up)) break;
      this.writtenBelow.add(up);
      i = up.lastIndexOf('/');
    }
  }

  /** Removes whatever is at `path` without following it; keeps a directory when `keepDir`. */
  private async clear(path: string, keepDir: boolean): Promise<'kept' | 'none' | 'removed'> {
    const st = lstatOrNull(path);
    if (st === null) return 'none';
    if (keepDir && st.isDirectory()) return 'kept';
    this.forget(path === this.root ? '' : path.slice(this.root.length + 1), st.isDirectory());
    if (st.isDirectory()) {
      await fs.rm(path, { recursive: true, force: true });
      this.dirCache.clear();
    } else {
      unlinkSync(path);
      if (st.isSymbolicLink()) this.dirCache.clear();
    }
    return 'removed';
  }


  /** Removes the lower children of a directory: those neither written by this layer nor above something it wrote. */
  private async hideLowerChildren(rel: string): Promise<void> {
    let names: string[];
    try {
      names = await fs.readdir(this.abs(rel ? rel.split('/') : []));
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return;
      throw e;
    }
    for (const name of names) {
      const child = rel ? `${rel}/${name}` : name;
      if (this.written.has(child) || this.writtenBelow.has(child)) {
        const st = lstatOrNull(this.abs(child.split('/')));
        if (st?.isDirectory()) await this.hideLowerChildren(child);
        continue;
      }
      await fs.rm(this.abs(child.split('/')), { recursive: true, force: true });
      this.forget(child);
    }
    this.dirCache.clear();
  }

  async apply(entry: TarEntry): Promise<void> {
    this.stats.entries++;
    const parts = splitEntryPath(entry);
    if (parts.length === 0) {
      if (entry.type !== 'directory') throw refuse(entry, 'replace-root', `the root itself can only be a directory, not a ${entry.type}`);
      this.dirMeta.set('', { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, entry: entry.path });
      this.record('', entry, 'directory');
      this.stats.directories++;
      return;
    }
    const base = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);
    const marked = entry.path.includes(WHITEOUT_PREFIX); // else no component starts with it
    if (marked && parts.some((c) => c.startsWith(WHITEOUT_META_PREFIX) && c !== OPAQUE_WHITEOUT)) {
      this.stats.skipped++;
      return;
    }
    if (marked && parentParts.some((c) => c.startsWith(WHITEOUT_PREFIX))) {
      throw refuse(entry, 'inside-whiteout', 'an entry cannot live inside a whiteout or opaque marker');
    }
    if (base === OPAQUE_WHITEOUT) {
      this.stats.opaques++;
      const dir = await this.resolveDir(entry, parentParts, false);
      if (dir) await this.hideLowerChildren(dir.rel);
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (name === '' || name === '.' || name === '..') throw refuse(entry, 'bad-whiteout', `whiteout ${JSON.stringify(base)} names nothing`);
      this.stats.whiteouts++;
      const dir = await this.resolveDir(entry, parentParts, false);
      if (!dir) return;
      const rel = dir.rel ? `${dir.rel}/${name}` : name;
      if (this.written.has(rel)) return; // a whiteout applies to lower layers only
      if (this.writtenBelow.has(rel)) await this.hideLowerChildren(rel);
      else await this.clear(this.absRel(rel), false);
      return;
    }

    const dir = (await this.resolveDir(entry, parentParts, true))!;
    const rel = dir.rel ? `${dir.rel}/${base}` : base;
    const path = this.absRel(rel);

    switch (entry.type) {
      case 'directory': {
        // mkdir first (as O_EXCL for files): only an existing path is looked at.
        let gid: number | undefined;
        try {
          mkdirSync(path, 0o700);
          gid = this.newDirGid(dir.gid);
        } catch (e) {
          if (errno(e) !== 'EEXIST') throw e;
          if ((await this.clear(path, true)) !== 'kept') mkdirSync(path, 0o700);
        }
        // A real directory now, inside the root: its children need not lstat their way here.
        this.dirCache.set(parts.join('/'), { parts: [...dir.parts, base], rel, gid });
        this.dirMeta.set(rel, { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, entry: entry.path });
        this.record(rel, entry, 'directory');
        this.stats.directories++;
        break;
      }
      case 'file': {
        // Synchronous calls: one file is a handful of syscalls, and a thread-pool round trip
        // for each cost more than the syscall (a Debian rootfs: 3x the time of tar -x).
        // O_EXCL first; only an existing path is looked at and cleared (then created again).
        const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
        const mode = this.stage ? (entry.mode & 0o7777) | 0o600 : entry.mode & 0o7777;
        // Created with its permission bits (a new file is writable through the descriptor that
        // created it, whatever its mode): fchmod only when the umask takes some of them or for
        // setuid/setgid/sticky, which chown clears.
        const createMode = mode & 0o777;
        let fd: number;
        try {
          fd = openSync(path, flags, createMode);
        } catch (e) {
          if (errno(e) !== 'EEXIST') throw e;
          await this.clear(path, false);
          fd = openSync(path, flags, createMode);
        }
        try {
          if ('bodySync' in entry) {
            // Read synchronously (an uncompressed file): no promise per chunk.
            for (const chunk of (entry as SyncTarEntry).bodySync()) this.write(fd, chunk);
          } else {
            for await (const chunk of entry.body()) this.write(fd, chunk);
          }
          if (this.isRoot && this.ownsNew === undefined && dir.gid === this.egid) {
            const st = fstatSync(fd);
            this.ownsNew = st.uid === this.euid && st.gid === this.egid;
          }
          // chown of a file root just made to root:root would change nothing: left out.
          if (this.isRoot && !this.ownedAlready(entry, dir)) fchownSync(fd, entry.uid, entry.gid);
          if (mode !== createMode || (createMode & this.umask) !== 0) fchmodSync(fd, mode);
          futimesSync(fd, entry.mtime, entry.mtime);
        } finally {
          closeSync(fd);
        }
        this.record(rel, entry, 'file');
        this.stats.files++;
        break;
      }
      case 'symlink': {
        const target = entry.linkpath;
        if (target === '' || target.includes('\0') || Buffer.byteLength(target) > PATH_MAX) {
          throw refuse(entry, 'bad-symlink-target', `symlink target ${JSON.stringify(target.slice(0, 60))} is empty, holds a NUL byte or is longer than ${PATH_MAX} bytes`);
        }
        // symlink first: only an existing path is looked at, cleared, and the symlink made again.
        try {
          symlinkSync(target, path);
        } catch (e) {
          if (errno(e) !== 'EEXIST') throw e;
          await this.clear(path, false);
          symlinkSync(target, path);
        }
        if (this.isRoot && !this.ownedAlready(entry, dir)) lchownSync(path, entry.uid, entry.gid);
        lutimesSync(path, entry.mtime, entry.mtime);
        this.record(rel, entry, 'symlink');
        this.stats.symlinks++;
        break;
      }
      case 'hardlink': {
        const targetParts = this.linkTarget(entry);
        const targetDir = await this.resolveDir(entry, targetParts.slice(0, -1), false);
        const targetRel = targetDir ? [...targetDir.parts, targetParts[targetParts.length - 1]!] : null;
        const st = targetRel ? lstatOrNull(this.abs(targetRel)) : null;
        if (!targetRel || !st) throw refuse(entry, 'hardlink-missing', `hard link target ${JSON.stringify(entry.linkpath)} does not exist in the layer or below it`);
        if (st.isDirectory()) throw refuse(entry, 'hardlink-directory', `hard link target ${JSON.stringify(entry.linkpath)} is a directory`);
        if (targetRel.join('/') === rel) break; // a link to itself changes nothing
        await this.clear(path, false);
        await fs.link(this.abs(targetRel), path);
        const shared = this.stage?.meta.get(targetRel.join('/'));
        if (shared) this.stage!.meta.set(rel, shared);
        this.stats.hardlinks++;
        break;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        if (this.stage) {
          // A placeholder the filesystem builder turns into the node (debugfs mknod, fakeroot).
          await this.clear(path, false);
          const fh = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
          await fh.close();
          await fs.lutimes(path, entry.mtime, entry.mtime);
          this.record(rel, entry, entry.type);
          this.stats.devices++;
          break;
        }
        if (!this.isRoot) {
          throw refuse(entry, 'device-not-root', `${entry.type === 'fifo' ? 'a fifo' : `a ${entry.type} device ${entry.devmajor}:${entry.devminor}`} is created only when running as root`);
        }
        await this.clear(path, false);
        const kind = entry.type === 'char' ? ['c', String(entry.devmajor), String(entry.devminor)] : entry.type === 'block' ? ['b', String(entry.devmajor), String(entry.devminor)] : ['p'];
        await this.runner('mknod', ['-m', (entry.mode & 0o7777).toString(8), path, ...kind]);
        await fs.lchown(path, entry.uid, entry.gid);
        // chown cleared setuid/setgid bits; chmod follows symlinks, but this is the node just made.
        await fs.chmod(path, entry.mode & 0o7777);
        await fs.lutimes(path, entry.mtime, entry.mtime);
        this.stats.devices++;
        break;
      }
    }
    // After chown and chmod, which clear security.capability. A hard link shares its target's.
    if (this.setXattrs && !this.stage && entry.type !== 'hardlink') await this.applyXattrs(entry, path);
    this.markWritten(rel);
  }

  private write(fd: number, chunk: Buffer): void {
    let done = 0;
    while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
    this.stats.bytes += chunk.length;
  }

  /**
   * The entry's SCHILY.xattr.* attributes on what was just made, without following a symlink.
   * Node has no setxattr: setfattr (Debian's attr) per attribute, hex-encoded so any bytes pass;
   * few entries carry any (a Debian rootfs: one, usr/bin/ping's security.capability).
   */
  private async applyXattrs(entry: TarEntry, path: string): Promise<void> {
    for (const [name, value] of Object.entries(entryXattrs(entry))) {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
      await this.runner('setfattr', ['--no-dereference', '-n', name, ...(bytes.length ? ['-v', `0x${bytes.toString('hex')}`] : []), path]);
      this.stats.xattrsApplied++;
    }
  }

  /** A hard link's target as components: inside the root, by the same rules as entry paths. */
  private linkTarget(entry: TarEntry): string[] {
    try {
      const parts = splitEntryPath(entry, entry.linkpath, 'hard link target');
      if (!parts.length) throw refuse(entry, 'hardlink-directory', 'hard link target is the root');
      return parts;
    } catch (e) {
      if (e instanceof LayerError && (e.data.rule === 'absolute-path' || e.data.rule === 'parent-reference')) {
        throw refuse(entry, 'hardlink-outside', `hard link target ${JSON.stringify(entry.linkpath)} is outside the layer root`, { target: entry.linkpath });
      }
      throw e;
    }
  }

  /** Sets directory owners, modes and mtimes, deepest first, re-checking each path with lstat. */
  async finishDirectories(): Promise<void> {
    const dirs = [...this.dirMeta.entries()].sort((a, b) => depth(b[0]) - depth(a[0]));
    for (const [rel, meta] of dirs) {
      const parts = rel ? rel.split('/') : [];
      if (!(await this.isRealDirChain(parts))) continue;
      let fd: number;
      try {
        fd = openSync(this.abs(parts), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      } catch (e) {
        // Replaced later in the same layer by something else: its own entry has its metadata.
        if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR' || errno(e) === 'ELOOP') continue;
        throw e;
      }
      try {
        if (this.isRoot) fchownSync(fd, meta.uid, meta.gid);
        fchmodSync(fd, this.stage ? (meta.mode & 0o7777) | 0o700 : meta.mode & 0o7777);
        futimesSync(fd, meta.mtime, meta.mtime);
      } catch (e) {
        throw wrapFsError(e, { path: meta.entry, offset: -1 });
      } finally {
        closeSync(fd);
      }
    }
  }

  private async isRealDirChain(parts: readonly string[]): Promise<boolean> {
    // Every directory of this layer is checked: a chain already found real is not walked again.
    for (let i = parts.length; i >= 1; i--) {
      if (this.realDirs.has(parts.slice(0, i).join('/'))) break;
      const st = await lstatOrNull(this.abs(parts.slice(0, i)));
      if (!st?.isDirectory()) return false;
    }
    for (let i = 1; i <= parts.length; i++) this.realDirs.add(parts.slice(0, i).join('/'));
    return true;
  }
  private realDirs = new Set<string>();
}

function depth(rel: string): number {
  return rel === '' ? 0 : rel.split('/').length;
}

function wrapFsError(e: unknown, entry: Pick<TarEntry, 'path' | 'offset'>): MkimageError {
  if (e instanceof MkimageError) return e;
  const code = errno(e);
  const message = (e as Error)?.message ?? String(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new NoSpaceError(`no space left while applying layer entry ${JSON.stringify(entry.path)}: ${message}`, { entry: entry.path, offset: entry.offset }, { cause: e });
  }
  return new LayerError(`applying layer entry ${JSON.stringify(entry.path)} failed: ${message}`, { entry: entry.path, offset: entry.offset, errno: code }, { cause: e });
}

/**
 * Applies the layer in `tar` (uncompressed or gzip) over `rootDir`. Throws LayerError for a
 * hostile or malformed entry (naming it and the rule), NoSpaceError when the disk fills.
 */
export async function applyLayer(tar: AsyncIterable<Uint8Array> & SyncTarSource, rootDir: string, options: ApplyOptions = {}): Promise<ApplyStats> {
  // An uncompressed file is read and walked synchronously: per entry no promise, no thread-pool
  // round trip, one reused read buffer.
  const sync = tar.readSync?.();
  return applyEntries(sync ? readTarSync(sync) : readTar(decompress(tar, 'layer', options.signal)), rootDir, options);
}

/**
 * The extended attributes an entry carries, by name (tar-read fills `xattrs` from SCHILY.xattr.*
 * PAX records; a reader without them gives none).
 */
export function entryXattrs(entry: TarEntry): Record<string, Uint8Array | string> {
  return (entry as TarEntry & { xattrs?: Record<string, Uint8Array | string> }).xattrs ?? {};
}

/** applyLayer on entries already read (tests; other readers). */
export async function applyEntries(entries: AsyncIterable<TarEntry> | Iterable<TarEntry>, rootDir: string, options: ApplyOptions = {}): Promise<ApplyStats> {
  const root = await fs.realpath(resolve(rootDir));
  const rootStat = await fs.lstat(root);
  if (!rootStat.isDirectory()) throw new LayerError(`${rootDir} is not a directory: a layer is applied over a directory`, { rootDir });
  const applier = new Applier(root, options.stage ? false : (options.isRoot ?? process.getuid?.() === 0), options.runner ?? run, options.stage, options.xattrs === 'apply', rootStat.gid);
  let turn = performance.now();
  let sinceTurn = 0;
  for await (const entry of entries) {
    // Synchronous calls and a synchronously read archive never give the event loop a turn by
    // themselves: one every 256 entries or 50 ms, so that a SIGINT/SIGTERM handler can abort the
    // signal checked here (without it, Ctrl-C took effect only after the last entry).
    if (++sinceTurn >= 256 || performance.now() - turn > 50) {
      await new Promise((done) => setImmediate(done));
      turn = performance.now();
      sinceTurn = 0;
    }
    checkAborted(options.signal, 'layer extraction');
    const names = Object.keys(entryXattrs(entry));
    if (names.length && options.xattrs === 'drop') {
      applier.stats.xattrsDropped += names.length;
      applier.stats.xattrsDroppedFiles.push({ path: entry.path.replace(/^(\.\/)+/, ''), names: names.sort() });
    }
    try {
      await applier.apply(entry);
    } catch (e) {
      throw wrapFsError(e, entry);
    }
    options.onProgress?.({ entries: applier.stats.entries, bytes: applier.stats.bytes });
  }
  await applier.finishDirectories();
  return applier.stats;
}
