/**
 * Who else uses an image file: processes that have it open (/proc/PID/fd) or mapped
 * (/proc/PID/maps), found as fuser(1) finds them, by the file's identity (device + inode), never
 * by its name. A QEMU guest maps the image as its NVDIMM's memory (memory-backend-file,
 * share=on): the host importing the pool the guest has imported corrupts it, so attaching,
 * writing, replacing or destroying such an image is refused (BusyError, EBUSY) naming each
 * process.
 *
 *   /proc/PID/fd/N    a link; stat(2) through it gives the open file's dev + ino (also for a
 *                     deleted file). Links to sockets, pipes and anonymous inodes are skipped.
 *   /proc/PID/maps    "start-end perms offset MAJ:MIN inode path": dev in hex major:minor,
 *                     inode in decimal (proc(5)).
 *
 * This process is skipped. Other users' processes are visible to root only (as for fuser): an
 * ordinary user's mkimage sees only that user's processes.
 *
 * A process that only glances at the file (another mkimage reading its headers for `status` or
 * `inspect`, a `file` or `sha256sum`) is not using it: what is found is looked at again a few
 * times over ~half a second, and only processes that hold the file all along are reported.
 */
import { promises as fs } from 'node:fs';
import { BusyError } from '../errors.js';

/** One process using the file, and how. */
export interface FileUser {
  pid: number;
  /** Its command line (/proc/PID/cmdline, NULs as spaces), or its name when that is empty. */
  command: string;
  /** "open" (a descriptor), "mapped" (a mapping), or both. */
  how: ('open' | 'mapped')[];
}

export interface FileIdentity {
  dev: number;
  ino: number;
}

/** major and minor of a Linux dev_t as stat(2) returns it (glibc's gnu_dev_major/minor). */
export function splitDev(dev: number): { major: number; minor: number } {
  const d = BigInt(dev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

/** The inverse of splitDev (makedev). */
export function joinDev(major: number, minor: number): number {
  const M = BigInt(major);
  const m = BigInt(minor);
  return Number(((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n));
}

/** One line of /proc/PID/maps that names a file: its device and inode. */
export interface MapEntry {
  major: number;
  minor: number;
  inode: number;
  path: string;
}

/** Parses /proc/PID/maps; anonymous mappings (inode 0) are left out. */
export function parseMaps(text: string): MapEntry[] {
  const out: MapEntry[] = [];
  for (const line of text.split('\n')) {
    // address perms offset dev inode [path]; the path may hold spaces.
    const m = /^\S+\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+):([0-9a-f]+)\s+(\d+)\s*(.*)$/i.exec(line);
    if (!m) continue;
    const inode = Number(m[3]);
    if (inode === 0) continue;
    out.push({ major: parseInt(m[1]!, 16), minor: parseInt(m[2]!, 16), inode, path: m[4]! });
  }
  return out;
}

/** True when a maps line names the file (same device and inode). */
export function mapsName(entries: readonly MapEntry[], id: FileIdentity): boolean {
  const { major, minor } = splitDev(id.dev);
  return entries.some((e) => e.inode === id.ino && e.major === major && e.minor === minor);
}

/** /proc/PID/cmdline as one line: arguments separated by spaces (empty for a kernel thread). */
export function parseCmdline(raw: Buffer | string): string {
  return String(raw).replace(/\0+$/, '').split('\0').join(' ').replace(/\s+/g, ' ').trim();
}

/** fd link targets that cannot be files: sockets, pipes, anonymous inodes. */
export function isFileLink(target: string): boolean {
  return target.startsWith('/');
}

async function commandOf(pid: number): Promise<string> {
  const cmd = parseCmdline(await fs.readFile(`/proc/${pid}/cmdline`).catch(() => Buffer.alloc(0)));
  if (cmd) return cmd;
  return `[${(await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim()}]`;
}

async function openHere(pid: number, id: FileIdentity): Promise<boolean> {
  const dir = `/proc/${pid}/fd`;
  const fds = await fs.readdir(dir).catch(() => [] as string[]);
  for (const fd of fds) {
    const target = await fs.readlink(`${dir}/${fd}`).catch(() => '');
    if (!isFileLink(target)) continue;
    const st = await fs.stat(`${dir}/${fd}`).catch(() => undefined);
    if (st && st.ino === id.ino && st.dev === id.dev) return true;
  }
  return false;
}

async function mappedHere(pid: number, id: FileIdentity): Promise<boolean> {
  const text = await fs.readFile(`/proc/${pid}/maps`, 'utf8').catch(() => '');
  return text !== '' && mapsName(parseMaps(text), id);
}

async function scan(id: FileIdentity, pids: readonly number[]): Promise<Map<number, FileUser['how']>> {
  const found = new Map<number, FileUser['how']>();
  await Promise.all(
    pids.map(async (pid) => {
      const [open, mapped] = await Promise.all([openHere(pid, id), mappedHere(pid, id)]);
      const how: FileUser['how'] = [];
      if (open) how.push('open');
      if (mapped) how.push('mapped');
      if (how.length) found.set(pid, how);
    }),
  );
  return found;
}

async function allPids(): Promise<number[]> {
  return (await fs.readdir('/proc'))
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

export interface InUseOptions {
  /** Processes not to count (besides this one): e.g. children this job started on purpose. */
  exceptPids?: readonly number[];
  /** How many times a process found must still hold the file (default 3), `pauseMs` apart. */
  confirmations?: number;
  pauseMs?: number;
}

/** The processes (other than this one) that have the file open or mapped. [] when none. */
export async function fileUsers(path: string, o: InUseOptions = {}): Promise<FileUser[]> {
  const st = await fs.stat(path).catch(() => undefined);
  if (!st) return [];
  const id = { dev: st.dev, ino: st.ino };
  const except = new Set(o.exceptPids ?? []);
  let found = await scan(id, (await allPids()).filter((p) => !except.has(p)));
  const confirmations = o.confirmations ?? 3;
  for (let i = 0; i < confirmations && found.size; i++) {
    await new Promise((r) => setTimeout(r, o.pauseMs ?? 150));
    const again = await scan(id, [...found.keys()]);
    found = new Map([...again].filter(([pid]) => found.has(pid)));
  }
  const users: FileUser[] = [];
  for (const [pid, how] of [...found].sort((a, b) => a[0] - b[0])) users.push({ pid, command: await commandOf(pid), how });
  return users;
}

/** "PID 123 (qemu-system-x86_64 -m ...), mapped" for each user. */
export function describeUsers(users: readonly FileUser[]): string {
  return users.map((u) => `PID ${u.pid} (${u.command.length > 200 ? `${u.command.slice(0, 200)}...` : u.command}, ${u.how.join(' and ')})`).join(', ');
}

/**
 * Throws BusyError when another process has the image open or mapped. `action` says what was
 * refused ("attach", "destroy", "replace"); `override` names the option that overrides it, if any.
 */
export async function assertNotInUse(path: string, action: string, o: InUseOptions & { override?: string } = {}): Promise<void> {
  const users = await fileUsers(path, o);
  if (!users.length) return;
  throw new BusyError(
    `cannot ${action} ${path}: it is in use by ${describeUsers(users)} (a QEMU guest maps its image as its NVDIMM's memory; the host must not change it or import its pool meanwhile); stop ${users.length === 1 ? 'that process' : 'those processes'} first${o.override ? `, or pass ${o.override} if you know it is safe` : ''}; nothing was changed`,
    { path, users, action },
  );
}
