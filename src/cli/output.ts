/**
 * The CLI's text: whole lines written to file descriptors 1 and 2 with write(2).
 *
 * Not through process.stdout and process.stderr: creating those streams loads Node's stream
 * modules (and for a pipe or a terminal node:net), 3.5-6.5 ms of every run (bench/WHY.md, round 3)
 * for a few lines. The byte streams of `layers export -o -` and `send -o -` still use
 * process.stdout.
 *
 * - EAGAIN (a descriptor some other process made non-blocking): wait 1 ms, write the rest.
 * - EPIPE or any other error (the reader went away: a killed parent, `| head`): the text is lost
 *   and nothing else happens. The command goes on and cleans up; Node ignores SIGPIPE, so the
 *   write fails instead of killing the process.
 */
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';

const pause = new Int32Array(new SharedArrayBuffer(4));

function writeBytes(fd: number, bytes: Buffer): void {
  let done = 0;
  while (done < bytes.length) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/** Where the bytes go: write(2) on the descriptor. Tests of the CLI record them instead (vi.spyOn). */
export const sink = { write: writeBytes };

const line = (text: string) => Buffer.from(text.endsWith('\n') ? text : `${text}\n`);

/** A line (or lines) on standard output; a missing final newline is added. */
export function writeOut(text: string): void {
  sink.write(1, line(text));
}

/** A line (or lines) on standard error; a missing final newline is added. */
export function writeErr(text: string): void {
  sink.write(2, line(text));
}

/** Text exactly as given (commander's help, the NUL-separated words of qemu-args -0). */
export function writeRaw(fd: 1 | 2, text: string): void {
  sink.write(fd, Buffer.from(text));
}

/**
 * process.stdout for a byte stream (`layers export -o -`): an EPIPE there is the pipeline's
 * error, and must not also be an uncaught 'error' event that ends the process before its undo.
 */
export function byteStdout(): NodeJS.WriteStream {
  if (!process.stdout.listeners('error').includes(ignoreError)) process.stdout.on('error', ignoreError);
  return process.stdout;
}

function ignoreError(): void {
  /* the pipeline that writes to it sees the error and fails the job, which cleans up */
}

/** isatty(3) of a descriptor, loading node:tty only when asked (progress lines, -o - checks). */
export function isTerminal(fd: 0 | 1 | 2): boolean {
  return (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(fd);
}
