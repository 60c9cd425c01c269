/**
 * The calldown tree's names (pure): the datasets of a store, the snapshot and property names, and
 * the names of layers (their digest, or where that is taken by the same layer on another parent,
 * their chain id).
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../../errors.js';

export const EXTRACTED = 'extracted';
export const EMPTY = 'empty';
export const TMP_PREFIX = '.tmp-';
export const COMMIT_SNAPSHOT_PREFIX = 'mkimage-commit-';
export const PROP_DIFFID = 'mkimage:diffid';
export const PROP_CHAINID = 'mkimage:chainid';
export const PROP_REFS = 'mkimage:refs';

/** The datasets of the store under `root`. */
export interface StorePaths {
  /** The dataset holding storage/ and runtime/: the pool's root, or a dataset below it. */
  root: string;
  storage: string;
  runtime: string;
  /** storage/empty: the base every bottom layer is a clone of. */
  empty: string;
}

export function storePaths(root: string): StorePaths {
  const storage = `${root}/storage`;
  return { root, storage, runtime: `${root}/runtime`, empty: `${storage}/${EMPTY}` };
}

/** `name`'s last component when it is a direct child of `parent`, else undefined. */
export function childOf(parent: string, name: string): string | undefined {
  if (!name.startsWith(`${parent}/`)) return undefined;
  const rest = name.slice(parent.length + 1);
  return rest.includes('/') ? undefined : rest;
}

/** Docker's ChainID step: sha256 of "sha256:<parent chain> sha256:<diff>" (hex in, hex out). */
export function chainId(parentChain: string | undefined, diffHex: string): string {
  if (parentChain === undefined) return diffHex;
  return createHash('sha256').update(`sha256:${parentChain} sha256:${diffHex}`).digest('hex');
}

/**
 * The dataset name of a layer whose digest is taken by the same layer on another parent: its
 * chain id, or for a bottom layer (whose chain id is its digest) sha256 of "empty sha256:<digest>".
 */
export function altLayerName(parentChain: string | undefined, diffHex: string): string {
  if (parentChain === undefined) return createHash('sha256').update(`empty sha256:${diffHex}`).digest('hex');
  return chainId(parentChain, diffHex);
}

/** A runtime (container) id: one dataset name component. */
export function checkRuntimeId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(id)) {
    throw new UsageError(`runtime id ${JSON.stringify(id)} must be 1 to 128 letters, digits, _ . : - and start with a letter or digit`, { id });
  }
}
