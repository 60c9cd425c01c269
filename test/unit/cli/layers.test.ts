import { describe, expect, it } from 'vitest';
import { formatLayers } from '../../../src/cli/layers.js';
import type { LayerInfo } from '../../../src/layers/store.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const CHAIN = 'c'.repeat(64);
const layer = (digest: string, dataset: string, parent?: string, parentDataset?: string): LayerInfo => ({
  digest, dataset, parent, parentDataset, usedBytes: 4096, refs: [], runtimes: [],
});

describe('formatLayers', () => {
  it('one row per layer, by digest, when every digest is stored once', () => {
    const text = formatLayers([layer('empty', 'p/storage/empty'), layer(A, `p/storage/${A}`, 'empty', 'p/storage/empty')]);
    expect(text.split('\n')).toEqual([
      'LAYER         PARENT  USED   REFERENCES  RUNTIMES',
      'empty         -       4 KiB  -           -',
      'aaaaaaaaaaaa  empty   4 KiB  -           -',
    ]);
  });
  it('the same diff_id on two parents: STORED AS shows the chain id, PARENT the parent dataset', () => {
    // A on empty, B on empty, A again on B (stored under its chain id).
    const text = formatLayers([
      layer('empty', 'p/storage/empty'),
      layer(A, `p/storage/${A}`, 'empty', 'p/storage/empty'),
      layer(B, `p/storage/${B}`, 'empty', 'p/storage/empty'),
      layer(A, `p/storage/${CHAIN}`, B, `p/storage/${B}`),
    ]);
    expect(text.split('\n')).toEqual([
      'LAYER         STORED AS     PARENT        USED   REFERENCES  RUNTIMES',
      'empty         empty         -             4 KiB  -           -',
      'aaaaaaaaaaaa  aaaaaaaaaaaa  empty         4 KiB  -           -',
      'bbbbbbbbbbbb  bbbbbbbbbbbb  empty         4 KiB  -           -',
      'aaaaaaaaaaaa  cccccccccccc  bbbbbbbbbbbb  4 KiB  -           -',
      '(a layer stored twice, on two parents: STORED AS and PARENT name datasets, by chain id)',
    ]);
  });
});
