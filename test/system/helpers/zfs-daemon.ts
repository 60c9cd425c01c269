/**
 * The zfs-fuse daemon for system tests: CI machines start fresh, with zfs-fuse installed but its
 * daemon not running. `ensureZfsDaemon` starts it when `zpool` cannot reach it and returns a
 * `stop` that ends only the daemon it started (by the pid it wrote), never one that was running.
 */
import { execa } from 'execa';
import { readFile, rm } from 'node:fs/promises';

const DAEMON_DOWN = /zfs-fuse daemon is running|connect: (No such file|Connection refused)/;

export async function zpoolAnswers(): Promise<{ ok: boolean; stderr: string }> {
  const r = await execa('zpool', ['list', '-H', '-o', 'name'], { reject: false });
  return { ok: r.exitCode === 0, stderr: String(r.stderr) };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface ZfsDaemon {
  /** The pid of the daemon this helper started; undefined when one was running already. */
  startedPid?: number;
  stop(): Promise<void>;
}

export async function ensureZfsDaemon(): Promise<ZfsDaemon> {
  const first = await zpoolAnswers();
  if (first.ok) return { stop: async () => undefined };
  if (!DAEMON_DOWN.test(first.stderr)) throw new Error(`zpool does not answer, and not because the zfs-fuse daemon is down: ${first.stderr}`);
  // zfs-fuse refuses to start when its pid file exists: a private, fresh one.
  const pidFile = `/run/mkimage-test-zfs-fuse-${process.pid}.pid`;
  await rm(pidFile, { force: true });
  await execa('zfs-fuse', ['--pidfile', pidFile]);
  for (let i = 0; i < 100 && !(await zpoolAnswers()).ok; i++) await pause(100);
  const now = await zpoolAnswers();
  if (!now.ok) throw new Error(`started zfs-fuse, but zpool still cannot reach it: ${now.stderr}`);
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  return {
    startedPid: pid,
    async stop() {
      if (alive(pid)) process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 150 && alive(pid); i++) await pause(100);
      await rm(pidFile, { force: true });
    },
  };
}
