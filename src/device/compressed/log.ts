/**
 * LogWriter: appends records to the log (docs/format.md 3.5-3.7).
 *
 * Records are placed in the *pending chunk*, a write buffer in memory whose
 * position on the volume is already fixed, so a record's map entry is final
 * the moment it is placed. A chunk is *sealed* when a flush needs it on disk
 * or when the next record does not fit; sealed chunks are written in order,
 * each with one volume write, and their buffers come back to a small fixed
 * pool. Until its write completes a chunk stays *resident*, and reads of its
 * records are served from memory.
 *
 * Invariants:
 *  - Chunks start at multiples of CHUNK_ALIGNMENT_BYTES and are padded to
 *    one, so no write ever touches a sector holding an earlier chunk.
 *  - Chunk k + 1 is chained to chunk k's header CRC and lies at the end of
 *    chunk k or at offset 0 of chunk k's successor segment.
 *  - At most `bufferCount` chunk buffers exist; placing a record when all
 *    are sealed and unwritten waits for a write (backpressure).
 *  - After any failed write or sync, `health.failure` is set and nothing
 *    more is written.
 *
 * Who calls this: CompressedBlockDevice (with its append lock held for
 * place/seal), the checkpointer (sync, seal at the cut) and the recovery
 * (which sets the starting position).
 */

import assert from 'node:assert'
import { CubbyError, ErrorCode, refusingWrites } from '../../errors'
import { crc32c } from '../../util/crc32c'
import type { Volume } from '../types'
import { CHUNK_ALIGNMENT_BYTES, chunkRecordStart, encodeChunkHeader, type Geometry } from './format'
import { SegmentState, type SegmentTable } from './segments'

/** Shared by every part of the device: the first write or sync failure, after which it refuses writes. */
export class Health {
  failure: CubbyError | undefined

  constructor(private readonly path: string) {}

  fail(error: unknown): void {
    if (this.failure !== undefined) return
    this.failure =
      error instanceof CubbyError
        ? error
        : new CubbyError(ErrorCode.IO, `${this.path}: ${(error as Error)?.message ?? String(error)}`, { path: this.path, cause: error })
  }

  /** Throws CUBBY_IO when an earlier write or sync failed. */
  check(): void {
    if (this.failure !== undefined) {
      throw refusingWrites(this.path, this.failure)
    }
  }
}

export interface LogPosition {
  headSegment: number
  headOffset: number
  successor: number
  lastSequence: number
  lastChunkCrc: number
}

interface Chunk {
  segment: number
  offset: number
  /** Data-area address of the chunk's first byte. */
  start: number
  capacity: number
  buffer: Buffer
  /** Bytes of records placed so far, from chunkRecordStart. */
  recordBytes: number
  sequence: number
  sealed: boolean
  chunkBytes: number
}

export interface Placement {
  buffer: Buffer
  /** Where the record's bytes go in `buffer`. */
  at: number
  /** The record's data-area address. */
  address: number
  segment: number
}

export class LogWriter {
  headSegment: number
  headOffset: number
  successor: number
  lastSequence: number
  lastChunkCrc: number
  writtenThrough: number
  syncedThrough: number
  /** Chunks written by this writer (for statistics and tests). */
  chunksWritten = 0
  bytesPadded = 0
  private pending: Chunk | undefined
  private readonly queue: Chunk[] = []
  private readonly freeBuffers: Buffer[] = []
  private buffersMade = 0
  private writing: Promise<void> | undefined
  /** True from kick() until the write loop has seen an empty queue (set and cleared synchronously, unlike `writing`). */
  private writerActive = false
  private waiters: Array<() => void> = []
  private readonly recordStart: number
  readonly syncer: Syncer

  constructor(
    private readonly geometry: Geometry,
    private readonly volume: Volume,
    private readonly segments: SegmentTable,
    private readonly health: Health,
    position: LogPosition,
    private readonly epoch: number,
    private readonly committedGeneration: () => number,
    readonly bufferBytes: number,
    readonly bufferCount: number,
  ) {
    assert(bufferBytes % CHUNK_ALIGNMENT_BYTES === 0 && bufferCount >= 2)
    this.headSegment = position.headSegment
    this.headOffset = position.headOffset
    this.successor = position.successor
    this.lastSequence = position.lastSequence
    this.lastChunkCrc = position.lastChunkCrc
    this.writtenThrough = position.lastSequence
    this.syncedThrough = position.lastSequence
    this.recordStart = chunkRecordStart(geometry.granuleBytes)
    this.syncer = new Syncer(volume, health, () => this.writtenThrough, (covered) => {
      if (covered > this.syncedThrough) this.syncedThrough = covered
    })
  }

  memoryBytes(): number {
    return this.buffersMade * this.bufferBytes
  }

  /** True when records are placed but not sealed. */
  get hasPending(): boolean {
    return this.pending !== undefined && this.pending.recordBytes > 0
  }

  /** Bytes of the head segment written or placed (for physical accounting). */
  get headFill(): number {
    const pending = this.pending
    return pending === undefined ? this.headOffset : pending.offset + this.recordStart + pending.recordBytes
  }

  /**
   * Places a record of `footprint` bytes in the pending chunk if it fits
   * without sealing, and returns where; undefined when makeRoom() must run
   * first.
   */
  tryPlace(footprint: number): Placement | undefined {
    const chunk = this.pending
    if (chunk === undefined || this.recordStart + chunk.recordBytes + footprint > chunk.capacity) return undefined
    const at = this.recordStart + chunk.recordBytes
    chunk.recordBytes += footprint
    return { buffer: chunk.buffer, at, address: chunk.start + at, segment: chunk.segment }
  }

  /** Places a record of `footprint` bytes, making room first if it does not fit (see makeRoom). */
  async place(footprint: number): Promise<Placement> {
    const placement = this.tryPlace(footprint)
    if (placement !== undefined) return placement
    await this.makeRoom(footprint)
    const placed = this.tryPlace(footprint)
    assert(placed !== undefined, 'a record fits the chunk makeRoom() opened for it')
    return placed
  }

  /**
   * Seals the pending chunk if the record does not fit it, and opens a new
   * one where it fits (the rest of the head segment, or the successor). May
   * wait for a buffer. Throws CUBBY_FULL when the head is full and no
   * segment is free to become the next successor.
   */
  async makeRoom(footprint: number): Promise<void> {
    if (this.pending !== undefined && this.recordStart + this.pending.recordBytes + footprint <= this.pending.capacity) return
    this.seal()
    const buffer = await this.takeBuffer()
    this.health.check()
    if (this.pending !== undefined) {
      // Another placer opened a chunk while this one waited for a buffer.
      this.freeBuffers.push(buffer)
      return this.makeRoom(footprint)
    }
    const needed = this.recordStart + footprint
    if (this.geometry.segmentBytes - this.headOffset < needed) this.advanceSegment(buffer)
    const capacity = Math.min(this.bufferBytes, this.geometry.segmentBytes - this.headOffset)
    this.pending = {
      segment: this.headSegment,
      offset: this.headOffset,
      start: this.headSegment * this.geometry.segmentBytes + this.headOffset,
      capacity,
      buffer,
      recordBytes: 0,
      sequence: 0,
      sealed: false,
      chunkBytes: 0,
    }
  }

  /** Moves the head to the successor and reserves a new successor; CUBBY_FULL if none is free. */
  private advanceSegment(buffer: Buffer): void {
    const next = this.segments.allocate()
    if (next === undefined) {
      this.freeBuffers.push(buffer)
      throw new CubbyError(ErrorCode.FULL, `${this.volume.path}: every segment of the compressed store is in use`, { path: this.volume.path })
    }
    this.segments.setState(this.headSegment, SegmentState.USED)
    this.segments.setState(this.successor, SegmentState.HEAD)
    this.headSegment = this.successor
    this.headOffset = 0
    this.successor = next
    this.segments.clock++
  }

  /** Seals the pending chunk (if it holds records) and queues it for writing. Synchronous. */
  seal(): void {
    const chunk = this.pending
    if (chunk === undefined) return
    this.pending = undefined
    if (chunk.recordBytes === 0) {
      this.freeBuffers.push(chunk.buffer)
      return
    }
    const used = this.recordStart + chunk.recordBytes
    const chunkBytes = Math.ceil(used / CHUNK_ALIGNMENT_BYTES) * CHUNK_ALIGNMENT_BYTES
    assert(chunk.offset + chunkBytes <= this.geometry.segmentBytes)
    chunk.buffer.fill(0, used, chunkBytes)
    chunk.sequence = this.lastSequence + 1
    chunk.chunkBytes = chunkBytes
    chunk.sealed = true
    this.lastChunkCrc = encodeChunkHeader(
      this.geometry,
      {
        sequence: chunk.sequence,
        chain: this.lastChunkCrc,
        segment: chunk.segment,
        incarnation: this.segments.incarnationOf(chunk.segment),
        offset: chunk.offset,
        chunkBytes,
        recordBytes: chunk.recordBytes,
        dataCrc: crc32c(chunk.buffer, this.recordStart, used),
        successor: this.successor,
        flushedThrough: this.syncedThrough,
        epoch: this.epoch,
        generation: this.committedGeneration(),
      },
      chunk.buffer,
      0,
    )
    this.lastSequence = chunk.sequence
    this.headOffset = chunk.offset + chunkBytes
    this.bytesPadded += chunkBytes - used
    this.queue.push(chunk)
    this.kick()
  }

  /** Resolves when every chunk up to `sequence` is written (not necessarily synced). */
  async waitWritten(sequence: number): Promise<void> {
    while (this.writtenThrough < sequence) {
      this.health.check()
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  /** Makes every chunk up to `sequence` durable: waits for its write, then a sync that started after it. */
  async syncThrough(sequence: number): Promise<void> {
    await this.waitWritten(sequence)
    while (this.syncedThrough < sequence) await this.syncer.sync()
  }

  /** If the record at `address` is still in memory, returns its chunk buffer and where it starts there. */
  resident(address: number): { buffer: Buffer; at: number } | undefined {
    const pending = this.pending
    if (pending !== undefined && address >= pending.start && address < pending.start + pending.capacity) {
      return { buffer: pending.buffer, at: address - pending.start }
    }
    for (const chunk of this.queue) {
      if (address >= chunk.start && address < chunk.start + chunk.chunkBytes) return { buffer: chunk.buffer, at: address - chunk.start }
    }
    return undefined
  }

  /** Resolves when no write is in flight (close, tests). */
  async idle(): Promise<void> {
    while (this.writerActive) await this.writing
  }

  private async takeBuffer(): Promise<Buffer> {
    for (;;) {
      this.health.check()
      const buffer = this.freeBuffers.pop()
      if (buffer !== undefined) return buffer
      if (this.buffersMade < this.bufferCount) {
        this.buffersMade++
        return this.volume.allocate(this.bufferBytes)
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  private kick(): void {
    if (this.writerActive) return
    this.writerActive = true
    this.writing = this.writeLoop()
  }

  private async writeLoop(): Promise<void> {
    while (this.queue.length > 0 && this.health.failure === undefined) {
      const batch = this.queue.slice()
      try {
        await this.volume.write(
          batch.map((chunk) => ({
            offset: this.geometry.dataOffset + chunk.start,
            length: chunk.chunkBytes,
            buffer: chunk.buffer,
            bufferOffset: 0,
          })),
        )
      } catch (error) {
        this.health.fail(error)
        break
      }
      for (const chunk of batch) {
        assert(this.queue[0] === chunk, 'chunks complete in order')
        this.queue.shift()
        this.writtenThrough = chunk.sequence
        this.chunksWritten++
        this.freeBuffers.push(chunk.buffer)
      }
      this.wake()
    }
    this.writerActive = false
    this.wake()
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const resolve of waiters) resolve()
  }
}

/**
 * Coalesces volume syncs: sync() resolves after a sync that *started after
 * the call* has completed, and callers arriving while one runs share the next.
 * Never retries a failed sync (the device refuses writes after it).
 */
export class Syncer {
  private running: Promise<void> | undefined
  private queued: Promise<void> | undefined
  syncs = 0

  constructor(
    private readonly volume: Volume,
    private readonly health: Health,
    private readonly coverage: () => number,
    private readonly onSynced: (covered: number) => void,
  ) {}

  sync(): Promise<void> {
    if (this.queued !== undefined) return this.queued
    if (this.running !== undefined) {
      const queued = this.running.then(
        () => this.start(),
        () => this.start(),
      )
      this.queued = queued
      return queued
    }
    return this.start()
  }

  private start(): Promise<void> {
    if (this.queued !== undefined) this.queued = undefined
    this.health.check()
    const covered = this.coverage()
    const running = this.volume.sync().then(
      () => {
        this.syncs++
        this.onSynced(covered)
      },
      (error: unknown) => {
        this.health.fail(error)
        throw error
      },
    )
    this.running = running
    running.then(
      () => {
        if (this.running === running) this.running = undefined
      },
      () => {
        if (this.running === running) this.running = undefined
      },
    )
    return running
  }
}
