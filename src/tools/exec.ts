/**
 * The one place mkimage runs other programs. Argument arrays only, never a shell.
 *
 * - A program that is not installed raises ToolMissingError naming the Debian package to install.
 * - A program that exits non-zero raises ToolFailedError carrying the command line, exit code and
 *   stderr.
 * - `signal` (an AbortSignal) kills the child with SIGTERM: jobs pass theirs so that SIGINT/SIGTERM
 *   given to mkimage stops whatever runs and the job can undo its work.
 *
 * Built on node:child_process rather than execa: measured on this project's machines, loading
 * execa 9 adds 80-130 ms to every run, more than Node's own start-up, and the benchmark target is
 * a 20 GiB ext4 image within 1.6x of `node -e ''`. What execa gave is kept: argument arrays (no
 * shell), ENOENT told apart from failure, cancellation by AbortSignal, the command, exit code and
 * stderr on every error.
 */
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ToolFailedError, ToolMissingError } from '../errors.js';

let childProcessModule: typeof import('node:child_process') | undefined;

/**
 * node:child_process, loaded when the first program runs: ~5.5 ms of start-up that inspect of an
 * ext4 image, qemu-args and --help never need (bench/WHY.md, round 3).
 */
function childProcess(): typeof import('node:child_process') {
  return (childProcessModule ??= createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process'));
}

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
  resize2fs: 'e2fsprogs',
  'mkfs.xfs': 'xfsprogs',
  xfs_repair: 'xfsprogs',
  xfs_growfs: 'xfsprogs',
  zpool: 'zfsutils-linux (OpenZFS) or zfs-fuse',
  zfs: 'zfsutils-linux (OpenZFS) or zfs-fuse',
  'zfs-fuse': 'zfs-fuse',
  'qemu-system-x86_64': 'qemu-system-x86',
  ndctl: 'ndctl',
  flock: 'util-linux',
  tar: 'tar',
  zstd: 'zstd',
  debugfs: 'e2fsprogs',
  'mkfs.erofs': 'erofs-utils',
  fakeroot: 'fakeroot',
  'faked-sysv': 'fakeroot',
  chown: 'coreutils',
  chmod: 'coreutils',
  mknod: 'coreutils',
  setfattr: 'attr',
};

export interface RunOptions {
  /** Written to the child's stdin. */
  input?: string | Buffer;
  /** Added to the environment. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kill the child (SIGTERM) when this aborts. */
  signal?: AbortSignal;
  /** Exit codes that are not failures (default: only 0). */
  okExitCodes?: readonly number[];
  /**
   * An open descriptor of this process handed to the child as its fd 3 (the same open file
   * description: `flock 3` in the child locks it for this process; see tools/flock.ts).
   */
  fd3?: number;
  /**
   * The child's stdin: an open descriptor of this process (a file: the child reads it directly)
   * or a readable stream piped in (stdin that must be peeked at first). Nothing is buffered here:
   * a stream of any size passes through. Excludes `input`.
   */
  stdin?: number | NodeJS.ReadableStream;
  /** The child's stdout: an open descriptor it writes to directly (RunResult.stdout is then ''). */
  stdout?: number;
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

/** The command line quoted for a human reader (error messages, --verbose); never executed. */
export function formatCommand(command: readonly string[]): string {
  return command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1]!.trim() : '';
}

interface Exit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  spawnError?: NodeJS.ErrnoException;
  canceled: boolean;
}

function spawnAndWait(file: string, args: readonly string[], options: RunOptions): Promise<Exit> {
  return new Promise((resolve) => {
    const child = childProcess().spawn(file, args, {
      cwd: options.cwd,
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: [
        typeof options.stdin === 'number' ? options.stdin : options.input === undefined && options.stdin === undefined ? 'ignore' : 'pipe',
        options.stdout ?? 'pipe',
        'pipe',
        ...(options.fd3 === undefined ? [] : [options.fd3]),
      ],
      shell: false,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let canceled = false;
    let spawnError: NodeJS.ErrnoException | undefined;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    };
    const onAbort = () => {
      canceled = true;
      kill();
    };
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError = e;
    });
    if (options.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // EPIPE when the program exits without reading
      child.stdin.end(options.input);
    } else if (options.stdin !== undefined && typeof options.stdin !== 'number' && child.stdin) {
      const source = options.stdin;
      child.stdin.on('error', () => undefined); // the program exited without reading it all
      source.on('error', (e: Error) => {
        spawnError ??= Object.assign(e, { code: (e as NodeJS.ErrnoException).code ?? 'EIO' });
        child.stdin?.destroy();
        kill();
      });
      source.pipe(child.stdin);
    }
    child.on('close', (exitCode, signal) => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve({
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        spawnError,
        canceled,
      });
    });
  });
}

export const run: Runner = async (file, args, options = {}) => {
  const command = [file, ...args];
  const r = await spawnAndWait(file, args, options);
  if (r.spawnError) {
    const pkg = TOOL_PACKAGES[file.split('/').pop() ?? file];
    if (r.spawnError.code === 'ENOENT') {
      throw new ToolMissingError(
        `${file} is not installed or not on PATH${pkg ? `: install the Debian package ${pkg}` : ''}`,
        { tool: file, package: pkg, command },
        { cause: r.spawnError },
      );
    }
    throw new ToolFailedError(`${formatCommand(command)} could not start: ${r.spawnError.message}`, { tool: file, command }, { cause: r.spawnError });
  }
  const exitCode = r.exitCode ?? -1;
  const ok = options.okExitCodes ?? [0];
  // A program that finished its work before the abort reached it (exit status ok, not killed) has
  // done that work: losetup attached a device, mount mounted, zpool created a pool. Reporting it
  // as interrupted would keep the caller from recording the inverse on its Undo, and the device,
  // mount or pool would outlive the job. So it succeeds; the job stops at its next checkAborted.
  const completed = r.signal === null && ok.includes(exitCode);
  if (!completed) {
    const why = r.canceled ? 'was interrupted' : r.signal ? `was killed by ${r.signal}` : `exited with ${exitCode}`;
    const detail = lastLine(r.stderr) || lastLine(r.stdout);
    throw new ToolFailedError(`${formatCommand(command)} ${why}${detail ? `: ${detail}` : ''}`, {
      tool: file,
      command,
      exitCode,
      signal: r.signal,
      stderr: r.stderr,
      stdout: r.stdout,
      canceled: r.canceled,
    });
  }
  return { command, exitCode, stdout: r.stdout, stderr: r.stderr };
};

/**
 * True when `file` can be run (found on PATH or given as a path). No process is started.
 * Synchronous access(2) per PATH directory: a dozen directories cost ~0.1 ms this way, against
 * ~2.5 ms for the same calls as promises (each one a round trip through libuv's thread pool),
 * measured in `mkimage create` (bench/README.md).
 */
export async function hasTool(file: string): Promise<boolean> {
  return findOnPath(file) !== undefined;
}

/** The path PATH lookup finds for `file` (executable by us), or undefined. Synchronous access(2). */
export function findOnPath(file: string): string | undefined {
  const dirs = file.includes('/') ? [''] : (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const dir of dirs) {
    const path = dir ? join(dir, file) : file;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      /* try the next directory */
    }
  }
  return undefined;
}

/**
 * Runs a filter program (`zstd -dc`): `input` is written to its stdin as it is read, its stdout is
 * yielded as it comes. A program that exits non-zero raises ToolFailedError with its stderr when
 * the output ends; one that is missing raises ToolMissingError. Stopping the iteration early (or
 * `signal`) kills the child, and the input is released.
 */
export async function* runFilter(file: string, args: readonly string[], input: AsyncIterable<Uint8Array>, options: { signal?: AbortSignal } = {}): AsyncGenerator<Buffer> {
  const command = [file, ...args];
  const child = childProcess().spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], shell: false });
  const err: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => err.push(c));
  let spawnError: NodeJS.ErrnoException | undefined;
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError = e;
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  let inputError: unknown;
  const feed = (async () => {
    child.stdin.on('error', () => undefined); // EPIPE: the program stopped reading; its exit status tells why
    try {
      for await (const chunk of input) {
        if (child.stdin.destroyed) break;
        if (!child.stdin.write(chunk)) await new Promise<void>((r) => { child.stdin.once('drain', r); child.stdin.once('close', r); });
      }
    } catch (e) {
      inputError = e;
      child.kill('SIGTERM');
    } finally {
      child.stdin.end();
    }
  })();
  const onAbort = () => child.kill('SIGTERM');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    await feed;
    const { code, signal } = await closed;
    finished = true;
    if (inputError) throw inputError;
    if (spawnError) {
      const pkg = TOOL_PACKAGES[file.split('/').pop() ?? file];
      if (spawnError.code === 'ENOENT') throw new ToolMissingError(`${file} is not installed or not on PATH${pkg ? `: install the Debian package ${pkg}` : ''}`, { tool: file, package: pkg, command }, { cause: spawnError });
      throw new ToolFailedError(`${formatCommand(command)} could not start: ${spawnError.message}`, { tool: file, command }, { cause: spawnError });
    }
    if (code !== 0) {
      const stderr = Buffer.concat(err).toString('utf8');
      throw new ToolFailedError(`${formatCommand(command)} ${signal ? `was killed by ${signal}` : `exited with ${code}`}${lastLine(stderr) ? `: ${lastLine(stderr)}` : ''}`, { tool: file, command, exitCode: code ?? -1, signal, stderr });
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (!finished) {
      child.kill('SIGTERM');
      await closed;
      await feed.catch(() => undefined);
    }
  }
}
