/**
 * Opening a compressed store: choose the checkpoint, then roll the log
 * forward from it (docs/format.md 3.7).
 *
 * The walk follows the chunk chain from the checkpoint's head position. A
 * chunk is accepted when its header is this store's, its sequence is the
 * next, its chain value is the previous chunk's header CRC, it lies where
 * it says, and its data CRC holds. The next chunk is at the end of the
 * previous one or at offset 0 of its successor segment. The walk ends at the
 * first chunk that is not accepted: that is the torn or unflushed tail,
 * unless a later chunk header of this store proves that the missing chunk
 * was flushed (its "flushed through" reaches it): then durable data is
 * damaged and opening fails with CUBBY_CORRUPT instead of silently
 * dropping it.
 *
 * The newest valid checkpoint is used. If the newest one is damaged, the
 * older one is a complete fallback: segments emptied at a checkpoint's cut
 * are reused only after the next checkpoint commits, so everything the
 * older checkpoint and its log need is still on the volume.
 *
 * Memory: both checkpoint slots and the chosen checkpoint's decoded tables
 * (8 bytes per segment and 5 per map page of the data area) while opening;
 * the segment table made from them keeps only the chunks up to the highest
 * segment in use (segments.ts), and the block map only the chunks of the
 * pages ever written (block-map.ts). Two segment-sized buffers while replaying,
 * freed afterwards; map pages dirtied by replay stay cached until the
 * checkpoint the device writes right after opening (they may exceed the
 * cache budget meanwhile: bounded by what the previous session dirtied
 * since its last checkpoint).
 *
 * Who calls this: CompressedBlockDevice.open.
 */

import { corrupt } from '../../errors'
import { crc32c } from '../../util/crc32c'
import type { Volume } from '../types'
import { BlockMap } from './block-map'
import {
  CHUNK_ALIGNMENT_BYTES,
  CHUNK_HEADER_BYTES,
  RecordKind,
  chunkRecordStart,
  decodeChunkHeader,
  decodeCheckpoint,
  makeEntry,
  readRecord,
  recordFootprint,
  RECORD_HEADER_BYTES,
  ENTRIES_PER_PAGE,
  type Checkpoint,
  type ChunkHeader,
  type Geometry,
} from './format'
import type { LogPosition } from './log'
import { Mapper } from './mapper'
import { SegmentState, SegmentTable } from './segments'

export interface Recovered {
  checkpoint: Checkpoint
  segments: SegmentTable
  map: BlockMap
  mapper: Mapper
  position: LogPosition
  chunksReplayed: number
  recordsReplayed: number
  /**
   * Segments with nothing live that may still hold bytes: emptied at the
   * checkpoint's cut (the older checkpoint may need them) or written after
   * it and abandoned. Marked DEAD: freed at the next commit.
   */
  staleSegments: number[]
  writerRecordBytes: number
  cleanerRecordBytes: number
}

/** Reads both checkpoint slots and returns the newest valid one; CUBBY_CORRUPT if neither is. */
export async function readCheckpoint(geometry: Geometry, volume: Volume): Promise<Checkpoint> {
  const slotBytes = geometry.checkpointSlotBytes
  const buffer = volume.allocate(2 * slotBytes)
  await volume.read([
    { offset: geometry.checkpointOffset, length: slotBytes, buffer, bufferOffset: 0 },
    { offset: geometry.checkpointOffset + slotBytes, length: slotBytes, buffer, bufferOffset: slotBytes },
  ])
  let best: Checkpoint | undefined
  for (const slot of [0, 1]) {
    const checkpoint = decodeCheckpoint(geometry, buffer.subarray(slot * slotBytes, (slot + 1) * slotBytes))
    if (checkpoint === undefined || checkpoint.generation % 2 !== slot) continue
    if (best === undefined || checkpoint.generation > best.generation) best = checkpoint
  }
  if (best === undefined) throw corrupt(`${volume.path}: neither checkpoint slot of the compressed store holds a valid checkpoint`, { path: volume.path })
  return best
}

export async function recover(geometry: Geometry, volume: Volume, budgetPages: number): Promise<Recovered> {
  const checkpoint = await readCheckpoint(geometry, volume)
  const segments = new SegmentTable(geometry.segmentCount, geometry.segmentBytes, checkpoint.nextIncarnation, checkpoint)
  segments.classify(checkpoint.headSegment, checkpoint.successorSegment)
  const map = new BlockMap(geometry, volume, checkpoint, budgetPages)
  const mapper = new Mapper(geometry, map, segments, checkpoint.mappedBlocks)
  const replay = new Replay(geometry, volume, checkpoint, segments, map, mapper)
  await replay.run()
  const staleSegments: number[] = []
  for (let segment = 0; segment < segments.highWater; segment++) {
    if (segments.stateOf(segment) === SegmentState.FREE && segments.incarnationOf(segment) !== 0) staleSegments.push(segment)
  }
  for (const segment of staleSegments) segments.setState(segment, SegmentState.DEAD)
  return {
    checkpoint,
    segments,
    map,
    mapper,
    position: replay.position,
    chunksReplayed: replay.chunks,
    recordsReplayed: replay.records,
    staleSegments,
    writerRecordBytes: checkpoint.writerRecordBytes,
    cleanerRecordBytes: checkpoint.cleanerRecordBytes,
  }
}

type AcceptedChunk = ChunkHeader & { headerCrc: number }

class Replay {
  position: LogPosition
  chunks = 0
  records = 0
  private headIncarnation: number
  private current: Buffer
  private other: Buffer
  private otherSegment = -1
  private readonly recordStart: number

  constructor(
    private readonly geometry: Geometry,
    private readonly volume: Volume,
    private readonly checkpoint: Checkpoint,
    private readonly segments: SegmentTable,
    private readonly map: BlockMap,
    private readonly mapper: Mapper,
  ) {
    this.position = {
      headSegment: checkpoint.headSegment,
      headOffset: checkpoint.headOffset,
      successor: checkpoint.successorSegment,
      lastSequence: checkpoint.lastSequence,
      lastChunkCrc: checkpoint.lastChunkCrc,
    }
    this.headIncarnation = checkpoint.incarnations[checkpoint.headSegment]!
    this.current = volume.allocate(geometry.segmentBytes)
    this.other = volume.allocate(geometry.segmentBytes)
    this.recordStart = chunkRecordStart(geometry.granuleBytes)
  }

  async run(): Promise<void> {
    if (this.headIncarnation === 0) throw corrupt(`${this.volume.path}: the checkpoint's head segment ${this.position.headSegment} has no incarnation`)
    await this.readSegment(this.position.headSegment, this.current)
    for (;;) {
      const position = this.position
      let chunk = this.accept(this.current, position.headOffset, position.headSegment, this.headIncarnation)
      if (chunk === undefined) {
        await this.loadOther(position.successor)
        chunk = this.accept(this.other, 0, position.successor, undefined)
        if (chunk === undefined) break
        this.enterSuccessor(chunk)
      }
      await this.apply(chunk, this.current)
      this.position = {
        headSegment: chunk.segment,
        headOffset: chunk.offset + chunk.chunkBytes,
        successor: chunk.successor,
        lastSequence: chunk.sequence,
        lastChunkCrc: chunk.headerCrc,
      }
      this.chunks++
    }
    await this.checkTail()
    this.finishSuccessor()
  }

  /** The walk moved into the successor segment: the old head is sealed, the successor is the head. */
  private enterSuccessor(chunk: AcceptedChunk): void {
    const previous = this.position.headSegment
    this.segments.setState(previous, SegmentState.USED)
    if (this.segments.stateOf(chunk.segment) === SegmentState.USED && this.segments.liveBytesOf(chunk.segment) > 0) {
      throw corrupt(`${this.volume.path}: the log continues into segment ${chunk.segment}, which the checkpoint says holds live data`)
    }
    this.segments.setState(chunk.segment, SegmentState.HEAD)
    this.segments.setIncarnation(chunk.segment, chunk.incarnation)
    this.headIncarnation = chunk.incarnation
    ;[this.current, this.other] = [this.other, this.current]
    this.otherSegment = -1
  }

  /** The successor named by the last chunk is reserved with a fresh incarnation; nothing of it is in the log. */
  private finishSuccessor(): void {
    const { successor, headSegment } = this.position
    if (this.segments.stateOf(successor) !== SegmentState.SUCCESSOR) {
      if (this.segments.stateOf(successor) !== SegmentState.FREE) {
        throw corrupt(`${this.volume.path}: the log's next segment ${successor} is in use (segment ${headSegment} is the head)`)
      }
      const old = this.checkpoint.successorSegment
      if (old !== successor && old !== headSegment && this.segments.stateOf(old) === SegmentState.SUCCESSOR) {
        this.segments.setState(old, this.segments.liveBytesOf(old) === 0 ? SegmentState.FREE : SegmentState.USED)
      }
      this.segments.setState(successor, SegmentState.SUCCESSOR)
    }
    let next = Math.max(this.segments.nextIncarnation, this.segments.highestIncarnation() + 1)
    if (next > 0xffff_ffff) next = 1
    this.segments.setIncarnation(successor, next)
    this.segments.nextIncarnation = next >= 0xffff_ffff ? 1 : next + 1
  }

  private async readSegment(segment: number, buffer: Buffer): Promise<void> {
    await this.volume.read([{ offset: this.geometry.dataOffset + segment * this.geometry.segmentBytes, length: this.geometry.segmentBytes, buffer, bufferOffset: 0 }])
  }

  private async loadOther(segment: number): Promise<void> {
    if (this.otherSegment === segment) return
    await this.readSegment(segment, this.other)
    this.otherSegment = segment
  }

  /** The chunk at source[at] if it is the next one of the log; undefined otherwise. */
  private accept(source: Buffer, at: number, segment: number, incarnation: number | undefined): AcceptedChunk | undefined {
    if (at % CHUNK_ALIGNMENT_BYTES !== 0 || at + CHUNK_HEADER_BYTES > this.geometry.segmentBytes) return undefined
    const header = decodeChunkHeader(this.geometry, source, at)
    if (header === undefined) return undefined
    const { lastSequence, lastChunkCrc } = this.position
    if (header.sequence !== lastSequence + 1 || header.chain !== lastChunkCrc) return undefined
    if (header.segment !== segment || header.offset !== at || header.incarnation === 0) return undefined
    if (incarnation !== undefined && header.incarnation !== incarnation) return undefined
    if (header.successor === segment) return undefined
    if (crc32c(source, at + this.recordStart, at + this.recordStart + header.recordBytes) !== header.dataCrc) return undefined
    return header
  }

  /** Applies every record of an accepted chunk to the map. */
  private async apply(chunk: AcceptedChunk, source: Buffer): Promise<void> {
    const seed = this.segments.seedOf(chunk.segment)
    const start = chunk.offset + this.recordStart
    const end = start + chunk.recordBytes
    const where = (at: number) => `${this.volume.path}: log chunk ${chunk.sequence} (segment ${chunk.segment}), record at byte ${at}`
    const records: Array<{ at: number; lba: number; kind: number; storedBytes: number; word: number }> = []
    const pages: number[] = []
    for (let at = start; at < end; ) {
      const record = readRecord(source, at, end, seed)
      if (record === undefined) throw corrupt(`${where(at)}: the chunk's checksum holds but the record does not`)
      const count = record.kind === RecordKind.TRIM ? record.word : 1
      if (record.lba + count > this.geometry.blockCount) throw corrupt(`${where(at)}: block ${record.lba} + ${count} is beyond the device`)
      records.push({ at, ...record })
      for (let page = BlockMap.pageOf(record.lba); page <= BlockMap.pageOf(record.lba + count - 1); page++) pages.push(page)
      at += recordFootprint(record.storedBytes, this.geometry.granuleBytes)
      if (at > end) throw corrupt(`${where(at)}: a record runs past the chunk's records`)
    }
    for (let first = 0; first < pages.length; first += ENTRIES_PER_PAGE) {
      const group = pages.slice(first, first + ENTRIES_PER_PAGE)
      await this.map.loadAndPin(group)
      this.map.unpinAll(group)
    }
    for (const record of records) {
      if (record.kind === RecordKind.TRIM) {
        for (let lba = record.lba; lba < record.lba + record.word; lba++) {
          if (!this.map.isCached(BlockMap.pageOf(lba))) await this.reload(lba)
          this.mapper.assign(lba, 0)
        }
      } else {
        const address = chunk.segment * this.geometry.segmentBytes + record.at
        if (!this.map.isCached(BlockMap.pageOf(record.lba))) await this.reload(record.lba)
        this.mapper.assign(record.lba, makeEntry(address, RECORD_HEADER_BYTES + record.storedBytes, this.geometry.granuleBytes))
      }
      this.records++
    }
  }

  private async reload(lba: number): Promise<void> {
    const page = BlockMap.pageOf(lba)
    await this.map.loadAndPin([page])
    this.map.unpin(page)
  }

  /**
   * The chain ended. Scan the rest of the head segment and the successor for
   * chunk headers of this store that prove the missing chunk was durable.
   */
  private async checkTail(): Promise<void> {
    const wanted = this.position.lastSequence + 1
    const check = (source: Buffer, from: number, segment: number) => {
      for (let at = from; at + CHUNK_HEADER_BYTES <= this.geometry.segmentBytes; at += CHUNK_ALIGNMENT_BYTES) {
        const header = decodeChunkHeader(this.geometry, source, at)
        if (header === undefined || header.sequence < wanted) continue
        if (header.flushedThrough >= wanted) {
          throw corrupt(
            `${this.volume.path}: log chunk ${wanted} is missing or damaged, but chunk ${header.sequence} (segment ${segment}, byte ${at}) ` +
              `says chunks through ${header.flushedThrough} were flushed`,
          )
        }
      }
    }
    const { headSegment, headOffset, successor } = this.position
    check(this.current, Math.ceil(headOffset / CHUNK_ALIGNMENT_BYTES) * CHUNK_ALIGNMENT_BYTES, headSegment)
    await this.loadOther(successor)
    check(this.other, 0, successor)
  }
}
