#!/usr/bin/env node
/**
 * Start-up options on this Node, side by side: `node bench/startup.js [--rounds N]` (root for the
 * create case; ~2 min). Builds each variant of the CLI into .cache/startup/<name>/ from the same
 * sources and runs, alternating round after round, `--version`, `inspect` of an ext4 image and
 * `create` of an ext4 20 GiB sparse image, next to `node -e ''`. Prints medians (wall ms, from
 * wait4 in bench/rusage.c) and ratios; writes nothing into the repository (the verdicts are in
 * bench/WHY.md).
 *
 *   split        what `npm run build` makes: ESM, code splitting (a chunk per job)
 *   esm-single   one ESM file, no splitting
 *   cjs-single   one CommonJS file started by a CommonJS bin (no ESM loader at all)
 *   cjs-esm-bin  the same file started from an ES module bin (createRequire)
 *   cjs-cache    cjs-single compiled through vm.Script with V8's code cache kept beside it
 *                (what Node 22's module.enableCompileCache does; Node 20 has no such API)
 *   snapshot     cjs-single in a V8 startup snapshot (node --snapshot-blob, built once)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { REPO } from './private-build.js';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 11;
const OUT = join(REPO, '.cache/startup');
const RUSAGE = join(REPO, '.cache/rusage');
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : undefined;
mkdirSync(join(REPO, '.cache'), { recursive: true });
spawnSync('cc', ['-O2', '-o', RUSAGE, join(REPO, 'bench/rusage.c')]);

const BANNER = "import { createRequire as __mkimageCreateRequire } from 'node:module'; const require = __mkimageCreateRequire(import.meta.url);";
const common = { entryPoints: [join(REPO, 'src/cli.ts')], bundle: true, platform: 'node', target: 'node20', logLevel: 'warning' };

async function variants() {
  rmSync(OUT, { recursive: true, force: true });
  const v = {};
  const dir = (n) => {
    mkdirSync(join(OUT, n), { recursive: true });
    return join(OUT, n);
  };
  {
    const d = dir('split');
    await build({ ...common, outdir: d, splitting: true, format: 'esm', outExtension: { '.js': '.mjs' }, chunkNames: 'chunk-[hash]', banner: { js: BANNER } });
    writeFileSync(join(d, 'bin.mjs'), "import { main } from './cli.mjs';\nprocess.exitCode = await main(process.argv);\n");
    v.split = ['node', join(d, 'bin.mjs')];
  }
  {
    const d = dir('esm-single');
    await build({ ...common, outfile: join(d, 'cli.mjs'), format: 'esm', banner: { js: BANNER } });
    writeFileSync(join(d, 'bin.mjs'), "import { main } from './cli.mjs';\nprocess.exitCode = await main(process.argv);\n");
    v['esm-single'] = ['node', join(d, 'bin.mjs')];
  }
  const cjs = dir('cjs-single');
  await build({ ...common, outfile: join(cjs, 'cli.cjs'), format: 'cjs' });
  writeFileSync(join(cjs, 'bin.cjs'), "require('./cli.cjs').main(process.argv).then((c) => { process.exitCode = c; });\n");
  v['cjs-single'] = ['node', join(cjs, 'bin.cjs')];
  writeFileSync(join(cjs, 'bin.mjs'), "import { createRequire } from 'node:module';\nconst { main } = createRequire(import.meta.url)('./cli.cjs');\nprocess.exitCode = await main(process.argv);\n");
  v['cjs-esm-bin'] = ['node', join(cjs, 'bin.mjs')];
  {
    const d = dir('cjs-cache');
    writeFileSync(join(d, 'cli.cjs'), readFileSync(join(cjs, 'cli.cjs')));
    writeFileSync(
      join(d, 'bin.cjs'),
      `const fs = require('node:fs'), vm = require('node:vm'), path = require('node:path'), Module = require('node:module');
const file = path.join(__dirname, 'cli.cjs'), cacheFile = file + '.v8cache';
let cachedData; try { cachedData = fs.readFileSync(cacheFile); } catch {}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData, importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER });
const m = { exports: {} };
script.runInThisContext()(m.exports, require, m, file, __dirname);
m.exports.main(process.argv).then((c) => {
  process.exitCode = c;
  if (!cachedData || script.cachedDataRejected) { try { fs.writeFileSync(cacheFile, script.createCachedData()); } catch {} }
});
`,
    );
    v['cjs-cache'] = ['node', join(d, 'bin.cjs')];
  }
  {
    const d = dir('snapshot');
    writeFileSync(join(d, 'cli.cjs'), readFileSync(join(cjs, 'cli.cjs')));
    writeFileSync(
      join(d, 'entry.cjs'),
      // --build-snapshot's require loads built-in modules only: the bundle goes in as it is.
      `const __m = { exports: {} };
(function (module, exports) {
${readFileSync(join(cjs, 'cli.cjs'), 'utf8')}
})(__m, __m.exports);
const { main } = __m.exports;
require('node:v8').startupSnapshot.setDeserializeMainFunction(() => { main([process.argv[0], 'mkimage', ...process.argv.slice(1)]).then((c) => { process.exitCode = c; }); });
`,
    );
    const r = spawnSync('node', ['--snapshot-blob', join(d, 'snap.blob'), '--build-snapshot', join(d, 'entry.cjs')], { encoding: 'utf8' });
    if (r.status === 0) v.snapshot = ['node', '--snapshot-blob', join(d, 'snap.blob'), '--'];
    else process.stderr.write(`snapshot: build failed: ${r.stderr.split('\n').slice(0, 3).join(' / ')}\n`);
  }
  // STARTUP_BASE=path/to/bin/mkimage.js: an earlier build, as variant "base", for an A/B of a change.
  if (process.env.STARTUP_BASE) v.base = ['node', process.env.STARTUP_BASE];
  return v;
}

function measure(argv) {
  const out = join(tmpdir(), `startup-${process.pid}`);
  const r = spawnSync(RUSAGE, [out, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const [wall, user, sys, , status] = readFileSync(out, 'utf8').trim().split(/\s+/).map(Number);
  if (status !== 0) throw new Error(`${argv.join(' ')}: exit ${status}: ${r.stderr}`);
  return { wall: wall / 1e6, cpu: (user + sys) / 1e3 };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const work = mkdtempSync(join(tmpdir(), 'mkimage-startup-'));
try {
  let v = await variants();
  if (only) v = Object.fromEntries(Object.entries(v).filter(([k]) => only.includes(k)));
  const img = join(work, 'i.img');
  spawnSync(v['cjs-single']?.[0] ?? 'node', [...(v['cjs-single'] ?? v.split).slice(1), '--size', '1G', '--sparse', img]);
  const cases = [{ name: "node -e ''", argv: ['node', '-e', ''] }];
  for (const [name, pre] of Object.entries(v)) {
    cases.push({ name: `${name} --version`, argv: [...pre, '--version'] });
    cases.push({ name: `${name} inspect`, argv: [...pre, 'inspect', img] });
    cases.push({ name: `${name} create ext4 20G sparse`, argv: [...pre, '--size', '20G', '--sparse', join(work, 'c.img')], after: () => rmSync(join(work, 'c.img'), { force: true }) });
  }
  const load = [loadavg().map((x) => x.toFixed(2)).join(' ')];
  for (const c of cases) {
    measure(c.argv); // warm-up (and the code cache's first write)
    c.after?.();
    c.runs = [];
  }
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      c.runs.push(measure(c.argv));
      c.after?.();
    }
  }
  load.push(loadavg().map((x) => x.toFixed(2)).join(' '));
  const wall = (c) => median(c.runs.map((x) => x.wall));
  const cpu = (c) => median(c.runs.map((x) => x.cpu));
  process.stdout.write(`${new Date().toISOString()} node ${process.version}, ${rounds} alternating rounds, load ${load.join(' -> ')}\n\n| variant, command | wall ms (median) | vs node -e '' | CPU ms (median) | CPU vs node -e '' |\n|---|---|---|---|---|\n`);
  for (const c of cases) process.stdout.write(`| ${c.name} | ${wall(c).toFixed(1)} | ${(wall(c) / wall(cases[0])).toFixed(2)}x | ${cpu(c).toFixed(1)} | ${(cpu(c) / cpu(cases[0])).toFixed(2)}x |\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
