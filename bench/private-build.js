/**
 * The CLI the benchmarks measure: a private build of the sources in .cache/bench (tsc for the
 * library modules the shell-script baselines reuse, esbuild for the CLI exactly as `npm run build`
 * makes it, bin/mkimage.js beside them), so that a rebuild of dist/ during a long run changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PRIVATE = join(REPO, '.cache/bench');
export const BIN = join(PRIVATE, 'bin/mkimage.js');

export async function privateBuild() {
  rmSync(join(PRIVATE, 'dist'), { recursive: true, force: true });
  // Type errors in someone's work in progress do not stop the emit; a missing CLI does.
  const r = spawnSync(join(REPO, 'node_modules/.bin/tsc'), ['-p', join(REPO, 'tsconfig.json'), '--outDir', join(PRIVATE, 'dist'), '--sourceMap', 'false', '--declaration', 'false'], { stdio: 'inherit' });
  if (!existsSync(join(PRIVATE, 'dist/cli.js'))) throw new Error(`tsc failed (exit ${r.status}): no CLI to measure`);
  const { bundleCli } = await import('../scripts/bundle.mjs');
  await bundleCli(join(PRIVATE, 'dist/bundle'));
  mkdirSync(join(PRIVATE, 'bin'), { recursive: true });
  for (const f of ['mkimage.js', 'load-bundle.js', 'package.json']) writeFileSync(join(PRIVATE, 'bin', f), readFileSync(join(REPO, 'bin', f)));
}
