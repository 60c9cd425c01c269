/**
 * fakeroot without its shell script: one `faked-sysv` daemon for a whole job, and every program
 * that must see the faked owners, modes, device nodes and xattrs (chown, chmod, mknod, setfattr,
 * then mkfs.erofs) runs with libfakeroot preloaded and the daemon's key in its environment. That
 * is what `fakeroot CMD` does for one command; one live daemon is needed because fakeroot's
 * save/load of its state (-s/-i) drops xattrs, so a session split over several `fakeroot`
 * commands loses security.capability before mkfs.erofs reads it.
 *
 * faked-sysv forks into the background and prints "KEY:PID"; the job stops it (SIGTERM to that
 * pid, the one process it started) when done or undone.
 */
import { promises as fs } from 'node:fs';
import { ToolFailedError, ToolMissingError } from '../errors.js';
import { run as defaultRun, type RunOptions, type Runner } from './exec.js';

export interface FakerootSession {
  key: string;
  pid: number;
  /** The environment a program needs to run inside the session. */
  env: Record<string, string>;
  /** Runs a program inside the session. */
  run: Runner;
  stop(): Promise<void>;
}

const MULTIARCH: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf', ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu', riscv64: 'riscv64-linux-gnu' };
const LIB = 'libfakeroot-sysv.so';

async function libDir(): Promise<string> {
  const candidates = [`/usr/lib/${MULTIARCH[process.arch] ?? ''}/libfakeroot`, '/usr/lib64/libfakeroot', '/usr/lib/libfakeroot'];
  for (const d of candidates) {
    try {
      await fs.access(`${d}/${LIB}`);
      return d;
    } catch {
      /* next */
    }
  }
  throw new ToolMissingError(`${LIB} is not installed (looked in ${candidates.join(', ')}): install the Debian package fakeroot`, { tool: 'fakeroot', package: 'fakeroot' });
}

export async function startFakeroot(signal?: AbortSignal, run: Runner = defaultRun): Promise<FakerootSession> {
  const dir = await libDir();
  const r = await run('faked-sysv', [], { signal });
  const m = /^(\d+):(\d+)\s*$/.exec(r.stdout);
  if (!m) throw new ToolFailedError(`faked-sysv printed ${JSON.stringify(r.stdout.slice(0, 80))}, not KEY:PID`, { tool: 'faked-sysv', stdout: r.stdout });
  const key = m[1]!;
  const pid = Number(m[2]);
  const env = {
    FAKEROOTKEY: key,
    FAKED_MODE: 'unknown-is-root',
    LD_LIBRARY_PATH: [dir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
    LD_PRELOAD: [LIB, process.env.LD_PRELOAD].filter(Boolean).join(':'),
  };
  let stopped = false;
  return {
    key,
    pid,
    env,
    run: (file: string, args: readonly string[], options: RunOptions = {}) => run(file, args, { ...options, env: { ...(options.env ?? {}), ...env } }),
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        process.kill(pid, 'SIGTERM');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    },
  };
}
