/**
 * What `mkimage --from` adds to every image besides the layers' tree, as helpers/tree.ts reads it
 * back: /.mkimage (0755), /.mkimage/config.json (0444), /.mkimage/init (0755, the bytes of
 * dist/guest/mkimage-init), and the mount points the image lacks among /dev /proc /sys /run /tmp
 * (0755, 0555, 0555, 0755, 01777), all owned by 0:0 and stamped with the time of the build.
 * Written out here, not taken from mkimage's code: the test says exactly which extras it allows.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './machine.js';
import type { ReadEntry } from './oci-fixture.js';

const MOUNT_POINT_MODES: Record<string, number> = { dev: 0o755, proc: 0o555, sys: 0o555, run: 0o755, tmp: 0o1777 };

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** An mtime between two instants (seconds), for entries made at build time. */
function between(from: number, to: number): number {
  return { asymmetricMatch: (v: unknown) => typeof v === 'number' && v >= from && v <= to, toString: () => `a time in [${from}, ${to}]`, toAsymmetricMatcher: () => `a time in [${from}, ${to}]` } as unknown as number;
}

/**
 * The extras of an image built between `builtFrom` and `builtTo` (ms, Date.now()) whose layers
 * lack `missing` of the mount points; `config` is /.mkimage/config.json as read from the image
 * (its content is checked by the caller).
 */
export async function fromAdditions(o: { missing: string[]; config: Buffer; builtFrom: number; builtTo: number }): Promise<Record<string, ReadEntry>> {
  const mtime = between(Math.floor(o.builtFrom / 1000), Math.ceil(o.builtTo / 1000));
  const init = await readFile(join(REPO, 'dist/guest/mkimage-init'));
  return {
    '.mkimage': { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime },
    '.mkimage/config.json': { type: 'file', mode: 0o444, uid: 0, gid: 0, mtime, size: o.config.length, sha256: sha(o.config) },
    '.mkimage/init': { type: 'file', mode: 0o755, uid: 0, gid: 0, mtime, size: init.length, sha256: sha(init) },
    ...Object.fromEntries(o.missing.map((m) => [m, { type: 'directory', mode: MOUNT_POINT_MODES[m]!, uid: 0, gid: 0, mtime } satisfies ReadEntry])),
  };
}
