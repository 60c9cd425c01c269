import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { altLayerName, chainId, checkRuntimeId } from '../../../src/layers/store.js';
import { parseGet, zfsCloneArgs, zfsDestroyArgs, zfsGetArgs, zfsPromoteArgs, zfsRenameArgs, zfsSetArgs } from '../../../src/tools/zfs.js';

const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('layer store argument builders', () => {
  it('builds zfs clone/promote/rename/destroy/set/get as argument arrays', () => {
    expect(zfsCloneArgs('tank/storage/empty@extracted', 'tank/storage/.tmp-1')).toEqual(['clone', 'tank/storage/empty@extracted', 'tank/storage/.tmp-1']);
    expect(zfsPromoteArgs('tank/storage/.tmp-1')).toEqual(['promote', 'tank/storage/.tmp-1']);
    expect(zfsRenameArgs('tank/a', 'tank/b')).toEqual(['rename', 'tank/a', 'tank/b']);
    // -r for the dataset's own snapshots, never -R (that would take dependent clones with it).
    expect(zfsDestroyArgs('tank/runtime/web')).toEqual(['destroy', '-r', 'tank/runtime/web']);
    expect(zfsDestroyArgs('tank/runtime/web', true)).toEqual(['destroy', '-r', 'tank/runtime/web']);
    // A single snapshot: without -r (a snapshot's -r would take the same name in every child).
    expect(zfsDestroyArgs('tank/runtime/web@mkimage-commit-1', false)).toEqual(['destroy', 'tank/runtime/web@mkimage-commit-1']);
    expect(zfsSetArgs('tank/x', 'mkimage:refs', '["a:1"]')).toEqual(['set', 'mkimage:refs=["a:1"]', 'tank/x']);
    expect(zfsGetArgs(['origin', 'used'], 'tank/storage', true)).toEqual(['get', '-H', '-p', '-r', '-o', 'name,property,value', 'origin,used', 'tank/storage']);
  });

  it('parses zfs get -H -p output, dropping unset values', () => {
    const out = ['tank/storage/x\torigin\ttank/storage/empty@extracted', 'tank/storage/x\tused\t94208', 'tank/storage/x\tmkimage:refs\t-', 'tank/storage/empty\torigin\t-', ''].join('\n');
    expect([...parseGet(out)]).toEqual([
      ['tank/storage/x', { origin: 'tank/storage/empty@extracted', used: '94208' }],
      ['tank/storage/empty', {}],
    ]);
  });
});

describe('layer names', () => {
  it('chain ids follow Docker: the bottom layer is its diff_id, then sha256("sha256:<chain> sha256:<diff>")', () => {
    expect(chainId(undefined, A)).toBe(A);
    expect(chainId(A, B)).toBe(hex(`sha256:${A} sha256:${B}`));
    expect(chainId(chainId(A, B), A)).toBe(hex(`sha256:${hex(`sha256:${A} sha256:${B}`)} sha256:${A}`));
  });

  it('the name of a layer whose digest is taken is never that digest', () => {
    expect(altLayerName(undefined, A)).toBe(hex(`empty sha256:${A}`));
    expect(altLayerName(undefined, A)).not.toBe(A);
    expect(altLayerName(A, B)).toBe(chainId(A, B));
  });

  it('runtime ids are one dataset component', () => {
    expect(() => checkRuntimeId('web-1.prod:blue_2')).not.toThrow();
    for (const bad of ['', '-x', 'a/b', 'a@b', '.hidden', 'x'.repeat(129), 'sp ace']) expect(() => checkRuntimeId(bad)).toThrow(UsageError);
  });
});
