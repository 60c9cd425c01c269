/** What every command module shares: the abort signal, the output options, the exit status. */
import { InvalidArgumentError, type Command } from 'commander';
import type { LockHolder } from '../guard/lock.js';
import { DEFAULT_LOCK_WAIT_SECONDS } from '../guard/lock-wait.js';
import { isTerminal, writeErr, writeOut } from './output.js';

export interface OutputOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

export interface CliContext {
  signal: AbortSignal;
  /** Set by a command that succeeded but must report a failure (inspect of a bad image). */
  exitCode: number;
  /** The running command's output options (so errors honour --json). */
  out: OutputOptions;
}

export type Register = (program: Command, ctx: CliContext) => void;

/** JSON on stdout with --json, else the human lines (nothing with --quiet). */
export function printResult(out: OutputOptions, result: unknown, human: () => string): void {
  if (out.json) writeOut(JSON.stringify(result, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
  else if (!out.quiet) writeOut(human());
}

/** Progress on stderr only for a person watching (a TTY), and not with --quiet or --json. */
export function progressPrinter(out: OutputOptions): ((e: { phase: string; message: string }) => void) | undefined {
  if (out.quiet || out.json || !isTerminal(2)) return undefined;
  return (e) => writeErr(`mkimage: ${e.phase}: ${e.message}`);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** --wait SECONDS: a whole number of seconds, 0 or more. */
export function parseWait(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--wait ${value} is not a whole number of seconds (0: fail at once if the image is busy)`);
  return Number(value);
}

/** The --wait option every command that locks an image takes. */
export function waitOption(command: Command): Command {
  return command.option('--wait <seconds>', `how long to wait while another mkimage command uses the image (default ${DEFAULT_LOCK_WAIT_SECONDS}; 0: fail at once with EBUSY)`, parseWait);
}

/**
 * While waiting for another command's lock: one line on stderr naming it (not with --quiet or
 * --json, whose stdout and stderr scripts read).
 */
export function waitPrinter(out: OutputOptions): ((holder: LockHolder | undefined, seconds: number) => void) | undefined {
  if (out.quiet || out.json) return undefined;
  return (h, seconds) =>
    writeErr(`mkimage: waiting up to ${seconds} s for ${h ? `PID ${h.pid} (${h.command}), which has used the image since ${h.since}` : 'another mkimage command using the image'}`);
}

/** The lock options of a command's flags. */
export function waitFlags(flags: OutputOptions & { wait?: number }): { waitSeconds?: number; onWait?: ReturnType<typeof waitPrinter> } {
  return { waitSeconds: flags.wait, onWait: waitPrinter(flags) };
}
