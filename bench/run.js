#!/usr/bin/env node
/**
 * mkimage benchmarks: `npm run bench` (never part of `npm test`).
 *
 * Side by side in one run, alternating (round after round, each case once per round), medians:
 *
 *   mkimage                  node bin/mkimage.js ... (the CLI as users run it)
 *   shell                    the shortest shell script doing the same job: truncate, fallocate,
 *                            dd of a prepared header file, the same mkfs / losetup / zpool commands
 *                            with the same options mkimage passes (built by mkimage's own argument
 *                            functions, or recorded from a mkimage run for zfs), mv into place
 *   node                     `node -e ''`: the start-up every Node CLI pays
 *
 * for --fs none|ext4|xfs (and zfs when `--fs zfs` makes a pool), sizes 1 GiB, 20 GiB and 1 TiB,
 * sparse and preallocated (preallocated only where the disk has room), `--populate` of a 200 MB
 * tree against `mkfs.ext4 -d` alone, and `inspect`. For ext4 also the tools users would otherwise
 * pick, on the same sizes: systemd-repart (GPT, one ext4 partition, no PFN block) and qemu-img +
 * parted + mkfs.ext4 (MBR; preallocated: qemu-img -o preallocation=falloc, repart after fallocate).
 *
 * Measured per run with wait4(2) (bench/rusage.c): wall time, CPU (user + sys of the process and
 * every child it waited for), peak RSS (the largest of the process and its children), and the
 * image's on-disk size (st_blocks). Writes bench/RESULTS.md with the machine and the targets of
 * issue 13 marked pass/fail.
 *
 *   node bench/run.js [--rounds N] [--dir DIR] [--only SUBSTRING] [--no-write] [--no-zfs]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, statfsSync, writeFileSync, readdirSync, openSync, closeSync, ftruncateSync, readSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BIN, PRIVATE, REPO, privateBuild } from './private-build.js';
/** The pool name of the --fs zfs cases (built and exported one run at a time). */
const ZPOOL = `mkbench${process.pid % 100000}`;
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TiB = 1024 ** 4;

// ------------------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const o = { rounds: 7, dir: undefined, only: undefined, write: true, zfs: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') o.rounds = Number(argv[++i]);
    else if (a === '--dir') o.dir = argv[++i];
    else if (a === '--only') o.only = argv[++i];
    else if (a === '--no-write') o.write = false;
    else if (a === '--no-zfs') o.zfs = false;
    else throw new Error(`unknown option ${a} (see the comment at the top of bench/run.js)`);
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new Error('--rounds must be a positive integer');
  return o;
}

// ------------------------------------------------------------------------------------------------
// Measuring one run

const CACHE = join(REPO, '.cache');

/** bench/rusage.c compiled once into .cache/; GNU time (10 ms resolution) without a compiler. */
function rusageTool() {
  const bin = join(CACHE, 'rusage');
  const src = join(REPO, 'bench/rusage.c');
  mkdirSync(CACHE, { recursive: true });
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return { kind: 'wait4', bin };
  const cc = spawnSync('cc', ['-O2', '-o', bin, src], { encoding: 'utf8' });
  if (cc.status === 0) return { kind: 'wait4', bin };
  if (existsSync('/usr/bin/time')) return { kind: 'gnu-time', bin: '/usr/bin/time' };
  throw new Error('need a C compiler (cc) or GNU time (/usr/bin/time) to measure children\'s CPU and RSS');
}

let RUSAGE;
/** The 1-minute load average after each recorded round. */
const LOADS = [];
const OUT = join(tmpdir(), `mkimage-bench-rusage-${process.pid}`);

/** Runs argv once; returns wall/cpu in ms, RSS in KiB, the exit status and stderr. */
function measure(argv, options = {}) {
  let wallMs;
  let userMs;
  let sysMs;
  let rssKiB;
  let status;
  let r;
  if (RUSAGE.kind === 'wait4') {
    r = spawnSync(RUSAGE.bin, [OUT, ...argv], { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    const line = readFileSync(OUT, 'utf8').trim().split(/\s+/).map(Number);
    [wallMs, userMs, sysMs, rssKiB, status] = [line[0] / 1e6, line[1] / 1e3, line[2] / 1e3, line[3], line[4]];
  } else {
    const t = performance.now();
    r = spawnSync(RUSAGE.bin, ['-f', '%U %S %M %x', '-o', OUT, ...argv], { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    wallMs = performance.now() - t;
    const line = readFileSync(OUT, 'utf8').trim().split('\n').pop().split(/\s+/).map(Number);
    [userMs, sysMs, rssKiB, status] = [line[0] * 1e3, line[1] * 1e3, line[2], line[3]];
  }
  return { wallMs, cpuMs: userMs + sysMs, userMs, sysMs, rssKiB, status, stderr: r.stderr ?? '' };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ------------------------------------------------------------------------------------------------
// The machine

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function machine(dir) {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    fsType: sh('findmnt', ['-n', '-o', 'FSTYPE', '--target', dir]) ?? sh('stat', ['-f', '-c', '%T', dir]) ?? 'unknown',
    mountOptions: sh('findmnt', ['-n', '-o', 'OPTIONS', '--target', dir]) ?? 'unknown',
    e2fsprogs: (sh('mkfs.ext4', ['-V']) ?? '').split('\n')[0] || spawnSync('mkfs.ext4', ['-V'], { encoding: 'utf8' }).stderr.split('\n')[0],
    xfsprogs: sh('mkfs.xfs', ['-V']) ?? 'unknown',
    loadAtStart: loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

// ------------------------------------------------------------------------------------------------
// Cases

/**
 * A case is one command measured round after round. `group` puts mkimage and its comparisons side
 * by side; `target` is the file whose st_blocks is the on-disk size; `setup`/`cleanup` run outside
 * the measurement.
 */
function mkCase(c) {
  return { runs: [], failures: [], ...c };
}

async function loadMkimage() {
  const mkfs = await import(join(PRIVATE, 'dist/tools/mkfs.js'));
  const losetup = await import(join(PRIVATE, 'dist/tools/losetup.js'));
  const fallocate = await import(join(PRIVATE, 'dist/tools/fallocate.js'));
  const plan = await import(join(PRIVATE, 'dist/layout/plan.js'));
  return { ...mkfs, ...losetup, ...fallocate, ...plan };
}

const q = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
/** Placeholders in an argument list for the shell variables "$t" (temp file) and "$d" (loop device). */
const TMP = '@TMP@';
const DEV = '@DEV@';
const line = (argv) => argv.map((a) => (a === TMP ? '"$t"' : a === DEV ? '"$d"' : q(a))).join(' ');

/** Detaches loop devices of files under `dir` (after a failed shell run) and removes `paths`. */
function removeAll(dir, paths) {
  const loops = sh('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']) ?? '';
  for (const l of loops.split('\n')) if (l.includes(dir)) spawnSync('losetup', ['-d', l.trim().split(/\s+/)[0]]);
  for (const p of paths) rmSync(p, { force: true, recursive: true });
}

function makeTree(root, totalBytes) {
  // 200 MB as 40 directories x 50 files x 100 KB, plus a few larger files: what a small root
  // filesystem or application tree looks like to mkfs.ext4 -d (many inodes and directory blocks).
  if (existsSync(join(root, '.done'))) return;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  let seed = 12345;
  const chunk = Buffer.alloc(100 * 1000);
  const fillChunk = () => {
    for (let i = 0; i < chunk.length; i += 4) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      chunk.writeUInt32LE(seed, i);
    }
  };
  let written = 0;
  for (let d = 0; written < totalBytes * 0.9 && d < 40; d++) {
    const sub = join(root, `dir${d}`, 'sub');
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 45; f++) {
      fillChunk();
      writeFileSync(join(f % 3 ? sub : join(root, `dir${d}`), `file${f}.bin`), chunk);
      written += chunk.length;
    }
  }
  const big = Buffer.alloc(4 * 1000 * 1000);
  while (written < totalBytes) {
    fillChunk();
    for (let i = 0; i < big.length; i += chunk.length) chunk.copy(big, i);
    writeFileSync(join(root, `big${written}.bin`), big);
    written += big.length;
  }
  writeFileSync(join(root, '.done'), '');
}

function duBytes(root) {
  const out = sh('du', ['-sb', root]);
  return out ? Number(out.split(/\s/)[0]) : 0;
}

/** Does `--fs zfs` make a pool? Returns a reason when it does not. */
function zfsSupport(work) {
  if ((sh('zpool', ['list', '-H']) ?? null) === null) return { ok: false, why: 'zpool list fails (no ZFS, or the zfs-fuse daemon is not running)' };
  const img = join(work, 'zfs-probe.img');
  const r = spawnSync('node', [BIN, '--fs', 'zfs', '--pool', ZPOOL, '--sparse', '--size', '1G', '--json', img], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(img, { force: true });
    return { ok: false, why: `mkimage --fs zfs failed: ${(r.stderr || '').trim().split('\n')[0]}` };
  }
  const i = spawnSync('node', [BIN, 'inspect', '--json', img], { encoding: 'utf8' });
  rmSync(img, { force: true });
  let fsType;
  try {
    fsType = JSON.parse(i.stdout).filesystem?.type;
  } catch {
    fsType = undefined;
  }
  if (fsType !== 'zfs') return { ok: false, why: `mkimage --fs zfs exits 0 but inspect finds ${fsType ?? 'no filesystem'} in the partition (no pool was made)` };
  return { ok: true };
}

/**
 * The zpool/zfs commands mkimage runs for --fs zfs, recorded through PATH wrappers, with the loop
 * device and image path turned into shell variables: the shell baseline then runs exactly them.
 */
function recordZfsCommands(work, sizeArg) {
  const wrapDir = join(work, 'record-path');
  const log = join(work, 'record.log');
  mkdirSync(wrapDir, { recursive: true });
  rmSync(log, { force: true });
  for (const tool of ['zpool', 'zfs', 'losetup']) {
    const real = sh('sh', ['-c', `command -v ${tool}`]);
    if (!real) continue;
    writeFileSync(join(wrapDir, tool), `#!/bin/sh\nprintf '%s' ${tool} >> ${q(log)}\nfor a in "$@"; do printf '\\037%s' "$a" >> ${q(log)}; done\necho >> ${q(log)}\nexec ${q(real)} "$@"\n`, { mode: 0o755 });
  }
  const img = join(work, 'zfs-record.img');
  const r = spawnSync('node', [BIN, '--fs', 'zfs', '--pool', ZPOOL, '--sparse', '--size', sizeArg, img], { encoding: 'utf8', env: { ...process.env, PATH: `${wrapDir}:${process.env.PATH}` } });
  rmSync(img, { force: true });
  if (r.status !== 0 || !existsSync(log)) return undefined;
  // Only the commands that do the job: not mkimage's queries (flavour, is the name free, status).
  const queries = new Set(['list', 'get', 'status', 'upgrade', 'version', '--list', '--json']);
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('\x1f'))
    .filter(([, sub]) => !queries.has(sub));
}

/** The tools users would otherwise pick for an ext4 image of `bytes`, where installed. */
function otherTools(work, group, bytes, sparse) {
  const out = [];
  const slug = group.replace(/\s/g, '-');
  const target = join(work, `other-${slug}.img`);
  const cleanup = () => removeAll(work, [target]);
  if (sh('sh', ['-c', 'command -v systemd-repart']) !== undefined) {
    const defs = join(work, 'repart.d');
    mkdirSync(defs, { recursive: true });
    writeFileSync(join(defs, '10-data.conf'), '[Partition]\nType=linux-generic\nFormat=ext4\n');
    const repart = `systemd-repart --dry-run=no --no-pager --definitions=${q(defs)}`;
    const script = sparse ? `${repart} --empty=create --size=${bytes} ${q(target)}` : `fallocate -l ${bytes} ${q(target)}\n${repart} --empty=force ${q(target)}`;
    out.push(mkCase({ group, label: 'systemd-repart', kind: 'other', argv: ['sh', '-c', script], target, cleanup, script }));
  }
  if (sh('sh', ['-c', 'command -v qemu-img && command -v parted']) !== undefined) {
    const blocks = (bytes - 2 * MiB) / 4096;
    const script = [
      `qemu-img create -q -f raw${sparse ? '' : ' -o preallocation=falloc'} ${q(target)} ${bytes}`,
      `parted -s ${q(target)} mklabel msdos mkpart primary ext4 2MiB 100%`,
      `mkfs.ext4 -q -F -E offset=${2 * MiB} ${q(target)} ${blocks}`,
    ].join(' && ');
    out.push(mkCase({ group, label: 'qemu-img + parted + mkfs.ext4', kind: 'other', argv: ['sh', '-c', script], target, cleanup, script }));
  }
  return out;
}

function buildCases(o, work, mk, zfs) {
  const cases = [];
  const sizes = [
    { name: '1G', bytes: GiB },
    { name: '20G', bytes: 20 * GiB },
    { name: '1T', bytes: TiB },
  ];
  const notes = [];
  const free = Number(statfsSync(work).bavail) * Number(statfsSync(work).bsize);
  const fsTypes = ['none', 'ext4', 'xfs', ...(zfs.ok ? ['zfs'] : [])];
  if (!zfs.ok) notes.push(`--fs zfs not measured: ${zfs.why}.`);

  cases.push(mkCase({ group: 'start-up', label: "node -e ''", kind: 'node', argv: ['node', '-e', ''] }));
  cases.push(mkCase({ group: 'start-up', label: 'mkimage --version', kind: 'mkimage', argv: ['node', BIN, '--version'] }));

  // Header files for the shell baseline: the first 8 KiB of an image of each size (MBR + PFN block).
  const headers = {};
  for (const s of sizes) {
    for (const fs of fsTypes) {
      const img = join(work, `hdr-${fs}-${s.name}.img`);
      execFileSync('node', [BIN, '--fs', 'none', '--sparse', '--size', s.name, '--seed', 'bench', img]);
      const buf = Buffer.alloc(8192);
      const fd = openSync(img, 'r');
      readSync(fd, buf, 0, 8192, 0);
      closeSync(fd);
      // --fs zfs marks the partition 0xBF; only the type byte differs from --fs none.
      if (fs === 'zfs') buf[446 + 4] = 0xbf;
      const hdr = join(work, `hdr-${fs}-${s.name}.bin`);
      writeFileSync(hdr, buf);
      rmSync(img);
      headers[`${fs}-${s.name}`] = hdr;
    }
  }
  const zfsRecorded = zfs.ok ? recordZfsCommands(work, '1G') : undefined;
  if (zfs.ok && !zfsRecorded) notes.push('--fs zfs: could not record the zpool commands mkimage runs; no shell baseline for zfs.');

  for (const fs of fsTypes) {
    for (const s of sizes) {
      for (const sparse of [true, false]) {
        const mode = sparse ? 'sparse' : 'prealloc';
        if (!sparse && s.bytes >= TiB) {
          if (fs === 'none') notes.push(`${s.name} preallocated skipped for every --fs: it needs ${s.name} of free disk, ${(free / GiB).toFixed(0)} GiB is free.`);
          continue;
        }
        if (!sparse && s.bytes + 4 * GiB > free) {
          notes.push(`${fs} ${s.name} preallocated skipped: ${(free / GiB).toFixed(0)} GiB free.`);
          continue;
        }
        const group = `${fs} ${s.name} ${mode}`;
        const target = join(work, `${fs}-${s.name}-${mode}.img`);
        const tmp = join(work, `.${fs}-${s.name}-${mode}.img.tmp`);
        const mkArgv = ['node', BIN, '--fs', fs, ...(fs === 'zfs' ? ['--pool', ZPOOL] : []), '--size', s.name, ...(sparse ? ['--sparse'] : []), target];
        cases.push(mkCase({ group, label: 'mkimage', kind: 'mkimage', argv: mkArgv, target, cleanup: () => removeAll(work, [target, tmp]), fs, size: s.name, mode }));

        const partOff = 2 * MiB;
        const fsBytes = s.bytes - partOff;
        const lines = ['set -e', `t=${q(tmp)}`, `truncate -s ${s.bytes} "$t"`];
        if (!sparse) lines.push(line(['fallocate', ...mk.fallocateArgs(TMP, 0, s.bytes)]));
        lines.push(`dd if=${q(headers[`${fs}-${s.name}`])} of="$t" bs=8192 count=1 conv=notrunc status=none`);
        const uuid = '6825d385-276f-438e-88f9-7d72ac2451a3';
        const hashSeed = '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60';
        if (fs === 'ext4') {
          lines.push(line(['mkfs.ext4', ...mk.ext4Args({ target: TMP, offsetBytes: partOff, sizeBytes: fsBytes, uuid, hashSeed })]));
        } else if (fs === 'xfs') {
          lines.push(`d=$(${line(['losetup', ...mk.attachArgs({ file: TMP, offsetBytes: partOff, sizeLimitBytes: fsBytes })])})`);
          lines.push(line(['mkfs.xfs', ...mk.xfsArgs({ device: DEV, uuid })]));
          lines.push('losetup -d "$d"');
        } else if (fs === 'zfs') {
          if (!zfsRecorded) continue;
          lines.push('a=$(mktemp -d)');
          for (const argv of zfsRecorded) {
            const [tool, ...args] = argv;
            if (tool === 'losetup' && args.includes('--show')) {
              const i = args.indexOf('--sizelimit');
              if (i >= 0) args[i + 1] = String(s.bytes - partOff);
              lines.push(`d=$(losetup ${args.slice(0, -1).map(q).join(' ')} "$t")`);
            } else if (tool === 'losetup') {
              lines.push('losetup -d "$d"');
            } else {
              // The loop device and mkimage's private altroot become the script's own.
              const altroot = args[args.indexOf('-R') + 1];
              lines.push(`${tool} ${args.map((a) => (/^\/dev\/loop\d+$/.test(a) ? '"$d"' : a === altroot && args.includes('-R') ? '"$a"' : q(a))).join(' ')}`);
            }
          }
          lines.push('rm -rf "$a"');
        }
        lines.push(`mv "$t" ${q(target)}`);
        const script = join(work, `${fs}-${s.name}-${mode}.sh`);
        writeFileSync(script, `${lines.join('\n')}\n`);
        cases.push(mkCase({ group, label: 'shell', kind: 'shell', argv: ['sh', script], target, cleanup: () => removeAll(work, [target, tmp]), script: lines.join('\n') }));
        if (fs === 'ext4') cases.push(...otherTools(work, group, s.bytes, sparse));
      }
    }
  }

  // --populate of a 200 MB tree against mkfs.ext4 -d alone (same size, same options).
  const tree = join(work, 'tree-200MB');
  makeTree(tree, 200 * 1000 * 1000);
  notes.push(`populate tree: ${(duBytes(tree) / 1e6).toFixed(0)} MB in ${readdirSync(tree).length} top-level entries (40 dirs x 45 files of 100 KB, plus 4 MB files).`);
  {
    const group = 'populate ext4 1G sparse (200 MB tree)';
    const target = join(work, 'pop.img');
    cases.push(mkCase({ group, label: 'mkimage', kind: 'mkimage', argv: ['node', BIN, '--size', '1G', '--sparse', '--populate', tree, target], target, cleanup: () => removeAll(work, [target]) }));
    const file = join(work, 'pop-mkfs.img');
    const args = mk.ext4Args({ target: file, offsetBytes: 2 * MiB, sizeBytes: GiB - 2 * MiB, uuid: '6825d385-276f-438e-88f9-7d72ac2451a3', hashSeed: '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60', populateDir: tree });
    // mkimage fsyncs the image before it publishes it (a power cut never leaves a renamed,
    // half-written image): the baseline syncs the file too (coreutils sync FILE: fsync).
    const script = `${line(['mkfs.ext4', ...args])} && sync ${q(file)}`;
    cases.push(
      mkCase({
        group,
        label: 'mkfs.ext4 -d + sync',
        kind: 'shell',
        argv: ['sh', '-c', script],
        target: file,
        setup: () => {
          const fd = openSync(file, 'w');
          ftruncateSync(fd, GiB);
          closeSync(fd);
        },
        cleanup: () => removeAll(work, [file]),
        script: `truncate -s 1G FILE  # not measured\n${script}`,
      }),
    );
  }

  // inspect: images made once, read every round.
  const inspected = [
    ['ext4 1G', ['--size', '1G', '--sparse']],
    ['ext4 1T', ['--size', '1T', '--sparse']],
    ['xfs 1G', ['--fs', 'xfs', '--size', '1G', '--sparse']],
    ['gpt 3T', ['--table', 'gpt', '--size', '3T', '--sparse']],
    ...(zfs.ok ? [['zfs 1G', ['--fs', 'zfs', '--pool', ZPOOL, '--size', '1G', '--sparse']]] : []),
  ];
  for (const [name, args] of inspected) {
    const img = join(work, `inspect-${name.replace(/\s/g, '-')}.img`);
    if (!existsSync(img)) execFileSync('node', [BIN, ...args, img]);
    cases.push(mkCase({ group: `inspect ${name}`, label: 'mkimage inspect', kind: 'mkimage', argv: ['node', BIN, 'inspect', img], target: img, inspect: true }));
  }

  return { cases: o.only ? cases.filter((c) => c.group === 'start-up' || c.group.includes(o.only)) : cases, notes };
}

// ------------------------------------------------------------------------------------------------
// Running

function runOnce(c, record) {
  c.setup?.();
  const m = measure(c.argv);
  let allocated;
  if (c.target && existsSync(c.target)) allocated = statSync(c.target).blocks * 512;
  const ok = m.status === 0 || (c.inspect && m.status === 1);
  if (!ok) c.failures.push(`exit ${m.status}: ${m.stderr.trim().split('\n').slice(-2).join(' / ')}`);
  else if (record) c.runs.push({ ...m, allocated });
  c.cleanup?.();
  // Outside the measurement: the writeback and discards of what this case wrote and removed (20
  // GiB preallocated files, on a filesystem mounted with `discard`) finish now, not during the
  // next case (round 2 saw `--version` at 1.86x in the full run and 1.43x alone).
  if (SETTLE_DIR) spawnSync('sync', ['--file-system', SETTLE_DIR]);
  return m;
}

/** The filesystem the cases write to, synced after each case (set in main). */
let SETTLE_DIR;

function runAll(cases, rounds) {
  const total = cases.length * (rounds + 1);
  let done = 0;
  const tick = () => {
    done++;
    if (process.stderr.isTTY) process.stderr.write(`\rbench: ${done}/${total} runs`);
  };
  // One warm-up round (page cache, tool binaries, node's own files), not recorded.
  for (const c of cases) {
    runOnce(c, false);
    tick();
  }
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      runOnce(c, true);
      tick();
    }
    LOADS.push(loadavg()[0].toFixed(2));
    if (!process.stderr.isTTY) process.stderr.write(`bench: round ${r + 1}/${rounds} done (load ${LOADS.at(-1)})\n`);
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
}

// ------------------------------------------------------------------------------------------------
// Reporting

const fmtMs = (x) => (x === undefined ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const fmtBytes = (b) => (b === undefined ? '-' : b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : b >= MiB ? `${(b / MiB).toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`);
const fmtRatio = (x) => (x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`);

function summarize(c) {
  if (!c?.runs?.length) return undefined;
  return {
    wall: median(c.runs.map((r) => r.wallMs)),
    wallMin: Math.min(...c.runs.map((r) => r.wallMs)),
    wallMax: Math.max(...c.runs.map((r) => r.wallMs)),
    cpu: median(c.runs.map((r) => r.cpuMs)),
    rss: Math.max(...c.runs.map((r) => r.rssKiB)) * 1024,
    allocated: c.runs.at(-1).allocated,
    n: c.runs.length,
  };
}

function table(cases) {
  const node = summarize(cases.find((c) => c.kind === 'node'));
  const rows = [];
  rows.push('| case | command | wall median ms (min..max) | vs shell | vs `node -e \'\'` | CPU ms (user+sys, children too) | peak RSS | on disk |');
  rows.push('|---|---|---|---|---|---|---|---|');
  const groups = [...new Set(cases.map((c) => c.group))];
  for (const g of groups) {
    const gc = cases.filter((c) => c.group === g);
    const shell = summarize(gc.find((c) => c.kind === 'shell' && c.label === 'shell') ?? gc.find((c) => c.kind === 'shell') ?? {});
    for (const c of gc) {
      const s = summarize(c);
      if (!s) {
        rows.push(`| ${g} | ${c.label} | failed: ${c.failures[0] ?? 'no runs'} | | | | | |`);
        continue;
      }
      const vsShell = (c.kind === 'mkimage' || c.kind === 'other') && shell ? s.wall / shell.wall : undefined;
      const vsNode = node ? s.wall / node.wall : undefined;
      rows.push(`| ${g} | ${c.label} | ${fmtMs(s.wall)} (${fmtMs(s.wallMin)}..${fmtMs(s.wallMax)}) | ${fmtRatio(vsShell)} | ${fmtRatio(vsNode)} | ${fmtMs(s.cpu)} | ${fmtBytes(s.rss)} | ${c.inspect ? '' : fmtBytes(s.allocated)} |`);
    }
  }
  return rows.join('\n');
}

function targets(cases, zfs) {
  const get = (group, kind = 'mkimage') => summarize(cases.find((c) => c.group === group && c.kind === kind) ?? {});
  const node = get('start-up', 'node');
  const out = [];
  const add = (name, pass, detail) => out.push({ name, pass, detail });
  const ratio = (a, b) => (a && b ? a.wall / b.wall : undefined);
  // CPU (user + sys, children too) over the same: what waiting for a core on a loaded machine does
  // not inflate; the targets are on wall time, this says how much of a miss is the load.
  const cpu = (a, b) => (a && b ? `; CPU ${fmtRatio(a.cpu / b.cpu)}` : '');

  for (const [mode, limit] of [['prealloc', 1.8], ['sparse', 1.6]]) {
    const r = ratio(get(`ext4 20G ${mode}`), node);
    if (r !== undefined) add(`ext4 20 GiB ${mode === 'prealloc' ? 'preallocated' : 'sparse'}: at most ${limit}x \`node -e ''\``, r <= limit, `${fmtRatio(r)} (${fmtMs(get(`ext4 20G ${mode}`).wall)} ms vs ${fmtMs(node.wall)} ms${cpu(get(`ext4 20G ${mode}`), node)})`);
  }
  if (zfs.ok) {
    for (const mode of ['prealloc', 'sparse']) {
      const r = ratio(get(`zfs 20G ${mode}`), node);
      if (r !== undefined) add(`zfs 20 GiB ${mode === 'prealloc' ? 'preallocated' : 'sparse'}: at most 2.5x \`node -e ''\``, r <= 2.5, `${fmtRatio(r)} (${fmtMs(get(`zfs 20G ${mode}`).wall)} ms vs ${fmtMs(node.wall)} ms${cpu(get(`zfs 20G ${mode}`), node)}; the shell script alone: ${fmtRatio(ratio(get(`zfs 20G ${mode}`, 'shell'), node))})`);
    }
  } else {
    add("zfs: at most 2.5x `node -e ''`", undefined, `not measured: ${zfs.why}`);
  }
  for (const fs of ['none', 'ext4', 'xfs', 'zfs']) {
    const r = ratio(get(`${fs} 1T sparse`), get(`${fs} 1G sparse`));
    if (r !== undefined) add(`${fs}: 1 TiB sparse within 1.2x of 1 GiB sparse`, r <= 1.2, `${fmtRatio(r)} (${fmtMs(get(`${fs} 1T sparse`).wall)} ms vs ${fmtMs(get(`${fs} 1G sparse`).wall)} ms)`);
  }
  const mk = cases.filter((c) => c.kind === 'mkimage' && c.runs.length);
  const worst = mk.map((c) => ({ c, rss: summarize(c).rss })).sort((a, b) => b.rss - a.rss)[0];
  if (worst) {
    const nodeOnly = mk.filter((c) => c.group.startsWith('none ') || c.group.startsWith('inspect') || c.group.startsWith('ext4 '));
    const worstNodeish = nodeOnly.map((c) => ({ c, rss: summarize(c).rss })).sort((a, b) => b.rss - a.rss)[0];
    add(
      'peak RSS at most 100 MiB at any size (mkimage and its children)',
      worst.rss <= 100 * MiB,
      `largest ${fmtBytes(worst.rss)} (${worst.c.group})${worstNodeish ? `; without xfs/zfs tools in the tree: ${fmtBytes(worstNodeish.rss)} (${worstNodeish.c.group})` : ''}`,
    );
  }
  const pm = get('populate ext4 1G sparse (200 MB tree)');
  const pd = get('populate ext4 1G sparse (200 MB tree)', 'shell');
  if (pm && pd) add('populate within 1.1x of `mkfs.ext4 -d` + the same sync', pm.wall / pd.wall <= 1.1, `${fmtRatio(pm.wall / pd.wall)} (${fmtMs(pm.wall)} ms vs ${fmtMs(pd.wall)} ms${cpu(pm, pd)})`);
  const ins = cases.filter((c) => c.inspect && c.runs.length).map((c) => ({ c, s: summarize(c) }));
  if (ins.length && node) {
    const w = ins.sort((a, b) => b.s.wall - a.s.wall)[0];
    add('`inspect` of any image within 1.3x of `node -e \'\'`', w.s.wall / node.wall <= 1.3, `slowest ${fmtRatio(w.s.wall / node.wall)} (${w.c.group}: ${fmtMs(w.s.wall)} ms vs ${fmtMs(node.wall)} ms${cpu(w.s, node)})`);
  }
  return out;
}

function markdown(m, o, cases, notes, zfs) {
  const t = targets(cases, zfs);
  const failures = cases.filter((c) => c.failures.length).map((c) => `- ${c.group} / ${c.label}: ${c.failures.length} failed run(s): ${c.failures[0]}`);
  const shellScripts = cases.filter((c) => c.script && (c.group.startsWith('ext4 20G') || c.group.startsWith('xfs 20G sparse') || c.group.startsWith('zfs 1G sparse')));
  return `# Benchmark results

Latest \`npm run bench\` (bench/run.js). Medians of ${o.rounds} alternating rounds (each case once per
round, after one unrecorded warm-up round). Measured with ${RUSAGE.kind === 'wait4' ? 'wait4(2) (bench/rusage.c)' : 'GNU time (10 ms resolution)'}:
wall time, CPU = user + sys of the process and every child it waited for, peak RSS = the largest
resident set among the process and its children, on disk = st_blocks x 512 of the image.

- date: ${m.date}
- machine: ${m.nproc} x ${m.cpu}, kernel ${m.kernel}, node ${m.node}
- target directory: ${o.dir} on ${m.fsType} (${m.mountOptions})
- ${m.e2fsprogs}; ${m.xfsprogs}
- load average at start: ${m.loadAtStart}; after each round (1 min): ${LOADS.join(', ')} (2 cores: other jobs on the machine widen the min..max ranges; medians of alternating runs keep the ratios comparable)

## Targets (issue 13)

| target | result | measured |
|---|---|---|
${t.map((x) => `| ${x.name} | ${x.pass === undefined ? 'not measured' : x.pass ? 'pass' : '**fail**'} | ${x.detail} |`).join('\n')}

## All cases

"vs shell" is mkimage's median over the shell script's; "vs \`node -e ''\`" the median over bare
Node's start-up.

${table(cases)}

${notes.length ? `## Notes\n\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}${failures.length ? `\n## Failed runs\n\n${failures.join('\n')}\n` : ''}
## The shell baselines (examples)

${shellScripts.map((c) => `${c.group}, ${c.label}:\n\n\`\`\`sh\n${c.script}\n\`\`\``).join('\n\n')}

Where the time goes when mkimage loses to the shell script: bench/README.md and bench/WHY.md.
`;
}

// ------------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  await privateBuild();
  RUSAGE = rusageTool();
  const base = o.dir ? resolve(o.dir) : tmpdir();
  const work = mkdtempSync(join(base, 'mkimage-bench-'));
  SETTLE_DIR = work;
  o.dir = base;
  const m = machine(base);
  process.stderr.write(`bench: working in ${work} (${m.fsType}), ${o.rounds} rounds\n`);
  try {
    const mk = await loadMkimage();
    const zfs = o.zfs ? zfsSupport(work) : { ok: false, why: 'left out (--no-zfs)' };
    const { cases, notes } = buildCases(o, work, mk, zfs);
    runAll(cases, o.rounds);
    const md = markdown(m, o, cases, notes, zfs);
    process.stdout.write(`${table(cases)}\n\n`);
    for (const t of targets(cases, zfs)) process.stdout.write(`${t.pass === undefined ? 'n/a ' : t.pass ? 'pass' : 'FAIL'}  ${t.name}: ${t.detail}\n`);
    if (o.write && !o.only) {
      writeFileSync(join(REPO, 'bench/RESULTS.md'), md);
      process.stderr.write('bench: wrote bench/RESULTS.md\n');
    }
  } finally {
    removeAll(work, [work]);
    rmSync(OUT, { force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  process.exitCode = 1;
});
