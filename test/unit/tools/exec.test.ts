import { describe, expect, it } from 'vitest';
import { ToolFailedError, ToolMissingError } from '../../../src/errors.js';
import { TOOL_PACKAGES, formatCommand, hasTool, run } from '../../../src/tools/exec.js';

describe('formatCommand', () => {
  it('leaves plain words alone', () => {
    expect(formatCommand(['mkfs.ext4', '-q', '-F', '-E', 'offset=2097152,nodiscard', '--', '/dev/loop0', '15360'])).toBe(
      'mkfs.ext4 -q -F -E offset=2097152,nodiscard -- /dev/loop0 15360',
    );
    expect(formatCommand(['a@b%c+d=e:f,g./h-i_J9'])).toBe('a@b%c+d=e:f,g./h-i_J9');
  });
  it('single-quotes words with spaces or shell characters, and the empty word', () => {
    expect(formatCommand(['cp', '/my dir/a', '$HOME', 'a;b', '*', '~', ''])).toBe(`cp '/my dir/a' '$HOME' 'a;b' '*' '~' ''`);
    expect(formatCommand(['x', 'é'])).toBe(`x 'é'`);
  });
  it("writes a single quote as '\\''", () => {
    expect(formatCommand(['echo', "it's"])).toBe(`echo 'it'\\''s'`);
  });
  it('gives back the same words when a shell reads it', () => {
    // checked with bash 5.2: bash -c "<this output>" with printf '%s|' as the program printed
    //   plain|with space|it's||$HOME|a;b|*|-E|offset=2097152,nodiscard|/dev/loop0|é|x<newline>y|--|mkfs.ext4|@x%+=:,./-|
    const args = ['printf', '%s|', 'plain', 'with space', "it's", '', '$HOME', 'a;b', '*', '-E', 'offset=2097152,nodiscard', '/dev/loop0', 'é', 'x\ny', '--', 'mkfs.ext4', '@x%+=:,./-'];
    expect(formatCommand(args)).toBe(
      `printf '%s|' plain 'with space' 'it'\\''s' '' '$HOME' 'a;b' '*' -E offset=2097152,nodiscard /dev/loop0 'é' 'x\ny' -- mkfs.ext4 @x%+=:,./-`,
    );
  });
  it('prints nothing for no command', () => {
    expect(formatCommand([])).toBe('');
  });
});

describe('TOOL_PACKAGES', () => {
  it('names the Debian package of every program mkimage runs', () => {
    expect(TOOL_PACKAGES).toMatchObject({
      losetup: 'mount (util-linux)',
      fallocate: 'util-linux',
      sfdisk: 'fdisk',
      'mkfs.ext4': 'e2fsprogs',
      'mkfs.xfs': 'xfsprogs',
      ndctl: 'ndctl',
    });
  });
});

/**
 * run() with real small programs (true, false, sh, cat): fine as test programs, never used in
 * src/ (no shell there). What callers rely on: ENOENT told apart from failure, the command, exit
 * code and stderr on a failure, okExitCodes, stdin, and an abort that kills the child.
 */
describe('run', () => {
  it('returns stdout and stderr of a program that succeeds, with the command as run', async () => {
    const r = await run('sh', ['-c', 'printf out; printf err >&2']);
    expect(r).toEqual({ command: ['sh', '-c', 'printf out; printf err >&2'], exitCode: 0, stdout: 'out', stderr: 'err' });
  });
  it('a program that is not installed: ToolMissingError naming the Debian package when known', async () => {
    const e = await run('mkimage-no-such-program', []).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ToolMissingError);
    expect((e as ToolMissingError).message).toBe('mkimage-no-such-program is not installed or not on PATH');
    expect((e as ToolMissingError).cause).toMatchObject({ code: 'ENOENT' });
    const sfdisk = await run('/nonexistent/sfdisk', []).catch((x: unknown) => x);
    expect((sfdisk as ToolMissingError).message).toBe('/nonexistent/sfdisk is not installed or not on PATH: install the Debian package fdisk');
  });
  it('exit 1: ToolFailedError with the command line, exit code, stderr, and its last line in the message', async () => {
    const e = await run('sh', ['-c', 'echo first >&2; echo "the reason" >&2; exit 1']).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ToolFailedError);
    const f = e as ToolFailedError;
    expect(f.message).toBe(`sh -c 'echo first >&2; echo "the reason" >&2; exit 1' exited with 1: the reason`);
    expect(f.data).toMatchObject({ tool: 'sh', command: ['sh', '-c', 'echo first >&2; echo "the reason" >&2; exit 1'], exitCode: 1, stderr: 'first\nthe reason\n', canceled: false });
    expect((await run('false', []).catch((x: ToolFailedError) => x)).message).toBe('false exited with 1');
  });
  it('okExitCodes: a listed non-zero exit is a result, not a failure', async () => {
    expect((await run('sh', ['-c', 'exit 2'], { okExitCodes: [0, 2] })).exitCode).toBe(2);
    await expect(run('true', [], { okExitCodes: [2] })).rejects.toThrow('true exited with 0');
  });
  it('writes input to stdin', async () => {
    expect((await run('cat', [], { input: 'a\0b' })).stdout).toBe('a\0b');
  });
  it('an abort kills the child (SIGTERM) and says it was interrupted', async () => {
    const controller = new AbortController();
    const p = run('sleep', ['30'], { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const e = await p.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ToolFailedError);
    expect((e as ToolFailedError).message).toBe('sleep 30 was interrupted');
    expect((e as ToolFailedError).data).toMatchObject({ canceled: true, signal: 'SIGTERM' });
    // Already aborted: the child is killed at once.
    const gone = new AbortController();
    gone.abort();
    await expect(run('sleep', ['30'], { signal: gone.signal })).rejects.toThrow('was interrupted');
  });
  it('hasTool finds programs on PATH and by path, without running them', async () => {
    expect(await hasTool('sh')).toBe(true);
    expect(await hasTool('/bin/sh')).toBe(true);
    expect(await hasTool('mkimage-no-such-program')).toBe(false);
  });
});
