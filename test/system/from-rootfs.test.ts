/**
 * Real data: a Debian bookworm minbase root filesystem (mmdebstrap, cached: helpers/rootfs.ts)
 * goes through `mkimage --from ROOTFS.tar` with nothing lost. The reference is the same tar
 * extracted by GNU tar as root (--xattrs, --numeric-owner, -p); the image is built by an ordinary
 * user (uid 65534), ext4 and erofs, mounted read-only and compared with it file by file: types,
 * modes, owners, sizes, contents, link targets, hard links, devices, xattrs, mtimes; the only
 * extras allowed are what --from adds (/.mkimage/config.json and /.mkimage/init).
 * About 30 s (plus ~1 minute once to build the rootfs).
 */
import { execa } from 'execa';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cleanDir, sh, tempDir } from './helpers/machine.js';
import { debianRootfsTar } from './helpers/rootfs.js';
import { readTree } from './helpers/tree.js';
import { fromAdditions } from './helpers/from-additions.js';

let dir: string;
let rootfsTar: string;
let reference: Awaited<ReturnType<typeof readTree>>;

beforeAll(async () => {
  dir = await tempDir();
  await chmod(dir, 0o777);
  rootfsTar = await debianRootfsTar();
  const ref = join(dir, 'ref');
  await mkdir(ref);
  const x = await sh('tar', ['-x', '-p', '--numeric-owner', '--xattrs', "--xattrs-include=*", '-f', rootfsTar, '-C', ref]);
  expect(x.exitCode, x.stderr).toBe(0);
  reference = await readTree(ref);
}, 20 * 60_000);

afterAll(async () => {
  const left = await cleanDir(dir);
  expect(left).toEqual({ loops: [], mounts: [] });
});

describe('a Debian rootfs (mmdebstrap minbase) through --from, as uid 65534', () => {
  for (const fs of ['ext4', 'erofs'] as const) {
    it(`${fs}: every entry as GNU tar extracts it`, async () => {
      const img = join(dir, `${fs}.img`);
      const builtFrom = Date.now();
      const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', BIN, '--from', rootfsTar, '--size', 'auto', '--fs', fs, '--sparse', '--json', img], { reject: false, stdin: 'ignore' });
      const builtTo = Date.now();
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      const res = JSON.parse(String(r.stdout));
      expect(res.from.entries).toBeGreaterThan(8000);
      const mnt = join(dir, `mnt-${fs}`);
      await mkdir(mnt);
      const m = await sh('mount', ['-t', fs, '-o', ['ro', 'loop', `offset=${res.layout.partitionOffsetBytes}`, ...(fs === 'ext4' ? ['noload'] : [])].join(','), img, mnt]);
      expect(m.exitCode, m.stderr).toBe(0);
      try {
        const got = await readTree(mnt, { skip: ['lost+found'] });
        // Exactly /.mkimage/{config.json,init} more: the rootfs has every mount point already.
        const added = await fromAdditions({ missing: [], config: await readFile(join(mnt, '.mkimage/config.json')), builtFrom, builtTo });
        expect(Object.fromEntries(Object.entries(got.entries).filter(([p]) => !(p in reference.entries)))).toEqual(added);
        expect(Object.keys(got.entries).length).toBe(Object.keys(reference.entries).length + Object.keys(added).length);
        // Compared entry by entry so that a difference names its path.
        const diffs: string[] = [];
        for (const [path, want] of Object.entries(reference.entries)) {
          const have = got.entries[path];
          if (JSON.stringify(have) !== JSON.stringify(want)) diffs.push(`${path}: ${JSON.stringify(have)} != ${JSON.stringify(want)}`);
        }
        expect(diffs.slice(0, 20)).toEqual([]);
        expect(got.links.map((g) => g.sort()).sort()).toEqual(reference.links.map((g) => g.sort()).sort());
      } finally {
        await sh('umount', [mnt]);
      }
    });
  }
});
