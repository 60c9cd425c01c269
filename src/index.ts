/** mkimage's library API: everything the CLI uses, for other programs too. Re-exports only. */
export * from './errors.js';
export * from './layout/units.js';
export * from './layout/uuid.js';
export * from './layout/pfn.js';
export * from './layout/mbr.js';
export * from './layout/gpt.js';
export * from './layout/plan.js';
export * from './layout/header.js';
export * from './layout/fs-magic.js';
export { createImage, planCreate, type CreateOptions, type CreateResult } from './jobs/create.js';
export { inspectImage, readImageHeader, type ImageReport, type ImagePartition, type PfnReport } from './jobs/inspect.js';
export { run, formatCommand, type RunOptions, type RunResult, type Runner } from './tools/exec.js';
export { qemuArgs, type QemuArgsOptions, type QemuArgsResult } from './jobs/qemu-args.js';
export { nvdimmArgs, rootCmdline, qemuEscape, type NvdimmArgsOptions } from './tools/qemu.js';
export {
  decodeVdevPhys,
  decodeNvlist,
  nvGet,
  vdevPhysOffsets,
  type ZfsLabel,
  type NvList,
  type NvPair,
  type NvValue,
  type PoolState,
  type VdevPhysResult,
} from './layout/zfs-label.js';
export { detectZfsLabel, readZfsLabels, type DetectedZfsLabel, type LabelRead } from './jobs/zfs-detect.js';
export {
  buildPool,
  planPool,
  preflightPool,
  DATASET_LAYOUTS,
  LAYOUT_TREES,
  type BuildPoolOptions,
  type BuildPoolResult,
  type DatasetLayout,
  type PoolPlan,
  type PoolRequest,
} from './jobs/zfs-pool.js';
export {
  attachImage,
  detachImage,
  destroyImage,
  statusImages,
  readImageZfs,
  type AttachOptions,
  type AttachedImage,
  type DetachResult,
  type DestroyResult,
  type ImageStatus,
  type LifecycleOptions,
  type MountedDataset,
  type StatusReport,
} from './jobs/attach.js';
export {
  detectFlavour,
  capabilitiesOf,
  checkPoolName,
  checkDatasetPath,
  DEFAULT_COMPATIBILITY,
  type ZfsCapabilities,
  type ZfsFlavour,
  type ZfsKind,
} from './tools/zfs.js';
export {
  importLayers,
  listLayers,
  exportLayer,
  createRuntime,
  commitRuntime,
  removeRuntime,
  type ImportResult,
  type LayerJobOptions,
} from './jobs/layers.js';
export { applyLayer, type ApplyOptions, type ApplyStats } from './layers/apply.js';
export { diffTrees, type Change, type ChangeKind, type DiffOptions } from './layers/diff.js';
export { packageLayer, type PackageOptions, type PackageResult } from './layers/package.js';
export { readSources, openLayer } from './layers/source.js';
export { readTar } from './layers/tar-read.js';
export { decompress, detectCompression, type Compression } from './layers/compression.js';
export { writeTar } from './layers/tar-write.js';
export { encodeSourceRecord, decodeSourceRecord, checkSourceRecord, SOURCE_RECORD_OFFSET_BYTES, SOURCE_RECORD_BYTES, type SourceRecord } from './layout/source-record.js';
export { readSourceRecord } from './jobs/inspect.js';
export { type FromOptions, type StagedFile } from './jobs/from.js';
