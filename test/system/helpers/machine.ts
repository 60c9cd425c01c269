/**
 * What a system test needs around it: a private temp directory, the CLI, and a check that the
 * test left no loop device, mount or pool behind (by path and name, never by a broad pattern).
 */
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';

export const REPO = resolve(import.meta.dirname, '../../..');
export const BIN = join(REPO, 'bin/mkimage.js');

export async function tempDir(prefix = 'mkimage-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Runs the CLI; never throws for a non-zero exit (tests assert on it). */
export async function cli(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}) {
  const r = await execa('node', [BIN, ...args], { reject: false, env: options.env, cwd: options.cwd, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/**
 * Runs the CLI with --json: exit 0 expected (stderr is the message when not), stdout parsed.
 * `silent`: stderr must be empty as well.
 */
export async function cliJson(args: string[], o: { silent?: boolean } = {}): Promise<any> {
  const r = await cli([...args, '--json']);
  if (o.silent) expect(r.stderr, r.stderr).toBe('');
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

export async function sh(file: string, args: string[], options: { input?: string } = {}) {
  const r = await execa(file, args, { reject: false, input: options.input });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Loop devices whose backing file is under `dir`. */
export async function loopsUnder(dir: string): Promise<string[]> {
  const r = await execa('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { reject: false });
  return String(r.stdout)
    .split('\n')
    .filter((l) => l.includes(dir))
    .map((l) => l.trim());
}

/** Mounts whose source or target is under `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts.split('\n').filter((l) => l.includes(dir));
}

/** Asserts the machine holds nothing of `dir`, then removes it. */
export async function cleanDir(dir: string): Promise<{ loops: string[]; mounts: string[] }> {
  const loops = await loopsUnder(dir);
  const mounts = await mountsUnder(dir);
  // Clean up even after a failed test, so one failure does not cascade; the caller asserts.
  for (const m of mounts) await execa('umount', ['-l', m.split(' ')[1]!], { reject: false });
  for (const l of loops) await execa('losetup', ['-d', l.split(/\s+/)[0]!], { reject: false });
  await rm(dir, { recursive: true, force: true });
  return { loops, mounts };
}

/** Attaches [offset, offset+size) of `file` read-only, runs `body` with the device, detaches. */
export async function withLoop<T>(file: string, offsetBytes: number, sizeBytes: number, body: (dev: string) => Promise<T>): Promise<T> {
  const r = await execa('losetup', ['--find', '--show', '--read-only', '--offset', String(offsetBytes), '--sizelimit', String(sizeBytes), file]);
  const dev = String(r.stdout).trim();
  try {
    return await body(dev);
  } finally {
    await execa('losetup', ['-d', dev], { reject: false });
  }
}
