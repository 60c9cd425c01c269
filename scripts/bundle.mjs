// Bundles the CLI into dist/bundle/ (cli.js and a few chunks), which bin/mkimage.js starts.
//
// Why: Node loads ES modules one file at a time; measured on this project's 2-core machines the
// ~30 files of dist/ cost 33-51 ms per start (bench/README.md), a third of what mkimage adds to
// Node's own start-up. Code splitting keeps each job in its own chunk, loaded by the command that
// runs it (inspect does not parse the layer code). The library (dist/index.js, with types) stays
// unbundled, built by tsc.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli.ts'],
  outdir: 'dist/bundle',
  splitting: true,
  chunkNames: 'chunk-[hash]',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  // commander, buffer-layout and crc-32 are CommonJS: give the bundle a require for them.
  banner: { js: "import { createRequire as __mkimageCreateRequire } from 'node:module'; const require = __mkimageCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
