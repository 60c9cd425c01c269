/**
 * The test container image: a static entrypoint at /bin/app (test/guest/fixtures/entrypoint.c)
 * and /etc/passwd, /etc/group; no shell, no libc. appImage() writes it as an OCI image layout for
 * `mkimage --from` (the guest tests); stageRoot() lays the same files out as --from does
 * (guestInitFiles() and /.mkimage/config.json) for the host test of the init in a PID namespace.
 */
import { execa } from 'execa';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { guestInitFiles } from '../../../src/guest/init.js';
import { GUEST_CONFIG_PATH, type GuestConfigFile, type ImageConfig } from '../../../src/guest/image-config.js';
import { REPO } from '../../system/helpers/machine.js';
import { writeOciImage } from '../../system/helpers/oci-fixture.js';

export const PASSWD = 'root:x:0:0:root:/root:/nonexistent\napp:x:1000:1000:app user:/home/app:/nonexistent\n';
export const GROUP = 'root:x:0:\napp:x:1000:\nextra:x:2000:other,app\n';

/** Compiles the entrypoint fixture (static) into `dir`/app and returns its bytes. */
export async function buildEntrypoint(dir: string): Promise<Buffer> {
  await execa('gcc', ['-static', '-Os', '-s', '-o', join(dir, 'app'), join(REPO, 'test/guest/fixtures/entrypoint.c')]);
  return readFile(join(dir, 'app'));
}

/** The line the entrypoint prints. */
export interface EntrypointLine {
  argv: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  groups: number[];
  pid: number;
  root: string;
  tmp: string;
}

export function entrypointLines(output: string[]): EntrypointLine[] {
  return output.filter((l) => l.startsWith('ENTRYPOINT ')).map((l) => JSON.parse(l.slice('ENTRYPOINT '.length)) as EntrypointLine);
}

/**
 * Stages the tree at `root`. `config` is the OCI config (a string is written as the file's raw
 * text, for malformed-config tests; null writes no config at all).
 */
export async function stageRoot(root: string, app: Buffer, config: ImageConfig | string | null, extraDirs: string[] = []): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const f of await guestInitFiles()) {
    const p = join(root, f.path);
    if (f.type === 'dir') await mkdir(p, { recursive: true });
    else await writeFile(p, f.data!);
    await chmod(p, f.mode);
  }
  if (config !== null) {
    const file: GuestConfigFile = { schemaVersion: 1, source: { diffIds: [] }, config: typeof config === 'string' ? {} : config };
    await writeFile(join(root, GUEST_CONFIG_PATH), typeof config === 'string' ? config : JSON.stringify(file));
    await chmod(join(root, GUEST_CONFIG_PATH), 0o444);
  }
  await mkdir(join(root, 'bin'));
  await writeFile(join(root, 'bin/app'), app, { mode: 0o755 });
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc/passwd'), PASSWD);
  await writeFile(join(root, 'etc/group'), GROUP);
  for (const d of extraDirs) await mkdir(join(root, d), { recursive: true });
  return root;
}

/**
 * An OCI image layout at `dir` whose config is `config`: layer 1 (gzip) /etc/passwd, /etc/group
 * and `extraDirs`; layer 2 (zstd) /bin/app. Nothing else: no shell, no libc, no /proc or /sys.
 */
export async function appImage(dir: string, app: Buffer, config: ImageConfig, extraDirs: string[] = []): Promise<string> {
  const dirs = [...new Set(extraDirs.flatMap((d) => d.split('/').map((_, i, a) => a.slice(0, i + 1).join('/'))))];
  await writeOciImage(
    dir,
    [
      {
        compression: 'gzip',
        entries: [
          { path: 'etc', type: 'directory' },
          { path: 'etc/passwd', type: 'file', data: Buffer.from(PASSWD) },
          { path: 'etc/group', type: 'file', data: Buffer.from(GROUP) },
          ...dirs.map((d) => ({ path: d, type: 'directory' as const })),
        ],
      },
      { compression: 'zstd', entries: [{ path: 'bin', type: 'directory' }, { path: 'bin/app', type: 'file', mode: 0o755, data: app }] },
    ],
    { ...config },
  );
  return dir;
}

/** Arguments and values with spaces, quotes, a tab, a backslash, an empty one, non-ASCII. */
export const RICH: ImageConfig = {
  Entrypoint: ['app', 'first arg'],
  Cmd: ['say "hi"', "it's", '', 'tab\there', 'back\\slash', 'é😀'],
  Env: ['PATH=/usr/bin:/bin', 'GREETING=hello world', `QUOTES=a "b" 'c'`, 'EMPTY='],
  WorkingDir: '/work/sub dir',
  User: 'app',
};
export const RICH_ARGV = ['app', 'first arg', 'say "hi"', "it's", '', 'tab\there', 'back\\slash', 'é😀'];
/** Env as given, then HOME from the user's /etc/passwd entry (the config has none). */
export const RICH_ENV = [...RICH.Env!, 'HOME=/home/app'];
