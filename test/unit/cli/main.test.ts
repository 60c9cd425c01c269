/** The CLI's exit statuses for what commander decides alone (no job runs). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli.js';

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
    expect(r.stderr).toBe("mkimage: option '--fs <type>' argument 'btrfs' is invalid. Allowed choices are none, ext4, xfs, zfs, erofs. (see mkimage --help)\n");
  });
  it('a bad --size is a usage error before anything runs', async () => {
    const r = await exitOf(['--size', 'lots', 'x.img']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^mkimage: --size "lots" is not a size/);
  });
});
