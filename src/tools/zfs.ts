/**
 * zpool(8) and zfs(8): the one module that talks to ZFS. Every call goes through exec.ts `run`
 * (argument arrays, never a shell), asks for machine-readable output where the flavour has it, and
 * builds its arguments in pure functions that the unit tests check for both flavours.
 *
 * Two flavours, OpenZFS and zfs-fuse (what each has: zfs/flavour.ts).
 *
 * The module is the directory src/tools/zfs/, one file per concern; this file is its face, so
 * that importers name one module: flavour.ts (the flavours and their capabilities),
 * flavour-cache.ts (the per-boot cache), detect.ts (which ZFS runs), names.ts (name checks),
 * options.ts (--zpool-option/--zfs-option), format.ts (ashift, compatibility, version), args.ts
 * (argument builders), parse.ts (output parsers), runner.ts (the Zfs class: calls and retries).
 */
export * from './zfs/flavour.js';
export * from './zfs/flavour-cache.js';
export * from './zfs/detect.js';
export * from './zfs/names.js';
export * from './zfs/options.js';
export * from './zfs/format.js';
export * from './zfs/args.js';
export * from './zfs/parse.js';
export * from './zfs/runner.js';
