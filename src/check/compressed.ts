/**
 * The compressed device's structures, read and verified without changing
 * anything (docs/format.md section 3): the header, both checkpoint slots,
 * every map page, every segment's chunks and records, and the segment
 * table's live bytes against the map.
 *
 * The device is opened as a read-only open does (the log after the newest
 * checkpoint rolled forward in memory), so a torn unflushed tail is not a
 * problem; chunks still to roll forward are counted. Then:
 *  - every map page that was ever written (or is cached: pages the roll
 *    forward changed) loads (magic, CRC, store, page index, entry range),
 *    and every entry points into a segment that holds data; a page never
 *    written has nothing on disk to check and maps nothing;
 *  - every segment holding data is walked chunk by chunk (each chained to
 *    the one before it, its data CRC, every record's CRC and fields), and
 *    every record the map points at decodes to 4096 bytes;
 *  - per segment, the map entries pointing into it are exactly records of
 *    it, and their live-bytes estimate equals the segment table's.
 * The open device is handed back so the engine's structures can be checked
 * on top of it.
 *
 * Memory: one segment buffer, the device's bounded map cache, and two
 * numbers per segment.
 *
 * Who calls it: src/check.ts.
 */

import { CubbyError } from '../errors'
import type { Volume } from '../device/types'
import { BlockMap, NOT_CACHED } from '../device/compressed/block-map'
import { decodeLz4Block } from '../device/compressed/codec'
import { CompressedBlockDevice } from '../device/compressed/device'
import {
  CHECKPOINT_MAGIC,
  CHUNK_HEADER_BYTES,
  ENTRIES_PER_PAGE,
  HEADER_BYTES,
  HEADER_REGION_BYTES,
  PageState,
  RECORD_HEADER_BYTES,
  RecordKind,
  checkpointSlotOffset,
  chunkRecordStart,
  decodeCheckpoint,
  decodeChunkHeader,
  decodeHeader,
  entryLiveBytes,
  makeEntry,
  mapPageOffset,
  readRecord,
  recordFootprint,
  volumeBytesNeeded,
  type Checkpoint,
  type Geometry,
} from '../device/compressed/format'
import { SegmentState } from '../device/compressed/segments'
import { BLOCK_SIZE } from '../device/types'
import { crc32c } from '../util/crc32c'
import { BorrowedVolume } from './borrowed'
import type { Findings, Progress } from './findings'

/** Map pages loaded per batch while scanning the map. */
const PAGES_PER_BATCH = 16

export class CompressedInspector {
  geometry: Geometry | undefined
  /** Map entries pointing into each segment, from the map scan. */
  private entriesInto = new Uint32Array(0)
  private mapComplete = true

  constructor(
    private readonly volume: Volume,
    private readonly findings: Findings,
  ) {}

  /**
   * Verifies the device's structures. Returns the device opened read-only on
   * a borrowed view of the volume, or undefined when it does not open.
   */
  async inspect(progress: Progress): Promise<CompressedBlockDevice | undefined> {
    const geometry = await this.header()
    if (geometry === undefined) return undefined
    this.geometry = geometry
    if (!(await this.checkpoints(geometry))) return undefined
    let device: CompressedBlockDevice
    try {
      device = await CompressedBlockDevice.open(new BorrowedVolume(this.volume))
    } catch (error) {
      this.findings.fromError('lz4-segment', 'the log after the newest checkpoint', error)
      return undefined
    }
    const stats = device.stats()
    this.findings.count('lz4 chunks to roll forward', stats.chunksReplayed)
    this.findings.count('lz4 cleaner bytes moved', stats.cleaningBytesMoved)
    progress.total += geometry.mapPageCount + geometry.segmentCount
    await this.map(device, progress)
    await this.segments(device, progress)
    return device
  }

  private async header(): Promise<Geometry | undefined> {
    const location = 'volume byte 0'
    if (this.volume.size < HEADER_REGION_BYTES) {
      this.findings.corrupt('lz4-header', location, `the volume holds ${this.volume.size} bytes, too few for the header`)
      return undefined
    }
    const buffer = this.volume.allocate(HEADER_REGION_BYTES)
    let geometry: Geometry
    try {
      await this.volume.read([{ offset: 0, length: HEADER_REGION_BYTES, buffer, bufferOffset: 0 }])
      geometry = decodeHeader(buffer, this.volume.path)
    } catch (error) {
      this.findings.fromError('lz4-header', location, error)
      return undefined
    }
    if (buffer.subarray(HEADER_BYTES).some((byte) => byte !== 0)) this.findings.corrupt('lz4-header', location, `holds non-zero bytes after its ${HEADER_BYTES} bytes`)
    if (this.volume.size < volumeBytesNeeded(geometry)) {
      this.findings.corrupt('lz4-header', location, `the volume holds ${this.volume.size} bytes, fewer than the ${volumeBytesNeeded(geometry)} the store spans (truncated)`)
      return undefined
    }
    return geometry
  }

  /** Both slots: the newest valid one is the starting point; the other must hold the generation before it. */
  private async checkpoints(geometry: Geometry): Promise<boolean> {
    const slotBytes = geometry.checkpointSlotBytes
    const buffer = this.volume.allocate(2 * slotBytes)
    try {
      await this.volume.read([
        { offset: geometry.checkpointOffset, length: slotBytes, buffer, bufferOffset: 0 },
        { offset: geometry.checkpointOffset + slotBytes, length: slotBytes, buffer, bufferOffset: slotBytes },
      ])
    } catch (error) {
      this.findings.fromError('lz4-checkpoint', `volume byte ${geometry.checkpointOffset}`, error)
      return false
    }
    const slots = [0, 1].map((slot) => {
      const bytes = buffer.subarray(slot * slotBytes, (slot + 1) * slotBytes)
      try {
        return { bytes, checkpoint: decodeCheckpoint(geometry, bytes), reason: undefined as string | undefined }
      } catch (error) {
        if (!(error instanceof CubbyError)) throw error
        return { bytes, checkpoint: undefined as Checkpoint | undefined, reason: error.message }
      }
    })
    const valid = slots
      .map((slot, index) => ({ ...slot, index }))
      .filter((slot): slot is typeof slot & { checkpoint: Checkpoint } => slot.checkpoint !== undefined)
    for (const slot of valid) {
      if (slot.checkpoint.generation % 2 !== slot.index) {
        this.findings.corrupt('lz4-checkpoint', slotLocation(geometry, slot.index), `holds generation ${slot.checkpoint.generation}, which belongs in slot ${slot.checkpoint.generation % 2} (a misdirected write)`)
      }
    }
    const usable = valid.filter((slot) => slot.checkpoint.generation % 2 === slot.index)
    if (usable.length === 0) {
      this.findings.corrupt('lz4-checkpoint', slotLocation(geometry, 0), 'neither checkpoint slot holds a valid checkpoint: the store does not open')
      return false
    }
    const newest = usable.reduce((best, slot) => (slot.checkpoint.generation > best.checkpoint.generation ? slot : best))
    const generation = newest.checkpoint.generation
    this.findings.count('lz4 checkpoint generation', generation)
    const other = slots[1 - newest.index]!
    const location = slotLocation(geometry, 1 - newest.index)
    if (other.checkpoint !== undefined) {
      if (other.checkpoint.generation !== generation - 1) this.findings.corrupt('lz4-checkpoint', location, `holds generation ${other.checkpoint.generation}; generation ${generation - 1} belongs there`)
    } else if (other.bytes.every((byte) => byte === 0)) {
      if (generation > 1) this.findings.corrupt('lz4-checkpoint', location, `is empty; generation ${generation - 1} belongs there`)
    } else if (other.bytes.compare(CHECKPOINT_MAGIC, 0, CHECKPOINT_MAGIC.length, 0, CHECKPOINT_MAGIC.length) === 0 && readGeneration(other.bytes) === generation + 1) {
      this.findings.corrupt(
        'lz4-checkpoint',
        location,
        `holds generation ${generation + 1}, which does not check: a crash while it was written leaves this, and so does damage to it; the store opens from generation ${generation} and rolls the log forward`,
      )
    } else {
      this.findings.corrupt('lz4-checkpoint', location, `does not check${other.reason === undefined ? '' : ` (${other.reason})`}: the store has lost its fallback checkpoint`)
    }
    return true
  }

  /**
   * Loads every map page that was written or is cached (the others were
   * never written: all their entries are 0); each entry must point into a
   * segment that holds data.
   */
  private async map(device: CompressedBlockDevice, progress: Progress): Promise<void> {
    const geometry = this.geometry!
    const { map, segments, mapper } = device
    // Segments from highWater on hold no data: an entry pointing there is reported below, never counted.
    this.entriesInto = new Uint32Array(segments.highWater)
    let mapped = 0
    let pagesRead = 0
    const inUse = map.pagesInUse()
    progress.advance(geometry.mapPageCount - inUse.length)
    for (let first = 0; first < inUse.length; first += PAGES_PER_BATCH) {
      const pages = inUse.slice(first, first + PAGES_PER_BATCH)
      const loaded = await this.loadPages(map, pages)
      for (const page of loaded) {
        if (map.pageState(page) !== PageState.NEVER_WRITTEN) pagesRead++
        const end = Math.min((page + 1) * ENTRIES_PER_PAGE, geometry.blockCount)
        for (let lba = page * ENTRIES_PER_PAGE; lba < end; lba++) {
          const entry = map.lookup(lba)
          if (entry === 0 || entry === NOT_CACHED) continue
          const segment = mapper.segmentOf(entry)
          const state = segments.stateOf(segment)
          if (segments.incarnationOf(segment) === 0 || state === SegmentState.FREE || state === SegmentState.DEAD) {
            this.findings.corrupt('lz4-map', `block ${lba} (map page ${page})`, `points into segment ${segment}, which holds no data`)
            continue
          }
          this.entriesInto[segment]!++
          mapped++
        }
        map.unpin(page)
      }
      progress.advance(pages.length)
    }
    this.findings.count('lz4 map pages', pagesRead)
    this.findings.count('lz4 mapped blocks', mapped)
    if (this.mapComplete && mapped !== mapper.mappedBlocks) {
      this.findings.corrupt('lz4-checkpoint', 'the newest checkpoint', `the checkpoint and log say ${mapper.mappedBlocks} blocks are mapped; the map holds ${mapped}`)
    }
  }

  /** Loads and pins `pages` (in one batch, else one by one to tell which fail); returns those loaded. */
  private async loadPages(map: BlockMap, pages: number[]): Promise<number[]> {
    try {
      await map.loadAndPin(pages)
      return pages
    } catch (error) {
      if (!(error instanceof CubbyError)) throw error
    }
    const loaded: number[] = []
    for (const page of pages) {
      try {
        await map.loadAndPin([page])
        loaded.push(page)
      } catch (error) {
        this.mapComplete = false
        const copy = map.pageState(page) - 1
        this.findings.fromError('lz4-map', `map page ${page} copy ${copy} (volume byte ${mapPageOffset(this.geometry!, page, copy)})`, error)
      }
    }
    return loaded
  }

  /** Walks every segment that holds data: chunks, records, and the records the map points at. */
  private async segments(device: CompressedBlockDevice, progress: Progress): Promise<void> {
    const geometry = this.geometry!
    const { segments } = device
    const buffer = this.volume.allocate(geometry.segmentBytes)
    const scratch = Buffer.alloc(BLOCK_SIZE)
    const totals = { segments: 0, chunks: 0, records: 0, live: 0 }
    // Segments from highWater on are blank: nothing to walk.
    const highWater = segments.highWater
    progress.advance(geometry.segmentCount - highWater)
    for (let segment = 0; segment < highWater; segment++) {
      progress.advance(1)
      const state = segments.stateOf(segment)
      // The successor holds nothing of the log yet (a crash may have left a torn chunk there, which the log never reached).
      const holdsData = segments.incarnationOf(segment) !== 0 && state !== SegmentState.FREE && state !== SegmentState.DEAD && state !== SegmentState.SUCCESSOR
      if (!holdsData) continue
      totals.segments++
      try {
        await this.volume.read([{ offset: geometry.dataOffset + segment * geometry.segmentBytes, length: geometry.segmentBytes, buffer, bufferOffset: 0 }])
      } catch (error) {
        this.findings.fromError('lz4-segment', `segment ${segment}`, error)
        continue
      }
      const end = segment === device.log.headSegment ? device.log.headOffset : geometry.segmentBytes
      const walked = await this.walkSegment(device, segment, buffer, end, scratch)
      totals.chunks += walked.chunks
      totals.records += walked.records
      totals.live += walked.live
      if (walked.live < this.entriesInto[segment]!) {
        this.findings.corrupt('lz4-map', `segment ${segment}`, `${this.entriesInto[segment]! - walked.live} map entries point into segment ${segment} at no record of it`)
      } else if (this.mapComplete && walked.complete && walked.liveBytes !== segments.liveBytesOf(segment)) {
        this.findings.corrupt('lz4-checkpoint', `segment ${segment}`, `the segment table says ${segments.liveBytesOf(segment)} live bytes; its live records make ${walked.liveBytes}`)
      }
    }
    for (let segment = 0; segment < highWater; segment++) {
      if (segments.liveBytesOf(segment) > 0 && (segments.incarnationOf(segment) === 0 || segments.stateOf(segment) === SegmentState.FREE)) {
        this.findings.corrupt('lz4-checkpoint', `segment ${segment}`, `the segment table says ${segments.liveBytesOf(segment)} live bytes in a segment that holds no data`)
      }
    }
    this.findings.count('lz4 segments', totals.segments)
    this.findings.count('lz4 chunks', totals.chunks)
    this.findings.count('lz4 records', totals.records)
    this.findings.count('lz4 live records', totals.live)
  }

  /** Walks the chain of chunks of `segment` from offset 0 up to `end`. */
  private async walkSegment(
    device: CompressedBlockDevice,
    segment: number,
    buffer: Buffer,
    end: number,
    scratch: Buffer,
  ): Promise<{ chunks: number; records: number; live: number; liveBytes: number; complete: boolean }> {
    const geometry = this.geometry!
    const { segments, map } = device
    const incarnation = segments.incarnationOf(segment)
    const seed = segments.seedOf(segment)
    const recordStart = chunkRecordStart(geometry.granuleBytes)
    const result = { chunks: 0, records: 0, live: 0, liveBytes: 0, complete: true }
    let previous: { sequence: number; crc: number } | undefined
    for (let at = 0; at + CHUNK_HEADER_BYTES <= end; ) {
      const location = `segment ${segment} +0x${at.toString(16)}`
      const header = decodeChunkHeader(geometry, buffer, at)
      const chained =
        header !== undefined &&
        header.segment === segment &&
        header.offset === at &&
        header.incarnation === incarnation &&
        at + header.chunkBytes <= end &&
        (previous === undefined || (header.sequence === previous.sequence + 1 && header.chain === previous.crc))
      if (!chained) {
        if (previous === undefined && this.entriesInto[segment]! > 0) {
          result.complete = false
          this.findings.corrupt('lz4-segment', location, `does not begin with a chunk of the segment's incarnation ${incarnation}`)
        }
        break
      }
      const recordsEnd = at + recordStart + header.recordBytes
      if (crc32c(buffer, at + recordStart, recordsEnd) !== header.dataCrc) {
        result.complete = false
        this.findings.corrupt('lz4-segment', location, `chunk ${header.sequence}: its records fail their checksum`)
        break
      }
      result.chunks++
      const records: Array<{ at: number; lba: number; kind: number; storedBytes: number }> = []
      for (let position = at + recordStart; position < recordsEnd; ) {
        const record = readRecord(buffer, position, recordsEnd, seed)
        if (record === undefined) {
          result.complete = false
          this.findings.corrupt('lz4-segment', `segment ${segment} +0x${position.toString(16)}`, `a record of chunk ${header.sequence} does not check though the chunk's checksum holds`)
          break
        }
        const count = record.kind === RecordKind.TRIM ? record.word : 1
        if (record.lba + count > geometry.blockCount) {
          this.findings.corrupt('lz4-segment', `segment ${segment} +0x${position.toString(16)}`, `a record names blocks [${record.lba}, ${record.lba + count}) beyond the device's ${geometry.blockCount}`)
        } else if (record.kind !== RecordKind.TRIM) {
          records.push({ at: position, ...record })
        }
        result.records++
        position += recordFootprint(record.storedBytes, geometry.granuleBytes)
      }
      const pages = [...new Set(records.map((record) => BlockMap.pageOf(record.lba)))]
      const loaded = new Set(await this.loadPages(map, pages))
      for (const record of records) {
        if (!loaded.has(BlockMap.pageOf(record.lba))) continue
        const address = segment * geometry.segmentBytes + record.at
        const entry = makeEntry(address, RECORD_HEADER_BYTES + record.storedBytes, geometry.granuleBytes)
        if (map.lookup(record.lba) !== entry) continue
        result.live++
        result.liveBytes += entryLiveBytes(entry)
        const payload = record.at + RECORD_HEADER_BYTES
        if (record.kind === RecordKind.LZ4 && decodeLz4Block(buffer, payload, payload + record.storedBytes, scratch, 0, BLOCK_SIZE) !== BLOCK_SIZE) {
          this.findings.corrupt('lz4-segment', `segment ${segment} +0x${record.at.toString(16)}`, `the record of block ${record.lba} does not decode to ${BLOCK_SIZE} bytes`)
        }
      }
      for (const page of loaded) map.unpin(page)
      previous = { sequence: header.sequence, crc: header.headerCrc }
      at += header.chunkBytes
    }
    return result
  }
}

function slotLocation(geometry: Geometry, slot: number): string {
  return `checkpoint slot ${slot} (volume byte ${checkpointSlotOffset(geometry, slot)})`
}

/** The generation field of a checkpoint slot's bytes, whether or not the rest checks. */
function readGeneration(bytes: Buffer): number {
  return bytes.readUInt32LE(24) + bytes.readUInt32LE(28) * 0x1_0000_0000
}
