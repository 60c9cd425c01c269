#!/usr/bin/env node
// Starts the CLI: src/cli.ts bundled into one CommonJS file by `npm run build` (scripts/bundle.mjs),
// loaded with its V8 code cache (bin/load-bundle.js).
// CommonJS (bin/package.json says so): an ES module here would start Node's ESM loader for nothing.
'use strict';
const { loadBundle, BUNDLE } = require('./load-bundle.js');
loadBundle(BUNDLE)
  .exports.main(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
