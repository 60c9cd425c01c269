/**
 * An OCI image layout built in the test with every kind of entry `mkimage --from` must keep, and
 * the tree an OCI runtime makes of it, written out by hand (not computed by mkimage's code).
 *
 *   layer 1 (gzip, mtime T): directories with modes 0750/01777/0700, a setuid and a setgid binary
 *     (and a hard link to the setuid one), a file with security.capability and user.note xattrs,
 *     a character device, a fifo, files owned by 1000:1000 and 0:42, a 0400 file in a 0700
 *     directory, a relative symlink (lib -> usr/lib), an absolute one (var/run -> /run), 100 KB
 *     of random bytes, files that later layers delete.
 *   layer 2 (zstd, T+100): a whiteout (.wh.gone.txt), an opaque directory (opq/), a file of uid
 *     1000, a file written through the absolute symlink (var/run/pidfile lands in run/).
 *   layer 3 (uncompressed, T+200): etc/hosts replaced (its old hard link keeps the old content),
 *     a whiteout of old/file1, a new file in usr/bin.
 *
 * Made with: the project's own tar writer (src/layers/tar-write.ts) for the layer bytes, node:zlib
 * for gzip and Debian's `zstd` for zstd; nothing of mkimage reads the result back in the tests.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeTar, type WriteEntry } from '../../../src/layers/tar-write.js';

export const T = 1_700_000_000;
export const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');

export type E = Omit<WriteEntry, 'mode' | 'uid' | 'gid' | 'mtime' | 'body' | 'size'> & { mode?: number; uid?: number; gid?: number; mtime?: number; data?: Buffer };

function entries(list: E[], mtime: number): WriteEntry[] {
  return list.map((e) => ({
    ...e,
    mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    mtime: e.mtime ?? mtime,
    size: e.type === 'file' ? (e.data?.length ?? 0) : 0,
    body: e.data ? async function* () { yield e.data!; } : undefined,
  }));
}

async function tarBytes(list: WriteEntry[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of writeTar(list)) parts.push(c);
  return Buffer.concat(parts);
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const txt = (s: string) => Buffer.from(s);

export interface Fixture {
  dir: string;
  tars: Buffer[];
  blobs: Buffer[];
  manifestDigest: string;
  configDigest: string;
  big: Buffer;
  secondDigest?: string;
}

export interface FixtureOptions {
  /** Replace this layer's stored blob by other bytes (a corrupt blob). */
  corruptLayer?: number;
  /** Leave this layer's blob out (a missing blob). */
  missingLayer?: number;
  /** Give this layer a wrong diff_id in the config. */
  wrongDiffId?: number;
  /** Extra entries for the last layer (hostile paths). */
  hostile?: E[];
  /** Reference names of the image in index.json. */
  names?: string[];
  /** Add a second image (layer 1 alone) to the index under this name (for --ref). */
  secondImage?: string;
}

export async function writeFixture(dir: string, o: FixtureOptions = {}): Promise<Fixture> {
  const big = randomBytes(100 * 1024);
  const l1 = entries(
    [
      { path: 'bin', type: 'directory' },
      { path: 'bin/ping', type: 'file', mode: 0o755, data: txt('ping'), xattrs: { 'security.capability': CAP_NET_RAW, 'user.note': txt('hi') } },
      { path: 'dev', type: 'directory' },
      { path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
      { path: 'dev/fifo', type: 'fifo', mode: 0o620 },
      { path: 'etc', type: 'directory' },
      { path: 'etc/hosts', type: 'file', data: txt('127.0.0.1 localhost\n') },
      { path: 'etc/hosts.hard', type: 'hardlink', linkpath: 'etc/hosts' },
      { path: 'etc/shadow', type: 'file', mode: 0o640, gid: 42, data: txt('root:*:19000::::::\n') },
      { path: 'home', type: 'directory' },
      { path: 'home/user', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
      { path: 'home/user/.profile', type: 'file', uid: 1000, gid: 1000, data: txt('PATH=/bin\n') },
      { path: 'usr', type: 'directory' },
      { path: 'usr/lib', type: 'directory' },
      { path: 'usr/lib/libx.so', type: 'file', data: big },
      { path: 'lib', type: 'symlink', linkpath: 'usr/lib' },
      { path: 'usr/bin', type: 'directory' },
      { path: 'usr/bin/su', type: 'file', mode: 0o4755, data: txt('su') },
      { path: 'usr/bin/su-link', type: 'hardlink', linkpath: 'usr/bin/su' },
      { path: 'usr/bin/wall', type: 'file', mode: 0o2755, gid: 5, data: txt('wall') },
      { path: 'tmp', type: 'directory', mode: 0o1777 },
      { path: 'run', type: 'directory' },
      { path: 'var', type: 'directory' },
      { path: 'var/run', type: 'symlink', linkpath: '/run' },
      { path: 'old', type: 'directory' },
      { path: 'old/file1', type: 'file', data: txt('1') },
      { path: 'old/file2', type: 'file', data: txt('2') },
      { path: 'opq', type: 'directory' },
      { path: 'opq/lower1', type: 'file', data: txt('l') },
      { path: 'opq/sub', type: 'directory' },
      { path: 'opq/sub/deep', type: 'file', data: txt('d') },
      { path: 'gone.txt', type: 'file', data: txt('gone') },
      { path: 'secret', type: 'directory', mode: 0o700 },
      { path: 'secret/key', type: 'file', mode: 0o400, data: txt('k') },
    ],
    T,
  );
  const l2 = entries(
    [
      { path: '.wh.gone.txt', type: 'file' },
      { path: 'opq', type: 'directory' },
      { path: 'opq/.wh..wh..opq', type: 'file' },
      { path: 'opq/new', type: 'file', data: txt('new') },
      { path: 'home/user', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
      { path: 'home/user/file', type: 'file', mode: 0o600, uid: 1000, gid: 1000, data: txt('mine') },
      { path: 'run', type: 'directory' },
      { path: 'var/run/pidfile', type: 'file', data: txt('42') },
    ],
    T + 100,
  );
  const l3 = entries(
    [
      { path: 'etc', type: 'directory' },
      { path: 'etc/hosts', type: 'file', data: txt('127.0.0.1 new\n') },
      { path: 'old', type: 'directory' },
      { path: 'old/.wh.file1', type: 'file' },
      { path: 'usr/bin', type: 'directory' },
      { path: 'usr/bin/newer', type: 'file', mode: 0o755, data: txt('#!/bin/sh\necho top layer\n') },
      ...(o.hostile ?? []).map((e) => entries([e], T + 200)[0]!),
    ],
    T + 200,
  );
  const tars = [await tarBytes(l1), await tarBytes(l2), await tarBytes(l3)];
  const blobs = [gzipSync(tars[0]!), execFileSync('zstd', ['-q', '-c'], { input: tars[1]! }), tars[2]!];
  const media = ['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar'];
  await fs.mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  const put = async (b: Buffer) => {
    await fs.writeFile(join(dir, 'blobs/sha256', sha(b).slice(7)), b);
    return { digest: sha(b), size: b.length };
  };
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Entrypoint: ['/usr/bin/newer'], Cmd: ['--flag'], Env: ['PATH=/usr/bin:/bin', 'A=b'], WorkingDir: '/home/user', User: '1000:1000' },
      rootfs: { type: 'layers', diff_ids: tars.map((t, i) => (i === o.wrongDiffId ? sha(txt('other')) : sha(t))) },
    }),
  );
  const layers = [];
  for (const [i, b] of blobs.entries()) {
    const d = await put(b);
    if (i === o.corruptLayer) await fs.writeFile(join(dir, 'blobs/sha256', d.digest.slice(7)), gzipSync(txt('not the layer')));
    if (i === o.missingLayer) await fs.rm(join(dir, 'blobs/sha256', d.digest.slice(7)));
    layers.push({ mediaType: media[i], ...d });
  }
  const configDesc = await put(config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configDesc }, layers }));
  const m = await put(manifest);
  const names = o.names ?? ['docker.io/library/fixture:1'];
  const manifests = names.map((n) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': n } }));
  let second: string | undefined;
  if (o.secondImage) {
    const config2 = await put(Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(tars[0]!)] } })));
    const m2 = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config2 }, layers: [layers[0]] })));
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m2, annotations: { 'org.opencontainers.image.ref.name': o.secondImage } });
    second = m2.digest;
  }
  await fs.writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fs.writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  return { dir, tars, blobs, manifestDigest: m.digest, configDigest: configDesc.digest, big, secondDigest: second };
}

/** One entry of a tree as read back: what the comparison looks at. */
export interface ReadEntry {
  type: 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  mtime?: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: string;
  xattrs?: Record<string, string>;
}

const hex = (s: string) => Buffer.from(s).toString('hex');
const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The tree an OCI runtime makes of the three layers (by hand, from the OCI rules). */
export function expectedTree(f: Fixture): Record<string, ReadEntry> {
  const d = (mode: number, mtime: number, uid = 0, gid = 0): ReadEntry => ({ type: 'directory', mode, uid, gid, mtime });
  const file = (data: Buffer | string, mode: number, mtime: number, uid = 0, gid = 0, xattrs?: Record<string, string>): ReadEntry => {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    return { type: 'file', mode, uid, gid, mtime, size: b.length, sha256: h(b), ...(xattrs ? { xattrs } : {}) };
  };
  return {
    bin: d(0o755, T),
    'bin/ping': file('ping', 0o755, T, 0, 0, { 'security.capability': CAP_NET_RAW.toString('hex'), 'user.note': hex('hi') }),
    dev: d(0o755, T),
    'dev/null': { type: 'char', mode: 0o666, uid: 0, gid: 0, mtime: T, rdev: '1:3' },
    'dev/fifo': { type: 'fifo', mode: 0o620, uid: 0, gid: 0, mtime: T },
    etc: d(0o755, T + 200),
    'etc/hosts': file('127.0.0.1 new\n', 0o644, T + 200),
    'etc/hosts.hard': file('127.0.0.1 localhost\n', 0o644, T),
    'etc/shadow': file('root:*:19000::::::\n', 0o640, T, 0, 42),
    home: d(0o755, T),
    'home/user': d(0o750, T + 100, 1000, 1000),
    'home/user/.profile': file('PATH=/bin\n', 0o644, T, 1000, 1000),
    'home/user/file': file('mine', 0o600, T + 100, 1000, 1000),
    lib: { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: T, target: 'usr/lib' },
    usr: d(0o755, T),
    'usr/lib': d(0o755, T),
    'usr/lib/libx.so': file(f.big, 0o644, T),
    'usr/bin': d(0o755, T + 200),
    'usr/bin/su': file('su', 0o4755, T),
    'usr/bin/su-link': file('su', 0o4755, T),
    'usr/bin/wall': file('wall', 0o2755, T, 0, 5),
    'usr/bin/newer': file('#!/bin/sh\necho top layer\n', 0o755, T + 200),
    tmp: d(0o1777, T),
    run: d(0o755, T + 100),
    'run/pidfile': file('42', 0o644, T + 100),
    var: d(0o755, T),
    'var/run': { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: T, target: '/run' },
    old: d(0o755, T + 200),
    'old/file2': file('2', 0o644, T),
    opq: d(0o755, T + 100),
    'opq/new': file('new', 0o644, T + 100),
    secret: d(0o700, T),
    'secret/key': file('k', 0o400, T),
  };
}

/** Hard link groups of the expected tree. */
export const EXPECTED_LINKS = [['usr/bin/su', 'usr/bin/su-link']];

/** One layer of writeOciImage: its entries (defaults as in the fixture above) and how it is stored. */
export interface OciLayer {
  entries: E[];
  compression: 'gzip' | 'zstd' | 'none';
}

/**
 * An OCI image layout directory (oci-layout, index.json, blobs/sha256: manifest, config, layers)
 * holding ONE image: `layers` bottom first, `config` as the config blob's `config` object
 * (Entrypoint, Cmd, Env, WorkingDir, User), named `name` in index.json. The same pieces as
 * writeFixture: the project's tar writer, node:zlib, Debian's zstd.
 */
export async function writeOciImage(dir: string, layers: OciLayer[], config: Record<string, unknown>, name = 'example.com/app:1'): Promise<{ dir: string; manifestDigest: string }> {
  const tars = await Promise.all(layers.map((l) => tarBytes(entries(l.entries, T))));
  const blobs = tars.map((t, i) => (layers[i]!.compression === 'gzip' ? gzipSync(t) : layers[i]!.compression === 'zstd' ? execFileSync('zstd', ['-q', '-c'], { input: t }) : t));
  await fs.mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  const put = async (b: Buffer) => {
    await fs.writeFile(join(dir, 'blobs/sha256', sha(b).slice(7)), b);
    return { digest: sha(b), size: b.length };
  };
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
  const configBlob = await put(Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config, rootfs: { type: 'layers', diff_ids: tars.map(sha) } })));
  const layerDescs = [];
  for (const [i, b] of blobs.entries()) layerDescs.push({ mediaType: `application/vnd.oci.image.layer.v1.tar${{ gzip: '+gzip', zstd: '+zstd', none: '' }[layers[i]!.compression]}`, ...(await put(b)) });
  const m = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob }, layers: layerDescs })));
  await fs.writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fs.writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': name } }] }));
  return { dir, manifestDigest: m.digest };
}
