import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // System and guest tests share loop devices, the zfs-fuse daemon and QEMU: one file at a time.
    fileParallelism: false,
    // Starts the zfs-fuse daemon once (CI machines start without it) and stops it if it started it.
    globalSetup: ['test/system/helpers/zfs-global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
