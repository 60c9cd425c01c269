/**
 * What `mkimage --from` adds to an image so that a guest booted from it runs the container's
 * entrypoint (besides /.mkimage/config.json, which --from writes itself: see image-config.ts):
 *
 *   /.mkimage/init                  the static PID 1 (guest/init.c, compiled by `npm run build`
 *                                   into dist/guest/mkimage-init), mode 0755, owner 0:0
 *   /dev /proc /sys /run            empty mount points, created only where the image has none: the
 *   /tmp (1777)                     init mounts devtmpfs, proc, sysfs and tmpfs there, Debian's
 *                                   initramfs moves its /dev, /proc, /sys and /run onto them, and
 *                                   on a read-only root (erofs) nothing can create them at boot
 *
 * --from puts these into every image it builds (jobs/from.ts guestStagedFiles) and records
 * hasGuestConfig in the source record; `qemuArgs(IMAGE).cmdline` then runs it
 * (init=/.mkimage/init), `{ guestInit: true }` for an image holding it without a record.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { GuestInitMissingError } from '../errors.js';
import { GUEST_DIR, GUEST_INIT_PATH } from './image-config.js';

/** One entry to put into the image. Directories are created only when missing. */
export interface GuestFile {
  /** Absolute path inside the image. */
  path: string;
  type: 'file' | 'dir';
  /** Permission bits (no file type bits). */
  mode: number;
  uid: 0;
  gid: 0;
  /** The file's bytes (type 'file' only). */
  data?: Buffer;
}

/** The mount points the init and Debian's initramfs need, with their modes. */
export const GUEST_MOUNT_POINTS: readonly { path: string; mode: number }[] = [
  { path: '/dev', mode: 0o755 },
  { path: '/proc', mode: 0o555 },
  { path: '/sys', mode: 0o555 },
  { path: '/run', mode: 0o755 },
  { path: '/tmp', mode: 0o1777 },
];

/**
 * Where the compiled init is. The URL is the same from src/guest/ (tests), dist/guest/ (the
 * library) and dist/bundle/ (the CLI): all are two levels below the package root.
 */
export function guestInitBinaryPath(): string {
  return fileURLToPath(new URL('../../dist/guest/mkimage-init', import.meta.url));
}

/** The files and directories to put into an image built with --from, in creation order. */
export async function guestInitFiles(): Promise<GuestFile[]> {
  const binary = guestInitBinaryPath();
  let data: Buffer;
  try {
    data = await readFile(binary);
  } catch (e) {
    throw new GuestInitMissingError(`the guest init ${binary} is missing: build it with \`npm run build\` (needs gcc and libc6-dev)`, { path: binary }, { cause: e });
  }
  return [
    ...GUEST_MOUNT_POINTS.map((m) => ({ path: m.path, type: 'dir' as const, mode: m.mode, uid: 0 as const, gid: 0 as const })),
    { path: GUEST_DIR, type: 'dir', mode: 0o755, uid: 0, gid: 0 },
    { path: GUEST_INIT_PATH, type: 'file', mode: 0o755, uid: 0, gid: 0, data },
  ];
}
