#!/usr/bin/env node
// Starts the CLI: src/cli.ts bundled into one file by `npm run build` (scripts/bundle.mjs).
import { main } from '../dist/bundle/cli.mjs';

process.exitCode = await main(process.argv);
