/**
 * RawBlockDevice: logical block n is bytes [n * 4096, (n + 1) * 4096) of the
 * volume, with no translation.
 *
 * This is the mode for drives that compress in hardware (the drive makes the
 * empty tails of buckets free), and the baseline the compressed mode is
 * measured against. On an image file the volume is sparse: blocks never
 * written take no space, and trim punches holes.
 *
 * The device adds no durability of its own: a write is durable after a later
 * flush(), and a 4 KiB block write is atomic only if the hardware makes it so.
 */

import { CubbyError, ErrorCode, closedError, invalidArgument, refusingWrites } from '../errors'
import { reportWhenSettled } from './report-each'
import { BLOCK_SIZE, type BlockDevice, type BlockRequest, type DeviceStats, type ReportEach, type Volume, type VolumeRequest } from './types'
import { checkBlockRange, checkBlockRequests } from './validate'

export class RawBlockDevice implements BlockDevice {
  readonly mode = 'raw' as const
  readonly blockCount: number
  private closed = false
  private failed: CubbyError | undefined
  private readonly counters = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, flushes: 0, trims: 0 }

  /**
   * Uses `volume` as raw blocks. The volume's size must be a whole number of
   * blocks; `blocks` (optional) caps the device below the volume's size.
   */
  constructor(
    readonly volume: Volume,
    blocks?: number,
  ) {
    if (volume.sectorSize > BLOCK_SIZE || BLOCK_SIZE % volume.sectorSize !== 0) {
      throw invalidArgument(`${volume.path}: sector size ${volume.sectorSize} does not divide the ${BLOCK_SIZE}-byte block`)
    }
    const available = Math.floor(volume.size / BLOCK_SIZE)
    this.blockCount = blocks === undefined ? available : Math.min(blocks, available)
  }

  /** Grows a growable volume (sparsely) to hold `blocks` blocks, then opens it raw. */
  static async create(volume: Volume, blocks: number): Promise<RawBlockDevice> {
    if (!Number.isSafeInteger(blocks) || blocks <= 0) throw invalidArgument(`a device needs a positive block count, not ${blocks}`)
    const bytes = blocks * BLOCK_SIZE
    if (volume.size < bytes) {
      if (!volume.growable) {
        throw new CubbyError(ErrorCode.FULL, `${volume.path} holds ${volume.size} bytes, fewer than the ${bytes} asked for`, { path: volume.path })
      }
      await volume.grow(bytes)
    }
    return new RawBlockDevice(volume, blocks)
  }

  get ioPath(): string {
    return this.volume.ioPath
  }

  get readOnly(): boolean {
    return this.volume.readOnly
  }

  allocate(blocks: number): Buffer {
    return this.volume.allocate(blocks * BLOCK_SIZE)
  }

  async read(requests: readonly BlockRequest[]): Promise<void> {
    this.checkOpen()
    checkBlockRequests(requests, this.blockCount)
    if (requests.length === 0) return
    await this.volume.read(toVolumeRequests(requests))
    this.counters.reads += requests.length
    this.counters.bytesRead += requests.length * BLOCK_SIZE
  }

  readEach(requests: readonly BlockRequest[], onBlock: ReportEach): void {
    try {
      this.checkOpen()
      checkBlockRequests(requests, this.blockCount)
    } catch (error) {
      reportWhenSettled(Promise.reject(error), requests.length, onBlock)
      return
    }
    if (requests.length === 0) return
    this.volume.readEach(toVolumeRequests(requests), (index, error) => {
      if (error === undefined) {
        this.counters.reads++
        this.counters.bytesRead += BLOCK_SIZE
      }
      onBlock(index, error)
    })
  }

  async write(requests: readonly BlockRequest[]): Promise<void> {
    this.checkWritable()
    checkBlockRequests(requests, this.blockCount)
    if (requests.length === 0) return
    await this.guard(this.volume.write(toVolumeRequests(requests)))
    this.counters.writes += requests.length
    this.counters.bytesWritten += requests.length * BLOCK_SIZE
  }

  async trim(lba: number, count: number): Promise<void> {
    this.checkWritable()
    checkBlockRange(lba, count, this.blockCount)
    if (count === 0) return
    await this.guard(this.volume.discard(lba * BLOCK_SIZE, count * BLOCK_SIZE))
    this.counters.trims++
  }

  async flush(): Promise<void> {
    this.checkWritable()
    await this.guard(this.volume.sync())
    this.counters.flushes++
  }

  stats(): DeviceStats {
    const physicalBytes = this.volume.allocatedBytes()
    return {
      mode: this.mode,
      ...this.counters,
      logicalBytes: physicalBytes,
      physicalBytes,
      volume: this.volume.stats(),
      memoryBytes: 0,
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.volume.close()
  }

  private checkOpen(): void {
    if (this.closed) throw closedError('device')
  }

  private checkWritable(): void {
    this.checkOpen()
    if (this.volume.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, `${this.volume.path} is open read-only`, { path: this.volume.path })
    if (this.failed !== undefined) {
      throw refusingWrites(this.volume.path, this.failed)
    }
  }

  /** After any failed write, trim or flush the device refuses writes: what reached the disk is unknown. */
  private async guard(operation: Promise<void>): Promise<void> {
    try {
      await operation
    } catch (error) {
      if (error instanceof CubbyError && error.code === ErrorCode.IO) this.failed = error
      throw error
    }
  }
}

function toVolumeRequests(requests: readonly BlockRequest[]): VolumeRequest[] {
  const out = new Array<VolumeRequest>(requests.length)
  for (let index = 0; index < requests.length; index++) {
    const request = requests[index]!
    out[index] = { offset: request.lba * BLOCK_SIZE, length: BLOCK_SIZE, buffer: request.buffer, bufferOffset: request.bufferOffset }
  }
  return out
}
