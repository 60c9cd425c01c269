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
  detachPool,
  destroyPoolByName,
  cleanLeftovers,
  type AttachOptions,
  type AttachedImage,
  type DetachResult,
  type DestroyResult,
  type ImageStatus,
  type LifecycleOptions,
  type MountedDataset,
  type StatusReport,
} from './jobs/attach.js';
export { lockImage, withImageLock, readLockHolder, DEFAULT_LOCK_WAIT_SECONDS, type ImageLock, type LockHolder, type LockOptions } from './guard/lock.js';
export { fileUsers, assertNotInUse, type FileUser } from './guard/in-use.js';
export { recoverDeadJobs, listLeftovers, type Leftover, type RecoveredJob, type RecoverScope } from './jobs/recover.js';
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
export { readTar, decompress } from './layers/tar-read.js';
export { writeTar } from './layers/tar-write.js';
