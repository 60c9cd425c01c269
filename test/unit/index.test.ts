/**
 * The library's surface (src/index.ts): what a program that installs mkimage can import. Listed
 * here so that adding or removing a name is a visible decision, and each export carries its
 * one-line doc comment in index.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';

const VALUES = [
  // errors
  'MkimageError', 'UsageError', 'TargetExistsError', 'NoSpaceError', 'ToolMissingError', 'ToolFailedError', 'InvalidImageError',
  'StructError', 'PermissionError', 'PoolError', 'LayerError', 'InterruptedError', 'BusyError', 'GuestInitMissingError', 'isMkimageError',
  // jobs
  'createImage', 'planCreate', 'inspectImage', 'qemuArgs', 'attachImage', 'detachImage', 'destroyImage', 'statusImages',
  'importLayers', 'listLayers', 'exportLayer', 'createRuntime', 'commitRuntime', 'removeRuntime', 'removeLayer', 'pruneLayers',
  'detachPool', 'destroyPoolByName', 'cleanLeftovers', 'resizeImage', 'planResize', 'snapshotImage', 'listSnapshots', 'sendImage', 'receiveImage',
  'readSourceRecord',
  // living with an image
  'lockImage', 'withImageLock', 'readLockHolder', 'DEFAULT_LOCK_WAIT_SECONDS', 'fileUsers', 'assertNotInUse', 'recoverDeadJobs', 'listLeftovers',
  // plan and header
  'planLayout', 'minimumImageBytes', 'FS_TYPES', 'MEMMAP_MODES', 'TABLE_TYPES', 'buildHeader',
  // structs
  'makePfnInfo', 'encodePfnInfo', 'decodePfnInfo', 'checkPfnInfo', 'pfnChecksum', 'PFN_SB_BYTES',
  'makeMbr', 'makePartitionEntry', 'encodeMbr', 'decodeMbr', 'checkMbr', 'formatDiskSignature',
  'makeGpt', 'encodeGptHeader', 'decodeGptHeader', 'decodeGptEntries', 'describeGptEntry', 'checkGptHeader',
  'decodeVdevPhys', 'vdevPhysOffsets', 'detectFs', 'FS_MAGIC_PROBE_BYTES',
  'encodeSourceRecord', 'decodeSourceRecord', 'checkSourceRecord', 'SOURCE_RECORD_OFFSET_BYTES', 'SOURCE_RECORD_BYTES',
  // sizes
  'KiB', 'MiB', 'GiB', 'TiB', 'SECTOR_BYTES', 'DAX_ALIGN_BYTES', 'PFN_INFO_OFFSET_BYTES', 'MAX_BYTES',
  'parseSize', 'formatSize', 'alignUp', 'alignDown', 'isAligned',
];

describe('the library API', () => {
  it('exports exactly the documented names: jobs, structs, sizes, errors; no internals', () => {
    expect(Object.keys(api).sort()).toEqual([...VALUES].sort());
    for (const internal of ['run', 'formatCommand', 'readTar', 'writeTar', 'crc32', 'decompress', 'readSources', 'LayerStore', 'toolFailedWith']) {
      expect(api).not.toHaveProperty(internal);
    }
  });
  it('every export in index.ts has a one-line doc comment above it', async () => {
    const text = await readFile(join(import.meta.dirname, '../../src/index.ts'), 'utf8');
    const lines = text.split('\n');
    const undocumented = lines
      .map((line, i) => ({ line: line.trim(), above: lines[i - 1]?.trim() ?? '' }))
      .filter(({ line }) => /^(type )?\w+,$/.test(line))
      .filter(({ above }) => !/^\/\*\* .+ \*\/$/.test(above))
      .map(({ line }) => line);
    expect(undocumented).toEqual([]);
  });
  it('every value export is named in the README Library section', async () => {
    const readme = await readFile(join(import.meta.dirname, '../../README.md'), 'utf8');
    const library = readme.slice(readme.indexOf('## Library'), readme.indexOf('## Code layout'));
    expect(VALUES.filter((name) => !library.includes(`\`${name}\``))).toEqual([]);
  });
  it('a job runs through the API alone: planLayout and the PFN block round-trip', () => {
    const plan = api.planLayout({ sizeBytes: api.parseSize('1G'), fs: 'ext4' });
    expect(plan.partition.offsetBytes).toBe(2 * api.MiB);
    const header = api.buildHeader(plan, { pfnUuid: '0b3c6f1e-8d2a-4c5e-9f7a-1b2c3d4e5f60', diskSignature: 1, diskGuid: '01234567-89ab-cdef-0123-456789abcdef', partitionGuid: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b', partitionName: 'x' });
    const pfn = header.find((w) => w.offsetBytes === api.PFN_INFO_OFFSET_BYTES)!;
    expect(api.checkPfnInfo(api.decodePfnInfo(pfn.data), { sizeBytes: plan.sizeBytes })).toEqual([]);
  });
});
