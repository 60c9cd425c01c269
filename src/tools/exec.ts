/**
 * The one place mkimage runs other programs. Argument arrays only, never a shell.
 *
 * - A program that is not installed raises ToolMissingError naming the Debian package to install.
 * - A program that exits non-zero raises ToolFailedError carrying the command line, exit code and
 *   stderr (and the execa error as `cause`).
 * - `signal` (an AbortSignal) kills the child with SIGTERM: jobs pass theirs so that SIGINT/SIGTERM
 *   given to mkimage stops whatever runs and the job can undo its work.
 *
 * execa is imported on first use, so commands that never start a process (inspect, qemu-args)
 * do not pay for loading it.
 */
import { ToolFailedError, ToolMissingError } from '../errors.js';

/** Where each program comes from on Debian (and Ubuntu): said in ToolMissingError. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  losetup: 'mount (util-linux)',
  mount: 'mount (util-linux)',
  umount: 'mount (util-linux)',
  blkid: 'util-linux',
  fallocate: 'util-linux',
  cp: 'coreutils',
  sfdisk: 'fdisk',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  'mkfs.xfs': 'xfsprogs',
  xfs_repair: 'xfsprogs',
  zpool: 'zfsutils-linux (OpenZFS) or zfs-fuse',
  zfs: 'zfsutils-linux (OpenZFS) or zfs-fuse',
  'zfs-fuse': 'zfs-fuse',
  'qemu-system-x86_64': 'qemu-system-x86',
  ndctl: 'ndctl',
  tar: 'tar',
};

export interface RunOptions {
  /** Written to the child's stdin. */
  input?: string | Buffer;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kill the child (SIGTERM) when this aborts. */
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Exit codes that are not failures (default: only 0). */
  okExitCodes?: readonly number[];
}

export interface RunResult {
  /** The command as run: program followed by its arguments. */
  command: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A runner: the real one below, or a recording fake in unit tests of argument building. */
export type Runner = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

type Execa = typeof import('execa').execa;
let execaFn: Execa | undefined;

/** The command line quoted for a human reader (error messages, --verbose); never executed. */
export function formatCommand(command: readonly string[]): string {
  return command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1]!.trim() : '';
}

export const run: Runner = async (file, args, options = {}) => {
  execaFn ??= (await import('execa')).execa;
  const command = [file, ...args];
  const result = await execaFn(file, args, {
    input: options.input,
    env: options.env,
    extendEnv: true,
    cwd: options.cwd,
    cancelSignal: options.signal,
    timeout: options.timeoutMs,
    killSignal: 'SIGTERM',
    reject: false,
    stripFinalNewline: false,
    encoding: 'utf8',
    stdin: options.input === undefined ? 'ignore' : 'pipe',
  });
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  const spawnError = (result as { cause?: unknown }).cause as NodeJS.ErrnoException | undefined;
  if (spawnError?.code === 'ENOENT' && result.exitCode === undefined) {
    const pkg = TOOL_PACKAGES[file.split('/').pop() ?? file];
    throw new ToolMissingError(
      `${file} is not installed or not on PATH${pkg ? `: install the Debian package ${pkg}` : ''}`,
      { tool: file, package: pkg, command },
      { cause: spawnError },
    );
  }
  const exitCode = result.exitCode ?? -1;
  const ok = options.okExitCodes ?? [0];
  if (result.isCanceled || result.isTerminated || !ok.includes(exitCode)) {
    const why = result.isCanceled
      ? 'was interrupted'
      : result.timedOut
        ? `timed out after ${options.timeoutMs} ms`
        : result.signal
          ? `was killed by ${result.signal}`
          : `exited with ${exitCode}`;
    const detail = lastLine(stderr) || lastLine(stdout);
    throw new ToolFailedError(
      `${formatCommand(command)} ${why}${detail ? `: ${detail}` : ''}`,
      { tool: file, command, exitCode, stderr, stdout, canceled: result.isCanceled },
      { cause: result },
    );
  }
  return { command, exitCode, stdout, stderr };
};

/** True when `file` can be run (found on PATH or given as a path). No process is started. */
export async function hasTool(file: string): Promise<boolean> {
  const { access, constants } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const dirs = file.includes('/') ? [''] : (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const dir of dirs) {
    try {
      await access(dir ? join(dir, file) : file, constants.X_OK);
      return true;
    } catch {
      /* try the next directory */
    }
  }
  return false;
}
