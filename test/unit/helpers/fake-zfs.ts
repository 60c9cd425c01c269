/**
 * A fake ZFS for unit tests of the jobs: a Runner that keeps pools and datasets in memory and
 * answers zpool/zfs the way the given flavour prints, recording every command line. `failOn`
 * makes the first command matching a pattern fail as the real tool would (exit 1, a stderr line).
 *
 * It exists for what the system tests on zfs-fuse cannot show: OpenZFS's argument shapes (-t
 * temporary names, compatibility=, import -d of the device), a same-named pool on another device,
 * a pool last used by another host, a mount failure after import, a losetup killed mid-way. It
 * answers only the commands those tests run; everything else fails as an unexpected command.
 */
import { ToolFailedError } from '../../../src/errors.js';
import type { RunOptions, RunResult, Runner } from '../../../src/tools/exec.js';
import type { ZfsFlavour } from '../../../src/tools/zfs.js';
import type { DetectedZfsLabel } from '../../../src/jobs/zfs-detect.js';

export const OPENZFS: ZfsFlavour = { kind: 'openzfs', version: '2.1.5', poolVersion: 5000, description: 'openzfs 2.1.5' };
export const FUSE: ZfsFlavour = { kind: 'zfs-fuse', version: '0.7.0', poolVersion: 23, description: 'zfs-fuse 0.7.0 (pool version 23)' };

export interface FakePool {
  name: string;
  /** Set: the pool was last used by another host and not exported (import needs -f). */
  hostid?: string;
  guid: string;
  vdev: string;
  altroot: string;
  mountpoint: string;
  datasets: string[];
  snapshots: string[];
  /** The name in the label when it differs from the in-core one (zpool create -t). */
  diskName?: string;
}

export class FakeZfs {
  /** What the label of an exported pool's vdev says (buildPool reads it back after the export). */
  readonly readLabel = async (device: string): Promise<DetectedZfsLabel | undefined> => {
    const p = [...this.exported.values()].find((x) => x.vdev === device);
    return p && { pool: p.diskName ?? p.name, guid: p.guid, vdevGuid: '1', version: this.flavour.poolVersion, state: 'exported', txg: '4', label: 0 };
  };
  readonly calls: string[] = [];
  readonly pools = new Map<string, FakePool>();
  /** Exported pools by name, importable again (from whatever device `import -d` names). */
  readonly exported = new Map<string, FakePool>();
  private failures: Array<{ pattern: RegExp; stderr: string }> = [];
  /** Loop devices: name -> backing file, offset, size limit. */
  readonly loops = new Map<string, { file: string; offset: number; sizelimit: number }>();
  /** What getent passwd / getent group know. */
  readonly users = new Set(['root', 'nobody', 'chris']);
  readonly groups = new Set(['root', 'nogroup', 'staff']);
  /** Files changed by chown -R, and the owner given. */
  readonly chowned: string[] = [];
  private nextGuid = 1000n;

  /** Set: `zpool import` imports, then fails to mount with this message (exit 1), as zfs-fuse does. */
  mountFailure?: string;

  constructor(readonly flavour: ZfsFlavour) {}

  /** An exported pool, as found in an image's label. */
  addExportedPool(name: string, guid: string, mountpoint = `/${name}`, datasets: string[] = []): FakePool {
    const p: FakePool = { name, guid, vdev: '', altroot: '-', mountpoint, datasets: [name, ...datasets.map((d) => `${name}/${d}`)], snapshots: [] };
    this.exported.set(name, p);
    return p;
  }

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
          // zfs-fuse shows a device under /dev without the /dev/ (as the real one does).
          const shown = fuse && p.vdev.startsWith('/dev/') ? p.vdev.slice(5) : p.vdev;
          return ok(`  pool: ${p.name}\n state: ONLINE\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\t${p.name} ONLINE 0 0 0\n\t  ${shown} ONLINE 0 0 0\n\nerrors: No known data errors\n`);
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
          this.pools.set(name, { name, diskName: real, guid: String(this.nextGuid++), vdev: device, altroot, mountpoint: m >= 0 ? args[m + 1]! : `/${real}`, datasets: [name], snapshots: [] });
          return ok();
        }
        case 'export':
        case 'destroy': {
          const p = this.pools.get(last) ?? fail(`cannot open '${last}': no such pool`);
          this.pools.delete(last);
          if (args[0] === 'export') this.exported.set(p.name, p);
          return ok();
        }
        case 'import': {
          const name = last;
          const search = args[args.indexOf('-d') + 1]!;
          const p = this.exported.get(name) ?? fail(`cannot import '${name}': no such pool available`);
          if (p.hostid !== undefined && !args.includes('-f')) {
            fail(`cannot import '${name}': pool may be in use from other system, it was last accessed by other (hostid: 0x${p.hostid})\nuse '-f' to import anyway`);
          }
          if (fuse && search.startsWith('/dev/')) fail(`cannot open '${search}/': Not a directory`);
          this.exported.delete(name);
          const altroot = args[args.indexOf('-R') + 1]!;
          const leaf = search.split('/').pop()!;
          this.pools.set(name, { ...p, altroot, vdev: fuse ? `${search}/${leaf}` : search });
          if (this.mountFailure) fail(this.mountFailure);
          return ok();
        }
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
          if (args.includes('-p')) {
            // -p: missing parents too; an existing dataset is no error.
            const parts = last.split('/');
            for (let i = 2; i <= parts.length; i++) {
              const d = parts.slice(0, i).join('/');
              if (!p.datasets.includes(d)) p.datasets.push(d);
            }
            return ok();
          }
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
    if (file === 'losetup') {
      if (args[0] === '--find') {
        const name = `/dev/loop${[...Array(64).keys()].find((n) => !this.loops.has(`/dev/loop${n}`))}`;
        this.loops.set(name, { file: last, offset: Number(args[args.indexOf('--offset') + 1]), sizelimit: Number(args[args.indexOf('--sizelimit') + 1]) });
        return ok(`${name}\n`);
      }
      if (args[0] === '--detach') {
        if (!this.loops.delete(args[1]!)) fail(`losetup: ${args[1]}: detach failed: No such device or address`);
        return ok();
      }
      if (args[0] === '--json') {
        // --associated FILE: only the devices of that file (losetup matches its inode; a path here).
        const a = args.indexOf('--associated');
        const only = a >= 0 ? args[a + 1] : undefined;
        const loopdevices = [...this.loops]
          .filter(([, l]) => only === undefined || l.file === only)
          .map(([name, l]) => ({ name, 'back-file': l.file, offset: l.offset, sizelimit: l.sizelimit, ro: false }));
        return ok(JSON.stringify({ loopdevices }));
      }
    }
    if (file === 'getent') {
      // getent exits 2 when the key is not in the database.
      const known = args[0] === 'passwd' ? this.users : args[0] === 'group' ? this.groups : new Set<string>();
      if (known.has(last)) return ok(`${last}:x:1000:\n`);
      return options?.okExitCodes?.includes(2) ? { ...ok(), exitCode: 2 } : fail('', 2);
    }
    if (file === 'chown') {
      this.chowned.push(args.join(' '));
      return ok();
    }
    return fail(`fake zfs: unexpected command ${line}`, 127);
  };
}
