/**
 * openFileVolume: a Volume over an image file or a /dev block device, through
 * the native shim (native/): direct I/O (O_DIRECT), an exclusive lock, and
 * batched asynchronous reads and writes on io_uring or the shim's thread pool.
 *
 * Invariants:
 *  - Every request is checked here (./validate.ts) and again in the shim;
 *    buffers must come from allocate() (aligned memory the shim owns): a
 *    plain Buffer is refused with CUBBY_INVALID_ARGUMENT, never bounced.
 *  - One call is one native batch, unless it holds more than
 *    MAX_BATCH_REQUESTS requests; then it is split, and settles when every
 *    part has (a rejected call may have applied any subset of its writes).
 *    readEach() is one native batch too, whose requests the shim reports one
 *    by one as they finish.
 *  - At most MAX_PENDING_BATCHES batches are in the shim at once; later
 *    calls wait for a slot, in order (backpressure instead of an unbounded
 *    native queue).
 *  - After a failed write, discard or sync the volume refuses writes and
 *    syncs until it is reopened: what reached the medium is unknown, and an
 *    fsync is never retried (a retried fsync can report success over lost
 *    data).
 *  - close() waits for every batch in flight, then releases the lock. An open
 *    waits (STALE_LOCK_WAIT_MS at most) for a lock held only by processes that
 *    have exited: a crashed owner's in-flight I/O briefly outlives it.
 *
 * Who calls it: whoever opens a store's volume (src/db.ts, the self-check,
 * tests, benchmarks); block devices (./raw.ts) sit on top of it.
 */

import { constants as bufferConstants } from 'node:buffer'
import { promises as fs } from 'node:fs'
import * as nodePath from 'node:path'
import { CubbyError, ErrorCode, closedError, invalidArgument, type CubbyErrorCode } from '../errors'
import { binding, constants, isNativeError, type NativeHandle, type NativeOpenResult } from '../native'
import { checkByteRange, checkVolumeRequests } from './validate'
import { reportWhenSettled } from './report-each'
import type { ReportEach, Volume, VolumeRequest, VolumeStats } from './types'

export interface FileVolumeOptions {
  /** Open for reading only (default false). */
  readOnly?: boolean
  /** Create the file if it does not exist (default false). Never applies to /dev nodes. */
  create?: boolean
  /** Allow buffered I/O where the file system refuses O_DIRECT (default false: refuse with an error). */
  buffered?: boolean
  /** Which asynchronous I/O path to use (default 'auto': io_uring when the kernel allows it). */
  ioPath?: 'auto' | 'io_uring' | 'threadpool'
}

const MAX_LENGTH = bufferConstants.MAX_LENGTH

/** A readEach() batch (or part of one, past MAX_BATCH_REQUESTS) on its way to the shim. */
interface EachBatch {
  requests: readonly VolumeRequest[]
  /** Index of requests[0] in the caller's batch. */
  first: number
  onRequest: ReportEach
}

/**
 * How long an open waits for a lock whose holders have all exited. A process
 * killed with io_uring I/O in flight keeps its lock until the kernel has
 * finished that I/O (tens of milliseconds); a store must reopen after such a
 * crash rather than report itself in use. A live holder fails at once.
 */
const STALE_LOCK_WAIT_MS = 5000
const IO_PATHS: ReadonlyArray<NonNullable<FileVolumeOptions['ioPath']>> = ['auto', 'io_uring', 'threadpool']

/** Maps an error from the shim to a CubbyError. `writing`: the operation changes the target (or opens it writable). */
function toCubbyError(error: unknown, writing: boolean): unknown {
  if (!isNativeError(error)) return error
  const kinds = constants.ERROR_KINDS
  let code: CubbyErrorCode
  switch (error.kind) {
    case kinds.LOCKED:
      code = ErrorCode.LOCKED
      break
    case kinds.INVALID_ARGUMENT:
      code = ErrorCode.INVALID_ARGUMENT
      break
    case kinds.CLOSED:
      code = ErrorCode.CLOSED
      break
    case kinds.READ_ONLY:
      code = ErrorCode.READ_ONLY
      break
    default:
      if (writing && (error.errno === 'EROFS' || error.errno === 'EACCES' || error.errno === 'EPERM')) code = ErrorCode.READ_ONLY
      else if (error.errno === 'ENOSPC' || error.errno === 'EDQUOT') code = ErrorCode.FULL
      else code = ErrorCode.IO
  }
  return new CubbyError(code, error.message, {
    ...(error.errno === undefined ? {} : { errno: error.errno }),
    ...(error.errnoNumber === undefined ? {} : { errnoNumber: error.errnoNumber }),
    ...(error.syscall === undefined ? {} : { syscall: error.syscall }),
    path: error.path,
    cause: error,
  })
}

/** The physical sector size of the block device holding a file, from sysfs; `fallback` when unknown. */
async function physicalSectorSizeOfFileSystem(major: number, minor: number, fallback: number): Promise<number> {
  try {
    const device = await fs.realpath(`/sys/dev/block/${major}:${minor}`)
    // A partition's directory has no queue/; its disk is the parent directory.
    for (const directory of [device, nodePath.dirname(device)]) {
      const text = await fs.readFile(nodePath.join(directory, 'queue', 'physical_block_size'), 'utf8').catch(() => '')
      const bytes = Number.parseInt(text, 10)
      if (bytes > 0) return Math.max(bytes, fallback)
    }
  } catch {
    // No sysfs entry (a virtual file system, or a container without /sys): keep the fallback.
  }
  return fallback
}

export class NativeVolume implements Volume {
  readonly kind: 'file' | 'block'
  readonly sectorSize: number
  readonly growable: boolean
  readonly ioPath: 'io_uring' | 'threadpool'
  /** Whether the target was opened with O_DIRECT (false only with `buffered: true` on a file system that refuses it). */
  readonly directIo: boolean
  /** Why 'auto' chose the thread pool, when it did. */
  readonly ioUringUnavailable: string | undefined
  private currentSize: number
  private closing: Promise<void> | undefined
  private failed: CubbyError | undefined
  /** Operations begun and not yet settled (inSlot calls and split batches); close() waits for them. */
  private operationsInFlight = 0
  private allOperationsDone: (() => void) | undefined
  /** Native batches in the shim (at most MAX_PENDING_BATCHES); slotWaiters wait for one. */
  private pendingBatches = 0
  private readonly slotWaiters: Array<() => void> = []
  /** Reused for every batch: the shim copies the descriptors before the call returns. */
  private descriptors = new Float64Array(constants.DESCRIPTOR_FIELDS * 64)
  private readonly counters: VolumeStats = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, syncs: 0, discards: 0 }

  /** Use openFileVolume(). */
  constructor(
    readonly path: string,
    private readonly handle: NativeHandle,
    opened: NativeOpenResult,
    readonly physicalSectorSize: number,
    readonly readOnly: boolean,
  ) {
    this.kind = opened.kind
    this.sectorSize = opened.sectorSize
    this.growable = opened.kind === 'file' && !readOnly
    this.ioPath = opened.ioPath
    this.directIo = opened.directIo
    this.ioUringUnavailable = opened.ioUringUnavailable
    this.currentSize = opened.size
  }

  get size(): number {
    return this.currentSize
  }

  allocate(bytes: number): Buffer {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_LENGTH) throw invalidArgument(`cannot allocate ${bytes} bytes`)
    try {
      return binding.allocate(bytes)
    } catch (error) {
      throw toCubbyError(error, false)
    }
  }

  read(requests: readonly VolumeRequest[]): Promise<void> {
    try {
      this.checkOpen()
      checkVolumeRequests(requests, this.sectorSize, this.currentSize, this.path)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.transfer(requests, false)
  }

  readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
    try {
      this.checkOpen()
      checkVolumeRequests(requests, this.sectorSize, this.currentSize, this.path)
    } catch (error) {
      reportWhenSettled(Promise.reject(error), requests.length, onRequest)
      return
    }
    const most = constants.MAX_BATCH_REQUESTS
    for (let first = 0; first < requests.length; first += most) {
      const batch: EachBatch = { requests: requests.length <= most ? requests : requests.slice(first, first + most), first, onRequest }
      this.inSlot(false, this.submitEach, this.countEach, batch).catch((error: unknown) => {
        // Refused before the shim took it (closed, or the shim said no): nothing was reported yet.
        for (let index = 0; index < batch.requests.length; index++) onRequest(first + index, error as CubbyError)
      })
    }
  }

  write(requests: readonly VolumeRequest[]): Promise<void> {
    try {
      this.checkWritable()
      checkVolumeRequests(requests, this.sectorSize, this.currentSize, this.path)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.transfer(requests, true)
  }

  sync(): Promise<void> {
    try {
      this.checkOpen()
      if (this.readOnly) return Promise.resolve()
      this.checkWritable()
    } catch (error) {
      return Promise.reject(error)
    }
    return this.inSlot(true, this.syncNow, this.countSync, undefined)
  }

  discard(offset: number, length: number): Promise<void> {
    try {
      this.checkWritable()
      if (length === 0) return Promise.resolve()
      checkByteRange(offset, length, this.sectorSize, this.currentSize, this.path)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.inSlot(true, this.discardNow, this.countDiscard, { offset, length })
  }

  async grow(size: number): Promise<void> {
    this.checkWritable()
    if (!this.growable) throw invalidArgument(`${this.path} is a block device and cannot grow`)
    if (!Number.isSafeInteger(size) || size < 0 || size % this.sectorSize !== 0) {
      throw invalidArgument(`cannot grow ${this.path} to ${size} bytes: not a multiple of the ${this.sectorSize}-byte sector`)
    }
    if (size <= this.currentSize) return
    try {
      binding.grow(this.handle, size)
    } catch (error) {
      throw toCubbyError(error, true)
    }
    this.currentSize = size
  }

  allocatedBytes(): number {
    this.checkOpen()
    try {
      return binding.allocatedBytes(this.handle)
    } catch (error) {
      throw toCubbyError(error, false)
    }
  }

  stats(): VolumeStats {
    return { ...this.counters }
  }

  /** Refuses new work, waits for every operation in flight to settle, then closes the file (releasing its lock). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await binding.close(this.handle)
      if (this.operationsInFlight > 0) await new Promise<void>((resolve) => (this.allOperationsDone = resolve))
    })()
    return this.closing
  }

  private operationDone(): void {
    if (--this.operationsInFlight === 0) this.allOperationsDone?.()
  }

  /** Runs a batch, split at MAX_BATCH_REQUESTS, and settles when every part has. */
  private transfer(requests: readonly VolumeRequest[], writing: boolean): Promise<void> {
    if (requests.length === 0) return Promise.resolve()
    const submit = writing ? this.submitWrites : this.submitReads
    const count = writing ? this.countWrites : this.countReads
    if (requests.length <= constants.MAX_BATCH_REQUESTS) return this.inSlot(writing, submit, count, requests)
    return this.transferInParts(requests, writing, submit, count)
  }

  private async transferInParts(
    requests: readonly VolumeRequest[],
    writing: boolean,
    submit: (part: readonly VolumeRequest[]) => Promise<void>,
    count: (part: readonly VolumeRequest[]) => void,
  ): Promise<void> {
    this.operationsInFlight++
    try {
      const parts: Array<Promise<void>> = []
      for (let start = 0; start < requests.length; start += constants.MAX_BATCH_REQUESTS) {
        parts.push(this.inSlot(writing, submit, count, requests.slice(start, start + constants.MAX_BATCH_REQUESTS)))
      }
      const outcomes = await Promise.allSettled(parts)
      for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason
    } finally {
      this.operationDone()
    }
  }

  // What inSlot runs and counts, made once per volume: a batch allocates no closures.
  private readonly submitReads = (requests: readonly VolumeRequest[]): Promise<void> => this.submit(requests, false)
  private readonly submitWrites = (requests: readonly VolumeRequest[]): Promise<void> => this.submit(requests, true)
  /** readEach batches are counted request by request, as each is reported. */
  private readonly countEach = (): void => undefined
  /** Hands a readEach batch to the shim; a report that comes while the shim still has the call is passed on after it returns. */
  private readonly submitEach = (batch: EachBatch): Promise<void> => {
    let inCall = true
    const report = (index: number, error: unknown): void => {
      if (error === undefined) {
        this.counters.reads++
        this.counters.bytesRead += batch.requests[index]!.length
      }
      const failure = error === undefined ? undefined : (toCubbyError(error, false) as CubbyError)
      if (inCall) queueMicrotask(() => batch.onRequest(batch.first + index, failure))
      else batch.onRequest(batch.first + index, failure)
    }
    try {
      return this.submit(batch.requests, false, report)
    } finally {
      inCall = false
    }
  }
  private readonly syncNow = (): Promise<void> => binding.sync(this.handle)
  private readonly discardNow = (range: { offset: number; length: number }): Promise<void> => binding.discard(this.handle, range.offset, range.length)
  private readonly countReads = (requests: readonly VolumeRequest[]): void => {
    this.counters.reads += requests.length
    for (let index = 0; index < requests.length; index++) this.counters.bytesRead += requests[index]!.length
  }
  private readonly countWrites = (requests: readonly VolumeRequest[]): void => {
    this.counters.writes += requests.length
    for (let index = 0; index < requests.length; index++) this.counters.bytesWritten += requests[index]!.length
  }
  private readonly countSync = (): void => {
    this.counters.syncs++
  }
  private readonly countDiscard = (): void => {
    this.counters.discards++
  }

  /**
   * The one asynchronous step of every operation: runs one native batch,
   * `call(argument)`, holding one of the MAX_PENDING_BATCHES slots (waiting
   * for one, in order, if none is free), maps its failure to a CubbyError,
   * and counts it when it succeeds. After a failed write, discard or sync
   * (`writing`) the volume refuses writes: what reached the medium is
   * unknown, and an fsync is never retried. close() waits for every call.
   */
  private async inSlot<T>(writing: boolean, call: (argument: T) => Promise<void>, count: (argument: T) => void, argument: T): Promise<void> {
    this.operationsInFlight++
    try {
      if (this.pendingBatches < constants.MAX_PENDING_BATCHES) this.pendingBatches++
      else await new Promise<void>((resolve) => this.slotWaiters.push(resolve))
      try {
        if (this.closing !== undefined) throw closedError('volume')
        await call(argument)
      } catch (error) {
        const failure = toCubbyError(error, writing)
        if (writing && failure instanceof CubbyError && (failure.code === ErrorCode.IO || failure.code === ErrorCode.FULL)) this.failed = failure
        throw failure
      } finally {
        // Hand the slot straight to the first waiter, if any (it stays counted).
        const next = this.slotWaiters.shift()
        if (next !== undefined) next()
        else this.pendingBatches--
      }
      count(argument)
    } finally {
      this.operationDone()
    }
  }

  /** Encodes requests as one descriptor array (see native/constants.h) and hands it to the shim. */
  private submit(requests: readonly VolumeRequest[], writing: boolean, onRequest?: (index: number, error: unknown) => void): Promise<void> {
    const fields = constants.DESCRIPTOR_FIELDS
    const count = requests.length
    if (this.descriptors.length < count * fields) {
      this.descriptors = new Float64Array(Math.min(constants.MAX_BATCH_REQUESTS, 2 ** Math.ceil(Math.log2(count))) * fields)
    }
    const descriptors = this.descriptors
    // Consecutive requests into the same buffer (the usual case) share one
    // entry; a one-element literal keeps the usual array at its smallest.
    let previous = requests[0]!.buffer
    const buffers: Buffer[] = [previous]
    for (let index = 0; index < count; index++) {
      const request = requests[index]!
      if (request.buffer !== previous) {
        buffers.push(request.buffer)
        previous = request.buffer
      }
      const base = index * fields
      descriptors[base + constants.DESCRIPTOR_OFFSET] = request.offset
      descriptors[base + constants.DESCRIPTOR_LENGTH] = request.length
      descriptors[base + constants.DESCRIPTOR_BUFFER_INDEX] = buffers.length - 1
      descriptors[base + constants.DESCRIPTOR_BUFFER_OFFSET] = request.bufferOffset
    }
    if (writing) return binding.write(this.handle, descriptors, count, buffers)
    return onRequest === undefined ? binding.read(this.handle, descriptors, count, buffers) : binding.readEach(this.handle, descriptors, count, buffers, onRequest)
  }

  private checkOpen(): void {
    if (this.closing !== undefined) throw closedError('volume')
  }

  private checkWritable(): void {
    this.checkOpen()
    if (this.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, `${this.path} is open read-only`, { path: this.path })
    if (this.failed !== undefined) {
      throw new CubbyError(ErrorCode.IO, `${this.path}: an earlier write or sync failed; reopen the volume`, { path: this.path, cause: this.failed })
    }
  }
}

/** Opens an image file or block device as a Volume. */
export async function openFileVolume(path: string, options: FileVolumeOptions = {}): Promise<NativeVolume> {
  if (typeof path !== 'string' || path === '') throw invalidArgument('a volume path must be a non-empty string')
  if (options === null || typeof options !== 'object') throw invalidArgument('volume options must be an object')
  for (const name of ['readOnly', 'create', 'buffered'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') throw invalidArgument(`options.${name} must be a boolean`)
  }
  const ioPath = options.ioPath ?? 'auto'
  if (!IO_PATHS.includes(ioPath)) throw invalidArgument(`options.ioPath must be one of ${IO_PATHS.join(', ')}, not ${String(ioPath)}`)
  const readOnly = options.readOnly ?? false

  const nativeOptions = { readOnly, create: options.create ?? false, buffered: options.buffered ?? false, ioPath }
  let opened: NativeOpenResult | undefined
  const deadline = Date.now() + STALE_LOCK_WAIT_MS
  for (let delayMs = 2; opened === undefined; delayMs = Math.min(2 * delayMs, 64)) {
    try {
      opened = binding.open(path, nativeOptions)
    } catch (error) {
      const heldByTheDead = isNativeError(error) && error.kind === constants.ERROR_KINDS.LOCKED && error.lockHolderExited === true
      if (!heldByTheDead || Date.now() >= deadline) throw toCubbyError(error, !readOnly)
      await new Promise((resolve) => setTimeout(resolve, delayMs))
    }
  }
  const physicalSectorSize =
    opened.physicalSectorSize > 0
      ? opened.physicalSectorSize
      : await physicalSectorSizeOfFileSystem(opened.deviceMajor, opened.deviceMinor, opened.sectorSize)
  return new NativeVolume(path, opened.handle, opened, physicalSectorSize, readOnly)
}
