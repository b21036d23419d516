/**
 * The closed set of errors CubbyDB reports.
 *
 * Three kinds of failure are kept apart (see ../shared/STYLE.md, practice 4):
 *  - caller misuse (bad key, bad option, closed store) -> CubbyError with an
 *    INVALID_* / CLOSED / READ_ONLY code, thrown at the API edge before any
 *    state changes;
 *  - operating errors (I/O, corruption, lock held, full device) -> CubbyError
 *    with a stable code, carrying errno / syscall / path when the operating
 *    system reported it;
 *  - broken invariants -> `assert` (node:assert), which is a bug, not an error
 *    a caller is meant to handle.
 *
 * Callers match on `err.code`, never on message text. The codes are part of
 * the public API and never change meaning.
 */

/** The closed set of error codes; every CubbyError's `code` is one of these values. */
export const ErrorCode = {
  /** Key is not a string / Uint8Array, is empty, or is longer than 1024 bytes. */
  INVALID_KEY: 'CUBBY_INVALID_KEY',
  /** Value is not a string / Uint8Array, or is longer than the maximum value size. */
  INVALID_VALUE: 'CUBBY_INVALID_VALUE',
  /** Any other argument or option is malformed (wrong type, out of range, misaligned). */
  INVALID_ARGUMENT: 'CUBBY_INVALID_ARGUMENT',
  /** The store (or device) has been closed, or is closing. */
  CLOSED: 'CUBBY_CLOSED',
  /** Another opener (this process or another) holds the store. */
  LOCKED: 'CUBBY_LOCKED',
  /** The target holds data that is not a CubbyDB store. */
  NOT_A_STORE: 'CUBBY_NOT_A_STORE',
  /** A checksum or structural check failed: the bytes on the device are not what was written. */
  CORRUPT: 'CUBBY_CORRUPT',
  /** The store was written by a format version this build does not read. */
  VERSION: 'CUBBY_VERSION',
  /** No space is left: the device or the store's logical capacity is exhausted. */
  FULL: 'CUBBY_FULL',
  /** The operating system reported an I/O error, or an earlier one made the store refuse writes. */
  IO: 'CUBBY_IO',
  /** A write was attempted on a store opened with `readOnly: true`, or on a read-only target. */
  READ_ONLY: 'CUBBY_READ_ONLY',
} as const

/** The name of an error code, e.g. 'NOT_A_STORE'. */
export type ErrorCodeName = keyof typeof ErrorCode
/** An error code's value, e.g. 'CUBBY_NOT_A_STORE': what `err.code` holds. */
export type CubbyErrorCode = (typeof ErrorCode)[ErrorCodeName]

export interface CubbyErrorDetails {
  /** Symbolic errno from the operating system, e.g. 'EIO', when one was reported. */
  errno?: string
  /** Numeric errno, when one was reported. */
  errnoNumber?: number
  /** The system call that failed, e.g. 'pread', 'io_uring_enter', 'fdatasync'. */
  syscall?: string
  /** The file or device the failure concerns. */
  path?: string
  /** The underlying error, if this one wraps another. */
  cause?: unknown
}

/** Every error CubbyDB reports: match on `code`, never on the message. */
export class CubbyError extends Error {
  /** The stable code (ErrorCode.*) saying what kind of failure this is. */
  readonly code: CubbyErrorCode
  /** Symbolic errno from the operating system, e.g. 'EIO', when one was reported. */
  readonly errno?: string
  /** Numeric errno, when one was reported. */
  readonly errnoNumber?: number
  /** The system call that failed, e.g. 'pread', when one did. */
  readonly syscall?: string
  /** The file or device the failure concerns. */
  readonly path?: string

  /** Made by CubbyDB; callers only read it. */
  constructor(code: CubbyErrorCode, message: string, details: CubbyErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'CubbyError'
    this.code = code
    if (details.errno !== undefined) this.errno = details.errno
    if (details.errnoNumber !== undefined) this.errnoNumber = details.errnoNumber
    if (details.syscall !== undefined) this.syscall = details.syscall
    if (details.path !== undefined) this.path = details.path
  }
}

/** True when `error` is a CubbyError, optionally with the given code. */
export function isCubbyError(error: unknown, code?: CubbyErrorCode): error is CubbyError {
  return error instanceof CubbyError && (code === undefined || error.code === code)
}

/**
 * The error of a device or store that refuses writes after an earlier write
 * or flush failed: CUBBY_IO, carrying the errno, syscall and path of that
 * failure so the caller sees what went wrong, not only that something did.
 */
export function refusingWrites(path: string, failure: CubbyError, message = 'an earlier write or flush failed; reopen the device'): CubbyError {
  return new CubbyError(ErrorCode.IO, `${path}: ${message} (${failure.message})`, {
    ...(failure.errno === undefined ? {} : { errno: failure.errno }),
    ...(failure.errnoNumber === undefined ? {} : { errnoNumber: failure.errnoNumber }),
    ...(failure.syscall === undefined ? {} : { syscall: failure.syscall }),
    path: failure.path ?? path,
    cause: failure,
  })
}

export function invalidArgument(message: string): CubbyError {
  return new CubbyError(ErrorCode.INVALID_ARGUMENT, message)
}

export function corrupt(message: string, details: CubbyErrorDetails = {}): CubbyError {
  return new CubbyError(ErrorCode.CORRUPT, message, details)
}

export function closedError(what = 'store'): CubbyError {
  return new CubbyError(ErrorCode.CLOSED, `the ${what} is closed`)
}
