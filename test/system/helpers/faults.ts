/**
 * Fault injection for the system tests in test/system/faults*.test.ts.
 *
 * mkimage runs every outside program through PATH (src/tools/exec.ts, argument arrays, no shell),
 * so a directory put first on PATH can hold a wrapper for one tool that injects a fault at exactly
 * that point of the job and then runs the real tool (or stands in for it). The thing under test,
 * mkimage's own clean-up, stays real. Wrappers are plain sh scripts, written per test.
 */
import { execa } from 'execa';
import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN } from './machine.js';

/** Where a tool really lives (looked up once on the test process's PATH). */
export async function realTool(tool: string): Promise<string | undefined> {
  const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
  const p = String(r.stdout).trim();
  return r.exitCode === 0 && p.startsWith('/') ? p : undefined;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export type Fault =
  /** Signal mkimage, then become `sleep`: mkimage must kill the tool and undo. */
  | 'signal-then-hang'
  /** Signal mkimage, then run the real tool: the abort lands while it runs. */
  | 'signal-then-run'
  /** Run the real tool to completion, then signal: what it made must still be undone. */
  | 'run-then-signal'
  /** Signal mkimage's whole process group (Ctrl-C in a terminal), then run the real tool. */
  | 'group-signal-then-run';

export interface Injection {
  tool: string;
  fault: Fault;
  signal: 'INT' | 'TERM' | 'KILL';
  /** Inject only when the arguments contain this word (e.g. losetup `--find`, not `--detach`). */
  when?: string;
}

/**
 * Writes a wrapper for `inj.tool` into `binDir` that injects the fault once (a marker file keeps
 * later calls, such as the clean-up's own, untouched) and otherwise runs the real tool.
 */
export async function injectFault(binDir: string, inj: Injection): Promise<void> {
  const real = await realTool(inj.tool);
  if (!real) throw new Error(`${inj.tool} is not installed`);
  await mkdir(binDir, { recursive: true });
  const marker = join(binDir, `.${inj.tool}.fired`);
  const cond = inj.when ? `case " $* " in *" ${inj.when} "*) ;; *) exec ${q(real)} "$@";; esac\n` : '';
  const action = {
    'signal-then-hang': `kill -${inj.signal} $PPID\nexec sleep 60\n`,
    'signal-then-run': `kill -${inj.signal} $PPID\nexec ${q(real)} "$@"\n`,
    'run-then-signal': `${q(real)} "$@"\nst=$?\nkill -${inj.signal} $PPID\nexit $st\n`,
    'group-signal-then-run': `kill -${inj.signal} 0\nexec ${q(real)} "$@"\n`,
  }[inj.fault];
  const script = `#!/bin/sh\n${cond}if [ -e ${q(marker)} ]; then exec ${q(real)} "$@"; fi\n: > ${q(marker)}\n${action}`;
  await writeFile(join(binDir, inj.tool), script);
  await chmod(join(binDir, inj.tool), 0o755);
}

/** A wrapper that only records each call (one line: the arguments, unit-separated) and runs the tool. */
export async function recordCalls(binDir: string, tool: string, log: string): Promise<void> {
  const real = await realTool(tool);
  await mkdir(binDir, { recursive: true });
  const run = real ? `exec ${q(real)} "$@"` : `echo "${tool}: not installed" >&2; exit 127`;
  await writeFile(join(binDir, tool), `#!/bin/sh\n{ printf '%s' ${q(tool)}; for a in "$@"; do printf '\\037%s' "$a"; done; echo; } >> ${q(log)}\n${run}\n`);
  await chmod(join(binDir, tool), 0o755);
}

export async function readCalls(log: string): Promise<string[][]> {
  try {
    return (await readFile(log, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\x1f'));
  } catch {
    return [];
  }
}

/**
 * A directory of symlinks to `tools` (the ones found on this machine): as the whole PATH, a machine
 * where everything else is missing.
 */
export async function pathWith(binDir: string, tools: readonly string[]): Promise<string> {
  await mkdir(binDir, { recursive: true });
  const { symlink } = await import('node:fs/promises');
  for (const t of tools) {
    const real = await realTool(t);
    if (real) await symlink(real, join(binDir, t));
  }
  return binDir;
}

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI with this very Node (so PATH may lack node), never throwing for a non-zero exit.
 * `group: true` starts it in a process group of its own (for signals to the whole group).
 */
export async function mkimage(args: string[], o: { env?: Record<string, string>; cwd?: string; group?: boolean; asNobody?: boolean } = {}): Promise<CliRun> {
  const argv = o.asNobody ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, BIN, ...args] : [process.execPath, BIN, ...args];
  const r = await execa(argv[0]!, argv.slice(1), {
    reject: false,
    env: o.env,
    extendEnv: true,
    cwd: o.cwd,
    stdin: 'ignore',
    detached: o.group ?? false,
    timeout: 90_000,
  });
  return { exitCode: r.exitCode ?? (r.signal ? -1 : -2), stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Entries of `dir` that mkimage could have left: temp images, mount points. */
export async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /\.mkimage-|\.tmp$/.test(n));
}

/** Pools named in `names` that ZFS still has imported (none when ZFS is not here). */
export async function poolsNamed(names: readonly string[]): Promise<string[]> {
  if (!names.length) return [];
  const r = await execa('zpool', ['list', '-H', '-o', 'name'], { reject: false });
  if (r.exitCode !== 0) return [];
  return String(r.stdout)
    .split('\n')
    .map((l) => l.trim())
    .filter((n) => names.includes(n));
}
