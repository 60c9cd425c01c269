import { describe, expect, it } from 'vitest';
import { ext4BytesFor, ext4Holds, ext4JournalBlocks, imageConfigOf, sourceRecordOf } from '../../../src/jobs/from.js';

describe('--from: pure parts', () => {
  it('imageConfigOf keeps the runtime fields of the OCI config with their spec names, drops the rest', () => {
    expect(imageConfigOf({ Entrypoint: ['/bin/sh'], Cmd: ['-c', 'x'], Env: ['A=b'], WorkingDir: '/w', User: '1000:1000', ExposedPorts: { '80/tcp': {} }, Labels: { a: 'b' } })).toEqual({
      Entrypoint: ['/bin/sh'],
      Cmd: ['-c', 'x'],
      Env: ['A=b'],
      WorkingDir: '/w',
      User: '1000:1000',
    });
    expect(imageConfigOf({ Entrypoint: null, Cmd: 'not a list', WorkingDir: '' })).toEqual({});
    expect(imageConfigOf(undefined)).toEqual({});
  });

  it('sourceRecordOf: what the header records', () => {
    expect(sourceRecordOf({ reference: 'r', manifestDigest: `sha256:${'1'.repeat(64)}`, diffIds: ['x'] }, true)).toEqual({ reference: 'r', manifestDigest: `sha256:${'1'.repeat(64)}`, hasGuestConfig: true });
  });

  it('ext4 journal sizes follow mke2fs (ext2fs_default_journal_size)', () => {
    expect([ext4JournalBlocks(2000), ext4JournalBlocks(20000), ext4JournalBlocks(100000), ext4JournalBlocks(300000), ext4JournalBlocks(1 << 20)]).toEqual([0, 1024, 4096, 8192, 16384]);
  });

  it('--size auto: the smallest size holding the content, with 10% + 16 MiB headroom; the minimum without', () => {
    // A Debian minbase: ~44,000 data blocks, ~1,200 directory blocks, 8,745 inodes.
    const w = { dataBlocks: 44000, dirBlocks: 1200, xattrBlocks: 0, inodes: 8745 };
    const bare = ext4BytesFor(w, false);
    const auto = ext4BytesFor(w, true);
    expect(ext4Holds(bare, w)).toBe(true);
    expect(ext4Holds(bare - 1024 * 1024, w)).toBe(false);
    expect(auto).toBeGreaterThanOrEqual(bare + Math.ceil((45200 * 4096) / 10) + 16 * 1024 * 1024);
    // Many tiny files: inodes decide (one per 16 KiB of filesystem).
    const tiny = { dataBlocks: 0, dirBlocks: 10, xattrBlocks: 0, inodes: 100000 };
    expect(Math.floor(ext4BytesFor(tiny, false) / 16384)).toBeGreaterThanOrEqual(100016);
  });
});
