/**
 * The package as a consuming project gets it: `npm pack` of the built tree, unpacked into a temp
 * project's node_modules (what `npm install` of the tarball puts there; its dependencies are linked
 * from this repository's node_modules, so the test needs no registry), and a file importing
 * 'mkimage' compiled with `tsc --strict` WITHOUT skipLibCheck: every shipped .d.ts must type-check
 * in the consumer's strict build (issue 14: an untyped dependency's import in dist/layout/struct.d.ts
 * failed with TS7016). Needs `npm run build` first, as every system test.
 */
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO, tempDir } from './helpers/machine.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir('mkimage-consumer-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Uses the struct codecs through the public API (decodePfnInfo's 64-bit fields are bigint), the
// jobs and their option types, and the error family: whatever the declarations pull in must resolve.
const CONSUMER = `import { createImage, inspectImage, planCreate, decodePfnInfo, encodePfnInfo, makePfnInfo, decodeMbr, decodeGptHeader, PFN_SB_BYTES, BusyError, type CreateOptions, type ImageReport } from 'mkimage';
const options: CreateOptions = { path: '/tmp/x.img', size: 1 << 30, fs: 'ext4', sparse: true };
const pfn = decodePfnInfo(Buffer.alloc(PFN_SB_BYTES));
const checksum: bigint = pfn.checksum;
const round: Buffer = encodePfnInfo(makePfnInfo({ uuid: Buffer.alloc(16, 1), dataOffBytes: 2 << 20, namespaceSizeBytes: 1 << 30 }));
const report: ImageReport | undefined = undefined;
console.log(createImage, inspectImage, planCreate, options, checksum, round, decodeMbr, decodeGptHeader, report, new BusyError('x').code);
`;

describe('the shipped declarations', () => {
  it("compile in a consuming project under tsc --strict without skipLibCheck", async () => {
    await execa('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: REPO });
    const [tarball] = (await readdir(dir)).filter((f) => f.endsWith('.tgz'));
    expect(tarball).toMatch(/^mkimage-.*\.tgz$/);
    const pkg = join(dir, 'node_modules/mkimage');
    await mkdir(pkg, { recursive: true });
    await execa('tar', ['-xzf', join(dir, tarball!), '-C', pkg, '--strip-components=1']);
    await mkdir(join(dir, 'node_modules/@types'), { recursive: true });
    await symlink(join(REPO, 'node_modules/commander'), join(dir, 'node_modules/commander'));
    await symlink(join(REPO, 'node_modules/@types/node'), join(dir, 'node_modules/@types/node'));
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await writeFile(join(dir, 'main.ts'), CONSUMER);
    const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
    const strict = ['--strict', '--skipLibCheck', 'false', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'];
    // --listFiles: tsc prints the files it read, then its diagnostics (on stdout too).
    const r = await execa('node', [tsc, ...strict, '--listFiles', join(dir, 'main.ts')], { cwd: dir, reject: false });
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.filter((l) => !l.startsWith('/'))).toEqual([]); // no diagnostics
    expect(r.exitCode).toBe(0);
    // The compile really read the shipped declarations (not some other 'mkimage').
    expect(lines).toContain(join(pkg, 'dist/layout/struct.d.ts'));
  });
});
