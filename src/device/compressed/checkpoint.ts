/**
 * Checkpointer: makes the block map and the segment table durable, so that
 * opening replays only the log written since (docs/format.md 3.3, 3.7).
 *
 * A checkpoint runs in two parts:
 *  - cut() (synchronous, called with the device's append lock held): seals
 *    the pending chunk, snapshots the segment table and counters, serialises
 *    every dirty map page, and notes which segments are dead. From here on
 *    writers continue; their changes belong to the next checkpoint.
 *  - the write (asynchronous): map pages to their non-current copies, wait
 *    for the log up to the cut, sync; the checkpoint to slot
 *    `generation mod 2`, sync. Then commit: the new copies become current,
 *    and the segments found empty at the *previous* cut are discarded and
 *    become free. (Those found empty at this cut may still be needed by the
 *    previous checkpoint, the fallback should this one be damaged; they wait
 *    for the next commit.)
 *
 * Invariants: at most one checkpoint in flight; nothing a committed
 * checkpoint needs is overwritten before the next one commits; a failure
 * marks the device failed (Health) and leaves the committed state alone.
 *
 * Who calls this: CompressedBlockDevice (thresholds, close), the cleaner
 * (to free cleaned segments), create (generation 1).
 */

import assert from 'node:assert'
import type { Volume, VolumeRequest } from '../types'
import type { BlockMap, StagedPage } from './block-map'
import { checkpointSlotOffset, encodeCheckpoint, mapPageOffset, MAP_PAGE_BYTES, type Checkpoint, type Geometry } from './format'
import type { Health, LogWriter } from './log'
import type { SegmentTable } from './segments'

/** Counters a checkpoint records besides the map and the segment table. */
export interface CheckpointCounters {
  mappedBlocks: number
  writerRecordBytes: number
  cleanerRecordBytes: number
}

/** Map pages per volume write batch when a checkpoint writes them. */
const PAGES_PER_WRITE = 64

export class Checkpointer {
  /** Generation of the newest committed checkpoint. */
  generation: number
  checkpoints = 0
  segmentsFreed = 0
  private inFlight: Promise<void> | undefined
  /** Segments marked DEAD at the last committed cut: released at the next commit. */
  waiting: number[] = []
  private readonly slotBuffer: Buffer
  private stagingBytes = 0

  constructor(
    private readonly geometry: Geometry,
    private readonly volume: Volume,
    private readonly health: Health,
    private readonly map: BlockMap,
    private readonly segments: SegmentTable,
    private readonly log: LogWriter,
    private readonly counters: () => CheckpointCounters,
    generation: number,
  ) {
    this.generation = generation
    this.slotBuffer = volume.allocate(geometry.checkpointSlotBytes)
  }

  get running(): Promise<void> | undefined {
    return this.inFlight
  }

  memoryBytes(): number {
    return this.slotBuffer.length + this.stagingBytes
  }

  /**
   * Cuts a checkpoint now and starts writing it; returns the promise of its
   * commit. Must be called with the append lock held and none in flight.
   */
  cut(): Promise<void> {
    assert(this.inFlight === undefined, 'one checkpoint at a time')
    this.health.check()
    this.log.seal()
    const generation = this.generation + 1
    const { staged, buffer } = this.map.cut(generation, (bytes) => this.volume.allocate(bytes))
    this.stagingBytes = buffer?.length ?? 0
    const dead = this.segments.markDead()
    const counters = this.counters()
    const pages = this.map.statesAfter(staged)
    const snapshot = this.segments.snapshot()
    const liveBytes = new Uint32Array(this.geometry.segmentCount)
    const incarnations = new Uint32Array(this.geometry.segmentCount)
    liveBytes.set(snapshot.liveBytes)
    incarnations.set(snapshot.incarnations)
    const checkpoint: Checkpoint = {
      generation,
      headSegment: this.log.headSegment,
      headOffset: this.log.headOffset,
      successorSegment: this.log.successor,
      lastSequence: this.log.lastSequence,
      lastChunkCrc: this.log.lastChunkCrc,
      nextIncarnation: this.segments.nextIncarnation,
      mappedBlocks: counters.mappedBlocks,
      writerRecordBytes: counters.writerRecordBytes,
      cleanerRecordBytes: counters.cleanerRecordBytes,
      liveBytes,
      incarnations,
      pageStates: pages.states,
      pageGenerations: pages.generations,
    }
    const length = encodeCheckpoint(this.geometry, checkpoint, this.slotBuffer)
    const promise = this.write(generation, staged, buffer, length, dead, checkpoint.lastSequence).finally(() => {
      this.inFlight = undefined
      this.stagingBytes = 0
    })
    this.inFlight = promise
    return promise
  }

  private async write(
    generation: number,
    staged: StagedPage[],
    buffer: Buffer | undefined,
    length: number,
    dead: number[],
    lastSequence: number,
  ): Promise<void> {
    try {
      for (let start = 0; start < staged.length; start += PAGES_PER_WRITE) {
        const requests: VolumeRequest[] = staged.slice(start, start + PAGES_PER_WRITE).map((page) => ({
          offset: mapPageOffset(this.geometry, page.page, page.copy),
          length: MAP_PAGE_BYTES,
          buffer: buffer!,
          bufferOffset: page.bufferOffset,
        }))
        this.health.check()
        await this.volume.write(requests)
      }
      await this.log.waitWritten(lastSequence)
      await this.log.syncer.sync()
      const slotLength = Math.ceil(length / this.volume.sectorSize) * this.volume.sectorSize
      this.health.check()
      await this.volume.write([{ offset: checkpointSlotOffset(this.geometry, generation), length: slotLength, buffer: this.slotBuffer, bufferOffset: 0 }])
      await this.log.syncer.sync()
    } catch (error) {
      this.health.fail(error)
      throw error
    }
    this.generation = generation
    this.checkpoints++
    this.map.commit(staged)
    this.map.shrinkToBudget()
    const releasable = this.waiting
    this.waiting = dead
    await this.discardAndRelease(releasable)
  }

  /** Discards segments that no committed checkpoint needs any more, then hands them to the allocator. */
  private async discardAndRelease(segments: readonly number[]): Promise<void> {
    for (const segment of segments) {
      try {
        await this.volume.discard(this.geometry.dataOffset + segment * this.geometry.segmentBytes, this.geometry.segmentBytes)
      } catch (error) {
        this.health.fail(error)
        throw error
      }
      this.segments.release(segment)
      this.segmentsFreed++
    }
  }
}
