/**
 * Removing the directory skeletons ZFS leaves behind (it creates a directory for every mountpoint
 * and never removes it). Only empty directories are removed: never a file, and never anything on
 * another filesystem than `dir`'s (a pool still mounted below is left alone, its own empty
 * directories included). Safe to run on a path that still holds data: it keeps all of it.
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';

async function walk(dir: string, device: number, depth: number): Promise<boolean> {
  if (depth > 64) return false;
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
  let empty = true;
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const st = await fs.lstat(path).catch(() => undefined);
      if (!st || st.dev !== device || !(await walk(path, device, depth + 1))) empty = false;
    } else {
      empty = false;
    }
  }
  if (!empty) return false;
  try {
    await fs.rmdir(dir);
    return true;
  } catch {
    return false;
  }
}

/** Removes every empty directory under `dir` (same filesystem only), deepest first, then `dir` if empty. True if `dir` is gone. */
export async function removeEmptyTree(dir: string): Promise<boolean> {
  const st = await fs.lstat(dir).catch(() => undefined);
  if (!st) return true;
  if (!st.isDirectory()) return false;
  // `dir` itself a mountpoint (a pool mounted right there): leave it.
  const parent = await fs.lstat(dirname(dir)).catch(() => undefined);
  if (parent && parent.dev !== st.dev) return false;
  return walk(dir, st.dev, 0);
}

/** Removes `leaf`, then each parent below `stop` (never `stop` itself), while they are empty. */
export async function removeEmptyParents(leaf: string, stop: string): Promise<void> {
  const base = stop.endsWith('/') ? stop : `${stop}/`;
  let dir = leaf;
  while (dir.startsWith(base) && dir.length > base.length) {
    try {
      await fs.rmdir(dir);
    } catch {
      return;
    }
    dir = dirname(dir);
  }
}
