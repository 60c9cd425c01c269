// Bundles the CLI into one CommonJS file, dist/bundle/cli.cjs, which bin/mkimage.js starts, and
// writes its V8 code cache beside it (scripts/code-cache.cjs, loaded by bin/load-bundle.js).
//
// Why one file: Node loads ES modules one file at a time; measured on this project's 2-core
// machines the ~30 files of dist/ cost 33-51 ms per start (bench/README.md), a third of what
// mkimage adds to Node's own start-up. CommonJS rather than ESM: with an ES module entry Node runs
// its ESM loader (resolve, load, link, compile each module eagerly) even for one file; a CommonJS
// entry never starts it, and V8 compiles the functions of a job only when that job runs. Measured
// side by side with bench/startup.js (bench/WHY.md): the split ESM bundle this replaces cost
// 6-14 ms more CPU per start. Whitespace and syntax are minified (identifiers are kept, so stack
// traces stay readable; the source map maps them back): 30% less to read and hash per start.
// The library (dist/index.js, ESM with types) stays unbundled, built by tsc.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(import.meta.url), '../..');

/**
 * commander requires node:child_process when it is loaded, for executable subcommands, which
 * mkimage never declares; loading it costs ~5.5 ms of every start, also of the commands that run
 * no program (inspect of an ext4 image, qemu-args, --help). Its require is given a stand-in that
 * loads the real module on first use.
 */
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (args) => (/[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'lazy-child-process', namespace: 'mkimage-shim' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'mkimage-shim' }, () => ({
      contents: "let m; module.exports = new Proxy({}, { get: (_, key) => (m ??= require('node:child_process'))[key] });",
      loader: 'js',
    }));
  },
};

/** Bundles src/cli.ts into `outdir` (default dist/bundle) and writes the code cache. */
export async function bundleCli(outdir = resolve(REPO, 'dist/bundle')) {
  rmSync(outdir, { recursive: true, force: true });
  const outfile = resolve(outdir, 'cli.cjs');
  await build({
    entryPoints: [resolve(REPO, 'src/cli.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: true,
    minifyWhitespace: true,
    minifySyntax: true,
    plugins: [lazyChildProcessForCommander],
    // CommonJS has no import.meta: src/guest/init.ts finds dist/guest/mkimage-init from its own
    // URL, which in the bundle is the bundle file's (dist/bundle/cli.cjs: two levels down, too).
    define: { 'import.meta.url': '__mkimageBundleUrl' },
    banner: { js: "const __mkimageBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  });
  // In a process of its own: the runs take locks and write files as the CLI does, and print what
  // the CLI prints (to descriptors 1 and 2: cli/output.ts), which nobody needs to see here.
  const r = spawnSync(process.execPath, [resolve(REPO, 'scripts/code-cache.cjs'), outfile], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) process.stderr.write(`bundle: no code cache written (code-cache.cjs exited ${r.status ?? r.signal}); the CLI works without it, only starts slower\n${r.stderr.slice(-2000)}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await bundleCli();
