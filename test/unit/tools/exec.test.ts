import { describe, expect, it } from 'vitest';
import { TOOL_PACKAGES, formatCommand } from '../../../src/tools/exec.js';

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
