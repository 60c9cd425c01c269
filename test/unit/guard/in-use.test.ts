/**
 * The /proc parsing of guard/in-use.ts with known text: a maps file captured from a Python process
 * that mmap'ed an image with MAP_SHARED (as QEMU's memory-backend-file share=on does), the image
 * being dev 65024 (fe:00), inode 2173826 (`stat -c '%d %i'`); dev_t split as glibc does.
 */
import { describe, expect, it } from 'vitest';
import { describeUsers, isFileLink, joinDev, mapsName, parseCmdline, parseMaps, splitDev } from '../../../src/guard/in-use.js';

const MAPS = [
  '55c09d0c3000-55c09d256000 rw-p 00000000 00:00 0                          [heap]',
  '7f4d1ca00000-7f4d24a00000 rw-s 00000000 fe:00 2173826                    /tmp/i9t/a.img',
  '7f4d24b7a000-7f4d24cad000 rw-p 00000000 00:00 0 ',
  '7f4d25000000-7f4d25001000 r--p 00002000 103:02 42                        /usr/lib/x86_64-linux-gnu/lib with space.so',
  '',
].join('\n');

describe('dev_t', () => {
  it('splits and joins as glibc major/minor do (small and large numbers)', () => {
    expect(splitDev(65024)).toEqual({ major: 254, minor: 0 });
    expect(joinDev(254, 0)).toBe(65024);
    expect(splitDev(0x10302)).toEqual({ major: 0x103, minor: 2 });
    // major 300, minor 70000: bits above 8 of the minor and above 12 of the major go high.
    const dev = joinDev(300, 70000);
    expect(dev).toBe(Number((300n << 8n) | (70000n & 0xffn) | ((70000n & ~0xffn) << 12n)));
    expect(splitDev(dev)).toEqual({ major: 300, minor: 70000 });
  });
});

describe('/proc/PID/maps', () => {
  it('keeps file mappings with device, inode and a path that may hold spaces; drops anonymous ones', () => {
    expect(parseMaps(MAPS)).toEqual([
      { major: 0xfe, minor: 0, inode: 2173826, path: '/tmp/i9t/a.img' },
      { major: 0x103, minor: 2, inode: 42, path: '/usr/lib/x86_64-linux-gnu/lib with space.so' },
    ]);
  });
  it('names the image by dev + inode, not by path', () => {
    const entries = parseMaps(MAPS);
    expect(mapsName(entries, { dev: 65024, ino: 2173826 })).toBe(true);
    expect(mapsName(entries, { dev: 65024, ino: 2173827 })).toBe(false);
    expect(mapsName(entries, { dev: 65025, ino: 2173826 })).toBe(false);
    // The same path after the file was replaced: another inode, not a user.
    expect(mapsName(parseMaps(MAPS.replace('2173826', '99')), { dev: 65024, ino: 2173826 })).toBe(false);
  });
});

describe('cmdline and fd links', () => {
  it('joins NUL-separated arguments, one line', () => {
    expect(parseCmdline(Buffer.from('qemu-system-x86_64\0-m\x001024M,slots=2\0-nographic\0'))).toBe('qemu-system-x86_64 -m 1024M,slots=2 -nographic');
    expect(parseCmdline('python3\0-c\0import os\nprint(1)\0')).toBe('python3 -c import os print(1)');
    expect(parseCmdline('')).toBe('');
  });
  it('only absolute link targets can be files (sockets, pipes, anon inodes are not)', () => {
    expect(isFileLink('/tmp/a.img')).toBe(true);
    expect(isFileLink('/tmp/a.img (deleted)')).toBe(true);
    expect(isFileLink('socket:[12345]')).toBe(false);
    expect(isFileLink('pipe:[6789]')).toBe(false);
    expect(isFileLink('anon_inode:[eventfd]')).toBe(false);
  });
  it('describes each user with PID, command and how', () => {
    expect(describeUsers([{ pid: 42, command: 'qemu-system-x86_64 -m 1G', how: ['open', 'mapped'] }, { pid: 7, command: 'cat', how: ['open'] }])).toBe(
      'PID 42 (qemu-system-x86_64 -m 1G, open and mapped), PID 7 (cat, open)',
    );
  });
});
