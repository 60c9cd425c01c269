// Bundles the CLI into one CommonJS file, dist/bundle/cli.cjs, which bin/mkimage.js starts.
//
// Why: Node loads ES modules one file at a time; measured on this project's 2-core machines the
// ~30 files of dist/ cost 33-51 ms per start (bench/README.md), a third of what mkimage adds to
// Node's own start-up. One file, and CommonJS rather than ESM: with an ES module entry Node runs
// its ESM loader (resolve, load, link, compile each module eagerly) even for one file; a CommonJS
// entry never starts it, and V8 compiles the functions of a job only when that job runs. Measured
// side by side with bench/startup.js (bench/WHY.md): the split ESM bundle this replaces cost
// 6-14 ms more CPU per start. The library (dist/index.js, ESM with types) stays unbundled, built
// by tsc.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(import.meta.url), '../..');

/** Bundles src/cli.ts into `outdir` (default dist/bundle). */
export async function bundleCli(outdir = resolve(REPO, 'dist/bundle')) {
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: [resolve(REPO, 'src/cli.ts')],
    outfile: resolve(outdir, 'cli.cjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: true,
    // CommonJS has no import.meta: src/guest/init.ts finds dist/guest/mkimage-init from its own
    // URL, which in the bundle is the bundle file's (dist/bundle/cli.cjs: two levels down, too).
    define: { 'import.meta.url': '__mkimageBundleUrl' },
    banner: { js: "const __mkimageBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await bundleCli();
