/**
 * A fake ZFS for unit tests of the jobs: a Runner that keeps pools and datasets in memory and
 * answers zpool/zfs the way the given flavour prints, recording every command line. `failOn`
 * makes the first command matching a pattern fail as the real tool would (exit 1, a stderr line).
 */
import { ToolFailedError } from '../../../src/errors.js';
import type { RunOptions, RunResult, Runner } from '../../../src/tools/exec.js';
import type { ZfsFlavour } from '../../../src/tools/zfs.js';

export const OPENZFS: ZfsFlavour = { kind: 'openzfs', version: '2.1.5', poolVersion: 5000, description: 'openzfs 2.1.5' };
export const FUSE: ZfsFlavour = { kind: 'zfs-fuse', version: '0.7.0', poolVersion: 23, description: 'zfs-fuse 0.7.0 (pool version 23)' };

interface FakePool {
  name: string;
  guid: string;
  vdev: string;
  altroot: string;
  mountpoint: string;
  datasets: string[];
  snapshots: string[];
}

export class FakeZfs {
  readonly calls: string[] = [];
  readonly pools = new Map<string, FakePool>();
  /** Exported pools by device, importable again. */
  readonly exported = new Map<string, FakePool>();
  private failures: Array<{ pattern: RegExp; stderr: string }> = [];
  private nextGuid = 1000n;

  constructor(readonly flavour: ZfsFlavour) {}

  failOn(pattern: RegExp, stderr = 'cannot do that'): this {
    this.failures.push({ pattern, stderr });
    return this;
  }

  /** A pool imported from another device, as if made by someone else. */
  addForeignPool(name: string, vdev = '/dev/sdz1'): FakePool {
    const p: FakePool = { name, guid: String(this.nextGuid++), vdev, altroot: '-', mountpoint: `/${name}`, datasets: [name], snapshots: [] };
    this.pools.set(name, p);
    return p;
  }

  readonly runner: Runner = async (file: string, args: readonly string[], options?: RunOptions): Promise<RunResult> => {
    const line = [file, ...args].join(' ');
    this.calls.push(line);
    const ok = (stdout = ''): RunResult => ({ command: [file, ...args], exitCode: 0, stdout, stderr: '' });
    const fail = (stderr: string, exitCode = 1): never => {
      throw new ToolFailedError(`${line} exited with ${exitCode}: ${stderr}`, { command: [file, ...args], exitCode, stderr, stdout: '' });
    };
    const i = this.failures.findIndex((f) => f.pattern.test(line));
    if (i >= 0) {
      const [f] = this.failures.splice(i, 1);
      fail(f!.stderr);
    }
    if (options?.signal?.aborted) fail('killed', 143);
    const fuse = this.flavour.kind === 'zfs-fuse';
    const last = args[args.length - 1]!;
    if (file === 'zpool') {
      switch (args[0]) {
        case 'list': {
          const only = args[args.length - 2] === '-o' ? undefined : last;
          return ok([...this.pools.values()].filter((p) => !only || p.name === only).map((p) => `${p.name}\t${p.guid}\tONLINE\t${p.altroot}\n`).join(''));
        }
        case 'status': {
          const p = this.pools.get(last) ?? fail(`cannot open '${last}': no such pool`);
          return ok(`  pool: ${p.name}\n state: ONLINE\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\t${p.name} ONLINE 0 0 0\n\t  ${p.vdev} ONLINE 0 0 0\n\nerrors: No known data errors\n`);
        }
        case 'create': {
          const device = last;
          const real = args[args.length - 2]!;
          const t = args.indexOf('-t');
          const name = t >= 0 ? args[t + 1]! : real;
          if (fuse && (t >= 0 || args.some((a) => a.startsWith('compatibility=')))) fail("invalid option 't'", 2);
          if (this.pools.has(name)) fail(`cannot create '${name}': pool already exists`);
          const altroot = args[args.indexOf('-R') + 1]!;
          const m = args.indexOf('-m');
          this.pools.set(name, { name, guid: String(this.nextGuid++), vdev: device, altroot, mountpoint: m >= 0 ? args[m + 1]! : `/${real}`, datasets: [name], snapshots: [] });
          return ok();
        }
        case 'export':
        case 'destroy': {
          const p = this.pools.get(last) ?? fail(`cannot open '${last}': no such pool`);
          this.pools.delete(last);
          if (args[0] === 'export') this.exported.set(p.vdev, p);
          return ok();
        }
        case 'import': {
          const name = last;
          const search = args[args.indexOf('-d') + 1]!;
          const p = [...this.exported.values()].find((x) => x.name === name && (search.endsWith(x.vdev.split('/').pop()!)));
          if (!p) fail(`cannot import '${name}': no such pool available`);
          this.exported.delete(p!.vdev);
          const altroot = args[args.indexOf('-R') + 1]!;
          this.pools.set(name, { ...p!, altroot });
          return ok();
        }
        case 'upgrade':
          return ok(fuse ? 'This system is currently running ZFS pool version 23.\n' : 'This system supports ZFS pool feature flags.\n');
      }
    }
    if (file === 'zfs') {
      const poolOf = (n: string) => this.pools.get(n.split(/[/@]/)[0]!) ?? fail(`cannot open '${n}': dataset does not exist`);
      switch (args[0]) {
        case 'version':
          return fuse ? fail("unrecognized command 'version'", 2) : ok(`zfs-${this.flavour.version}-1\nzfs-kmod-${this.flavour.version}-1\n`);
        case 'create': {
          const p = poolOf(last);
          const parent = last.slice(0, last.lastIndexOf('/'));
          if (!p.datasets.includes(parent)) fail(`cannot create '${last}': parent does not exist`);
          if (p.datasets.includes(last)) fail(`cannot create '${last}': dataset already exists`);
          p.datasets.push(last);
          return ok();
        }
        case 'snapshot': {
          const p = poolOf(last);
          p.snapshots.push(last);
          return ok();
        }
        case 'list': {
          const p = poolOf(last);
          const mp = (d: string) => `${p.altroot === '-' ? '' : p.altroot}${p.mountpoint}${d.slice(p.name.length)}`;
          const names = [...p.datasets, ...p.snapshots].sort();
          return ok(names.map((n) => (n.includes('@') ? `${n}\tsnapshot\t-\t-\n` : `${n}\tfilesystem\t${mp(n)}\tyes\n`)).join(''));
        }
        case 'unmount':
          return ok();
      }
    }
    if (file === 'cp' || file === 'dpkg-query' || file === 'chown') return ok(file === 'dpkg-query' ? '0.7.0-25+b1' : '');
    return fail(`fake zfs: unexpected command ${line}`, 127);
  };
}
