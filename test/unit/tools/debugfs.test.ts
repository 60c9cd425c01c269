import { describe, expect, it } from 'vitest';
import { LayerError, ToolFailedError } from '../../../src/errors.js';
import { debugfsArgs, debugfsErrors, debugfsScript, quoteArg, runDebugfs } from '../../../src/tools/debugfs.js';
import type { Runner } from '../../../src/tools/exec.js';

describe('debugfs script', () => {
  it('one line per field; mknod from the parent directory; binary xattr values from files', () => {
    expect(
      debugfsScript([
        { op: 'owner', path: '/usr/bin/su', uid: 0, gid: 5 },
        { op: 'owner', path: '/home/user', uid: 1000 },
        { op: 'mode', path: '/usr/bin/su', mode: 0o104755 },
        { op: 'mtime', path: '/etc', mtime: 1700000200.7 },
        { op: 'mknod', path: '/dev/null', kind: 'c', major: 1, minor: 3 },
        { op: 'mknod', path: '/fifo', kind: 'p', major: 0, minor: 0 },
        { op: 'xattr', path: '/bin/ping', name: 'security.capability', valueFile: '/w/xattr-0' },
      ]),
    ).toBe(
      [
        'set_inode_field "/usr/bin/su" uid 0',
        'set_inode_field "/usr/bin/su" gid 5',
        'set_inode_field "/home/user" uid 1000',
        'set_inode_field "/usr/bin/su" mode 0104755',
        'set_inode_field "/etc" mtime @1700000200',
        'rm "/dev/null"',
        'cd "/dev"',
        'mknod "null" c 1 3',
        'cd /',
        'rm "/fifo"',
        'cd "/"',
        'mknod "fifo" p',
        'cd /',
        'ea_set -f "/w/xattr-0" "/bin/ping" "security.capability"',
        '',
      ].join('\n'),
    );
    expect(debugfsScript([])).toBe('');
  });

  it('quotes for ss_parse: spaces kept, a quote doubled; a newline refused', () => {
    expect(quoteArg('/a b/"c"')).toBe('"/a b/""c"""');
    expect(() => quoteArg('/bad\nname')).toThrow(LayerError);
  });

  it('runs debugfs -w -f SCRIPT IMAGE?offset=N and fails on any stderr line but the banner', async () => {
    expect(debugfsArgs('/x/disk.img', 2097152, '/w/s')).toEqual(['-w', '-f', '/w/s', '/x/disk.img?offset=2097152']);
    expect(debugfsErrors('debugfs 1.47.0 (5-Feb-2023)\n')).toEqual([]);
    const fake = (stderr: string): Runner => async (file, args) => ({ command: [file, ...args], exitCode: 0, stdout: '', stderr });
    await expect(runDebugfs('/i', 0, '/s', undefined, fake('debugfs 1.47.0 (5-Feb-2023)\n'))).resolves.toBeUndefined();
    await expect(runDebugfs('/i', 0, '/s', undefined, fake('debugfs 1.47.0 (5-Feb-2023)\n/x: File not found by ext2_lookup \n'))).rejects.toThrow(ToolFailedError);
  });
});
