/**
 * debugfs: corrects inodes of an ext4 filesystem written by `mkfs.ext4 -d` from a staged tree,
 * without mounting it or being root. One run of `debugfs -w -f SCRIPT 'IMAGE?offset=N'` (the
 * unix io manager's offset option, as mkfs.ext4 -E offset= writes it) applies every command.
 *
 * Commands used (debugfs(8), e2fsprogs 1.47):
 *   set_inode_field PATH uid|gid N        (uid/gid set both the low and high 16 bits)
 *   set_inode_field PATH mode 0NNNNNN     (octal, file type bits included)
 *   set_inode_field PATH mtime @SECONDS
 *   rm PATH ; cd PARENT ; mknod NAME p|c|b [MAJOR MINOR] ; cd /   (mknod links NAME in the cwd)
 *   ea_set -f FILE PATH NAME              (the value read from FILE: binary values as they are)
 * Paths are absolute inside the filesystem and quoted for debugfs's parser (ss_parse): inside
 * double quotes, a doubled quote is one quote. A newline cannot be quoted (the script is read line
 * by line), so a name holding one is refused.
 *
 * debugfs exits 0 even when commands fail: every line it writes to stderr after its version
 * banner is an error, and the run is a ToolFailedError naming the first ones.
 */
import { LayerError, ToolFailedError } from '../errors.js';
import { run as defaultRun, type Runner } from './exec.js';

export type InodeFix =
  | { op: 'owner'; path: string; uid?: number; gid?: number }
  | { op: 'mode'; path: string; mode: number }
  | { op: 'mtime'; path: string; mtime: number }
  | { op: 'mknod'; path: string; kind: 'c' | 'b' | 'p'; major: number; minor: number }
  | { op: 'xattr'; path: string; name: string; valueFile: string };

/** A path or name as one debugfs argument. */
export function quoteArg(s: string): string {
  if (s.includes('\n') || s.includes('\r') || s.includes('\0')) {
    throw new LayerError(`the name ${JSON.stringify(s)} holds a newline, which debugfs's command parser cannot take: such names are refused`, { name: s });
  }
  return `"${s.replace(/"/g, '""')}"`;
}

/** The script's lines for the fixes, in the order given. Pure. */
export function debugfsScript(fixes: readonly InodeFix[]): string {
  const lines: string[] = [];
  for (const f of fixes) {
    const p = quoteArg(f.path);
    switch (f.op) {
      case 'owner':
        if (f.uid !== undefined) lines.push(`set_inode_field ${p} uid ${f.uid}`);
        if (f.gid !== undefined) lines.push(`set_inode_field ${p} gid ${f.gid}`);
        break;
      case 'mode':
        lines.push(`set_inode_field ${p} mode 0${f.mode.toString(8)}`);
        break;
      case 'mtime':
        lines.push(`set_inode_field ${p} mtime @${Math.floor(f.mtime)}`);
        break;
      case 'mknod': {
        // mknod links its name in the current directory, so it runs from the parent.
        const slash = f.path.lastIndexOf('/');
        const parent = quoteArg(f.path.slice(0, slash) || '/');
        const name = quoteArg(f.path.slice(slash + 1));
        lines.push(`rm ${p}`, `cd ${parent}`, f.kind === 'p' ? `mknod ${name} p` : `mknod ${name} ${f.kind} ${f.major} ${f.minor}`, 'cd /');
        break;
      }
      case 'xattr':
        lines.push(`ea_set -f ${quoteArg(f.valueFile)} ${p} ${quoteArg(f.name)}`);
        break;
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** debugfs -w -f SCRIPT 'TARGET?offset=N' */
export function debugfsArgs(target: string, offsetBytes: number, scriptPath: string): string[] {
  return ['-w', '-f', scriptPath, `${target}?offset=${offsetBytes}`];
}

/** Errors debugfs reported on stderr (its first line is the version banner). */
export function debugfsErrors(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !/^debugfs \d/.test(l));
}

export async function runDebugfs(target: string, offsetBytes: number, scriptPath: string, signal?: AbortSignal, run: Runner = defaultRun): Promise<void> {
  const r = await run('debugfs', debugfsArgs(target, offsetBytes, scriptPath), { signal });
  const errors = debugfsErrors(r.stderr);
  if (errors.length) {
    throw new ToolFailedError(`debugfs could not correct the filesystem's inodes: ${errors.slice(0, 3).join('; ')}${errors.length > 3 ? ` (and ${errors.length - 3} more)` : ''}`, {
      tool: 'debugfs',
      command: r.command,
      stderr: r.stderr,
    });
  }
}
