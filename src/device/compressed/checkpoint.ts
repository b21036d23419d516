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
 *    `generation mod 2` (through CheckpointSlotWriter's bounded buffers,
 *    its first sector last), sync. Then commit: the new copies become current,
 *    and the segments found empty at the *previous* cut are discarded and
 *    become free. (Those found empty at this cut may still be needed by the
 *    previous checkpoint, the fallback should this one be damaged; they wait
 *    for the next commit.)
 *
 * Invariants: at most one checkpoint in flight; nothing a committed
 * checkpoint needs is overwritten before the next one commits; a failure
 * marks the device failed (Health) and leaves the committed state alone.
 *
 * Memory: the slot writer's buffers (at most 64 KiB + one sector, never
 * more than a slot) for the device's lifetime; while a checkpoint is in
 * flight, its serialised map pages and a copy of the segment table up to
 * its high-water mark (8 bytes a segment). The page tables are read from
 * the map as they are encoded: the map's page states change only at
 * commit, after the slot is written.
 *
 * Who calls this: CompressedBlockDevice (thresholds, close), the cleaner
 * (to free cleaned segments), create (generation 1).
 */

import assert from 'node:assert'
import { crc32c } from '../../util/crc32c'
import type { Volume, VolumeRequest } from '../types'
import type { BlockMap, StagedPage } from './block-map'
import {
  CHECKPOINT_FIXED_BYTES,
  checkCheckpointFields,
  checkpointBytes,
  checkpointSlotOffset,
  encodeCheckpointPiece,
  mapPageOffset,
  MAP_PAGE_BYTES,
  PageState,
  type CheckpointFields,
  type CheckpointTables,
  type Geometry,
} from './format'
import type { Health, LogWriter } from './log'
import type { SegmentSnapshot, SegmentTable } from './segments'

/** Counters a checkpoint records besides the map and the segment table. */
export interface CheckpointCounters {
  mappedBlocks: number
  writerRecordBytes: number
  cleanerRecordBytes: number
}

/** Map pages per volume write batch when a checkpoint writes them. */
const PAGES_PER_WRITE = 64

/** Bytes of a checkpoint slot encoded and written at a time after its first sector: the bound on the slot writer's buffer. */
export const CHECKPOINT_WRITE_BYTES = 64 * 1024

/**
 * A checkpoint's tables: the segments' from a snapshot (zeros from its
 * count on, as every segment there is blank), the pages' from `pages`.
 */
export function checkpointTablesFrom(segments: SegmentSnapshot, pages: Pick<CheckpointTables, 'pageState' | 'pageGeneration'>): CheckpointTables {
  return {
    liveBytes: (segment) => (segment < segments.count ? segments.liveBytes[segment]! : 0),
    incarnation: (segment) => (segment < segments.count ? segments.incarnations[segment]! : 0),
    pageState: pages.pageState,
    pageGeneration: pages.pageGeneration,
  }
}

/**
 * Writes a checkpoint to its slot (docs/format.md 3.3) through two bounded
 * buffers instead of one of the slot's size: the first sector (the fixed
 * fields and the CRC) is encoded first and written last; the rest is
 * encoded and written CHECKPOINT_WRITE_BYTES at a time, the CRC running
 * over it, and then patched into the first sector. The caller syncs
 * afterwards. A crash before the sync leaves a slot whose CRC fails (or,
 * should no byte have changed, the older checkpoint it held); opening then
 * uses the other slot.
 */
export class CheckpointSlotWriter {
  private readonly first: Buffer
  /** Empty when the slot is a single sector. */
  private readonly window: Buffer

  constructor(
    private readonly geometry: Geometry,
    private readonly volume: Volume,
  ) {
    const sector = volume.sectorSize
    assert(geometry.checkpointSlotBytes % sector === 0, 'a checkpoint slot is whole sectors')
    const firstBytes = Math.min(Math.ceil(CHECKPOINT_FIXED_BYTES / sector) * sector, geometry.checkpointSlotBytes)
    this.first = volume.allocate(firstBytes)
    const windowBytes = Math.min(CHECKPOINT_WRITE_BYTES, geometry.checkpointSlotBytes - firstBytes)
    this.window = windowBytes === 0 ? Buffer.alloc(0) : volume.allocate(windowBytes)
  }

  memoryBytes(): number {
    return this.first.length + this.window.length
  }

  /** Writes the checkpoint to slot `fields.generation mod 2`; `check` runs before each volume write. Returns its bytes. */
  async write(fields: CheckpointFields, tables: CheckpointTables, check: () => void = () => undefined): Promise<number> {
    const { geometry, volume, first, window } = this
    const total = checkpointBytes(geometry)
    const slotLength = Math.ceil(total / volume.sectorSize) * volume.sectorSize
    assert(slotLength <= geometry.checkpointSlotBytes)
    const slot = checkpointSlotOffset(geometry, fields.generation)
    const firstLength = Math.min(first.length, slotLength)
    encodeCheckpointPiece(geometry, fields, tables, 0, firstLength, first, 0)
    let crc = crc32c(first, 0, Math.min(firstLength, total))
    for (let from = firstLength; from < slotLength; from += window.length) {
      const length = Math.min(window.length, slotLength - from)
      encodeCheckpointPiece(geometry, fields, tables, from, length, window, 0)
      if (from < total) crc = crc32c(window, 0, Math.min(length, total - from), crc)
      check()
      await volume.write([{ offset: slot + from, length, buffer: window, bufferOffset: 0 }])
    }
    first.writeUInt32LE(crc, 12)
    check()
    await volume.write([{ offset: slot, length: firstLength, buffer: first, bufferOffset: 0 }])
    return total
  }

  /** Overwrites slot `generation mod 2` with zeros (at create: no checkpoint of an earlier store there can pass for ours). */
  async wipe(generation: number): Promise<void> {
    const slot = checkpointSlotOffset(this.geometry, generation)
    const buffer = this.window.length > 0 ? this.window : this.first
    buffer.fill(0)
    for (let from = 0; from < this.geometry.checkpointSlotBytes; from += buffer.length) {
      const length = Math.min(buffer.length, this.geometry.checkpointSlotBytes - from)
      await this.volume.write([{ offset: slot + from, length, buffer, bufferOffset: 0 }])
    }
  }
}

export class Checkpointer {
  /** Generation of the newest committed checkpoint. */
  generation: number
  checkpoints = 0
  segmentsFreed = 0
  private inFlight: Promise<void> | undefined
  /** Segments marked DEAD at the last committed cut: released at the next commit. */
  waiting: number[] = []
  private readonly slotWriter: CheckpointSlotWriter
  private stagingBytes = 0
  private snapshotBytes = 0

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
    this.slotWriter = new CheckpointSlotWriter(geometry, volume)
  }

  get running(): Promise<void> | undefined {
    return this.inFlight
  }

  memoryBytes(): number {
    return this.slotWriter.memoryBytes() + this.stagingBytes + this.snapshotBytes
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
    const fields: CheckpointFields = {
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
    }
    checkCheckpointFields(this.geometry, fields)
    const snapshot = this.segments.snapshot()
    this.snapshotBytes = snapshot.liveBytes.byteLength + snapshot.incarnations.byteLength
    const tables = checkpointTablesFrom(snapshot, this.pagesAfter(staged))
    const promise = this.write(staged, buffer, fields, tables, dead).finally(() => {
      this.inFlight = undefined
      this.stagingBytes = 0
      this.snapshotBytes = 0
    })
    this.inFlight = promise
    return promise
  }

  /**
   * The page tables the checkpoint records: the map's committed ones with
   * the pages staged at this cut moved to their new copies. Read while the
   * slot is written, which is before commit(), the only change to the map's
   * page states.
   */
  private pagesAfter(staged: readonly StagedPage[]): Pick<CheckpointTables, 'pageState' | 'pageGeneration'> {
    const byPage = new Map(staged.map((page) => [page.page, page]))
    const map = this.map
    return {
      pageState: (page) => {
        const moved = byPage.get(page)
        if (moved === undefined) return map.pageState(page)
        return moved.copy === 0 ? PageState.COPY_0 : PageState.COPY_1
      },
      pageGeneration: (page) => byPage.get(page)?.generation ?? map.pageGeneration(page),
    }
  }

  private async write(staged: StagedPage[], buffer: Buffer | undefined, fields: CheckpointFields, tables: CheckpointTables, dead: number[]): Promise<void> {
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
      await this.log.waitWritten(fields.lastSequence)
      await this.log.syncer.sync()
      await this.slotWriter.write(fields, tables, () => this.health.check())
      await this.log.syncer.sync()
    } catch (error) {
      this.health.fail(error)
      throw error
    }
    this.generation = fields.generation
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
