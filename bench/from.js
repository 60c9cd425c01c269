#!/usr/bin/env node
/**
 * `mkimage --from` of a Debian rootfs tar against the shortest shell doing the same job (issue 10):
 *
 *   from          mkimage --from ROOTFS.tar --size auto --sparse IMAGE        (ext4)
 *   tar+mkfs      tar -xpf ROOTFS.tar -C DIR (--numeric-owner --xattrs as root)
 *                 && truncate -s SIZE IMAGE && mkfs.ext4 -q -F -b 4096 -E offset=2097152 -d DIR IMAGE BLOCKS
 *
 * both as root and as an ordinary user (setpriv --reuid=65534 --regid=65534 --clear-groups). The
 * shell as an ordinary user loses owners, device nodes and security xattrs (tar cannot make them);
 * mkimage keeps them all. SIZE is what mkimage's --size auto chose. Targets: at most 1.2x as
 * root, 1.5x as an ordinary user. Rounds alternate; medians of wall time. The rootfs is the one
 * the tests cache (test/system/helpers/rootfs.ts: mmdebstrap --variant=minbase bookworm).
 *
 *   npm run build && node bench/from.js [--rounds N] [--rootfs TAR] [--no-write]
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO, 'bin/mkimage.js');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i === -1 ? dflt : args[i + 1];
};
const ROUNDS = Number(opt('--rounds', 3));
const CACHE = process.env.MKIMAGE_TEST_CACHE || join(REPO, '.cache');
const ROOTFS = opt('--rootfs', join(CACHE, 'rootfs/bookworm-minbase.tar'));
const WRITE = !args.includes('--no-write');
const USER = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

if (!existsSync(ROOTFS)) {
  console.error(`bench/from.js: ${ROOTFS} is missing: run the real-data test once (npx vitest run test/system/from-rootfs.test.ts) or give --rootfs TAR`);
  process.exit(1);
}
if (process.getuid() !== 0) {
  console.error('bench/from.js: run as root (it also runs each case as uid 65534)');
  process.exit(1);
}

function run(argv, { ok = [0] } = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (!ok.includes(r.status)) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function timed(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const work = mkdtempSync(join(tmpdir(), 'mkimage-bench-from-'));
chmodSync(work, 0o777);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  // The size --size auto picks, for the shell's image too.
  const probe = JSON.parse(run(['node', BIN, '--from', ROOTFS, '--size', 'auto', '--sparse', '--json', join(work, 'probe.img')]));
  const sizeBytes = probe.sizeBytes;
  const fsBlocks = Math.floor(probe.layout.fsSizeBytes / 4096);
  rmSync(join(work, 'probe.img'));
  const cases = {
    'from (root)': () => run(['node', BIN, '--from', ROOTFS, '--size', 'auto', '--sparse', '-q', join(work, 'a.img')]),
    'tar+mkfs (root)': () => {
      mkdirSync(join(work, 'tree'));
      run(['tar', '-xpf', ROOTFS, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', join(work, 'tree')]);
      run(['truncate', '-s', String(sizeBytes), join(work, 'b.img')]);
      run(['mkfs.ext4', '-q', '-F', '-b', '4096', '-E', 'offset=2097152', '-d', join(work, 'tree'), join(work, 'b.img'), String(fsBlocks)]);
    },
    'from (user)': () => run([...USER, 'node', BIN, '--from', ROOTFS, '--size', 'auto', '--sparse', '-q', join(work, 'c.img')]),
    'tar+mkfs (user)': () => {
      mkdirSync(join(work, 'utree'));
      chmodSync(join(work, 'utree'), 0o777);
      // Device nodes fail (exit 2): the rest is extracted, as a user's `tar -x` does.
      run([...USER, 'tar', '-xf', ROOTFS, '-C', join(work, 'utree')], { ok: [0, 2] });
      run([...USER, 'truncate', '-s', String(sizeBytes), join(work, 'd.img')]);
      run([...USER, 'mkfs.ext4', '-q', '-F', '-b', '4096', '-E', 'offset=2097152', '-d', join(work, 'utree'), join(work, 'd.img'), String(fsBlocks)]);
    },
  };
  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  const clean = () => {
    for (const n of ['a.img', 'b.img', 'c.img', 'd.img', 'tree', 'utree']) rmSync(join(work, n), { recursive: true, force: true });
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, fn] of Object.entries(cases)) {
      clean();
      run(['sync']);
      times[name].push(timed(fn));
      console.error(`round ${round + 1}: ${name} ${times[name].at(-1).toFixed(2)} s`);
    }
  }
  clean();
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  const rootRatio = m['from (root)'] / m['tar+mkfs (root)'];
  const userRatio = m['from (user)'] / m['tar+mkfs (user)'];
  const tarMiB = statSync(ROOTFS).size / 2 ** 20;
  const lines = [
    '# `mkimage --from` against `tar -x` + `mkfs.ext4 -d`',
    '',
    `Written by \`node bench/from.js\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, kernel ${release()}, Node ${process.version}, in ${tmpdir()}.`,
    `Rootfs: ${ROOTFS} (${tarMiB.toFixed(0)} MiB, ${probe.from.entries} entries, mmdebstrap --variant=minbase bookworm); ext4 image ${(sizeBytes / 2 ** 20).toFixed(0)} MiB (--size auto).`,
    `Medians of ${ROUNDS} alternating rounds, wall seconds.`,
    '',
    '| case | mkimage --from | tar -x + mkfs.ext4 -d | ratio | target | |',
    '|---|---|---|---|---|---|',
    `| root | ${m['from (root)'].toFixed(2)} | ${m['tar+mkfs (root)'].toFixed(2)} | ${rootRatio.toFixed(2)}x | 1.2x | ${rootRatio <= 1.2 ? 'pass' : 'miss'} |`,
    `| ordinary user | ${m['from (user)'].toFixed(2)} | ${m['tar+mkfs (user)'].toFixed(2)} | ${userRatio.toFixed(2)}x | 1.5x | ${userRatio <= 1.5 ? 'pass' : 'miss'} |`,
    '',
    'All rounds (s): ' + Object.entries(times).map(([k, v]) => `${k}: ${v.map((x) => x.toFixed(2)).join(', ')}`).join('; '),
    '',
    'The shell as an ordinary user makes an image without device nodes, with every file owned by',
    'the user; mkimage\'s has the owners, modes, devices and xattrs of the layers. mkimage also',
    'checks the layer digest and fsyncs the image before renaming it into place.',
    '',
  ];
  console.log(lines.join('\n'));
  if (WRITE) writeFileSync(join(REPO, 'bench/from-results.md'), lines.join('\n'));
} finally {
  rmSync(work, { recursive: true, force: true });
}
