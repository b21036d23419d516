/**
 * The state one open store shares between its parts: the committer
 * (engine.ts), the reader (reader.ts) and the flusher (flush.ts).
 *
 * Invariants:
 *  - `superblock` is the durable superblock: it changes only when a flush step
 *    has made its successor durable (or at open).
 *  - `geometry` is what readers address with. A split step changes it (and
 *    bumps `geometryVersion`) at the same moment it installs the step's
 *    images in `overlay`, before anything is written, so a reader always finds
 *    a key where the current geometry says, in the overlay or on the device.
 *  - `writeEpoch` grows before every in-place write (bucket, overflow,
 *    extent). A device read that began before a write may return an old or
 *    torn block; readers compare epochs to tell such a race from corruption,
 *    and never cache a block read across a write.
 *  - After `failure` is set the store refuses writes until reopened.
 */

import { CubbyError, ErrorCode } from '../errors'
import type { BlockDevice } from '../device/types'
import type { HeapAllocator } from './allocator'
import type { BlockCache } from './cache'
import { bucketOf } from './hash'
import type { Superblock } from './superblock'
import type { WriteBuffer } from './write-buffer'

/** Linear hashing state readers address with. */
export interface Geometry {
  initialBuckets: number
  level: number
  splitPointer: number
}

export interface OverlayBlock {
  buffer: Buffer
  offset: number
}

export class StoreState {
  readonly storeTag: number
  readonly geometry: Geometry
  geometryVersion = 0
  writeEpoch = 0
  /** Images of blocks a flush step is writing (or, read-only, a journal recovery could not write). */
  readonly overlay = new Map<number, OverlayBlock>()
  /** Set by the engine once it knows the buffers' limits. */
  active!: WriteBuffer
  frozen: WriteBuffer | undefined
  /** A flushed buffer, reset, ready to become the next active one (its arrays are kept). */
  spare: WriteBuffer | undefined
  /** Buckets including those a split step being built is adding: the heap stays above them. */
  bucketsReserved: number
  failure: CubbyError | undefined
  /** Open iterators: splits wait while any is open, so every bucket is visited once. */
  iterators = 0

  constructor(
    readonly device: BlockDevice,
    public superblock: Superblock,
    readonly readOnly: boolean,
  ) {
    this.storeTag = superblock.storeId % 0x1_0000_0000
    this.geometry = { initialBuckets: superblock.initialBuckets, level: superblock.level, splitPointer: superblock.splitPointer }
    this.bucketsReserved = this.bucketCount()
  }

  /** Set once the allocator exists (it needs the bucket count). */
  allocator!: HeapAllocator
  cache!: BlockCache

  bucketCount(): number {
    return this.geometry.initialBuckets * 2 ** this.geometry.level + this.geometry.splitPointer
  }

  bucketFor(bucketHash: number): number {
    return bucketOf(bucketHash, this.geometry.initialBuckets, this.geometry.level, this.geometry.splitPointer)
  }

  bucketLba(bucket: number): number {
    return this.superblock.regionStart + bucket
  }

  /** Records the first failure of a write or flush; writes are refused from now on. */
  fail(error: unknown): CubbyError {
    const cause = error instanceof CubbyError ? error : new CubbyError(ErrorCode.IO, String(error), { cause: error })
    if (this.failure === undefined) this.failure = cause
    return cause
  }

  /** The error a write gets once the store has failed. */
  refusal(): CubbyError {
    const failure = this.failure!
    const code = failure.code === ErrorCode.CORRUPT ? ErrorCode.CORRUPT : ErrorCode.IO
    return new CubbyError(code, `an earlier write or flush failed (${failure.message}); the store refuses writes until it is reopened`, {
      cause: failure,
      ...(failure.errno === undefined ? {} : { errno: failure.errno }),
      ...(failure.path === undefined ? {} : { path: failure.path }),
    })
  }
}
