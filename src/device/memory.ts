/**
 * MemoryVolume: a Volume held in process memory, for tests and for stores
 * that need no persistence.
 *
 * The bytes live in a MemoryBacking (sparse 64 KiB chunks; a chunk that was
 * never written or was discarded reads as zeros and holds no memory). The
 * backing outlives any one MemoryVolume, so a test can close a store and open
 * it again, or cut its power (FaultyVolume) and recover from what is left.
 * Like a file lock, only one MemoryVolume may have a backing open at a time:
 * a second open fails with CUBBY_LOCKED.
 */

import { CubbyError, ErrorCode, closedError, invalidArgument } from '../errors'
import { checkByteRange, checkVolumeRequests } from './validate'
import { reportWhenSettled } from './report-each'
import type { ReportEach, Volume, VolumeRequest, VolumeStats } from './types'

const CHUNK_SIZE = 64 * 1024

export class MemoryBacking {
  /** Chunk index -> bytes. Absent chunks are zeros. */
  readonly chunks = new Map<number, Buffer>()
  size: number
  isOpen = false

  constructor(size: number) {
    this.size = size
  }

  read(offset: number, target: Buffer, targetOffset: number, length: number): void {
    let done = 0
    while (done < length) {
      const position = offset + done
      const chunkIndex = Math.floor(position / CHUNK_SIZE)
      const within = position - chunkIndex * CHUNK_SIZE
      const span = Math.min(CHUNK_SIZE - within, length - done)
      const chunk = this.chunks.get(chunkIndex)
      if (chunk === undefined) target.fill(0, targetOffset + done, targetOffset + done + span)
      else chunk.copy(target, targetOffset + done, within, within + span)
      done += span
    }
  }

  write(offset: number, source: Buffer, sourceOffset: number, length: number): void {
    let done = 0
    while (done < length) {
      const position = offset + done
      const chunkIndex = Math.floor(position / CHUNK_SIZE)
      const within = position - chunkIndex * CHUNK_SIZE
      const span = Math.min(CHUNK_SIZE - within, length - done)
      let chunk = this.chunks.get(chunkIndex)
      if (chunk === undefined) {
        chunk = Buffer.alloc(CHUNK_SIZE)
        this.chunks.set(chunkIndex, chunk)
      }
      source.copy(chunk, within, sourceOffset + done, sourceOffset + done + span)
      done += span
    }
  }

  discard(offset: number, length: number): void {
    let done = 0
    while (done < length) {
      const position = offset + done
      const chunkIndex = Math.floor(position / CHUNK_SIZE)
      const within = position - chunkIndex * CHUNK_SIZE
      const span = Math.min(CHUNK_SIZE - within, length - done)
      if (span === CHUNK_SIZE) this.chunks.delete(chunkIndex)
      else this.chunks.get(chunkIndex)?.fill(0, within, within + span)
      done += span
    }
  }

  allocatedBytes(): number {
    return this.chunks.size * CHUNK_SIZE
  }

  /** A deep copy, e.g. to keep the state of a store at one moment. */
  clone(): MemoryBacking {
    const copy = new MemoryBacking(this.size)
    for (const [index, chunk] of this.chunks) copy.chunks.set(index, Buffer.from(chunk))
    return copy
  }
}

export interface MemoryVolumeOptions {
  /** Size in bytes (default 1 GiB). */
  size?: number
  /** Alignment of offsets and lengths (default 512). */
  sectorSize?: number
  /** Physical sector size, the atomic write unit (default 4096). */
  physicalSectorSize?: number
  /** Whether the volume can grow like an image file (default true). */
  growable?: boolean
  readOnly?: boolean
  /** A name used in messages (default 'memory'). */
  path?: string
}

export class MemoryVolume implements Volume {
  readonly path: string
  readonly kind = 'memory' as const
  readonly sectorSize: number
  readonly physicalSectorSize: number
  readonly growable: boolean
  readonly readOnly: boolean
  readonly ioPath = 'memory'
  readonly backing: MemoryBacking
  private closed = false
  private readonly counters: VolumeStats = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, syncs: 0, discards: 0 }

  /** Opens `backing` (or a new empty one). Fails with CUBBY_LOCKED while another MemoryVolume has it open. */
  constructor(options: MemoryVolumeOptions = {}, backing?: MemoryBacking) {
    this.sectorSize = options.sectorSize ?? 512
    this.physicalSectorSize = options.physicalSectorSize ?? 4096
    this.growable = options.growable ?? true
    this.readOnly = options.readOnly ?? false
    this.path = options.path ?? 'memory'
    this.backing = backing ?? new MemoryBacking(options.size ?? 1024 * 1024 * 1024)
    if (this.backing.isOpen) throw new CubbyError(ErrorCode.LOCKED, `${this.path} is already open`, { path: this.path })
    this.backing.isOpen = true
  }

  get size(): number {
    return this.backing.size
  }

  /** A new MemoryVolume over the same bytes (this one must be closed first). */
  reopen(options: MemoryVolumeOptions = {}): MemoryVolume {
    return new MemoryVolume(
      { sectorSize: this.sectorSize, physicalSectorSize: this.physicalSectorSize, growable: this.growable, path: this.path, ...options },
      this.backing,
    )
  }

  allocate(bytes: number): Buffer {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw invalidArgument(`cannot allocate ${bytes} bytes`)
    return Buffer.alloc(bytes)
  }

  async read(requests: readonly VolumeRequest[]): Promise<void> {
    this.checkOpen()
    checkVolumeRequests(requests, this.sectorSize, this.size, this.path)
    for (const request of requests) {
      this.backing.read(request.offset, request.buffer, request.bufferOffset, request.length)
      this.counters.reads++
      this.counters.bytesRead += request.length
    }
  }

  readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
    reportWhenSettled(this.read(requests), requests.length, onRequest)
  }

  async write(requests: readonly VolumeRequest[]): Promise<void> {
    this.checkOpen()
    this.checkWritable()
    checkVolumeRequests(requests, this.sectorSize, this.size, this.path)
    for (const request of requests) {
      this.backing.write(request.offset, request.buffer, request.bufferOffset, request.length)
      this.counters.writes++
      this.counters.bytesWritten += request.length
    }
  }

  async sync(): Promise<void> {
    this.checkOpen()
    this.counters.syncs++
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkOpen()
    this.checkWritable()
    if (length === 0) return
    checkByteRange(offset, length, this.sectorSize, this.size, this.path)
    this.backing.discard(offset, length)
    this.counters.discards++
  }

  async grow(size: number): Promise<void> {
    this.checkOpen()
    this.checkWritable()
    if (!this.growable) throw invalidArgument(`${this.path} cannot grow`)
    if (!Number.isSafeInteger(size) || size % this.sectorSize !== 0) throw invalidArgument(`cannot grow to ${size} bytes`)
    if (size > this.backing.size) this.backing.size = size
  }

  allocatedBytes(): number {
    return this.backing.allocatedBytes()
  }

  stats(): VolumeStats {
    return { ...this.counters }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.backing.isOpen = false
  }

  private checkOpen(): void {
    if (this.closed) throw closedError('volume')
  }

  private checkWritable(): void {
    if (this.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, `${this.path} is open read-only`, { path: this.path })
  }
}
