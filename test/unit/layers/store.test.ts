import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { altLayerName, chainId, checkRuntimeId } from '../../../src/layers/store.js';
import { inventoryOf, matchLayer } from '../../../src/layers/store/inventory.js';
import { childOf, storePaths } from '../../../src/layers/store/names.js';
import { parseProps } from '../../../src/layers/store/props.js';
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

describe('store paths', () => {
  it('storage, runtime and the empty base below the root; direct children only', () => {
    expect(storePaths('tank/base')).toEqual({ root: 'tank/base', storage: 'tank/base/storage', runtime: 'tank/base/runtime', empty: 'tank/base/storage/empty' });
    expect(childOf('tank/storage', 'tank/storage/abc')).toBe('abc');
    expect(childOf('tank/storage', 'tank/storage/abc/def')).toBeUndefined();
    expect(childOf('tank/storage', 'tank/storagex')).toBeUndefined();
    expect(childOf('tank/storage', 'tank/storage')).toBeUndefined();
  });
});

// A store as `zfs get -H -p -r -o name,property,value origin,used,mountpoint,mounted,mkimage:*`
// prints it (tab-separated; '-' for unset): bottom layer Z (all zeros, referenced by app:1), layer
// B on it (referenced by app:2, runtime web cloned from it), the same diff_id B imported on the
// empty base (stored under its alternative name), a half-made .tmp- layer, a dataset below a layer,
// and runtimes cloned from elsewhere and from nothing.
const Z = '0'.repeat(64);
const ALT = altLayerName(undefined, B);
const get = (rows: [string, string, string][]) => rows.map((r) => r.join('\t')).join('\n') + '\n';
const STORE = get([
  ['tank/storage', 'origin', '-'],
  ['tank/storage', 'used', '1000'],
  ['tank/storage', 'mountpoint', '/tank/storage'],
  ['tank/storage', 'mounted', 'yes'],
  ['tank/storage/empty', 'origin', '-'],
  ['tank/storage/empty', 'used', '100'],
  ['tank/storage/empty', 'mounted', 'yes'],
  ['tank/storage/empty', 'mountpoint', '/tank/storage/empty'],
  ['tank/storage/empty@extracted', 'used', '0'],
  [`tank/storage/${Z}`, 'origin', 'tank/storage/empty@extracted'],
  [`tank/storage/${Z}`, 'used', '200'],
  [`tank/storage/${Z}`, 'mkimage:diffid', `sha256:${Z}`],
  [`tank/storage/${Z}`, 'mkimage:chainid', Z],
  [`tank/storage/${Z}`, 'mkimage:refs', '["app:1"]'],
  [`tank/storage/${B}`, 'origin', `tank/storage/${Z}@extracted`],
  [`tank/storage/${B}`, 'used', '300'],
  [`tank/storage/${B}`, 'mkimage:diffid', `sha256:${B}`],
  [`tank/storage/${B}`, 'mkimage:chainid', chainId(Z, B)],
  [`tank/storage/${B}`, 'mkimage:refs', '["app:2"]'],
  [`tank/storage/${ALT}`, 'origin', 'tank/storage/empty@extracted'],
  [`tank/storage/${ALT}`, 'used', '400'],
  [`tank/storage/${ALT}`, 'mkimage:diffid', `sha256:${B}`],
  [`tank/storage/${ALT}`, 'mkimage:chainid', B],
  [`tank/storage/${ALT}`, 'mkimage:refs', 'not json'],
  ['tank/storage/.tmp-0123456789ab', 'origin', `tank/storage/${B}@extracted`],
  [`tank/storage/${B}/inner`, 'origin', '-'],
  ['tank/runtime', 'origin', '-'],
  ['tank/runtime/web', 'origin', `tank/storage/${B}@extracted`],
  ['tank/runtime/web', 'used', '50'],
  ['tank/runtime/web', 'mountpoint', '/mnt/tank/runtime/web'],
  ['tank/runtime/web', 'mounted', 'yes'],
  ['tank/runtime/db', 'origin', 'other/x@snap'],
  ['tank/runtime/db', 'mountpoint', 'legacy'],
  ['tank/runtime/db', 'mounted', 'no'],
  ['tank/runtime/bare', 'origin', '-'],
]);
const PATHS = storePaths('tank');

describe('dataset properties', () => {
  it('one record per dataset in output order, snapshots left out; unset, non-path and bad values read as absent', () => {
    const props = parseProps(STORE);
    expect(props.map((p) => p.name)).not.toContain('tank/storage/empty@extracted');
    expect(props.find((p) => p.name === `tank/storage/${Z}`)).toEqual({
      name: `tank/storage/${Z}`,
      origin: 'tank/storage/empty@extracted',
      used: 200,
      mountpoint: undefined,
      mounted: false,
      diffid: `sha256:${Z}`,
      chainid: Z,
      refs: ['app:1'],
    });
    // A hand-edited mkimage:refs that is no JSON list: no refs, not an error.
    expect(props.find((p) => p.name === `tank/storage/${ALT}`)!.refs).toEqual([]);
    // 'legacy' is not a path; mounted 'no'.
    expect(props.find((p) => p.name === 'tank/runtime/db')).toMatchObject({ mountpoint: undefined, mounted: false, used: 0 });
    expect(props.find((p) => p.name === 'tank/runtime/web')).toMatchObject({ mountpoint: '/mnt/tank/runtime/web', mounted: true, used: 50 });
  });
});

describe('inventory', () => {
  const inv = inventoryOf(parseProps(STORE), PATHS);

  it('layers bottom first (then by name), with parents, chain ids, and references passed down to every layer below', () => {
    expect(inv.layers).toEqual([
      { digest: 'empty', dataset: 'tank/storage/empty', parent: undefined, parentDataset: undefined, usedBytes: 100, refs: ['app:1', 'app:2'], runtimes: [], chainId: undefined },
      { digest: Z, dataset: `tank/storage/${Z}`, parent: 'empty', parentDataset: 'tank/storage/empty', usedBytes: 200, refs: ['app:1', 'app:2'], runtimes: [], chainId: Z },
      { digest: B, dataset: `tank/storage/${ALT}`, parent: 'empty', parentDataset: 'tank/storage/empty', usedBytes: 400, refs: [], runtimes: [], chainId: B },
      { digest: B, dataset: `tank/storage/${B}`, parent: Z, parentDataset: `tank/storage/${Z}`, usedBytes: 300, refs: ['app:2'], runtimes: ['web'], chainId: chainId(Z, B) },
    ]);
  });

  it('runtimes: the layer they came from by digest, else the origin dataset, else "?"', () => {
    expect(inv.runtimes).toEqual([
      { id: 'web', dataset: 'tank/runtime/web', layer: B, mountpoint: '/mnt/tank/runtime/web', usedBytes: 50 },
      { id: 'db', dataset: 'tank/runtime/db', layer: 'other/x', mountpoint: undefined, usedBytes: 0 },
      { id: 'bare', dataset: 'tank/runtime/bare', layer: '?', mountpoint: undefined, usedBytes: 0 },
    ]);
  });

  it('an empty store has only the base', () => {
    const empty = get([['tank/storage', 'origin', '-'], ['tank/storage/empty', 'origin', '-'], ['tank/runtime', 'origin', '-']]);
    expect(inventoryOf(parseProps(empty), PATHS)).toEqual({
      layers: [{ digest: 'empty', dataset: 'tank/storage/empty', parent: undefined, parentDataset: undefined, usedBytes: 0, refs: [], runtimes: [], chainId: undefined }],
      runtimes: [],
    });
  });
});

describe('resolving a layer reference', () => {
  const layers = inventoryOf(parseProps(STORE), PATHS).layers;
  const match = (ref: string) => matchLayer(layers, ref, PATHS).dataset;
  const fail = (ref: string) => {
    try {
      matchLayer(layers, ref, PATHS);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error(`${ref} matched`);
  };

  it('"empty", a full digest (with or without sha256:, any case), a dataset name, a unique prefix of 6+ digits', () => {
    expect(match('empty')).toBe('tank/storage/empty');
    expect(match(`sha256:${Z}`)).toBe(`tank/storage/${Z}`);
    expect(match(Z.toUpperCase())).toBe(`tank/storage/${Z}`);
    expect(match('000000')).toBe(`tank/storage/${Z}`);
    expect(match(ALT)).toBe(`tank/storage/${ALT}`);
    expect(match(ALT.slice(0, 10))).toBe(`tank/storage/${ALT}`);
  });

  it('the dataset named exactly by a digest wins over the same digest stored under its chain id', () => {
    expect(match(B)).toBe(`tank/storage/${B}`);
  });

  it('an ambiguous prefix names the candidates; too short, not hex and unknown references are refused', () => {
    expect(fail('bbbbbb')).toBe(
      `layer bbbbbb is ambiguous: it matches ${ALT}, ${B} (a layer imported on two different parents is stored under its chain id: give that)`,
    );
    expect(fail('00000')).toBe('layer "00000" is not a digest (hex sha256, or a prefix of at least 6 digits)');
    expect(fail('zzzzzzz')).toBe('layer "zzzzzzz" is not a digest (hex sha256, or a prefix of at least 6 digits)');
    expect(fail('123456')).toBe('no layer 123456 in this image (mkimage layers list shows them)');
  });
});
