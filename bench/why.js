#!/usr/bin/env node
/**
 * Where mkimage's time goes when it loses to the shell script: `npm run bench:why`.
 *
 * Measures (medians of alternating runs, same wait4 harness as bench/run.js):
 *   1. start-up: bare Node, `mkimage --version`, and the same CLI bundled into one file (when a
 *      bundler, rolldown or esbuild, is in node_modules): the cost of loading ~27 ES modules;
 *   2. module costs in-process, in the order the CLI loads them (each import's own time);
 *   3. create ext4 20 GiB (preallocated and sparse) and inspect: mkimage, the bundle, the shell
 *      script, and the floor: the same job in 10 lines of Node (spawnSync, no checks, no undo);
 *   4. the phases mkimage reports itself (--json timings), processes spawned (strace), fsync.
 * Writes bench/WHY.md; bench/README.md explains the findings.
 *
 *   node bench/why.js [--rounds N] [--dir DIR]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BIN, PRIVATE, REPO, privateBuild } from './private-build.js';
const CACHE = join(REPO, '.cache');
const OUT = join(tmpdir(), `mkimage-why-rusage-${process.pid}`);

function parseArgs(argv) {
  const o = { rounds: 11, dir: tmpdir() };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--rounds') o.rounds = Number(argv[++i]);
    else if (argv[i] === '--dir') o.dir = resolve(argv[++i]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return o;
}

function rusageBin() {
  const bin = join(CACHE, 'rusage');
  mkdirSync(CACHE, { recursive: true });
  if (!existsSync(bin)) execFileSync('cc', ['-O2', '-o', bin, join(REPO, 'bench/rusage.c')]);
  return bin;
}

let RUSAGE;
function measure(argv, cwd) {
  const r = spawnSync(RUSAGE, [OUT, ...argv], { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const [wall, user, sys, rss, status] = readFileSync(OUT, 'utf8').trim().split(/\s+/).map(Number);
  if (status !== 0) throw new Error(`${argv.join(' ')} exited ${status}: ${r.stderr}`);
  return { wallMs: wall / 1e6, cpuMs: (user + sys) / 1e3, rssKiB: rss };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f1 = (x) => (x === undefined ? '-' : x.toFixed(1));

/** Runs each case once per round, alternating; returns median wall and CPU per case. */
function alternate(cases, rounds) {
  for (const c of cases) {
    c.walls = [];
    c.cpus = [];
    c.before?.();
    measure(c.argv, c.cwd); // warm-up
    c.after?.();
  }
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      c.before?.();
      const m = measure(c.argv, c.cwd);
      c.after?.();
      c.walls.push(m.wallMs);
      c.cpus.push(m.cpuMs);
    }
  }
  for (const c of cases) {
    c.wall = median(c.walls);
    c.cpu = median(c.cpus);
  }
  return cases;
}

/** Bundles bin/mkimage.js into one ES module with whichever bundler node_modules has. */
function bundle(work) {
  const out = join(work, 'bundle', 'mkimage.mjs');
  mkdirSync(dirname(out), { recursive: true });
  const rolldown = join(REPO, 'node_modules/.bin/rolldown');
  const esbuild = join(REPO, 'node_modules/.bin/esbuild');
  if (existsSync(esbuild)) {
    const r = spawnSync(esbuild, [BIN, '--bundle', '--platform=node', '--format=esm', `--outfile=${out}`], { encoding: 'utf8' });
    if (r.status === 0) return { file: out, tool: 'esbuild' };
  }
  if (existsSync(rolldown)) {
    const r = spawnSync(rolldown, [BIN, '--platform', 'node', '--format', 'esm', '--file', out, '--inlineDynamicImports'], { encoding: 'utf8' });
    if (r.status === 0) return { file: out, tool: 'rolldown' };
  }
  return undefined;
}

/** The same job as `mkimage --size 20G IMG` in the fewest lines of Node: the floor for any Node CLI. */
function floorScript(work, header) {
  const file = join(work, 'floor.mjs');
  writeFileSync(
    file,
    `import { spawnSync } from 'node:child_process';
import { openSync, ftruncateSync, writeSync, closeSync, readFileSync, renameSync } from 'node:fs';
const [size, sparse, target] = process.argv.slice(2);
const t = target + '.tmp';
const fd = openSync(t, 'wx');
ftruncateSync(fd, Number(size));
if (sparse !== 'sparse') spawnSync('fallocate', ['--offset', '0', '--length', size, '--', t]);
writeSync(fd, readFileSync(${JSON.stringify(header)}), 0, 8192, 0);
closeSync(fd);
spawnSync('mkfs.ext4', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-U', '6825d385-276f-438e-88f9-7d72ac2451a3', '-E', 'offset=2097152,nodiscard,assume_storage_prezeroed=1,hash_seed=0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60', '--', t, String((Number(size) - 2097152) / 4096)]);
renameSync(t, target);
`,
  );
  return file;
}

function shellScript(work, header, size, sparse, target) {
  const file = join(work, `shell-${sparse}.sh`);
  writeFileSync(
    file,
    `set -e
t=${target}.tmp
truncate -s ${size} "$t"
${sparse === 'sparse' ? '' : `fallocate --offset 0 --length ${size} -- "$t"`}
dd if=${header} of="$t" bs=8192 count=1 conv=notrunc status=none
mkfs.ext4 -q -F -t ext4 -b 4096 -U 6825d385-276f-438e-88f9-7d72ac2451a3 -E offset=2097152,nodiscard,assume_storage_prezeroed=1,hash_seed=0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60 -- "$t" ${(size - 2097152) / 4096}
mv "$t" ${target}
`,
  );
  return file;
}

/** Each import's own time, in the CLI's order, in one fresh process; medians over `rounds`. */
function moduleCosts(rounds) {
  const steps = [
    ['node:child_process', 'node:child_process'],
    ['node:crypto', 'node:crypto'],
    ['node:fs/promises', 'node:fs/promises'],
    ['commander (CJS, first CommonJS module: loads the CJS loader and lexer)', 'commander'],
    ['dist/cli.js and the command modules it loads', join(PRIVATE, 'dist/cli.js')],
    ['dist/jobs/create.js and what it loads', join(PRIVATE, 'dist/jobs/create.js')],
    ['dist/jobs/inspect.js and what it loads', join(PRIVATE, 'dist/jobs/inspect.js')],
  ];
  const script = `const out = []; for (const m of ${JSON.stringify(steps.map((s) => s[1]))}) { const t = performance.now(); await import(m); out.push(performance.now() - t); } console.log(JSON.stringify(out));`;
  const samples = steps.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const o = JSON.parse(execFileSync('node', ['--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8' }));
    o.forEach((ms, i) => samples[i].push(ms));
  }
  return steps.map(([label], i) => ({ label, ms: median(samples[i]) }));
}

/** Medians of the --json timings of mkimage runs, per configuration. */
function phases(rounds, work, zfsPool) {
  const configs = [
    ['ext4 20G prealloc', ['--size', '20G']],
    ['ext4 20G sparse', ['--size', '20G', '--sparse']],
    ['xfs 1G sparse', ['--fs', 'xfs', '--size', '1G', '--sparse']],
    ...(zfsPool ? [['zfs 1G sparse', ['--fs', 'zfs', '--pool', zfsPool, '--size', '1G', '--sparse']]] : []),
  ];
  const all = {};
  for (const [name, args] of configs) {
    const acc = {};
    for (let r = 0; r < rounds; r++) {
      const img = join(work, 'phase.img');
      const out = execFileSync('node', [BIN, ...args, '--json', img], { encoding: 'utf8' });
      rmSync(img, { force: true });
      for (const [k, v] of Object.entries(JSON.parse(out).timings ?? {})) (acc[k] ??= []).push(v);
    }
    all[name] = Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, median(v)]));
  }
  return all;
}

/** The programs a command runs (strace -f -e execve): "zpool list", "mkfs.ext4", ... */
function processes(argv, cwd) {
  const log = join(tmpdir(), `mkimage-why-strace-${process.pid}`);
  const r = spawnSync('strace', ['-f', '-qq', '-s', '64', '-e', 'trace=execve', '-o', log, ...argv], { cwd, encoding: 'utf8' });
  if (r.error) return undefined;
  const lines = readFileSync(log, 'utf8').split('\n').filter((l) => /execve\(/.test(l) && !/ENOENT|EACCES/.test(l));
  rmSync(log, { force: true });
  return lines.map((l) => {
    const args = /execve\("[^"]*", \[((?:"[^"]*"(?:, )?)+)/.exec(l)?.[1]?.match(/"([^"]*)"/g)?.map((a) => a.slice(1, -1)) ?? [];
    const name = args[0]?.split('/').pop() ?? '?';
    return ['zpool', 'zfs'].includes(name) || (name === 'losetup' && args[1]) ? `${name} ${args[1]}` : name;
  });
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  RUSAGE = rusageBin();
  await privateBuild();
  const work = mkdtempSync(join(o.dir, 'mkimage-why-'));
  const md = [];
  const say = (s = '') => {
    md.push(s);
    process.stdout.write(`${s}\n`);
  };
  try {
    const size = 20 * 1024 ** 3;
    const target = join(work, 'a.img');
    const hdrImg = join(work, 'hdr.img');
    execFileSync('node', [BIN, '--fs', 'none', '--sparse', '--size', '20G', '--seed', 'why', hdrImg]);
    const header = join(work, 'header.bin');
    const buf = Buffer.alloc(8192);
    const fd = openSync(hdrImg, 'r');
    readSync(fd, buf, 0, 8192, 0);
    closeSync(fd);
    writeFileSync(header, buf);
    rmSync(hdrImg);
    const b = bundle(work);
    const floor = floorScript(work, header);
    const rm = () => rmSync(target, { force: true });
    const inspImg = join(work, 'inspect.img');
    execFileSync('node', [BIN, '--size', '1G', '--sparse', inspImg]);

    say(`# Where the time goes (bench/why.js)`);
    say();
    say(`${new Date().toISOString()}; ${cpus().length} x ${cpus()[0]?.model}; kernel ${release()}; node ${process.version}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${o.rounds} alternating rounds, medians.`);
    say();
    say('## Start-up and the whole job');
    say();
    const cases = [
      { label: "node -e ''", argv: ['node', '-e', ''] },
      { label: 'mkimage --version', argv: ['node', BIN, '--version'] },
      ...(b ? [{ label: `mkimage --version, bundled (${b.tool})`, argv: ['node', b.file, '--version'] }] : []),
      { label: 'inspect 1G ext4', argv: ['node', BIN, 'inspect', inspImg] },
      ...(b ? [{ label: 'inspect 1G ext4, bundled', argv: ['node', b.file, 'inspect', inspImg] }] : []),
    ];
    for (const mode of ['prealloc', 'sparse']) {
      const sp = mode === 'sparse' ? ['--sparse'] : [];
      cases.push({ label: `create ext4 20G ${mode}: mkimage`, argv: ['node', BIN, '--size', '20G', ...sp, target], after: rm });
      if (b) cases.push({ label: `create ext4 20G ${mode}: mkimage bundled`, argv: ['node', b.file, '--size', '20G', ...sp, target], after: rm });
      cases.push({ label: `create ext4 20G ${mode}: floor (10 lines of Node, spawnSync)`, argv: ['node', floor, String(size), mode, target], after: rm });
      cases.push({ label: `create ext4 20G ${mode}: shell script`, argv: ['sh', shellScript(work, header, size, mode, target)], after: rm });
    }
    alternate(cases, o.rounds);
    const node = cases[0].wall;
    say("| command | wall ms | vs node -e '' | CPU ms |");
    say('|---|---|---|---|');
    for (const c of cases) say(`| ${c.label} | ${f1(c.wall)} | ${(c.wall / node).toFixed(2)}x | ${f1(c.cpu)} |`);
    say();

    say('## Module costs in-process (each import in the order the CLI loads them)');
    say();
    say('| import | ms |');
    say('|---|---|');
    for (const m of moduleCosts(o.rounds)) say(`| ${m.label} | ${f1(m.ms)} |`);
    say();

    say('## Phases mkimage reports (--json timings, ms, medians)');
    say();
    const zfsPool = spawnSync('zpool', ['list'], { encoding: 'utf8' }).status === 0 ? `mkwhy${process.pid % 100000}` : undefined;
    const ph = phases(Math.min(o.rounds, 9), work, zfsPool);
    const keys = [...new Set(Object.values(ph).flatMap((p) => Object.keys(p)))];
    say(`| phase | ${Object.keys(ph).join(' | ')} |`);
    say(`|---|${Object.keys(ph).map(() => '---').join('|')}|`);
    for (const k of keys) say(`| ${k} | ${Object.values(ph).map((p) => f1(p[k])).join(' | ')} |`);
    say();
    say('"plan" covers the plan, the ids, the header bytes and every preflight check (for zfs: which ZFS, is the name free); "publish" is the fsync of the image and the link into place.');
    say();

    say('## Processes each runs (strace -f -e execve)');
    say();
    const runs = [
      ['ext4 20G prealloc: mkimage', ['node', BIN, '--size', '20G', target]],
      ['ext4 20G prealloc: shell', ['sh', shellScript(work, header, size, 'prealloc', target)]],
      ['xfs 1G sparse: mkimage', ['node', BIN, '--fs', 'xfs', '--size', '1G', '--sparse', target]],
      ...(zfsPool ? [['zfs 1G sparse: mkimage', ['node', BIN, '--fs', 'zfs', '--pool', zfsPool, '--size', '1G', '--sparse', target]]] : []),
    ];
    for (const [label, argv] of runs) {
      const p = processes(argv, work);
      rm();
      say(p ? `- ${label}: ${p.length} (${p.join(', ')})` : `- ${label}: strace is not installed`);
    }
    say();
  } finally {
    spawnSync('sh', ['-c', `losetup -l -n -O NAME,BACK-FILE | grep ${work} | cut -d' ' -f1 | xargs -r -n1 losetup -d`]);
    rmSync(work, { recursive: true, force: true });
    rmSync(OUT, { force: true });
  }
  // The hand-written analysis below the marker (round 2, issue 13) is kept as it is.
  const MARK = '<!-- written by hand below this line; bench/why.js keeps it -->';
  const old = existsSync(join(REPO, 'bench/WHY.md')) ? readFileSync(join(REPO, 'bench/WHY.md'), 'utf8') : '';
  const kept = old.includes(MARK) ? old.slice(old.indexOf(MARK)) : '';
  writeFileSync(join(REPO, 'bench/WHY.md'), `${md.join('\n')}\n${kept ? `\n${kept}` : ''}`);
  process.stderr.write('why: wrote bench/WHY.md\n');
}

main().catch((e) => {
  process.stderr.write(`why: ${e.stack ?? e}\n`);
  process.exitCode = 1;
});
