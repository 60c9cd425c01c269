#!/usr/bin/env node
// Starts the CLI built from src/cli.ts (npm run build puts it in dist/).
import { main } from '../dist/cli.js';

process.exitCode = await main(process.argv);
