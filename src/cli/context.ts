/** What every command module shares: the abort signal, the output options, the exit status. */
import type { Command } from 'commander';

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

const write = (stream: NodeJS.WriteStream, text: string) => stream.write(text.endsWith('\n') ? text : `${text}\n`);

/** JSON on stdout with --json, else the human lines (nothing with --quiet). */
export function printResult(out: OutputOptions, result: unknown, human: () => string): void {
  if (out.json) write(process.stdout, JSON.stringify(result, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
  else if (!out.quiet) write(process.stdout, human());
}

/** Progress on stderr only for a person watching (a TTY), and not with --quiet or --json. */
export function progressPrinter(out: OutputOptions): ((e: { phase: string; message: string }) => void) | undefined {
  if (out.quiet || out.json || !process.stderr.isTTY) return undefined;
  return (e) => write(process.stderr, `mkimage: ${e.phase}: ${e.message}`);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
