// Writes the V8 code cache of the CLI bundle (dist/bundle/cli.cjs.cache) that bin/load-bundle.js
// loads it with. Run by scripts/bundle.mjs right after esbuild, in a process of its own:
//
//   node scripts/code-cache.cjs dist/bundle/cli.cjs
//
// The cache is taken after a few real runs of the CLI (--version, create --fs none and ext4 of a
// small sparse image, inspect, qemu-args, in a temporary directory removed afterwards), so that it
// holds the functions those commands compile, not only the top level: measured, a cache taken
// after `create` saves twice what one taken after `--version` does (bench/WHY.md, round 3).
// A command that cannot run here (no flock, no mkfs.ext4: a build machine without them) only
// leaves its functions out of the cache. scripts/bundle.mjs discards what the runs print (the CLI
// writes to descriptors 1 and 2 itself) and shows this script's stderr only when it fails.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { loadBundle } = require('../bin/load-bundle.js');

async function main() {
  const bundle = path.resolve(process.argv[2] ?? path.join(__dirname, '../dist/bundle/cli.cjs'));
  const cacheFile = `${bundle}.cache`;
  fs.rmSync(cacheFile, { force: true });
  const { exports: cli, script } = loadBundle(bundle);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mkimage-code-cache-'));
  try {
    const runs = [
      ['--version'],
      ['--size', '64M', '--sparse', '--fs', 'none', path.join(dir, 'none.img')],
      ['--size', '64M', '--sparse', path.join(dir, 'ext4.img')],
      ['inspect', path.join(dir, 'ext4.img')],
      ['inspect', '--json', path.join(dir, 'none.img')],
      ['qemu-args', path.join(dir, 'ext4.img')],
    ];
    for (const args of runs) await cli.main(['node', 'mkimage', ...args]).catch(() => undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const data = script.createCachedData();
  fs.writeFileSync(cacheFile, data);
  process.exitCode = 0;
}

main().catch((e) => {
  process.stderr.write(`code-cache: ${e.stack ?? e}\n`);
  process.exitCode = 1;
});
