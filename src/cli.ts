/**
 * The command line: a thin adapter over the library. It parses options (commander), calls one
 * job, prints the result (a human summary, or one JSON document with --json) and maps errors to
 * one line on stderr and an exit status:
 *
 *   0 success, 1 failure, 2 usage error, 130/143 interrupted by SIGINT/SIGTERM (after cleanup).
 *
 * Commands live in src/cli/*.ts, one module per group, each exporting `register(program, ctx)`.
 * They import their job when it runs, so `inspect` does not load what `create` needs.
 */
import { Command, CommanderError } from 'commander';
import { existsSync } from 'node:fs';
import { InterruptedError, MkimageError, UsageError } from './errors.js';
import { register as registerCreate } from './cli/create.js';
import { register as registerInspect } from './cli/inspect.js';
import { register as registerLayers } from './cli/layers.js';
import { register as registerQemu } from './cli/qemu.js';
import { register as registerResize } from './cli/resize.js';
import { register as registerSnapshots } from './cli/snapshots.js';
import { register as registerZfs } from './cli/zfs.js';
import type { CliContext, OutputOptions } from './cli/context.js';
import { writeErr, writeOut, writeRaw } from './cli/output.js';

/** The commands, for "unknown command" and its suggestion. */
const COMMANDS = ['create', 'inspect', 'qemu-args', 'attach', 'detach', 'destroy', 'status', 'layers', 'runtime', 'resize', 'snapshot', 'snapshots', 'send', 'receive', 'help'];

/** Levenshtein distance, for suggesting the command a typo meant. */
export function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/**
 * A first word that is no command, followed by another word (create takes one IMAGE), or close to
 * a command's name and not an existing file: a mistyped command rather than create's IMAGE.
 * `mkimage inspekt disk.img` says so instead of "required option --size".
 */
export function unknownCommand(args: readonly string[], exists: (path: string) => boolean): UsageError | undefined {
  const [first, second] = args;
  if (first === undefined || first.startsWith('-') || COMMANDS.includes(first)) return undefined;
  const near = COMMANDS.filter((c) => editDistance(first, c) <= 2).sort((a, b) => editDistance(first, a) - editDistance(first, b));
  const extraWord = second !== undefined && !second.startsWith('-');
  if (!extraWord && (!near.length || exists(first))) return undefined;
  return new UsageError(
    `unknown command "${first}"${near.length ? `: did you mean ${near[0]}?` : ''} (commands: ${COMMANDS.filter((c) => c !== 'help').join(', ')}; an IMAGE alone means create: mkimage --size SIZE IMAGE)`,
    { command: first, suggestion: near[0] },
  );
}

/** --json among the arguments (before `--`): usage errors found while parsing honour it too. */
export function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

export function handleError(e: unknown, out: OutputOptions, signal?: AbortSignal): number {
  if (e instanceof MkimageError) {
    if (out.json) writeOut(JSON.stringify({ error: e.toJSON() }, null, 2));
    writeErr(`mkimage: ${e.message}`);
    if (out.verbose && e.stack) writeErr(e.stack);
    if (e instanceof InterruptedError || signal?.aborted) return signal?.reason === 'SIGTERM' ? 143 : 130;
    return e.exitStatus;
  }
  const err = e as Error;
  writeErr(`mkimage: internal error: ${err?.message ?? String(e)} (please report it; --verbose shows the stack)`);
  if (out.verbose && err?.stack) writeErr(err.stack);
  return 1;
}

type Register = (program: Command, ctx: CliContext) => void;
const ALL_GROUPS: Register[] = [registerCreate, registerInspect, registerQemu, registerZfs, registerLayers, registerResize, registerSnapshots];
const GROUP_OF: Record<string, Register> = {
  create: registerCreate,
  inspect: registerInspect,
  'qemu-args': registerQemu,
  attach: registerZfs,
  detach: registerZfs,
  destroy: registerZfs,
  status: registerZfs,
  layers: registerLayers,
  runtime: registerLayers,
  resize: registerResize,
  snapshot: registerSnapshots,
  snapshots: registerSnapshots,
  send: registerSnapshots,
  receive: registerSnapshots,
};

/**
 * The command groups to declare for this command line: declaring every command and its options
 * with commander costs a few ms of every start, and one command needs only its own. All of them for
 * the help (no argument, help, -h, --help) and the version; create alone for anything else, since
 * every word that is not a command name goes to create, the default command, anyway.
 */
export function groupsFor(first: string | undefined): Register[] {
  if (first !== undefined && Object.hasOwn(GROUP_OF, first)) return [GROUP_OF[first]!];
  if (first === undefined || ['help', '-h', '--help', '-V', '--version'].includes(first)) return ALL_GROUPS;
  return [registerCreate];
}

export async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const ctx: CliContext = { signal: controller.signal, exitCode: 0, out: {} };
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) return; // cleanup is running: a second signal must not cut it short
    writeErr(`mkimage: ${sig}: stopping and removing what was made so far`);
    controller.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A reader that went away (a killed parent, `| head`) makes writes fail with EPIPE: text goes
  // through cli/output.ts, which drops it then, so the job's undo still runs (output is lost, the
  // clean-up is not). The byte streams on process.stdout (`-o -`) are guarded where they are used.

  const args = argv.slice(2);
  let usage: string | undefined; // commander's message for a usage error it found while parsing
  const program = new Command('mkimage')
    .description('Build disk image files for VM and NVDIMM guests: MBR/GPT, Linux PFN info block (DAX), ext4, xfs or a ZFS pool')
    .version('0.1.0')
    .configureOutput({
      writeOut: (text) => writeRaw(1, text),
      writeErr: (text) => writeRaw(2, text),
      outputError: (text, write) => {
        usage = `${text.replace(/^error: /, '').trimEnd()} (see mkimage --help)`;
        write(`mkimage: ${usage}\n`);
      },
    })
    .exitOverride()
    // The one place a command's output options are taken: errors honour its --json and --verbose.
    .hook('preAction', (_program, command) => {
      ctx.out = command.opts();
    });
  for (const register of groupsFor(argv[2])) register(program, ctx);

  // Until a command's action runs, --json anywhere before `--` decides (usage errors included).
  ctx.out = { json: wantsJson(args), verbose: args.includes('--verbose') || args.includes('-v') };
  try {
    const mistyped = unknownCommand(args, existsSync);
    if (mistyped) throw mistyped;
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version asked for exit 0; help shown because a subcommand is missing exits 2.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.help' && e.exitCode === 0) return 0;
      if (ctx.out.json && usage !== undefined) writeOut(JSON.stringify({ error: new UsageError(usage, { reason: e.code }).toJSON() }, null, 2));
      return 2;
    }
    return handleError(e, ctx.out, controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
