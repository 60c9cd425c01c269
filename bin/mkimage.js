#!/usr/bin/env node
// Starts the CLI: src/cli.ts bundled into one CommonJS file by `npm run build` (scripts/bundle.mjs).
// CommonJS (bin/package.json says so): an ES module here would start Node's ESM loader for nothing.
'use strict';
require('../dist/bundle/cli.cjs')
  .main(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
