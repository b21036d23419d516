/**
 * The typed view of the native shim (native/addon.cc), and the only module
 * that loads it. Everything above src/device/ reaches native code through the
 * device interfaces, never through this module, except pure functions such as
 * crc32c.
 *
 * The addon is looked up from this file's directory upwards, so the same code
 * works from dist/ (the package) and from dist-test/src/ (the tests). Set
 * CUBBYDB_NATIVE to the path of a .node file to load another build (the
 * cmake-js sanitizer build, for example).
 */

import * as fs from 'node:fs'
import * as path from 'node:path'

/** Constants defined once in native/constants.h and exported by the addon (see that file for what each bounds). */
export interface NativeConstants {
  BLOCK_SIZE: number
  BUFFER_ALIGNMENT: number
  MAX_BATCH_REQUESTS: number
  MAX_REQUEST_BYTES: number
  QUEUE_DEPTH: number
  MAX_PENDING_BATCHES: number
  THREAD_POOL_THREADS: number
  DESCRIPTOR_FIELDS: number
  DESCRIPTOR_OFFSET: number
  DESCRIPTOR_LENGTH: number
  DESCRIPTOR_BUFFER_INDEX: number
  DESCRIPTOR_BUFFER_OFFSET: number
  ERROR_KINDS: Readonly<Record<NativeErrorKindName, string>>
}

/** Keys of constants.ERROR_KINDS: what kind of failure a native error reports. */
export type NativeErrorKindName = 'SYSTEM' | 'LOCKED' | 'INVALID_ARGUMENT' | 'CLOSED' | 'READ_ONLY' | 'END_OF_FILE'

/** An Error thrown or rejected by the shim. */
export interface NativeError extends Error {
  /** One of constants.ERROR_KINDS. */
  kind: string
  path: string
  /** Symbolic errno ('EIO'), when the operating system reported one. */
  errno?: string
  errnoNumber?: number
  syscall?: string
  /** On a 'locked' error: every process holding the lock has exited; the kernel is finishing their I/O. */
  lockHolderExited?: boolean
}

/** An open volume's handle: opaque to TypeScript. */
export type NativeHandle = { readonly __nativeVolumeHandle: unique symbol }

export interface NativeOpenOptions {
  readOnly: boolean
  create: boolean
  buffered: boolean
  ioPath: 'auto' | 'io_uring' | 'threadpool'
}

export interface NativeOpenResult {
  handle: NativeHandle
  kind: 'file' | 'block'
  size: number
  /** Alignment of offsets, lengths and buffer addresses. */
  sectorSize: number
  /** BLKPBSZGET for a block device; 0 (unknown) for a file. */
  physicalSectorSize: number
  directIo: boolean
  ioPath: 'io_uring' | 'threadpool'
  /** Why 'auto' fell back to the thread pool. */
  ioUringUnavailable?: string
  /** The block device itself, or the one holding the file. */
  deviceMajor: number
  deviceMinor: number
}

/** The addon's function table (native/addon.cc documents each). */
export interface NativeBinding {
  constants: NativeConstants
  open(path: string, options: NativeOpenOptions): NativeOpenResult
  read(handle: NativeHandle, descriptors: Float64Array, count: number, buffers: Uint8Array[]): Promise<void>
  /** A read batch that calls onRequest(index, error | undefined) as each request finishes; resolves after the last call. */
  readEach(handle: NativeHandle, descriptors: Float64Array, count: number, buffers: Uint8Array[], onRequest: (index: number, error: unknown) => void): Promise<void>
  write(handle: NativeHandle, descriptors: Float64Array, count: number, buffers: Uint8Array[]): Promise<void>
  sync(handle: NativeHandle): Promise<void>
  discard(handle: NativeHandle, offset: number, length: number): Promise<void>
  grow(handle: NativeHandle, size: number): void
  allocatedBytes(handle: NativeHandle): number
  close(handle: NativeHandle): Promise<void>
  allocate(bytes: number): Buffer
  crc32c(data: Uint8Array, start: number, end: number, seed: number): number
  lz4Decode(source: Uint8Array, start: number, end: number, target: Uint8Array, targetStart: number, targetEnd: number): number
}

const CONSTANT_NAMES: ReadonlyArray<keyof NativeConstants> = [
  'BLOCK_SIZE',
  'BUFFER_ALIGNMENT',
  'MAX_BATCH_REQUESTS',
  'MAX_REQUEST_BYTES',
  'QUEUE_DEPTH',
  'MAX_PENDING_BATCHES',
  'THREAD_POOL_THREADS',
  'DESCRIPTOR_FIELDS',
  'DESCRIPTOR_OFFSET',
  'DESCRIPTOR_LENGTH',
  'DESCRIPTOR_BUFFER_INDEX',
  'DESCRIPTOR_BUFFER_OFFSET',
  'ERROR_KINDS',
]
const ERROR_KIND_NAMES: readonly NativeErrorKindName[] = ['SYSTEM', 'LOCKED', 'INVALID_ARGUMENT', 'CLOSED', 'READ_ONLY', 'END_OF_FILE']

function findAddon(): string {
  const override = process.env.CUBBYDB_NATIVE
  if (override !== undefined && override !== '') return path.resolve(override)
  let directory = __dirname
  for (;;) {
    const candidate = path.join(directory, 'build', 'Release', 'cubbydb.node')
    if (fs.existsSync(candidate)) return candidate
    const parent = path.dirname(directory)
    if (parent === directory) break
    directory = parent
  }
  throw new Error(`cubbydb: the native addon is not built (no build/Release/cubbydb.node above ${__dirname}); run \`npm install\` or \`npm run build\``)
}

/** The loaded addon. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const binding: NativeBinding = require(findAddon()) as NativeBinding

/** The shared constants, checked once here: an addon from another build fails loudly at load, not later. */
export const constants: Readonly<NativeConstants> = Object.freeze({ ...binding.constants })
for (const name of CONSTANT_NAMES) {
  if (constants[name] === undefined) throw new Error(`cubbydb: the native addon does not export constants.${name}; rebuild it`)
}
for (const name of ERROR_KIND_NAMES) {
  if (typeof constants.ERROR_KINDS[name] !== 'string') throw new Error(`cubbydb: the native addon does not export ERROR_KINDS.${name}; rebuild it`)
}

/** True when `error` came from the shim (it carries a `kind`). */
export function isNativeError(error: unknown): error is NativeError {
  return error instanceof Error && typeof (error as Partial<NativeError>).kind === 'string'
}
