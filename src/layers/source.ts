/**
 * Where layers come from: an OCI image layout (a directory, or an "oci-archive" tar of one), a
 * `docker save` tarball, or plain layer tars (.tar / .tar.gz) given bottom first. Each source
 * gives one or more images, each with its reference names (for `layers list`) and its layers in
 * order; each layer is read as a stream of its uncompressed tar while two sha256 run over it:
 * the stored blob's (checked against the manifest's digest) and the uncompressed tar's, the
 * layer's diff_id (checked against the image config's rootfs.diff_ids), which names the layer.
 *
 * Formats (sources of truth):
 * - OCI image-spec image-layout.md: `oci-layout`, `index.json` (descriptors, possibly of nested
 *   indexes), blobs at `blobs/<alg>/<hex>`; ref names in the `org.opencontainers.image.ref.name`
 *   annotation (containerd adds the full name as `io.containerd.image.name`).
 * - moby image/tarexport: `manifest.json` = [{ Config, RepoTags, Layers }], paths inside the
 *   archive; since Docker 25 the archive is also an OCI layout and `<id>/layer.tar` entries may be
 *   symlinks to blobs.
 * Archives are indexed by reading their headers only (pread, bodies skipped), and a member is
 * read as a byte range of the file: nothing is unpacked to disk. A gzip-compressed archive of a
 * whole image cannot be indexed that way and is refused with a message to gunzip it first.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream, promises as fs } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { LayerError, UsageError } from '../errors.js';
import { readFileChunks, readFileChunksSync } from '../file/image-file.js';
import { COMPRESSION_PROBE_BYTES, decompress, detectCompression, readError } from './compression.js';
import { openTarFile, readTar, type SyncTarSource } from './tar-read.js';

export type SourceKind = 'oci-layout' | 'oci-archive' | 'docker-archive' | 'layer-tars';

export interface LayerBlob {
  /** Position in its image, 0 = bottom. */
  index: number;
  /** Where it is read from, for messages: "alpine.tar:blobs/sha256/ab12...". */
  origin: string;
  mediaType?: string;
  /** "sha256:<hex>" of the stored bytes (compressed or not), when a manifest names it. */
  blobDigest?: string;
  /** "sha256:<hex>" of the uncompressed tar, when an image config names it. */
  diffId?: string;
  /** Stored bytes, when known. */
  size?: number;
  /** The stored bytes. */
  open(): AsyncIterable<Buffer>;
  /**
   * The stored bytes read synchronously, when they are a byte range of a file; with `reuse`, one
   * buffer serves every chunk (each valid until the next is taken).
   */
  openSync?(reuse: boolean): Iterable<Buffer>;
}

export interface SourceImage {
  /** The path given. */
  source: string;
  kind: SourceKind;
  /** Image references (e.g. "docker.io/library/alpine:3.19"); empty for plain layer tars. */
  names: string[];
  layers: LayerBlob[];
  /** Every name the index gives the image (both annotations), for choosing one by name. */
  refs?: string[];
  /** "sha256:<hex>" of the image manifest (OCI layouts and archives). */
  manifestDigest?: string;
  /** "sha256:<hex>" of the image config blob. */
  configDigest?: string;
  /** The image config's `config` object (Entrypoint, Cmd, Env, WorkingDir, User...), when there is one. */
  runConfig?: Record<string, unknown>;
}

function runConfigOf(config: Record<string, unknown>): Record<string, unknown> | undefined {
  const c = config.config;
  return c !== null && typeof c === 'object' && !Array.isArray(c) ? (c as Record<string, unknown>) : undefined;
}

function sha256Of(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

const MAX_JSON_BYTES = 16 * 1024 * 1024;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
};
const LAYER_MEDIA_RE = /^application\/vnd\.(oci\.image\.layer(\.nondistributable)?\.v1\.tar(\+gzip|\+zstd)?|docker\.image\.rootfs\.(foreign\.)?diff\.tar(\.gzip)?)$/;

/** A set of named files: an image layout directory or an indexed archive. */
interface Container {
  describe: string;
  has(name: string): boolean | Promise<boolean>;
  size(name: string): Promise<number>;
  open(name: string): AsyncIterable<Buffer>;
  openSync(name: string, reuse: boolean): Iterable<Buffer>;
}

/** A member name from a manifest: relative, no '..', normalized. */
function memberName(name: unknown, where: string): string {
  if (typeof name !== 'string' || name === '' || name.includes('\0')) throw new LayerError(`${where}: ${JSON.stringify(name)} is not a file name`, { where });
  const n = posix.normalize(name).replace(/^\.\//, '');
  if (n.startsWith('/') || n === '..' || n.startsWith('../')) throw new LayerError(`${where}: ${JSON.stringify(name)} points outside the image`, { where, name });
  return n;
}

function blobPath(digest: unknown, where: string): string {
  if (typeof digest !== 'string' || !DIGEST_RE.test(digest)) {
    throw new LayerError(`${where}: digest ${JSON.stringify(digest)} is not sha256:<64 hex> (only sha256 is supported)`, { where, digest });
  }
  return `blobs/sha256/${digest.slice(7)}`;
}

class DirContainer implements Container {
  constructor(readonly root: string) {}
  get describe(): string {
    return this.root;
  }
  async has(name: string): Promise<boolean> {
    try {
      await fs.access(join(this.root, name));
      return true;
    } catch {
      return false;
    }
  }
  async size(name: string): Promise<number> {
    return (await fs.stat(join(this.root, name))).size;
  }
  open(name: string): AsyncIterable<Buffer> {
    return readFileChunks(join(this.root, name));
  }
  openSync(name: string, reuse: boolean): Iterable<Buffer> {
    return readFileChunksSync(join(this.root, name), 0, Infinity, reuse);
  }
}

interface Member {
  offset: number;
  size: number;
  /** Symlink or hard link target, already resolved to a member name. */
  link?: string;
}

/** A member name as an archive stores it, normalized: no "./" prefix, no trailing slash; the root is ".". */
export function archiveName(name: string): string {
  const n = posix.normalize(name).replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  return n === '' ? '.' : n;
}

/** An uncompressed tar archive indexed by its headers; members are byte ranges of the file. */
export class TarContainer implements Container {
  private constructor(
    readonly path: string,
    private readonly members: Map<string, Member>,
  ) {}

  get describe(): string {
    return this.path;
  }

  /**
   * Reads every header of the archive with the one tar walker (bodies skipped by position). With
   * `onlyIf`, gives up (null) at the first member name it rejects: a plain layer tar is not
   * indexed in full.
   */
  static async index(path: string, onlyIf?: (name: string) => boolean): Promise<TarContainer | null> {
    const members = new Map<string, Member>();
    const file = await openTarFile(path);
    try {
      for await (const e of readTar(file)) {
        // `tar -cf x.tar .` names members "./manifest.json" and the root "./".
        const name = archiveName(e.path);
        if (onlyIf && name !== '.' && !onlyIf(name)) return null;
        if (e.type === 'file') members.set(name, { offset: e.dataOffset, size: e.size });
        else if (e.type === 'symlink') members.set(name, { offset: 0, size: 0, link: posix.normalize(posix.join(posix.dirname(name), e.linkpath)) });
        else if (e.type === 'hardlink') members.set(name, { offset: 0, size: 0, link: archiveName(e.linkpath) });
      }
    } catch (e) {
      throw e instanceof LayerError ? new LayerError(`${path}: ${e.message}`, { ...e.data, path }, { cause: e }) : e;
    } finally {
      await file.close();
    }
    return new TarContainer(path, members);
  }

  private resolve(name: string): Member | undefined {
    let m = this.members.get(name);
    for (let hops = 0; m?.link !== undefined && hops < 16; hops++) m = this.members.get(m.link);
    return m?.link === undefined ? m : undefined;
  }

  has(name: string): boolean {
    return this.resolve(name) !== undefined;
  }

  async size(name: string): Promise<number> {
    return this.member(name).size;
  }

  private member(name: string): Member {
    const m = this.resolve(name);
    if (!m) throw new LayerError(`${this.path}: the archive has no file ${JSON.stringify(name)}`, { path: this.path, member: name });
    return m;
  }

  open(name: string): AsyncIterable<Buffer> {
    const m = this.member(name);
    if (m.size === 0) return (async function* () {})();
    return readFileChunks(this.path, m.offset, m.size);
  }

  openSync(name: string, reuse: boolean): Iterable<Buffer> {
    const m = this.member(name);
    return m.size === 0 ? [] : readFileChunksSync(this.path, m.offset, m.size, reuse);
  }
}

async function readAll(c: Container, name: string, what: string): Promise<Buffer> {
  if (!(await c.has(name))) throw new LayerError(`${c.describe}: ${what} ${name} is missing`, { source: c.describe, member: name });
  const size = await c.size(name);
  if (size > MAX_JSON_BYTES) throw new LayerError(`${c.describe}: ${what} ${name} is ${size} bytes, more than the ${MAX_JSON_BYTES} a JSON document may be`, { source: c.describe, member: name });
  const parts: Buffer[] = [];
  for await (const chunk of c.open(name)) parts.push(chunk);
  return Buffer.concat(parts);
}

async function readJson(c: Container, name: string, what: string, digest?: string): Promise<Record<string, unknown>> {
  const bytes = await readAll(c, name, what);
  if (digest !== undefined) {
    const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (got !== digest) throw new LayerError(`${c.describe}: ${what} ${name} has digest ${got}, its descriptor says ${digest}`, { source: c.describe, member: name });
  }
  return parseJson(c, name, what, bytes);
}

function parseJson(c: Container, name: string, what: string, bytes: Buffer): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    if (v === null || typeof v !== 'object') throw new Error('not an object or array');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new LayerError(`${c.describe}: ${what} ${name} is not valid JSON (${(e as Error).message})`, { source: c.describe, member: name }, { cause: e });
  }
}

function diffIdsOf(config: Record<string, unknown>, where: string): string[] {
  const rootfs = config.rootfs as { diff_ids?: unknown } | undefined;
  const ids = rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string' && DIGEST_RE.test(d))) {
    throw new LayerError(`${where}: image config has no rootfs.diff_ids list of sha256 digests`, { where });
  }
  return ids as string[];
}

/** The Go/OCI architecture name of this host. */
export function hostPlatform(): { os: string; architecture: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

function descriptors(v: unknown, where: string): Descriptor[] {
  if (!Array.isArray(v)) throw new LayerError(`${where}: "manifests" is not a list`, { where });
  return v as Descriptor[];
}

/** Images of an OCI layout: each manifest of index.json (an index inside picks the host's platform). */
async function ociImages(c: Container, source: string, kind: SourceKind): Promise<SourceImage[]> {
  const index = await readJson(c, 'index.json', 'index');
  const byDigest = new Map<string, SourceImage>();
  for (const top of descriptors(index.manifests, `${source}: index.json`)) {
    const names = [top.annotations?.['io.containerd.image.name'] ?? top.annotations?.['org.opencontainers.image.ref.name']].filter((n): n is string => typeof n === 'string' && n !== '');
    const refs = [top.annotations?.['io.containerd.image.name'], top.annotations?.['org.opencontainers.image.ref.name']].filter((n): n is string => typeof n === 'string' && n !== '');
    let desc = top;
    for (let depth = 0; desc.mediaType === MEDIA.ociIndex || desc.mediaType === MEDIA.dockerList; depth++) {
      if (depth > 4) throw new LayerError(`${source}: image indexes nested more than 4 deep`, { source });
      const nested = await readJson(c, blobPath(desc.digest, `${source}: index`), 'image index', desc.digest);
      const list = descriptors(nested.manifests, `${source}: index ${desc.digest}`);
      const host = hostPlatform();
      const match = list.length === 1 ? list[0] : list.find((d) => d.platform?.os === host.os && d.platform?.architecture === host.architecture);
      if (!match) {
        const offered = list.map((d) => `${d.platform?.os}/${d.platform?.architecture}`).join(', ');
        throw new LayerError(`${source}: image index ${desc.digest} has no ${host.os}/${host.architecture} manifest (it offers ${offered})`, { source, offered });
      }
      desc = match;
    }
    if (desc.mediaType !== undefined && desc.mediaType !== MEDIA.ociManifest && desc.mediaType !== MEDIA.dockerManifest) {
      throw new LayerError(`${source}: descriptor ${desc.digest} has media type ${desc.mediaType}, not an image manifest`, { source, mediaType: desc.mediaType });
    }
    const key = String(desc.digest);
    const seen = byDigest.get(key);
    if (seen) {
      for (const n of names) if (!seen.names.includes(n)) seen.names.push(n);
      for (const n of refs) if (!seen.refs!.includes(n)) seen.refs!.push(n);
      continue;
    }
    const where = `${source}: manifest ${desc.digest}`;
    const manifest = await readJson(c, blobPath(desc.digest, where), 'manifest', desc.digest);
    const config = manifest.config as Descriptor | undefined;
    const configJson = await readJson(c, blobPath(config?.digest, `${where} config`), 'image config', config?.digest);
    const diffIds = diffIdsOf(configJson, where);
    const layers = manifest.layers;
    if (!Array.isArray(layers)) throw new LayerError(`${where}: "layers" is not a list`, { source });
    if (layers.length !== diffIds.length) {
      throw new LayerError(`${where}: ${layers.length} layers but the config lists ${diffIds.length} diff_ids`, { source });
    }
    const blobs: LayerBlob[] = [];
    for (const [i, l] of (layers as Descriptor[]).entries()) {
      const name = blobPath(l.digest, `${where} layer ${i}`);
      if (l.mediaType !== undefined && !LAYER_MEDIA_RE.test(l.mediaType)) {
        throw new LayerError(`${where}: layer ${i} has media type ${l.mediaType}, not a layer tar`, { source, mediaType: l.mediaType });
      }
      // Checked now, before the image is touched: a missing blob is found by the import otherwise.
      if (!(await c.has(name))) {
        const image = names[0] ?? `manifest ${desc.digest}`;
        throw new LayerError(`${source}: image ${image}: layer ${i} blob ${l.digest} is missing (${name})`, { source, image, blob: l.digest, member: name });
      }
      blobs.push({ index: i, origin: `${source}:${name}`, mediaType: l.mediaType, blobDigest: l.digest, diffId: diffIds[i], size: l.size, open: () => c.open(name), openSync: (reuse) => c.openSync(name, reuse) });
    }
    const image: SourceImage = { source, kind, names, refs, layers: blobs, manifestDigest: desc.digest, configDigest: config?.digest, runConfig: runConfigOf(configJson) };
    byDigest.set(key, image);
  }
  if (!byDigest.size) throw new LayerError(`${source}: index.json lists no image`, { source });
  return [...byDigest.values()];
}

/** Images of a `docker save` archive: one per manifest.json entry. */
async function dockerImages(c: Container, source: string): Promise<SourceImage[]> {
  const manifest = await readJson(c, 'manifest.json', 'manifest');
  if (!Array.isArray(manifest)) throw new LayerError(`${source}: manifest.json is not a list`, { source });
  const images: SourceImage[] = [];
  for (const [n, m] of (manifest as Record<string, unknown>[]).entries()) {
    const where = `${source}: manifest.json[${n}]`;
    const configName = memberName(m.Config, `${where}.Config`);
    const configBytes = await readAll(c, configName, 'image config');
    const configJson = parseJson(c, configName, 'image config', configBytes);
    const diffIds = diffIdsOf(configJson, where);
    const layers = m.Layers;
    if (!Array.isArray(layers) || layers.length !== diffIds.length) {
      throw new LayerError(`${where}: Layers must list one file per diff_id (${diffIds.length})`, { source });
    }
    const names = Array.isArray(m.RepoTags) ? (m.RepoTags as unknown[]).filter((t): t is string => typeof t === 'string') : [];
    images.push({
      source,
      kind: 'docker-archive',
      names,
      configDigest: sha256Of(configBytes),
      runConfig: runConfigOf(configJson),
      layers: layers.map((l, i): LayerBlob => {
        const name = memberName(l, `${where}.Layers[${i}]`);
        if (!c.has(name)) {
          const image = names[0] ?? `manifest.json[${n}]`;
          throw new LayerError(`${source}: image ${image}: layer ${i} file ${name} is missing`, { source, image, member: name });
        }
        const blob = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name);
        return { index: i, origin: `${source}:${name}`, blobDigest: blob ? `sha256:${blob[1]}` : undefined, diffId: diffIds[i], open: () => c.open(name), openSync: (reuse) => c.openSync(name, reuse) };
      }),
    });
  }
  return images;
}

/** First entries that mark an archive of a whole image rather than a layer. */
const IMAGE_ARCHIVE_NAME = /^(\.\/)?(manifest\.json|index\.json|oci-layout|repositories|blobs\/?|[0-9a-f]{64}(\/|\.json)?)$/;
/** Every member of a docker or OCI archive has one of these names. */
const IMAGE_ARCHIVE_MEMBER = /^(manifest\.json|index\.json|oci-layout|repositories|blobs(\/.*)?|[0-9a-f]{64}(\.json|\/.*)?)$/;

async function compressionOf(path: string): Promise<ReturnType<typeof detectCompression>> {
  const fh = await fs.open(path, constants.O_RDONLY);
  try {
    const b = Buffer.alloc(COMPRESSION_PROBE_BYTES);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    return detectCompression(b.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

function fileLayer(path: string, index: number): LayerBlob {
  return { index, origin: path, open: () => readFileChunks(path), openSync: (reuse) => readFileChunksSync(path, 0, Infinity, reuse) };
}

/** What a single path is: an image (layout dir, docker or OCI archive) or one plain layer tar. */
async function classify(path: string): Promise<{ images: SourceImage[] } | { layer: string }> {
  let st;
  try {
    st = await fs.stat(path);
  } catch (e) {
    throw new UsageError(`${path}: cannot read the layer source (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { source: path });
  }
  if (st.isDirectory()) {
    const c = new DirContainer(path);
    if (!(await c.has('index.json'))) throw new UsageError(`${path} is a directory without index.json: not an OCI image layout`, { source: path });
    return { images: await ociImages(c, path, 'oci-layout') };
  }
  if (!st.isFile()) throw new UsageError(`${path} is neither a file nor a directory`, { source: path });
  const compression = await compressionOf(path);
  if (compression !== 'none') {
    // A compressed archive cannot be indexed by offset: look at its first entry only.
    for await (const e of readTar(decompress(createReadStream(path), path))) {
      if (archiveName(e.path) === '.') continue;
      if (IMAGE_ARCHIVE_NAME.test(archiveName(e.path))) {
        throw new UsageError(`${path} is a ${compression}-compressed image archive (its first entry is ${e.path}): decompress it first (${compression === 'gzip' ? 'gunzip' : 'zstd -d'}), then import the .tar`, { source: path });
      }
      break;
    }
    return { layer: path };
  }
  const c = await TarContainer.index(path, (name) => IMAGE_ARCHIVE_MEMBER.test(name));
  if (c?.has('manifest.json')) return { images: await dockerImages(c, path) };
  if (c?.has('index.json') && c.has('oci-layout')) return { images: await ociImages(c, path, 'oci-archive') };
  return { layer: path };
}

/**
 * Reads the given sources in order. Images (layout directories, docker or OCI archives) stand
 * alone; each run of consecutive plain layer tars forms one image, bottom layer first.
 */
export async function readSources(paths: readonly string[]): Promise<SourceImage[]> {
  if (!paths.length) throw new UsageError('no layer source given: name an OCI layout directory, a docker save archive, or layer tars', {});
  const images: SourceImage[] = [];
  let run: SourceImage | undefined;
  for (const path of paths) {
    const what = await classify(path);
    if ('layer' in what) {
      if (!run) {
        run = { source: path, kind: 'layer-tars', names: [], layers: [] };
        images.push(run);
      } else run.source += ` ${path}`;
      run.layers.push(fileLayer(path, run.layers.length));
      continue;
    }
    run = undefined;
    images.push(...what.images);
  }
  return images;
}

export interface LayerDigests {
  /** Hex sha256 of the uncompressed tar: the layer's name. */
  digest: string;
  /** "sha256:<hex>", the OCI diff_id. */
  diffId: string;
  /** "sha256:<hex>" of the stored bytes. */
  blobDigest: string;
  /** Uncompressed bytes. */
  bytes: number;
  /** Stored bytes. */
  storedBytes: number;
}

export interface LayerStream {
  /**
   * The uncompressed tar, hashed as it is read. Stopping early does not close the source.
   * `tar.readSync()` gives the same bytes synchronously when the blob is an uncompressed file.
   */
  tar: AsyncIterable<Buffer> & SyncTarSource;
  /** Reads what is left (past the end-of-archive marker), checks both digests, returns them. */
  finish(): Promise<LayerDigests>;
  /** Releases the source without checking (after a failure). */
  close(): Promise<void>;
}

/**
 * Opens a layer for reading. `onBytes` is told the stored and uncompressed bytes read so far.
 * `finish()` throws LayerError when the stored digest or the diff_id differ from the manifest's.
 */
export function openLayer(blob: LayerBlob, onBytes?: (p: { storedBytes: number; bytes: number }) => void): LayerStream {
  const blobHash = createHash('sha256');
  const tarHash = createHash('sha256');
  let storedBytes = 0;
  let bytes = 0;
  // An uncompressed blob is the tar itself: one hash serves for both (sha256 costs about
  // 0.1 s per 130 MiB here, so this saves little, but nothing is hashed twice).
  let compressed: boolean | undefined;
  const raw = (async function* () {
    try {
      for await (const chunk of blob.open()) {
        if (compressed === undefined) {
          // Plain only when the first bytes are there and are no compression's magic.
          compressed = chunk.length < COMPRESSION_PROBE_BYTES || detectCompression(chunk) !== 'none';
        }
        if (compressed) blobHash.update(chunk);
        storedBytes += chunk.length;
        yield chunk;
      }
    } catch (error) {
      throw readError(error, blob.origin);
    }
  })();
  const inner = decompress(raw, blob.origin)[Symbol.asyncIterator]();
  let finished = false;
  const pull = async (): Promise<IteratorResult<Buffer>> => {
    const r = await inner.next();
    if (!r.done) {
      tarHash.update(r.value);
      bytes += r.value.length;
      onBytes?.({ storedBytes, bytes });
    }
    return r;
  };
  // The synchronous reading of an uncompressed file (tar.readSync), once chosen.
  let sync: Iterator<Buffer> | undefined;
  const pullSync = (): IteratorResult<Buffer> => {
    let r: IteratorResult<Buffer>;
    try {
      r = sync!.next();
    } catch (error) {
      throw readError(error, blob.origin);
    }
    if (!r.done) {
      tarHash.update(r.value);
      storedBytes += r.value.length;
      bytes += r.value.length;
      onBytes?.({ storedBytes, bytes });
    }
    return r;
  };
  const tar: AsyncIterable<Buffer> & SyncTarSource = {
    [Symbol.asyncIterator]: () => ({
      next: pull,
      return: async () => ({ done: true, value: undefined }),
    }),
    readSync: () => {
      if (!blob.openSync || sync || compressed !== undefined) return undefined;
      let it: Iterator<Buffer>;
      let first: IteratorResult<Buffer>;
      try {
        it = blob.openSync(true)[Symbol.iterator]();
        first = it.next();
      } catch (error) {
        throw readError(error, blob.origin);
      }
      if (first.done || first.value.length < COMPRESSION_PROBE_BYTES || detectCompression(first.value) !== 'none') {
        // Compressed (or too short to tell): the asynchronous path reads it from the start.
        it.return?.();
        return undefined;
      }
      compressed = false;
      let pending: IteratorResult<Buffer> | undefined = first;
      sync = {
        next: () => {
          const r = pending ?? it.next();
          pending = undefined;
          return r;
        },
        return: (value?: unknown) => {
          it.return?.();
          return { done: true, value: value as Buffer };
        },
      };
      return { next: pullSync, return: (value?: unknown) => ({ done: true, value: value as Buffer }) };
    },
  };
  return {
    tar,
    async finish(): Promise<LayerDigests> {
      if (finished) throw new LayerError(`${blob.origin}: layer stream finished twice`, { origin: blob.origin });
      finished = true;
      if (sync) {
        while (!pullSync().done) {
          /* hash the rest */
        }
        sync.return?.();
      }
      while (!sync && !(await pull()).done) {
        /* hash the rest */
      }
      const digest = tarHash.digest('hex');
      const blobHex = compressed === false ? digest : blobHash.digest('hex');
      const result: LayerDigests = { digest, diffId: `sha256:${digest}`, blobDigest: `sha256:${blobHex}`, bytes, storedBytes };
      if (blob.blobDigest !== undefined && blob.blobDigest !== result.blobDigest) {
        throw new LayerError(`${blob.origin}: stored layer has digest ${result.blobDigest}, the manifest says ${blob.blobDigest}: the image is corrupt`, { origin: blob.origin, expected: blob.blobDigest, got: result.blobDigest });
      }
      if (blob.diffId !== undefined && blob.diffId !== result.diffId) {
        throw new LayerError(`${blob.origin}: uncompressed layer has diff_id ${result.diffId}, the image config says ${blob.diffId}: the image is corrupt`, { origin: blob.origin, expected: blob.diffId, got: result.diffId });
      }
      return result;
    },
    async close(): Promise<void> {
      finished = true;
      sync?.return?.();
      await inner.return?.(undefined);
    },
  };
}

/** The digests of a layer, read once to the end (for a plain tar whose diff_id is not known yet). */
export async function layerDigests(blob: LayerBlob): Promise<LayerDigests> {
  const s = openLayer(blob);
  try {
    return await s.finish();
  } catch (e) {
    await s.close();
    throw e;
  }
}

/** A short name for an image in messages: its first reference name, else the source file's name. */
export function sourceLabel(image: SourceImage): string {
  return image.names[0] ?? basename(image.source.split(' ')[0] ?? image.source);
}
