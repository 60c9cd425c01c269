import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LayerError } from '../../../src/errors.js';
import { BLOCK, decodeHeader, decodeNumber, encodeHeader, encodePax, parsePax, splitUstarName } from '../../../src/layers/tar-header.js';
import { decompress, detectCompression } from '../../../src/layers/compression.js';
import { readTar, readTarSync, type TarEntryHeader } from '../../../src/layers/tar-read.js';
import { encodeEntryHeader, writeTar } from '../../../src/layers/tar-write.js';
import { run } from '../../../src/tools/exec.js';
import { T0, chunksOf, collect, syncSourceOf, tarOf, toWriteEntry, withTmp, type TestEntry } from './helpers.js';

/**
 * Made with Python 3's tarfile (an independent writer), USTAR_FORMAT, uname = gname = '':
 *   ti = tarfile.TarInfo('hello.txt'); ti.size = 6; ti.mode = 0o644; ti.mtime = 1700000000
 *   ti = tarfile.TarInfo('dir'); ti.type = DIRTYPE; ti.mode = 0o755; ti.uid = ti.gid = 1000; same mtime
 * Each is the 512-byte header block, with trailing zero bytes dropped here (they are zero to 512).
 */
const PY_HELLO =
  '68656c6c6f2e747874' + '00'.repeat(91) +
  '3030303036343400' + '3030303030303000' + '3030303030303000' + '303030303030303030303600' + '313435323437373034303000' + '30303736343700' + '20' + '30' +
  '00'.repeat(100) + '75737461720030' + '30';
const PY_DIR =
  '6469722f' + '00'.repeat(96) +
  '3030303037353500' + '3030303137353000' + '3030303137353000' + '303030303030303030303000' + '313435323437373034303000' + '30303636313700' + '20' + '35' +
  '00'.repeat(100) + '75737461720030' + '30';

function block(hexPrefix: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  Buffer.from(hexPrefix, 'hex').copy(b);
  return b;
}

async function entriesOf(tar: Buffer | AsyncIterable<Buffer>): Promise<(TarEntryHeader & { text?: string })[]> {
  const out: (TarEntryHeader & { text?: string })[] = [];
  for await (const e of readTar(Buffer.isBuffer(tar) ? chunksOf(tar) : tar)) {
    const { body, ...h } = e;
    const data = await collect(body());
    out.push(e.type === 'file' ? { ...h, text: data.toString() } : h);
  }
  return out;
}

/** entriesOf through the synchronous reader, over `size`-byte chunks of one reused buffer. */
function entriesOfSync(tar: Buffer, size = 700): (TarEntryHeader & { text?: string })[] {
  const out: (TarEntryHeader & { text?: string })[] = [];
  for (const e of readTarSync(syncSourceOf(tar, size).readSync!()!)) {
    const { body, bodySync, ...h } = e;
    const parts: Buffer[] = [];
    for (const c of bodySync()) parts.push(Buffer.from(c)); // a view is valid until the next is taken
    const data = Buffer.concat(parts);
    out.push(e.type === 'file' ? { ...h, text: data.toString() } : h);
  }
  return out;
}

/** What a reader made of `tar`: its entries, or its error's class and message. */
async function outcome(read: () => Promise<unknown> | unknown): Promise<unknown> {
  try {
    return { entries: await read() };
  } catch (e) {
    return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

async function expectLayerError(p: Promise<unknown>, pattern: RegExp): Promise<LayerError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LayerError);
  expect((e as Error).message).toMatch(pattern);
  return e as LayerError;
}

describe('tar header encode/decode', () => {
  it('writes the same header bytes as Python tarfile (ustar)', () => {
    const hello = encodeEntryHeader(toWriteEntry({ path: 'hello.txt', type: 'file', text: 'hello\n' }));
    expect(hello.toString('hex')).toBe(block(PY_HELLO).toString('hex'));
    const dir = encodeEntryHeader(toWriteEntry({ path: 'dir', type: 'directory', uid: 1000, gid: 1000 }));
    expect(dir.toString('hex')).toBe(block(PY_DIR).toString('hex'));
  });

  it('decodes those header bytes field by field', () => {
    const h = decodeHeader(block(PY_DIR), 0);
    expect(h).toMatchObject({ name: 'dir/', type: 'directory', mode: 0o755, uid: 1000, gid: 1000, size: 0, mtime: T0, format: 'ustar' });
    expect(decodeHeader(block(PY_HELLO), 512)).toMatchObject({ name: 'hello.txt', type: 'file', mode: 0o644, size: 6 });
  });

  it('refuses a header whose checksum does not match', () => {
    const b = block(PY_HELLO);
    b[0] = 0x48; // 'H'
    expect(() => decodeHeader(b, 1024)).toThrow(/tar header at byte 1024: checksum 4007 does not match the header's 3975/);
  });

  it('reads octal with spaces and NULs, GNU base-256, and refuses the rest', () => {
    expect(decodeNumber(Buffer.from('  1750 \0'), 'uid', 0)).toBe(1000);
    expect(decodeNumber(Buffer.from('\0\0\0\0\0\0\0\0'), 'uid', 0)).toBe(0);
    expect(decodeNumber(Buffer.from([0x80, 0, 0, 0, 0, 0, 0x01, 0x00]), 'uid', 0)).toBe(256);
    expect(decodeNumber(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]), 'mtime', 0)).toBe(-2);
    expect(() => decodeNumber(Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'size', 0)).toThrow(LayerError);
    expect(() => decodeNumber(Buffer.from('00001789'), 'size', 7)).toThrow(/size field "00001789" is not an octal number/);
    expect(() => decodeNumber(Buffer.from(' 12 34\0'), 'mode', 0)).toThrow(/mode field "12 34" is not an octal number/);
    expect(decodeNumber(Buffer.from('77777777777777777\0'), 'size', 0)).toBe(8 ** 17 - 1);
    expect(() => decodeNumber(Buffer.from('777777777777777777'), 'size', 0)).toThrow(/size 777777777777777777 \(octal\) is out of range/);
  });

  it('splits long names into ustar prefix and name like Go, or gives up', () => {
    const long = `${'a'.repeat(120)}/${'b'.repeat(90)}`;
    expect(splitUstarName(long)).toEqual({ prefix: 'a'.repeat(120), name: 'b'.repeat(90) });
    expect(splitUstarName(`${'a'.repeat(120)}/${'b'.repeat(90)}/`)).toEqual({ prefix: 'a'.repeat(120), name: `${'b'.repeat(90)}/` });
    expect(splitUstarName(`${'a'.repeat(160)}/b`)).toBeUndefined();
    expect(splitUstarName('c'.repeat(101))).toBeUndefined();
  });

  it('parses PAX records and refuses lengths that overrun', () => {
    const body = encodePax([
      ['path', 'ünïcode/päth'],
      ['mtime', '1700000000.5'],
      ['SCHILY.xattr.user.x', 'kept'],
      ['SCHILY.xattr.security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex')],
      ['SCHILY.dev', 'ignored'],
      ['uid', '3000000'],
    ]);
    expect(parsePax(body, 0)).toEqual({
      path: 'ünïcode/päth',
      mtime: 1700000000.5,
      uid: 3000000,
      xattrs: { 'user.x': Buffer.from('kept'), 'security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex') },
    });
    // A binary value keeps its bytes, newlines and NULs included; the record's length counts them.
    expect(encodePax([['SCHILY.xattr.user.b', Buffer.from([0x0a, 0x00, 0xff])]]).toString('hex')).toBe(Buffer.from('27 SCHILY.xattr.user.b=\n\0\xff\n', 'latin1').toString('hex'));
    expect(parsePax(encodePax([['SCHILY.xattr.user.b', Buffer.from([0x0a, 0x00, 0xff])]]), 0).xattrs).toEqual({ 'user.b': Buffer.from([0x0a, 0x00, 0xff]) });
    expect(() => parsePax(encodePax([['SCHILY.xattr.', 'x']]), 0)).toThrow(/extended attribute name "" is empty/);
    expect(() => parsePax(Buffer.from('99 path=x\n'), 0)).toThrow(/claims 99 bytes but is malformed or overruns the 10-byte header/);
    expect(() => parsePax(Buffer.from('3 p\n'), 0)).toThrow(LayerError);
    expect(() => parsePax(Buffer.from('11 size=-1\n'), 0)).toThrow(/size="-1" is not a non-negative integer/);
    expect(() => parsePax(Buffer.from('9999999999999999999999 path=x\n'), 0)).toThrow(/has no length/);
  });
});

describe('writeTar and readTar', () => {
  const entries: TestEntry[] = [
    { path: 'etc', type: 'directory' },
    { path: 'etc/hostname', type: 'file', text: 'box\n', mode: 0o600, uid: 1000, gid: 100, mtime: T0 + 5 },
    { path: 'etc/link', type: 'hardlink', linkpath: 'etc/hostname' },
    { path: 'bin', type: 'symlink', linkpath: 'usr/bin' },
    { path: `${'d'.repeat(120)}/${'f'.repeat(90)}`, type: 'file', text: 'split into prefix' },
    { path: `deep/${'x'.repeat(200)}/${'y'.repeat(200)}`, type: 'file', text: 'pax path' },
    { path: 'far', type: 'symlink', linkpath: `/${'t'.repeat(150)}` },
    { path: 'big-ids', type: 'file', text: '', uid: 3_000_000, gid: 4_000_000 },
    { path: 'ünïcødé', type: 'file', text: 'utf8 name' },
    { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
    { path: 'fifo', type: 'fifo' },
    { path: 'sticky', type: 'directory', mode: 0o1777 },
  ];

  it('reads back what it wrote, field by field, across odd chunk boundaries', async () => {
    const tar = await tarOf(entries);
    const got = await entriesOf(tar);
    expect(got.map((e) => e.path)).toEqual(entries.map((e) => (e.type === 'directory' ? `${e.path}/` : e.path)));
    expect(got[1]).toMatchObject({ type: 'file', mode: 0o600, uid: 1000, gid: 100, mtime: T0 + 5, size: 4, text: 'box\n' });
    expect(got[2]).toMatchObject({ type: 'hardlink', linkpath: 'etc/hostname', size: 0 });
    expect(got[3]).toMatchObject({ type: 'symlink', linkpath: 'usr/bin' });
    expect(got[5]!.text).toBe('pax path');
    expect(got[6]!.linkpath).toBe(`/${'t'.repeat(150)}`);
    expect(got[7]).toMatchObject({ uid: 3_000_000, gid: 4_000_000 });
    expect(got[8]!.text).toBe('utf8 name');
    expect(got[9]).toMatchObject({ type: 'char', devmajor: 1, devminor: 3, mode: 0o666 });
    expect(got[11]).toMatchObject({ type: 'directory', mode: 0o1777 });
  });

  it('uses PAX only when a field does not fit ustar', async () => {
    const small = await tarOf([{ path: `${'d'.repeat(120)}/${'f'.repeat(90)}`, type: 'file', text: 'x' }]);
    expect(small.includes(Buffer.from('PaxHeader'))).toBe(false);
    const long = await tarOf([{ path: 'p'.repeat(300), type: 'file', text: 'x' }]);
    expect(long.subarray(0, 100).toString('latin1').replace(/\0+$/, '')).toBe('././@PaxHeader');
    expect(long.includes(Buffer.from(`path=${'p'.repeat(300)}\n`))).toBe(true);
  });

  it('is deterministic: the same entries give the same bytes and digest', async () => {
    const a = await tarOf(entries);
    const b = await tarOf(entries);
    expect(a.equals(b)).toBe(true);
    expect(a.length % BLOCK).toBe(0);
    expect(a.subarray(a.length - 1024).equals(Buffer.alloc(1024))).toBe(true);
    expect(createHash('sha256').update(a).digest('hex')).toBe(createHash('sha256').update(b).digest('hex'));
  });

  it('writes archives GNU tar lists and extracts identically', async () => {
    await withTmp(async (dir) => {
      const tar = await tarOf(entries.filter((e) => e.type !== 'char' && e.type !== 'fifo'));
      await fs.writeFile(join(dir, 'a.tar'), tar);
      const list = await run('tar', ['-tf', join(dir, 'a.tar')]);
      expect(list.stdout.split('\n').filter(Boolean)).toContain(`deep/${'x'.repeat(200)}/${'y'.repeat(200)}`);
      expect(list.stdout).toContain('ünïcødé');
      await fs.mkdir(join(dir, 'x'));
      await run('tar', ['-xf', join(dir, 'a.tar'), '-C', join(dir, 'x')]);
      expect(await fs.readFile(join(dir, 'x', 'deep', 'x'.repeat(200), 'y'.repeat(200)), 'utf8')).toBe('pax path');
      expect((await fs.stat(join(dir, 'x', 'etc', 'link'))).ino).toBe((await fs.stat(join(dir, 'x', 'etc', 'hostname'))).ino);
    });
  });

  it('reads archives made by GNU tar in gnu, pax and ustar formats', async () => {
    await withTmp(async (dir) => {
      const src = join(dir, 'src');
      const longDir = `${'l'.repeat(110)}/${'m'.repeat(110)}`;
      await fs.mkdir(join(src, longDir), { recursive: true });
      await fs.writeFile(join(src, longDir, 'file.txt'), 'deep');
      await fs.writeFile(join(src, 'a'), 'A');
      await fs.link(join(src, 'a'), join(src, 'a-link'));
      await fs.symlink(`../${'s'.repeat(120)}`, join(src, 'sym'));
      for (const format of ['gnu', 'pax', 'ustar'] as const) {
        const out = join(dir, `${format}.tar`);
        const members = format === 'ustar' ? ['a', 'a-link'] : ['.'];
        await run('tar', ['--format', format, '--sort=name', '-cf', out, '-C', src, ...members]);
        const got = await entriesOf(await fs.readFile(out));
        const byPath = Object.fromEntries(got.map((e) => [e.path.replace(/^\.\//, ''), e]));
        expect(byPath.a).toMatchObject({ type: 'file', text: 'A' });
        expect(byPath['a-link']).toMatchObject({ type: 'hardlink', linkpath: expect.stringMatching(/^(\.\/)?a$/) });
        if (format !== 'ustar') {
          expect(byPath[`${longDir}/file.txt`]).toMatchObject({ type: 'file', text: 'deep' });
          expect(byPath.sym).toMatchObject({ type: 'symlink', linkpath: `../${'s'.repeat(120)}` });
        }
      }
    });
  });

  it('a PAX global header is checked and skipped: it does not rename later entries (as Go)', async () => {
    const g = encodePax([['path', 'everything'], ['comment', 'git archive writes the commit here']]);
    const gh = encodeHeader({ name: 'pax_global_header', type: 'pax-global', mode: 0o666, uid: 0, gid: 0, mtime: 0, size: g.length });
    const body = Buffer.alloc(512);
    g.copy(body);
    const rest = await tarOf([{ path: 'a', type: 'file', text: 'A' }, { path: 'b', type: 'file', text: 'B' }]);
    expect((await entriesOf(Buffer.concat([gh, body, rest]))).map((e) => e.path)).toEqual(['a', 'b']);
    const badBody = Buffer.from(body);
    Buffer.from('99 path=x\n').copy(badBody);
    const bad = Buffer.concat([gh, badBody, rest]);
    await expectLayerError(entriesOf(bad), /record at 0 claims 99 bytes/);
  });

  it('skips bodies the caller does not read and refuses a body read too late', async () => {
    const tar = await tarOf([
      { path: 'a', type: 'file', text: 'x'.repeat(1000) },
      { path: 'b', type: 'file', text: 'bee' },
    ]);
    const it = readTar(chunksOf(tar, 100));
    const a = (await it.next()).value!;
    const aBody = a.body()[Symbol.asyncIterator]();
    await aBody.next();
    const b = (await it.next()).value!;
    expect(b.path).toBe('b');
    expect((await collect(b.body())).toString()).toBe('bee');
    await expectLayerError(aBody.next(), /body read after the next entry was taken/);
    expect((await it.next()).done).toBe(true);
  });

  it('gunzips .tar.gz by magic and passes plain tars through', async () => {
    const tar = await tarOf(entries.slice(0, 3));
    expect((await collect(decompress(chunksOf(gzipSync(tar), 33)))).equals(tar)).toBe(true);
    expect((await collect(decompress(chunksOf(tar, 1)))).equals(tar)).toBe(true);
  });
});

describe('hostile or broken tar streams are LayerErrors', () => {
  const valid = () => tarOf([{ path: 'a', type: 'file', text: 'hello world' }]);

  it('truncated inside a body, inside a header, or after a lone PAX header', async () => {
    const tar = await valid();
    await expectLayerError(entriesOf(tar.subarray(0, 520)), /truncated: the data of "a" ends at byte 520, 3 more bytes expected/);
    await expectLayerError(entriesOf(tar.subarray(0, 300)), /truncated: a header ends at byte 300/);
    const pax = await tarOf([{ path: 'q'.repeat(300), type: 'file', text: 'x' }]);
    await expectLayerError(entriesOf(Buffer.concat([pax.subarray(0, 1024), Buffer.alloc(1024)])), /PAX or GNU long-name header ends the archive/);
  });

  it('a corrupt checksum, a zero block followed by data, an unsupported type', async () => {
    const tar = await valid();
    const bad = Buffer.from(tar);
    bad[5] = 0x41;
    await expectLayerError(entriesOf(bad), /checksum \d+ does not match/);
    const gap = Buffer.concat([tar.subarray(0, 1024), Buffer.alloc(512), tar.subarray(0, 1024)]);
    await expectLayerError(entriesOf(gap), /zero block at byte 1024 is followed by data/);
    const sparse = Buffer.from(tar.subarray(0, 512));
    sparse[156] = 'S'.charCodeAt(0);
    fixChecksum(sparse);
    await expectLayerError(entriesOf(Buffer.concat([sparse, Buffer.alloc(1024)])), /type "S" is not supported/);
  });

  it('a PAX header claiming more than the limit, and a size past 2^53', async () => {
    const h = encodeHeader({ name: 'x', type: 'pax', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
    Buffer.from('77777777777\0').copy(h, 124);
    fixChecksum(h);
    await expectLayerError(entriesOf(Buffer.concat([h, Buffer.alloc(1024)])), /pax header at byte 0 claims 8589934591 bytes, more than the 1048576 allowed/);
    const f = encodeEntryHeader({ path: 'x', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
    Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(f, 124);
    fixChecksum(f);
    await expectLayerError(entriesOf(Buffer.concat([f, Buffer.alloc(1024)])), /size .* \(base-256\) is out of range/);
  });

  it('a name that is not UTF-8 is refused, unless PAX replaces it', async () => {
    const f = encodeEntryHeader({ path: 'x', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
    f[0] = 0xff;
    fixChecksum(f);
    await expectLayerError(entriesOf(Buffer.concat([f, Buffer.alloc(1024)])), /name is not valid UTF-8 \(hex ff\)/);
    const pax = encodePax([['path', 'fine']]);
    const ph = encodeHeader({ name: 'p', type: 'pax', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: pax.length });
    const padded = Buffer.alloc(512);
    pax.copy(padded);
    const got = await entriesOf(Buffer.concat([ph, padded, f, Buffer.alloc(1024)]));
    expect(got.map((e) => e.path)).toEqual(['fine']);
  });

  it('corrupt gzip and zstd', async () => {
    const gz = gzipSync(await valid());
    gz.writeUInt16LE(gz.readUInt16LE(gz.length - 21) ^ 0xffff, gz.length - 21);
    await expectLayerError(collect(decompress(chunksOf(gz))), /gzip data is corrupt or truncated/);
    await expectLayerError(collect(decompress(chunksOf(gz.subarray(0, 30)))), /gzip data is corrupt or truncated/);
    await expectLayerError(collect(decompress(chunksOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3])))), /zstd data is corrupt or truncated/);
  });

  it('random garbage never escapes as anything but a LayerError', async () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const base = await tarOf([
      { path: 'a', type: 'file', text: 'hello world' },
      { path: 'p'.repeat(300), type: 'file', text: 'x' },
      { path: 'd', type: 'directory' },
    ]);
    for (let i = 0; i < 300; i++) {
      const t = Buffer.from(base);
      for (let k = 0; k < 4; k++) t[((rand() << 8) | rand()) % t.length] = rand();
      try {
        await entriesOf(t);
      } catch (e) {
        expect(e).toBeInstanceOf(LayerError);
      }
    }
  });
});

function fixChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0'), 148, 'latin1');
  h[154] = 0;
}

describe('writeTar refuses bodies that do not match their size', () => {
  it('fewer bytes than the header says', async () => {
    const gen = writeTar([{ path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 10, body: async function* () { yield Buffer.from('short'); } }]);
    await expectLayerError(collect(gen), /"f" gave 5 bytes where its header says 10: it changed while being read/);
  });
});

describe('compression is recognised by magic in one place', () => {
  it('detectCompression: gzip, zstd, plain, too short', () => {
    expect(detectCompression(Buffer.from('1f8b0800', 'hex'))).toBe('gzip');
    expect(detectCompression(Buffer.from('28b52ffd04', 'hex'))).toBe('zstd');
    expect(detectCompression(Buffer.from('28b52f', 'hex'))).toBe('none');
    expect(detectCompression(Buffer.from('6574632f', 'hex'))).toBe('none');
  });

  it('a real .tar.zst (Debian zstd) is read through `zstd -dc`, split in odd chunks', async () => {
    const tar = await tarOf([
      { path: 'a', type: 'file', text: 'zstd layer' },
      { path: 'd', type: 'directory' },
    ]);
    const zst = execFileSync('zstd', ['-q', '-c'], { input: tar });
    expect(detectCompression(zst)).toBe('zstd');
    expect((await collect(decompress(chunksOf(zst, 7)))).equals(tar)).toBe(true);
  });

  it('SCHILY.xattr records written by the writer come back from the reader with their bytes', async () => {
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const bytes = await collect(writeTar([{ path: 'bin/ping', type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: 1, size: 0, xattrs: { 'security.capability': cap, 'user.note': Buffer.from('hi') } }]));
    const got: TarEntryHeader[] = [];
    for await (const e of readTar(chunksOf(bytes, 100))) got.push(e);
    expect(got[0]!.xattrs).toEqual({ 'security.capability': cap, 'user.note': Buffer.from('hi') });
  });
});

describe('readTarSync reads as readTar does (an uncompressed file, one reused read buffer)', () => {
  it('the same entries and bodies, whatever the chunk size, and the same errors for broken archives', async () => {
    const good = await tarOf([
      { path: 'etc', type: 'directory' },
      { path: 'etc/hostname', type: 'file', text: 'box\n', mode: 0o600, uid: 1000, gid: 100, mtime: T0 + 5 },
      { path: 'etc/link', type: 'hardlink', linkpath: 'etc/hostname' },
      { path: `deep/${'x'.repeat(200)}/${'y'.repeat(200)}`, type: 'file', text: 'pax path '.repeat(300) },
      { path: 'far', type: 'symlink', linkpath: `/${'t'.repeat(150)}` },
      { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
      { path: 'x', type: 'file', text: 'xattrs', xattrs: { 'user.a': Buffer.from([0, 1, 2, 0xff]) } },
    ]);
    const want = await entriesOf(good);
    expect(want).toHaveLength(7);
    for (const size of [1, 100, 511, 512, 513, 4096, 1 << 20]) expect(entriesOfSync(good, size)).toEqual(want);
    const broken = [good.subarray(0, 520), good.subarray(0, 300), good.subarray(0, 1536), Buffer.concat([good.subarray(0, 1024), Buffer.alloc(512), good.subarray(0, 1024)])];
    for (const tar of broken) expect(await outcome(() => entriesOfSync(tar, 333))).toEqual(await outcome(() => entriesOf(tar)));
  });

  it('random garbage gives the same entries or the same LayerError from both readers', async () => {
    let seed = 777;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const base = await tarOf([
      { path: 'a', type: 'file', text: 'hello world' },
      { path: 'p'.repeat(300), type: 'file', text: 'x' },
      { path: 'd', type: 'directory' },
    ]);
    for (let i = 0; i < 200; i++) {
      const t = Buffer.from(base);
      for (let k = 0; k < 4; k++) t[((rand() << 8) | rand()) % t.length] = rand();
      expect(await outcome(() => entriesOfSync(t, 200))).toEqual(await outcome(() => entriesOf(t)));
    }
  });

  it('skips bodies the caller does not read and refuses a body read too late', async () => {
    const tar = await tarOf([
      { path: 'a', type: 'file', text: 'x'.repeat(1000) },
      { path: 'b', type: 'file', text: 'bee' },
    ]);
    const it = readTarSync(syncSourceOf(tar, 100).readSync!()!);
    const aBody = it.next().value!.bodySync()[Symbol.iterator]();
    aBody.next();
    const b = it.next().value!;
    expect(b.path).toBe('b');
    expect(Buffer.concat([...b.bodySync()]).toString()).toBe('bee');
    expect(() => aBody.next()).toThrow(/body read after the next entry was taken/);
    expect(it.next().done).toBe(true);
  });
});
