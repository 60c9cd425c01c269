/**
 * The error family. Every error mkimage raises on purpose is a MkimageError with a stable `code`
 * (never renamed: scripts match on it), a one-line message that names what was wrong, the numbers
 * and what to do, structured `data`, and the CLI exit status it maps to.
 *
 *   exit 2  usage: the caller asked for something impossible (bad size, bad name, bad option)
 *   exit 1  failure: the request was fine, the world was not (tool failed, no space, bad image)
 */
export type ExitStatus = 1 | 2;

export class MkimageError extends Error {
  static readonly code: string = 'EMKIMAGE';
  readonly code: string;
  readonly exitStatus: ExitStatus;
  readonly data: Record<string, unknown>;

  constructor(
    message: string,
    data: Record<string, unknown> = {},
    options: { cause?: unknown; exitStatus?: ExitStatus } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = (new.target as typeof MkimageError).code;
    this.exitStatus = options.exitStatus ?? 1;
    this.data = data;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, data: this.data };
  }
}

/** A request that cannot be met as asked: bad size, name, option. Exit 2. */
export class UsageError extends MkimageError {
  static override readonly code = 'EUSAGE';
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(message, data, { exitStatus: 2 });
  }
}

/** The image file exists and --force was not given. */
export class TargetExistsError extends MkimageError {
  static override readonly code = 'EEXIST';
  constructor(path: string) {
    super(`${path} already exists: pass --force to replace it (it was left untouched)`, { path }, { exitStatus: 2 });
  }
}

/** Not enough free space where the image goes. */
export class NoSpaceError extends MkimageError {
  static override readonly code = 'ENOSPC';
}

/** An outside program is not installed (ENOENT when spawning it). */
export class ToolMissingError extends MkimageError {
  static override readonly code = 'ETOOLMISSING';
}

/** An outside program ran and failed. Carries the command line, exit code and stderr. */
export class ToolFailedError extends MkimageError {
  static override readonly code = 'ETOOLFAILED';
}

/**
 * Did this tool fail with this message: `e` is a ToolFailedError whose stderr matches `pattern`.
 * The one place call sites ask it (a busy pool, a missing dataset, ENOSPC inside mkfs, ...).
 */
export function toolFailedWith(e: unknown, pattern: RegExp): e is ToolFailedError {
  return e instanceof ToolFailedError && pattern.test(toolStderr(e));
}

/** The stderr a ToolFailedError carries ('' for any other error). */
export function toolStderr(e: unknown): string {
  return e instanceof ToolFailedError ? String(e.data.stderr ?? '') : '';
}

/** The image's headers are unreadable or a guest kernel would reject them. */
export class InvalidImageError extends MkimageError {
  static override readonly code = 'EINVALIDIMAGE';
}

/** A decoded on-disk structure breaks a rule (one Problem per failed rule). */
export class StructError extends MkimageError {
  static override readonly code = 'ESTRUCT';
}

/** Something needs root (loop devices, mounts, pools). */
export class PermissionError extends MkimageError {
  static override readonly code = 'EPERM';
}

/** ZFS-specific state problems: pool name taken, pool not exported, daemon down. */
export class PoolError extends MkimageError {
  static override readonly code = 'EPOOL';
}

/** A container layer is hostile or malformed. */
export class LayerError extends MkimageError {
  static override readonly code = 'ELAYER';
}

/**
 * The image is busy: another mkimage command holds its lock past the wait, or another process
 * (a QEMU guest, a program with it open) uses the file. Names the holder's PID and command.
 */
export class BusyError extends MkimageError {
  static override readonly code = 'EBUSY';
}

/** The compiled guest init (dist/guest/mkimage-init) is missing: the package was not built. */
export class GuestInitMissingError extends MkimageError {
  static override readonly code = 'EGUESTINIT';
}

/** Interrupted by SIGINT/SIGTERM; everything made so far was removed. */
export class InterruptedError extends MkimageError {
  static override readonly code = 'EINTERRUPTED';
}

/** One failed rule of an on-disk structure: which field, what it holds, what the rule is. */
export interface Problem {
  field: string;
  message: string;
}

export function isMkimageError(e: unknown): e is MkimageError {
  return e instanceof MkimageError;
}
