/**
 * Loop devices (util-linux losetup). mkimage attaches the partition alone, by offset and size
 * limit read from the image's own header, with --find: it never depends on the kernel's partition
 * scanning (absent on some hosts) nor on which loop number it gets.
 */
import { ToolFailedError, toolFailedWith } from '../errors.js';
import { run as defaultRun, type Runner } from './exec.js';

export interface LoopAttachOptions {
  file: string;
  offsetBytes: number;
  sizeLimitBytes: number;
  readOnly?: boolean;
  signal?: AbortSignal;
}

export interface LoopDevice {
  /** /dev/loopN */
  name: string;
  backFile: string;
  offsetBytes: number;
  sizeLimitBytes: number;
  readOnly: boolean;
  /** The backing file's inode and device (major, minor): its identity, also once renamed or deleted. */
  backIno?: number;
  backMajor?: number;
  backMinor?: number;
}

export function attachArgs(o: LoopAttachOptions): string[] {
  return [
    '--find',
    '--show',
    '--offset',
    String(o.offsetBytes),
    '--sizelimit',
    String(o.sizeLimitBytes),
    ...(o.readOnly ? ['--read-only'] : []),
    '--',
    o.file,
  ];
}

/** losetup --find with no loop driver (no /dev/loop-control), or every loop device taken. */
const NO_FREE_LOOP = /cannot find an unused loop device|loop-control/i;

export async function attachLoop(o: LoopAttachOptions, run: Runner = defaultRun): Promise<string> {
  let r;
  try {
    r = await run('losetup', attachArgs(o), { signal: o.signal });
  } catch (e) {
    if (!toolFailedWith(e, NO_FREE_LOOP)) throw e;
    throw new ToolFailedError(
      `losetup found no free loop device for ${o.file}: load the loop driver (modprobe loop, as root), or free a loop device (losetup --list shows them); nothing was attached`,
      { ...e.data, file: o.file },
      { cause: e },
    );
  }
  return r.stdout.trim();
}

export async function detachLoop(device: string, run: Runner = defaultRun): Promise<void> {
  await run('losetup', ['--detach', device]);
}

interface LosetupJson {
  loopdevices?: Array<{
    name: string;
    'back-file'?: string | null;
    offset?: number | string;
    sizelimit?: number | string;
    ro?: boolean | string | number;
    'back-ino'?: number | string | null;
    'back-maj:min'?: string | null;
  }>;
}

/** Parses `losetup --json --list --output ...`; a deleted backing file shows as "PATH (deleted)". */
export function parseLoopList(json: string): LoopDevice[] {
  if (!json.trim()) return [];
  const data = JSON.parse(json) as LosetupJson;
  return (data.loopdevices ?? []).map((d) => {
    const l: LoopDevice = {
      name: d.name,
      backFile: String(d['back-file'] ?? ''),
      offsetBytes: Number(d.offset ?? 0),
      sizeLimitBytes: Number(d.sizelimit ?? 0),
      readOnly: d.ro === true || d.ro === '1' || d.ro === 1,
    };
    if (d['back-ino'] !== undefined && d['back-ino'] !== null) l.backIno = Number(d['back-ino']);
    // losetup pads it: "     254:0  ".
    const mm = /^\s*(\d+):(\d+)\s*$/.exec(d['back-maj:min'] ?? '');
    if (mm) {
      l.backMajor = Number(mm[1]);
      l.backMinor = Number(mm[2]);
    }
    return l;
  });
}

/** The columns mkimage lists: the backing file by name and by identity (inode, device). */
const LIST_COLUMNS = 'NAME,BACK-FILE,OFFSET,SIZELIMIT,RO,BACK-INO,BACK-MAJ:MIN';

export async function listLoops(run: Runner = defaultRun): Promise<LoopDevice[]> {
  const r = await run('losetup', ['--json', '--list', '--output', LIST_COLUMNS]);
  return parseLoopList(r.stdout);
}

/**
 * The loop devices backed by `file`, found by its inode (`losetup --associated`): whatever path
 * they were attached by, even after the file was renamed or deleted.
 */
export async function loopsOfFile(file: string, run: Runner = defaultRun): Promise<LoopDevice[]> {
  const r = await run('losetup', ['--json', '--list', '--associated', file, '--output', LIST_COLUMNS]);
  return parseLoopList(r.stdout);
}
