// Bundles the CLI into dist/bundle/ (cli.mjs and a few chunks), which bin/mkimage.js starts.
//
// Why: Node loads ES modules one file at a time; measured on this project's 2-core machines the
// ~30 files of dist/ cost 33-51 ms per start (bench/README.md), a third of what mkimage adds to
// Node's own start-up. Code splitting keeps each job in its own chunk, loaded by the command that
// runs it (inspect does not parse the layer code). The library (dist/index.js, with types) stays
// unbundled, built by tsc.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(import.meta.url), '../..');

/** Bundles src/cli.ts into `outdir` (default dist/bundle). */
export async function bundleCli(outdir = resolve(REPO, 'dist/bundle')) {
  rmSync(outdir, { recursive: true, force: true }); // chunk names change with their content
  await build({
    entryPoints: [resolve(REPO, 'src/cli.ts')],
    outdir,
    bundle: true,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    outExtension: { '.js': '.mjs' },
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    // commander and buffer-layout are CommonJS: give the bundle a require for them.
    banner: { js: "import { createRequire as __mkimageCreateRequire } from 'node:module'; const require = __mkimageCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await bundleCli();
