import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LayerError, UsageError } from '../../../src/errors.js';
import { applyLayer } from '../../../src/layers/apply.js';
import { layerDigests, openLayer, readSources, type SourceImage } from '../../../src/layers/source.js';
import { decompress } from '../../../src/layers/compression.js';
import { run } from '../../../src/tools/exec.js';
import { listTree, sha256 as sha, tarOf, withTmp, writeOciLayout, type TestEntry } from './helpers.js';


const LAYERS: TestEntry[][] = [
  [
    { path: 'etc', type: 'directory' },
    { path: 'etc/os-release', type: 'file', text: 'ID=test\n' },
  ],
  [
    { path: 'etc/.wh.os-release', type: 'file', text: '' },
    { path: 'app/run', type: 'file', text: 'run', mode: 0o755 },
  ],
];

interface Built {
  tars: Buffer[];
  blobs: Buffer[];
}

async function layerBlobs(gzip: boolean): Promise<Built> {
  const tars = await Promise.all(LAYERS.map((l) => tarOf(l)));
  return { tars, blobs: tars.map((t) => (gzip ? gzipSync(t) : t)) };
}

/** An OCI image layout of LAYERS (gzip), named docker.io/library/test:1 and latest. */
async function ociLayout(dir: string, opts: { platformIndex?: boolean; corruptLayer?: number; wrongDiffId?: number } = {}): Promise<Built> {
  const built = await layerBlobs(true);
  await writeOciLayout(dir, built.tars, { ...opts, gzip: true, names: ['docker.io/library/test:1', 'latest'] });
  return built;
}

/** A `docker save` archive as Docker 25 writes it: blobs, and legacy layer.tar symlinks to them. */
async function dockerArchive(path: string): Promise<Built> {
  const built = await layerBlobs(false);
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: built.tars.map(sha) } }));
  const entries: TestEntry[] = [{ path: 'blobs', type: 'directory' }, { path: 'blobs/sha256', type: 'directory' }];
  for (const t of built.tars) entries.push({ path: `blobs/sha256/${sha(t).slice(7)}`, type: 'file', bytes: t });
  entries.push({ path: `blobs/sha256/${sha(config).slice(7)}`, type: 'file', bytes: config });
  const legacy = 'a'.repeat(64);
  entries.push({ path: legacy, type: 'directory' }, { path: `${legacy}/layer.tar`, type: 'symlink', linkpath: `../blobs/sha256/${sha(built.tars[1]!).slice(7)}` });
  entries.push({
    path: 'manifest.json',
    type: 'file',
    text: JSON.stringify([{ Config: `blobs/sha256/${sha(config).slice(7)}`, RepoTags: ['test:2', 'test:latest'], Layers: [`blobs/sha256/${sha(built.tars[0]!).slice(7)}`, `${legacy}/layer.tar`] }]),
  });
  await fs.writeFile(path, await tarOf(entries));
  return built;
}

async function applyAll(image: SourceImage, root: string): Promise<string[]> {
  const ids: string[] = [];
  for (const blob of image.layers) {
    const s = openLayer(blob);
    await applyLayer(s.tar, root);
    ids.push((await s.finish()).diffId);
  }
  return ids;
}

describe('readSources', () => {
  it('a real .tar.zst layer file (Debian zstd) is a plain layer; its diff_id is the uncompressed tar\'s', async () => {
    await withTmp(async (dir) => {
      const tar = await tarOf([{ path: 'etc', type: 'directory' }, { path: 'etc/zst', type: 'file', text: 'zstd' }]);
      await fs.writeFile(join(dir, 'l.tar'), tar);
      await run('zstd', ['-q', join(dir, 'l.tar'), '-o', join(dir, 'l.tar.zst')]);
      const [image] = await readSources([join(dir, 'l.tar.zst')]);
      expect(image!.kind).toBe('layer-tars');
      expect((await layerDigests(image!.layers[0]!)).diffId).toBe(sha(tar));
      const root = join(dir, 'root');
      await fs.mkdir(root);
      await applyAll(image!, root);
      expect(await fs.readFile(join(root, 'etc/zst'), 'utf8')).toBe('zstd');
    });
  });

  it('a docker save archive re-packed with `tar -cf x.tar .` (members named ./manifest.json) is an image, not a layer', async () => {
    await withTmp(async (dir) => {
      await dockerArchive(join(dir, 'img.tar'));
      await fs.mkdir(join(dir, 'x'));
      await run('tar', ['-xf', join(dir, 'img.tar'), '-C', join(dir, 'x')]);
      await run('tar', ['-cf', join(dir, 'dot.tar'), '-C', join(dir, 'x'), '.']);
      const first = (await run('tar', ['-tf', join(dir, 'dot.tar')])).stdout.split('\n')[0];
      expect(first).toBe('./');
      const images = await readSources([join(dir, 'dot.tar')]);
      expect(images.map((i) => [i.kind, i.names, i.layers.length])).toEqual([['docker-archive', ['test:2', 'test:latest'], 2]]);
      const root = join(dir, 'root');
      await fs.mkdir(root);
      await applyAll(images[0]!, root);
      expect(await fs.readdir(root)).not.toContain('manifest.json');
    });
  });


  it('an OCI layout: one image with both its names, gzip layers, verified digests', async () => {
    await withTmp(async (dir) => {
      const built = await ociLayout(join(dir, 'oci'));
      const images = await readSources([join(dir, 'oci')]);
      expect(images).toHaveLength(1);
      expect(images[0]).toMatchObject({ kind: 'oci-layout', names: ['docker.io/library/test:1', 'latest'] });
      expect(images[0]!.layers.map((l) => l.diffId)).toEqual(built.tars.map(sha));
      const root = join(dir, 'root');
      await fs.mkdir(root);
      expect(await applyAll(images[0]!, root)).toEqual(built.tars.map(sha));
      expect(Object.keys(await listTree(root))).toEqual(['app', 'app/run', 'etc']);
    });
  });

  it('an OCI index inside the layout: the host platform is chosen', async () => {
    await withTmp(async (dir) => {
      const built = await ociLayout(join(dir, 'oci'), { platformIndex: true });
      const [image] = await readSources([join(dir, 'oci')]);
      expect(image!.layers.map((l) => l.diffId)).toEqual(built.tars.map(sha));
    });
  });

  it('a docker save archive: RepoTags, layers by blob path and through a layer.tar symlink', async () => {
    await withTmp(async (dir) => {
      const built = await dockerArchive(join(dir, 'img.tar'));
      const images = await readSources([join(dir, 'img.tar')]);
      expect(images).toHaveLength(1);
      expect(images[0]).toMatchObject({ kind: 'docker-archive', names: ['test:2', 'test:latest'] });
      const root = join(dir, 'root');
      await fs.mkdir(root);
      expect(await applyAll(images[0]!, root)).toEqual(built.tars.map(sha));
      expect(Object.keys(await listTree(root))).toEqual(['app', 'app/run', 'etc']);
    });
  });

  it('plain layer tars in order form one image; .tar.gz is gunzipped', async () => {
    await withTmp(async (dir) => {
      const built = await layerBlobs(false);
      await fs.writeFile(join(dir, 'l0.tar.gz'), gzipSync(built.tars[0]!));
      await fs.writeFile(join(dir, 'l1.tar'), built.tars[1]!);
      const images = await readSources([join(dir, 'l0.tar.gz'), join(dir, 'l1.tar')]);
      expect(images).toHaveLength(1);
      expect(images[0]).toMatchObject({ kind: 'layer-tars', names: [] });
      expect(images[0]!.layers.map((l) => l.diffId)).toEqual([undefined, undefined]);
      const d = await layerDigests(images[0]!.layers[0]!);
      expect(d.diffId).toBe(sha(built.tars[0]!));
      expect(d.blobDigest).toBe(sha(gzipSync(built.tars[0]!)));
      // Uncompressed: the blob is the tar, one digest for both.
      const plain = await layerDigests(images[0]!.layers[1]!);
      expect(plain).toMatchObject({ diffId: sha(built.tars[1]!), blobDigest: sha(built.tars[1]!), bytes: built.tars[1]!.length, storedBytes: built.tars[1]!.length });
    });
  });

  it('a gzip-compressed image archive is refused with what to do', async () => {
    await withTmp(async (dir) => {
      await dockerArchive(join(dir, 'img.tar'));
      // GNU tar --sort=name puts blobs/ first, as docker save does.
      await fs.writeFile(join(dir, 'img.tar.gz'), gzipSync(await fs.readFile(join(dir, 'img.tar'))));
      await expect(readSources([join(dir, 'img.tar.gz')])).rejects.toThrow(/is a gzip-compressed image archive \(its first entry is blobs\/?\): decompress it first \(gunzip\)/);
    });
  });

  it('an OCI layout whose manifest names a layer blob that is not there: a LayerError naming the blob and the image', async () => {
    await withTmp(async (dir) => {
      const built = await ociLayout(join(dir, 'oci'));
      const missing = sha(built.blobs[1]!);
      await fs.rm(join(dir, 'oci/blobs/sha256', missing.slice(7)));
      const e = await readSources([join(dir, 'oci')]).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LayerError);
      expect((e as Error).message).toBe(`${join(dir, 'oci')}: image docker.io/library/test:1: layer 1 blob ${missing} is missing (blobs/sha256/${missing.slice(7)})`);
      expect((e as LayerError).data).toMatchObject({ source: join(dir, 'oci'), image: 'docker.io/library/test:1', blob: missing });
    });
  });

  it('a docker save archive whose manifest names a layer file that is not there: a LayerError', async () => {
    await withTmp(async (dir) => {
      const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha(Buffer.from('x'))] } }));
      const configName = `${sha(config).slice(7)}.json`;
      const entries: TestEntry[] = [
        { path: configName, type: 'file', bytes: config },
        { path: 'manifest.json', type: 'file', text: JSON.stringify([{ Config: configName, RepoTags: ['test:3'], Layers: [`${'b'.repeat(64)}/layer.tar`] }]) },
      ];
      await fs.writeFile(join(dir, 'img.tar'), await tarOf(entries));
      const e = await readSources([join(dir, 'img.tar')]).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LayerError);
      expect((e as Error).message).toBe(`${join(dir, 'img.tar')}: image test:3: layer 0 file ${'b'.repeat(64)}/layer.tar is missing`);
    });
  });

  it('missing source, directory without index.json: UsageError', async () => {
    await withTmp(async (dir) => {
      await expect(readSources([join(dir, 'nope.tar')])).rejects.toBeInstanceOf(UsageError);
      await expect(readSources([dir])).rejects.toThrow(/without index.json: not an OCI image layout/);
    });
  });
});

describe('layer digests are checked while streaming', () => {
  it('a corrupt stored blob is a LayerError', async () => {
    await withTmp(async (dir) => {
      await ociLayout(join(dir, 'oci'), { corruptLayer: 1 });
      const [image] = await readSources([join(dir, 'oci')]);
      const e = await layerDigests(image!.layers[1]!).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LayerError);
      expect((e as Error).message).toMatch(/blobs\/sha256\/[0-9a-f]{64}: stored layer has digest sha256:[0-9a-f]{64}, the manifest says sha256:[0-9a-f]{64}: the image is corrupt/);
    });
  });

  it('a diff_id that does not match the config is a LayerError naming both', async () => {
    await withTmp(async (dir) => {
      const built = await ociLayout(join(dir, 'oci'), { wrongDiffId: 0 });
      const [image] = await readSources([join(dir, 'oci')]);
      await expect(layerDigests(image!.layers[0]!)).rejects.toThrow(new RegExp(`uncompressed layer has diff_id ${sha(built.tars[0]!)}, the image config says sha256:`));
    });
  });

  it('a layer blob that cannot be read (gone after the sources were read) is a LayerError, not a raw ENOENT', async () => {
    await withTmp(async (dir) => {
      const built = await ociLayout(join(dir, 'oci'));
      const [image] = await readSources([join(dir, 'oci')]);
      await fs.rm(join(dir, 'oci/blobs/sha256', sha(built.blobs[0]!).slice(7)));
      const e = await layerDigests(image!.layers[0]!).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LayerError);
      expect((e as Error).message).toMatch(/blobs\/sha256\/[0-9a-f]{64}: cannot read the layer \(ENOENT: no such file or directory/);
      // decompress on its own: a read error of its input is a LayerError naming what it reads.
      const failing = (async function* (): AsyncGenerator<Buffer> {
        throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      })();
      const d = await (async () => {
        for await (const _ of decompress(failing, 'x.tar')) void _;
      })().catch((err: unknown) => err);
      expect(d).toBeInstanceOf(LayerError);
      expect((d as Error).message).toBe('x.tar: cannot read the layer (EIO: i/o error, read)');
    });
  });

  it('the diff_id covers bytes after the end-of-archive marker too', async () => {
    await withTmp(async (dir) => {
      const tar = Buffer.concat([await tarOf(LAYERS[0]!), Buffer.alloc(10240 - 3072)]);
      await fs.writeFile(join(dir, 'padded.tar'), tar);
      const [image] = await readSources([join(dir, 'padded.tar')]);
      const s = openLayer(image!.layers[0]!);
      const root = join(dir, 'root');
      await fs.mkdir(root);
      await applyLayer(s.tar, root);
      expect((await s.finish()).diffId).toBe(sha(tar));
    });
  });
});

describe('an uncompressed layer file is also readable synchronously (tar.readSync)', () => {
  it('the same bytes and digests as the asynchronous path; a gzip blob is not; a missing file is a LayerError', async () => {
    await withTmp(async (dir) => {
      // Bigger than one 1 MiB read, so that the reused buffer is read into more than once.
      const tar = await tarOf([...LAYERS[0]!, { path: 'big', type: 'file', bytes: Buffer.alloc(2.5 * 1024 * 1024, 'ab') }]);
      await fs.writeFile(join(dir, 'l.tar'), tar);
      await fs.writeFile(join(dir, 'l.tar.gz'), gzipSync(tar));
      const [plain] = await readSources([join(dir, 'l.tar')]);
      const s = openLayer(plain!.layers[0]!);
      const it = s.tar.readSync!()!;
      expect(it).toBeDefined();
      const parts: Buffer[] = [];
      // Only the first MiB is read here: finish() reads and hashes the rest.
      const first = it.next();
      parts.push(Buffer.from(first.value as Buffer));
      expect(parts[0]!.equals(tar.subarray(0, parts[0]!.length))).toBe(true);
      expect(await s.finish()).toMatchObject({ diffId: sha(tar), blobDigest: sha(tar), bytes: tar.length, storedBytes: tar.length });
      const [gz] = await readSources([join(dir, 'l.tar.gz')]);
      const g = openLayer(gz!.layers[0]!);
      expect(g.tar.readSync!()).toBeUndefined();
      const got: Buffer[] = [];
      for await (const c of g.tar) got.push(c);
      expect(Buffer.concat(got).equals(tar)).toBe(true);
      expect((await g.finish()).diffId).toBe(sha(tar));
      await fs.rm(join(dir, 'l.tar'));
      const gone = openLayer(plain!.layers[0]!);
      const e = (() => {
        try {
          gone.tar.readSync!();
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(LayerError);
      expect((e as Error).message).toMatch(/l\.tar: cannot read the layer \(ENOENT/);
      await gone.close();
    });
  });
});
