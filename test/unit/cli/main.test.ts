/** The CLI's exit statuses for what commander decides alone (no job runs). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { groupsFor, main } from '../../../src/cli.js';

afterEach(() => vi.restoreAllMocks());

async function exitOf(args: string[]): Promise<{ status: number; stderr: string }> {
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const status = await main(['node', 'mkimage', ...args]);
  return { status, stderr };
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
    expect(r.stderr).toBe("mkimage: option '--fs <type>' argument 'btrfs' is invalid. Allowed choices are none, ext4, xfs, zfs. (see mkimage --help)\n");
  });
  it('a bad --size is a usage error before anything runs', async () => {
    const r = await exitOf(['--size', 'lots', 'x.img']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^mkimage: --size "lots" is not a size/);
  });
});

describe('only the command group asked for is declared', () => {
  // What commander prints for each: the same with one group declared as with all of them.
  async function output(args: string[]): Promise<{ status: number; out: string }> {
    let out = '';
    const grab = (chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    };
    vi.spyOn(process.stdout, 'write').mockImplementation(grab);
    vi.spyOn(process.stderr, 'write').mockImplementation(grab);
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
    for (const all of [undefined, 'help', '-h', '--help', '--version']) expect(groupsFor(all)).toHaveLength(5);
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
