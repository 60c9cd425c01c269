/**
 * mkimage's library API: the jobs the CLI runs, the on-disk structures with encode/decode/check,
 * the size arithmetic, and the error family. Re-exports only, each with one line saying what it is.
 *
 * Everything else (running tools, tar reading and writing, the layer store, argument builders) is
 * internal: importable from its module by mkimage's own tests, not part of this surface, and free
 * to change. test/unit/index.test.ts lists the surface, so a change to it is a visible decision.
 */

// ---- The error family: every error mkimage raises on purpose, with a stable `code` ----------

export {
  /** Base class: `code` (stable), `message` (one line), `data`, `exitStatus` (1 or 2), `toJSON()`. */
  MkimageError,
  /** EUSAGE, exit 2: a request that cannot be met as asked (bad size, name, option). */
  UsageError,
  /** EEXIST, exit 2: the image exists and `force` was not given; it was left untouched. */
  TargetExistsError,
  /** ENOSPC: not enough space where the image goes (checked first, or met while writing). */
  NoSpaceError,
  /** ETOOLMISSING: an outside program is not installed; the message names its Debian package. */
  ToolMissingError,
  /** ETOOLFAILED: an outside program failed; `data` holds its command, exit code and stderr. */
  ToolFailedError,
  /** EINVALIDIMAGE: unreadable headers, or an image a guest kernel would reject. */
  InvalidImageError,
  /** ESTRUCT: a decoded on-disk structure breaks a rule. */
  StructError,
  /** EPERM: needs root, or no write permission / a read-only file system. */
  PermissionError,
  /** EPOOL: ZFS state (pool name taken, not exported cleanly, daemon down, busy). */
  PoolError,
  /** ELAYER: a container layer is hostile or malformed. */
  LayerError,
  /** EINTERRUPTED: stopped by the `signal` given; what was made so far was removed. */
  InterruptedError,
  /** EBUSY: another mkimage command holds the image past the wait, or another process uses it. */
  BusyError,
  /** EGUESTINIT: the compiled guest init is missing (the package was not built). */
  GuestInitMissingError,
  /** Type guard for MkimageError. */
  isMkimageError,
  /** The CLI exit status of an error: 1 failure, 2 usage. */
  type ExitStatus,
  /** One failed rule of an on-disk structure: the field and what is wrong with it. */
  type Problem,
} from './errors.js';

// ---- Jobs ---------------------------------------------------------------------------------

export {
  /** Build an image file (headers, partition, ext4/xfs/ZFS, preallocated or sparse); atomic. */
  createImage,
  /** Resolve `size: 'max'` and plan the layout of a create request, without writing anything. */
  planCreate,
  /** What createImage takes: path, size, fs, table, memmap, ids, ZFS tree, `import`, `signal`. */
  type CreateOptions,
  /** What createImage made: sizes, layout, ids, allocated bytes, the pool, what was imported. */
  type CreateResult,
} from './jobs/create.js';
export {
  /** Decode and judge an image's headers as a guest kernel and host tools would; O(1) in size. */
  inspectImage,
  /** inspectImage's report: table, partitions, PFN block, filesystem, problems, guest's view. */
  type ImageReport,
  /** One partition as inspect reports it. */
  type ImagePartition,
  /** The PFN info block as inspect reports it. */
  type PfnReport,
} from './jobs/inspect.js';
export {
  /** The QEMU arguments attaching an image as an NVDIMM, for an image a guest accepts. */
  qemuArgs,
  /** qemuArgs' options: guest RAM, read-only sharing. */
  type QemuArgsOptions,
  /** qemuArgs' answer: argument array, shell line, kernel command line, mount hint. */
  type QemuArgsResult,
} from './jobs/qemu-args.js';
export {
  /** Where an image built with --from came from (its source record at byte 1024), or undefined. */
  readSourceRecord,
} from './jobs/inspect.js';
export {
  /** Encode the source record (bytes 1024..4095: magic, version, length, crc32, JSON). */
  encodeSourceRecord,
  /** Decode the source record: absent, or the record and its problems. */
  decodeSourceRecord,
  /** The rules a source record must meet. */
  checkSourceRecord,
  /** Where the source record lives: byte 1024. */
  SOURCE_RECORD_OFFSET_BYTES,
  /** The source record's room: 3072 bytes. */
  SOURCE_RECORD_BYTES,
  /** What the source record holds: reference, digests, whether a guest config is in the image. */
  type SourceRecord,
} from './layout/source-record.js';
export {
  /** Attach a ZFS image: loop device of its partition, pool imported; idempotent. */
  attachImage,
  /** Detach a ZFS image: unmount, export, detach the loop device. */
  detachImage,
  /** Destroy a ZFS image: pool destroyed, loop device detached, file removed (`yes: true`). */
  destroyImage,
  /** The attached images on this host, and which ZFS runs. */
  statusImages,
  /** Detach the pool of an image deleted or moved while attached (`mkimage detach --pool`). */
  detachPool,
  /** Destroy the pool of an image deleted or moved while attached (`mkimage destroy --pool`). */
  destroyPoolByName,
  /** `status --clean`: take back what killed mkimage commands left, under each image's lock. */
  cleanLeftovers,
  /** Options every attach/detach/destroy/status call takes (`signal`). */
  type LifecycleOptions,
  /** attachImage's options: mount (altroot), owner, force. */
  type AttachOptions,
  /** attachImage's answer: loop device, pool, guid, health, mountpoints. */
  type AttachedImage,
  /** A mounted dataset and where. */
  type MountedDataset,
  /** detachImage's answer. */
  type DetachResult,
  /** destroyImage's answer. */
  type DestroyResult,
  /** One attached image in statusImages' report. */
  type ImageStatus,
  /** statusImages' answer: `zfs` ({flavour} or {error}) and the images. */
  type StatusReport,
} from './jobs/attach.js';

// ---- Living with an image: the per-image lock, the in-use check, recovery after a crash ----

export {
  /** Take an image's lock (keyed by device+inode), waiting up to `waitSeconds`; EBUSY names the holder. */
  lockImage,
  /** Run a function holding an image's lock (what every job that changes an image does). */
  withImageLock,
  /** Who holds an image's lock, as its lock file says (PID, command, since). */
  readLockHolder,
  /** How long a job waits for another one on the same image unless told: 60 s. */
  DEFAULT_LOCK_WAIT_SECONDS,
  /** A held lock: `release()` it. */
  type ImageLock,
  /** A lock holder: PID, command, since. */
  type LockHolder,
  /** lockImage's options: waitSeconds, command, signal, onWait. */
  type LockOptions,
} from './guard/lock.js';
export {
  /** Other processes that have a file open or mapped (a QEMU guest), from /proc. */
  fileUsers,
  /** Throw EBUSY naming each other process that has the file open or mapped. */
  assertNotInUse,
  /** One process using a file: PID, command line, how (fd or mapping). */
  type FileUser,
} from './guard/in-use.js';
export {
  /** Take back what killed mkimage jobs left (from their journals), for a scope or 'all'. */
  recoverDeadJobs,
  /** What killed mkimage jobs left, without touching it. */
  listLeftovers,
  /** One dead job's leftovers. */
  type Leftover,
  /** One dead job's leftovers, taken back (and what failed). */
  type RecoveredJob,
  /** Which images, target paths and pools a recovery looks at. */
  type RecoverScope,
} from './jobs/recover.js';

// ---- Growing and shipping an image ----

export {
  /** Grow an image in place: file, partition table, PFN block, filesystem or pool (never shrinks). */
  resizeImage,
  /** The new header of a resize, from an inspected image and the request (pure). */
  planResize,
  /** resizeImage's options: path, size ({sizeBytes} or {deltaBytes}), sparse, alignBytes, waitSeconds. */
  type ResizeOptions,
  /** resizeImage's answer: old and new sizes, the steps done. */
  type ResizeResult,
} from './jobs/resize.js';
export {
  /** Snapshot a dataset of a ZFS image (recursive by default). */
  snapshotImage,
  /** The snapshots in a ZFS image's pool, oldest first. */
  listSnapshots,
  /** Write a replication stream (full or incremental) of a dataset snapshot to a file or descriptor. */
  sendImage,
  /** Receive a stream into a ZFS image; a truncated or corrupt one leaves the target unchanged. */
  receiveImage,
  /** One snapshot: name, used, referenced. */
  type SnapshotInfo,
  /** sendImage's answer. */
  type SendResult,
  /** receiveImage's answer. */
  type ReceiveResult,
} from './jobs/snapshots.js';
export {
  /** Import container images or layer tars into a ZFS image, one dataset per layer. */
  importLayers,
  /** The layers and runtimes of a ZFS image. */
  listLayers,
  /** Write a layer as an OCI layer tar (changes against its parent, whiteouts). */
  exportLayer,
  /** Clone a layer into a writable runtime dataset. */
  createRuntime,
  /** Make a runtime's changes a new layer, named by its tar's sha256. */
  commitRuntime,
  /** Destroy a runtime. */
  removeRuntime,
  /** Remove one layer; refused while layers, runtimes or clones depend on it. */
  removeLayer,
  /** Remove the layers nothing references or uses, and what killed imports left. */
  pruneLayers,
  /** Options of the layer jobs: signal, mount (altroot), base dataset. */
  type LayerJobOptions,
  /** importLayers' answer: per image, its layers extracted or present. */
  type ImportResult,
} from './jobs/layers.js';
export {
  /** One layer as listLayers reports it: digest, dataset, parent, size, references, runtimes. */
  type LayerInfo,
  /** One runtime as listLayers and createRuntime report it. */
  type RuntimeInfo,
  /** commitRuntime's answer. */
  type CommitResult,
  /** Progress events of an import (createImage's onImportEvent, importLayers' onEvent). */
  type ImportEvent,
} from './layers/store.js';
export {
  /** Which ZFS runs on this host: its kind, version and pool version, as a ZfsFlavour. */
  type ZfsFlavour,
} from './tools/zfs.js';

// ---- The layout plan: from options to offsets and sizes (pure) ------------------------------

export {
  /** Options to offsets and sizes: where the PFN block, partition and data go. Pure. */
  planLayout,
  /** The smallest image for a filesystem, memmap mode, table and alignment. */
  minimumImageBytes,
  /** The `fs` values: none, ext4, xfs, zfs. */
  FS_TYPES,
  /** The `memmap` values: ram, pmem. */
  MEMMAP_MODES,
  /** The `table` values: mbr, gpt. */
  TABLE_TYPES,
  /** planLayout's options. */
  type PlanOptions,
  /** planLayout's answer. */
  type LayoutPlan,
  /** The partition of a LayoutPlan. */
  type PartitionPlan,
  /** One of FS_TYPES. */
  type FsType,
  /** One of MEMMAP_MODES. */
  type Memmap,
  /** One of TABLE_TYPES. */
  type TableType,
} from './layout/plan.js';
export {
  /** The header bytes (MBR or GPT and backup, PFN block) of a plan, as writes at offsets. */
  buildHeader,
  /** The ids buildHeader writes: PFN uuid, disk signature, GPT GUIDs, partition name. */
  type HeaderIds,
  /** One write: offset and bytes. */
  type HeaderWrite,
} from './layout/header.js';

// ---- On-disk structures: make, encode, decode, check ---------------------------------------

export {
  /** A PFN info block (struct nd_pfn_sb) for a namespace, checksummed. */
  makePfnInfo,
  /** PFN info block to its 4 KiB of bytes. */
  encodePfnInfo,
  /** 4 KiB of bytes to a PFN info block. */
  decodePfnInfo,
  /** Every rule the kernel's nd_pfn_validate applies, as Problems. */
  checkPfnInfo,
  /** The block's fletcher64 checksum, as the kernel computes it. */
  pfnChecksum,
  /** Size of the encoded block (4 KiB). */
  PFN_SB_BYTES,
  /** The decoded block, fields as the kernel names them. */
  type NdPfnSb,
  /** makePfnInfo's options. */
  type PfnInfoOptions,
  /** What checkPfnInfo needs to know about the namespace (its size). */
  type NamespaceContext,
} from './layout/pfn.js';
export {
  /** An MBR with one partition entry. */
  makeMbr,
  /** An MBR partition entry (type, start, sectors; CHS derived). */
  makePartitionEntry,
  /** MBR to its 512 bytes. */
  encodeMbr,
  /** 512 bytes to an MBR. */
  decodeMbr,
  /** The MBR's rules (signature, entries inside the disk), as Problems. */
  checkMbr,
  /** A disk signature as sfdisk prints it: 0x and 8 hex digits. */
  formatDiskSignature,
  /** The decoded MBR. */
  type Mbr,
  /** One decoded partition entry. */
  type MbrPartitionEntry,
} from './layout/mbr.js';
export {
  /** A GPT (header, entry array, backup) with one partition. */
  makeGpt,
  /** GPT header to its 92 bytes (CRCs computed). */
  encodeGptHeader,
  /** A GPT header from its sector. */
  decodeGptHeader,
  /** The used entries of a GPT entry array. */
  decodeGptEntries,
  /** An entry with its GUIDs and name as text. */
  describeGptEntry,
  /** The header's rules (signature, CRCs, LBAs), as Problems. */
  checkGptHeader,
  /** The decoded GPT header. */
  type GptHeader,
  /** One decoded GPT entry. */
  type GptEntry,
  /** A GPT as makeGpt builds it. */
  type Gpt,
  /** The partition makeGpt describes. */
  type GptPartitionSpec,
} from './layout/gpt.js';
export {
  /** The ZFS label's vdev_phys (checksum, nvlist) decoded: pool name, guid, state. */
  decodeVdevPhys,
  /** The byte offsets of a device's four vdev_phys copies. */
  vdevPhysOffsets,
  /** What a ZFS label says about its pool. */
  type ZfsLabel,
  /** decodeVdevPhys' answer. */
  type VdevPhysResult,
} from './layout/zfs-label.js';
export {
  /** Recognise ext4 or xfs from the first bytes of a filesystem: type, uuid, label, size. */
  detectFs,
  /** How many bytes detectFs needs. */
  FS_MAGIC_PROBE_BYTES,
  /** detectFs' answer. */
  type DetectedFs,
} from './layout/fs-magic.js';

// ---- Sizes ---------------------------------------------------------------------------------

export {
  /** 1024. */
  KiB,
  /** 1024 KiB. */
  MiB,
  /** 1024 MiB. */
  GiB,
  /** 1024 GiB. */
  TiB,
  /** 512: the sector size of image files. */
  SECTOR_BYTES,
  /** 2 MiB: the kernel's namespace alignment, mkimage's default image alignment. */
  DAX_ALIGN_BYTES,
  /** 4 KiB: where the guest reads the PFN block. */
  PFN_INFO_OFFSET_BYTES,
  /** 2^53 - 1: the largest byte count computed exactly. */
  MAX_BYTES,
  /** "20G", "512M", "1.5G" to bytes (powers of 1024); UsageError naming what was wrong. */
  parseSize,
  /** Bytes to "20 GiB", "1.5 GiB", "3 B". */
  formatSize,
  /** Round up to a multiple. */
  alignUp,
  /** Round down to a multiple. */
  alignDown,
  /** Is a multiple. */
  isAligned,
} from './layout/units.js';
