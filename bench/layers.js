#!/usr/bin/env node
/**
 * Layer import and export throughput against GNU tar on the same pool (issue 5):
 *
 *   import     mkimage layers import IMAGE layer.tar      (CLI, image attached already)
 *   import.gz  mkimage layers import IMAGE layer.tar.gz
 *   tar -x     tar -xf layer.tar -C <a fresh plain dataset of the same pool>
 *   tar -xz    tar -xzf layer.tar.gz -C <a fresh plain dataset>
 *   export     mkimage layers export IMAGE DIGEST -o out.tar  (diff against the empty parent)
 *   tar -c     tar -cf out.tar -C <the layer's mountpoint> .
 *
 * The layer is generated (seeded, so every run has the same bytes): a tree of files of mixed
 * sizes, half random (incompressible), half text. Each case runs once per round, rounds
 * alternate; medians of wall time; MiB/s are of the uncompressed tar. Between rounds the imported
 * layer and the plain datasets are destroyed, so every run writes everything.
 *
 * With --tar FILE the layer is that tar instead (a real root filesystem: `mmdebstrap
 * --variant=minbase bookworm FILE.tar`, ~9,000 entries, mostly small files: the per-entry cost);
 * only import and tar -x run then, and the result goes to bench/layers-rootfs-results.md.
 *
 *   npm run build && node bench/layers.js [--rounds N] [--mib SIZE] [--tar FILE] [--no-write]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO, 'bin/mkimage.js');
const MiB = 1024 * 1024;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const ROUNDS = opt('--rounds', 3);
const LAYER_MIB = opt('--mib', 128);
const WRITE = !args.includes('--no-write');
const TAR = args.includes('--tar') ? resolve(args[args.indexOf('--tar') + 1]) : undefined;

function sh(file, argv, options = {}) {
  const r = spawnSync(file, argv, { encoding: 'utf8', maxBuffer: 64 * MiB, ...options });
  if (r.status !== 0) throw new Error(`${file} ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function timed(file, argv) {
  const t0 = process.hrtime.bigint();
  sh(file, argv);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** A deterministic tree of about `mib` MiB: files from 200 B to 4 MiB in nested directories. */
function makeTree(root, mib) {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  let total = 0;
  let n = 0;
  const text = Buffer.from('Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(2000));
  while (total < mib * MiB) {
    const dir = join(root, `d${Math.floor(rand() * 40)}`, `s${Math.floor(rand() * 8)}`);
    mkdirSync(dir, { recursive: true });
    const size = Math.floor(200 * Math.pow(2, rand() * 14.4)); // 200 B .. ~4 MiB, log-uniform
    const data = n % 2 ? randomBytesSeeded(size, n) : Buffer.alloc(size, text);
    writeFileSync(join(dir, `f${n}`), data);
    total += size;
    n++;
  }
  return { files: n, bytes: total };
}

function randomBytesSeeded(size, n) {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(`seed${n}`).digest();
  for (let off = 0; off < size; off += 32) {
    block.copy(out, off, 0, Math.min(32, size - off));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'mkimage-bench-layers-'));
  const pool = `blyr${process.pid}`;
  const image = join(work, 'bench.img');
  try {
    const tree = join(work, 'tree');
    let made;
    let layer = join(work, 'layer.tar');
    if (TAR) {
      layer = TAR;
      made = { files: Number(sh('sh', ['-c', `tar -tf '${TAR}' | wc -l`]).trim()), bytes: statSync(TAR).size };
    } else {
      made = makeTree(tree, LAYER_MIB);
      sh('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-cf', layer, '-C', tree, '.']);
      sh('sh', ['-c', `gzip -1 -c '${layer}' > '${layer}.gz'`]);
      rmSync(tree, { recursive: true, force: true });
    }
    const tarBytes = statSync(layer).size;
    const digest = createHash('sha256').update(readFileSync(layer)).digest('hex');
    const gzBytes = TAR ? 0 : statSync(`${layer}.gz`).size;
    console.error(`layer: ${made.files} ${TAR ? 'entries' : 'files'}, tar ${(tarBytes / MiB).toFixed(1)} MiB${TAR ? '' : `, gz ${(gzBytes / MiB).toFixed(1)} MiB`}`);

    sh('node', [BIN, '--size', `${Math.max(2048, LAYER_MIB * 6)}M`, '--sparse', '--fs', 'zfs', '--pool', pool, image]);
    const attached = JSON.parse(sh('node', [BIN, 'attach', image, '--json']));
    const rootMount = attached.mountpoints.find((m) => m.dataset === pool).mountpoint;
    const zfsDestroy = (ds) => spawnSync('sh', ['-c', `zfs unmount ${ds} 2>/dev/null; for i in 1 2 3 4 5; do zfs destroy -r ${ds} && exit 0; sleep 0.3; done; exit 1`]);

    const times = { import: [], 'import.gz': [], 'tar -x': [], 'tar -xz': [], export: [], 'tar -c': [], 'list (fixed cost)': [] };
    for (let round = 0; round < ROUNDS; round++) {
      const imports = () => {
        for (const [name, src] of TAR ? [['import', layer]] : [['import', layer], ['import.gz', `${layer}.gz`]]) {
          zfsDestroy(`${pool}/storage/${digest}`);
          times[name].push(timed('node', [BIN, 'layers', 'import', image, src, '-q']));
        }
      };
      const tars = () => {
        for (const [name, flags] of TAR ? [['tar -x', '-xf']] : [['tar -x', '-xf'], ['tar -xz', '-xzf']]) {
          const ds = `${pool}/plain${round}`;
          sh('zfs', ['create', ds]);
          // --numeric-owner, as mkimage applies uid/gid numbers; tar -x as root keeps owners and modes.
          times[name].push(timed('tar', [flags, flags === '-xf' ? layer : `${layer}.gz`, '--numeric-owner', '-C', join(rootMount, `plain${round}`)]));
          zfsDestroy(ds);
        }
      };
      // Alternating which goes first: the first write after a pool's creation or a destroy pays more.
      if (round % 2) {
        tars();
        imports();
      } else {
        imports();
        tars();
      }
      if (TAR) {
        times['list (fixed cost)'].push(timed('node', [BIN, 'layers', 'list', image, '-q']));
        console.error(`round ${round + 1}/${ROUNDS}: import ${times.import.at(-1).toFixed(2)} s, tar -x ${times['tar -x'].at(-1).toFixed(2)} s (load ${loadavg()[0].toFixed(2)})`);
        continue;
      }
      const out = join(work, 'out.tar');
      times.export.push(timed('node', [BIN, 'layers', 'export', image, digest, '-o', out, '-q']));
      rmSync(out, { force: true });
      times['tar -c'].push(timed('tar', ['-cf', out, '-C', join(rootMount, 'storage', digest), '.']));
      rmSync(out, { force: true });
      // What every command pays before its work: Node start-up, which ZFS, the attach check, zfs get.
      times['list (fixed cost)'].push(timed('node', [BIN, 'layers', 'list', image, '-q']));
      console.error(`round ${round + 1}/${ROUNDS} done`);
    }
    sh('node', [BIN, 'detach', image]);

    const flavour = attached.flavour;
    const lines = [
      '# Layer import/export throughput',
      '',
      `Machine: ${cpus()[0]?.model ?? '?'} x${cpus().length}, Linux ${release()}, Node ${process.version}, ${flavour}.`,
      TAR
        ? `Layer: ${TAR.split('/').pop()} (${made.entries ?? made.files} entries), tar ${(tarBytes / MiB).toFixed(1)} MiB. Load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}.`
        : `Layer: ${made.files} files (200 B to 4 MiB, half random, half text), tar ${(tarBytes / MiB).toFixed(1)} MiB, gzip -1 ${(gzBytes / MiB).toFixed(1)} MiB.`,
      `${ROUNDS} rounds, cases alternating (and which goes first), median wall time; MiB/s of the uncompressed tar. mkimage runs as the CLI (Node start-up included), on an image attached already.`,
      '',
      '| case | median s | MiB/s | vs tar |',
      '|---|---:|---:|---:|',
    ];
    const base = { import: 'tar -x', 'import.gz': 'tar -xz', export: 'tar -c' };
    for (const [name, ts] of Object.entries(times)) {
      if (!ts.length) continue;
      const m = median(ts);
      const ref = base[name] ? median(times[base[name]]) : undefined;
      const rate = name.startsWith('list') ? '' : (tarBytes / MiB / m).toFixed(1);
      lines.push(`| ${name} | ${m.toFixed(2)} | ${rate} | ${ref ? `${(m / ref).toFixed(2)}x time` : ''} |`);
    }
    if (!TAR) lines.push('', 'export writes its file through a temporary name and fsyncs it before the rename; tar -c does neither.');
    const text = lines.join('\n') + '\n';
    process.stdout.write(text);
    if (WRITE) writeFileSync(join(REPO, 'bench', TAR ? 'layers-rootfs-results.md' : 'layers-results.md'), text);
  } finally {
    spawnSync('node', [BIN, 'destroy', image, '--yes']);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
