// Loads dist/bundle/cli.cjs the way require() would, but compiled through vm.Script with the V8
// code cache that `npm run build` writes beside it (dist/bundle/cli.cjs.cache, made by
// scripts/bundle.mjs from a few real runs). With it V8 deserialises the compiled functions instead
// of parsing and compiling ~380 KB of JavaScript on every start: 8-16 ms less per run on the
// project's 2-core machine (bench/WHY.md, round 3). A cache from another Node/V8 version, or for
// another build of the bundle, is rejected by V8 itself (it checks its version, flags and a hash
// of the source), and the bundle is then compiled as usual: never wrong, only not faster.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire, wrap } = require('node:module');

/** @returns {{ exports: any, script: import('node:vm').Script, cacheFile: string }} */
function loadBundle(file) {
  const cacheFile = `${file}.cache`;
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData });
  const module = { exports: {}, filename: file, id: file };
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file));
  return { exports: module.exports, script, cacheFile };
}

module.exports = { loadBundle, BUNDLE: path.join(__dirname, '../dist/bundle/cli.cjs') };
