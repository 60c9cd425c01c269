/** The CLI's exit statuses for what commander decides alone (no job runs). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { editDistance, groupsFor, main, unknownCommand, wantsJson } from '../../../src/cli.js';
import { sink } from '../../../src/cli/output.js';

afterEach(() => vi.restoreAllMocks());

async function exitOf(args: string[]): Promise<{ status: number; stderr: string; stdout: string }> {
  let stderr = '';
  let stdout = '';
  vi.spyOn(sink, 'write').mockImplementation((fd: number, bytes: Buffer) => {
    if (fd === 1) stdout += bytes.toString();
    else stderr += bytes.toString();
  });
  const status = await main(['node', 'mkimage', ...args]);
  return { status, stderr, stdout };
}

describe('exit statuses', () => {
  it('--help, help and --version exit 0', async () => {
    expect((await exitOf(['--help'])).status).toBe(0);
    expect((await exitOf(['help'])).status).toBe(0);
    expect((await exitOf(['--version'])).status).toBe(0);
  });
  it('a command group without its subcommand is a usage error (2), not a success', async () => {
    expect((await exitOf(['layers'])).status).toBe(2);
    expect((await exitOf(['runtime'])).status).toBe(2);
  });
  it('an unknown option or a bad choice is a usage error with one line naming it', async () => {
    const r = await exitOf(['--size', '1G', '--fs', 'btrfs', 'x.img']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("mkimage: option '--fs <type>' argument 'btrfs' is invalid. Allowed choices are none, ext4, xfs, zfs, erofs. (see mkimage --help)\n");
  });
  it('a bad --size is a usage error before anything runs', async () => {
    const r = await exitOf(['--size', 'lots', 'x.img']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^mkimage: --size "lots" is not a size/);
  });
});

describe('--json keeps its promise for usage errors', () => {
  for (const [what, args, message] of [
    ['an unknown option', ['--size', '1G', '--bogus', 'x.img', '--json'], "unknown option '--bogus' (see mkimage --help)"],
    ['a missing --size', ['x.img', '--json'], "required option '-s, --size <size>' not specified (see mkimage --help)"],
    ['a bad --fs', ['--json', '--size', '1G', '--fs', 'btrfs', 'x.img'], "option '--fs <type>' argument 'btrfs' is invalid. Allowed choices are none, ext4, xfs, zfs, erofs. (see mkimage --help)"],
  ] as const) {
    it(`${what}: the error as JSON on stdout, the line on stderr, exit 2`, async () => {
      const r = await exitOf([...args]);
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(`mkimage: ${message}\n`);
      expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'EUSAGE', message, data: { reason: expect.stringMatching(/^commander\./) } } });
    });
  }
  it('a usage error found by the command (a bad --size) as JSON too', async () => {
    const r = await exitOf(['--size', 'lots', 'x.img', '--json']);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'EUSAGE', message: expect.stringMatching(/^--size "lots" is not a size/) });
  });
  it('without --json stdout stays empty', async () => {
    expect((await exitOf(['--size', '1G', '--bogus', 'x.img'])).stdout).toBe('');
  });
  it('--json after -- is an argument, not the option', () => {
    expect(wantsJson(['--size', '1G', '--', '--json'])).toBe(false);
    expect(wantsJson(['inspect', '--json', 'x'])).toBe(true);
  });
});

describe('a mistyped command', () => {
  it('mkimage inspekt disk.img says unknown command and suggests inspect', async () => {
    const r = await exitOf(['inspekt', 'disk.img']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^mkimage: unknown command "inspekt": did you mean inspect\? \(commands: create, inspect,/);
  });
  it('a word close to a command, alone, that is not a file', () => {
    expect(unknownCommand(['statsu'], () => false)?.data).toEqual({ command: 'statsu', suggestion: 'status' });
    expect(unknownCommand(['statsu', '--json'], () => false)?.message).toMatch(/did you mean status\?/);
  });
  it('an IMAGE for the default create is not mistaken for a command', () => {
    expect(unknownCommand(['disk.img', '--size', '1G'], () => false)).toBeUndefined();
    expect(unknownCommand(['--size', '1G', 'attack'], () => false)).toBeUndefined();
    expect(unknownCommand(['attack', '--size', '1G'], () => true)).toBeUndefined(); // an existing file named like a command
    expect(unknownCommand(['inspect', 'x'], () => false)).toBeUndefined();
  });
  it('two words where create takes one IMAGE: unknown command, without a suggestion when nothing is close', () => {
    const e = unknownCommand(['frobnicate', 'disk.img'], () => false);
    expect(e?.message).toMatch(/^unknown command "frobnicate" \(commands:/);
  });
  it('edit distance', () => {
    expect(editDistance('inspekt', 'inspect')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('status', 'status')).toBe(0);
  });
});

describe('only the command group asked for is declared', () => {
  // What commander prints for each: the same with one group declared as with all of them.
  async function output(args: string[]): Promise<{ status: number; out: string }> {
    let out = '';
    vi.spyOn(sink, 'write').mockImplementation((_fd: number, bytes: Buffer) => {
      out += bytes.toString();
    });
    const status = await main(['node', 'mkimage', ...args]);
    vi.restoreAllMocks();
    return { status, out };
  }

  it('groupsFor: a command name gives its group, help all, anything else create (the default command)', () => {
    expect(groupsFor('inspect')).toHaveLength(1);
    expect(groupsFor('attach')).toEqual(groupsFor('status'));
    expect(groupsFor('layers')).toEqual(groupsFor('runtime'));
    expect(groupsFor('--size')).toEqual(groupsFor('create'));
    expect(groupsFor('disk.img')).toEqual(groupsFor('create'));
    expect(groupsFor('toString')).toEqual(groupsFor('create')); // not an inherited property
    for (const all of [undefined, 'help', '-h', '--help', '--version']) expect(groupsFor(all)).toHaveLength(7);
  });

  it('each command\'s help and errors are what they were, and the top-level help lists every command', async () => {
    const top = await output(['--help']);
    for (const c of ['create', 'inspect', 'qemu-args', 'attach', 'detach', 'destroy', 'status', 'layers', 'runtime']) expect(top.out).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect((await output(['inspect', '--help'])).out).toMatch(/^Usage: mkimage inspect/m);
    expect((await output(['layers', 'import', '--help'])).out).toMatch(/^Usage: mkimage layers import/m);
    const bad = await output(['inspect', '--bogus', 'x.img']);
    expect(bad.status).toBe(2);
    expect(bad.out).toBe("mkimage: unknown option '--bogus' (see mkimage --help)\n");
  });
});
