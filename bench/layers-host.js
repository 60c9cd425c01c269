#!/usr/bin/env node
/**
 * Node's share of a layer import, without ZFS (issue 13): the library's applyLayer, fed the way
 * `layers import` feeds it (readSources + openLayer: the file read in 1 MiB chunks, hashed), into
 * a fresh directory on the host's filesystem, against `tar -xf TAR --numeric-owner -C DIR` into
 * another. Each run is its own process (Node start-up included, as for the CLI); rounds alternate;
 * medians of wall time. With --stage the import is `--from`'s staging (no owners, placeholders for
 * device nodes), against `tar -xf` all the same.
 *
 *   npm run build && node bench/layers-host.js --tar /work/cache/rootfs/bookworm-minbase.tar [--rounds N] [--stage] [--dir /tmp]
 *   node --cpu-prof bench/layers-host.js --child TAR DIR      (one import, for a profile)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i === -1 ? dflt : args[i + 1];
};

if (args[0] === '--child') {
  const [, tar, dir, mode] = args;
  const t0 = process.hrtime.bigint();
  const { readSources, openLayer } = await import(join(REPO, 'dist/layers/source.js'));
  const { applyLayer } = await import(join(REPO, 'dist/layers/apply.js'));
  const [image] = await readSources([tar]);
  const s = openLayer(image.layers[0]);
  const stats = await applyLayer(s.tar, dir, mode === 'stage' ? { stage: { meta: new Map() } } : { xattrs: 'drop' });
  await s.finish();
  const cpu = process.cpuUsage();
  process.stderr.write(`applied ${stats.entries} entries in ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)} s (in-process)\n`);
  process.stdout.write(JSON.stringify({ cpu: (cpu.user + cpu.system) / 1e6 }));
  process.exit(0);
}

const TAR = resolve(opt('--tar', '/work/cache/rootfs/bookworm-minbase.tar'));
const ROUNDS = Number(opt('--rounds', 5));
const STAGE = args.includes('--stage');
const work = mkdtempSync(join(opt('--dir', tmpdir()), 'mkimage-bench-host-'));

const cpuTimes = [];
function timed(file, argv) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  if (r.stdout.startsWith('{')) cpuTimes.push(JSON.parse(r.stdout).cpu);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const times = { applyLayer: [], 'tar -x': [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of round % 2 ? ['tar -x', 'applyLayer'] : ['applyLayer', 'tar -x']) {
      const dir = join(work, 'out');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      spawnSync('sync');
      if (name === 'tar -x') times[name].push(timed('tar', ['-xf', TAR, '--numeric-owner', '-C', dir]));
      else times[name].push(timed(process.execPath, [fileURLToPath(import.meta.url), '--child', TAR, dir, STAGE ? 'stage' : 'apply']));
    }
    console.error(`round ${round + 1}/${ROUNDS}: applyLayer ${times.applyLayer.at(-1).toFixed(2)} s, tar -x ${times['tar -x'].at(-1).toFixed(2)} s`);
  }
  const a = median(times.applyLayer);
  const t = median(times['tar -x']);
  console.log(`${STAGE ? 'staged ' : ''}applyLayer ${a.toFixed(2)} s, tar -x ${t.toFixed(2)} s: ${(a / t).toFixed(2)}x (median of ${ROUNDS}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  console.log(`  applyLayer CPU (user+sys, s): median ${median(cpuTimes).toFixed(2)}: ${cpuTimes.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`  applyLayer: ${times.applyLayer.map((x) => x.toFixed(2)).join(' ')}; tar -x: ${times['tar -x'].map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
