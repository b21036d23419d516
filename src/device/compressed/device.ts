/**
 * CompressedBlockDevice: a BlockDevice (mode 'lz4') that stores each 4 KiB
 * logical block LZ4-compressed in just the bytes it needs, over any Volume.
 * The format is docs/format.md section 3; the parts are:
 *
 *   BlockMap      LBA -> 32-bit entry, paged, bounded cache   (block-map.ts)
 *   SegmentTable  segment states, live bytes, allocation      (segments.ts)
 *   LogWriter     records -> chunks -> sequential writes      (log.ts)
 *   Checkpointer  map pages + segment table, two slots        (checkpoint.ts)
 *   Cleaner       copies live records out of dead segments    (cleaner.ts)
 *   recover()     checkpoint + log roll-forward at open       (recovery.ts)
 *
 * Costs: a read of a block whose map page is cached is one volume read of
 * the sector-aligned range holding its record, or none for an unmapped
 * block or one still in the write buffer; a batch of reads is one volume
 * batch. A write compresses the block (lz4-napi) and copies it into the
 * write buffer; the volume sees only whole chunks. flush() is one write of
 * the unwritten part of the buffer (padded to 4 KiB) and one sync, or
 * nothing at all when nothing changed since the last one.
 *
 * Concurrency: reads run freely. Everything that places records (writes,
 * trims, the cleaner's copies) or cuts a checkpoint holds the append lock,
 * so each such step sees and changes the map atomically. Two concurrent
 * writes of one block land in an unspecified order, as on a disk.
 *
 * Failures: a failed volume write, sync or discard makes the device refuse
 * writes (CUBBY_IO) until reopened; reads keep working. A record that fails
 * its checks is CUBBY_CORRUPT, never data.
 *
 * Who calls this: createDevice / openDevice (src/device/open.ts).
 */

import assert from 'node:assert'
import { randomBytes } from 'node:crypto'
import { CubbyError, ErrorCode, closedError, corrupt, invalidArgument } from '../../errors'
import { reportWhenSettled } from '../report-each'
import { BLOCK_SIZE, type BlockDevice, type BlockRequest, type DeviceStats, type ReportEach, type Volume, type VolumeRequest } from '../types'
import { checkBlockRange, checkBlockRequests } from '../validate'
import { BlockMap, NOT_CACHED } from './block-map'
import { CheckpointSlotWriter, Checkpointer, checkpointTablesFrom } from './checkpoint'
import { Cleaner, type CleanerHost } from './cleaner'
import { compressBlock, decodeLz4Block, isZeroBlock, type CompressedBlock } from './codec'
import {
  CHUNK_ALIGNMENT_BYTES,
  ENTRIES_PER_PAGE,
  HEADER_REGION_BYTES,
  MAP_PAGE_BYTES,
  MAX_BLOCK_COUNT,
  PageState,
  RECORD_HEADER_BYTES,
  RECORD_MAX_BYTES,
  RecordKind,
  SEGMENT_MAX_BYTES,
  SEGMENT_MIN_BYTES,
  SPAN_UNIT_BYTES,
  decodeHeader,
  encodeHeader,
  entryAddress,
  entrySpan,
  hex,
  makeEntry,
  planGeometry,
  readRecord,
  recordFootprint,
  sealRecord,
  volumeBytesNeeded,
  type Geometry,
} from './format'
import { Health, LogWriter } from './log'
import type { Mapper } from './mapper'
import { ReadSpans } from './read-spans'
import { recover, type Recovered } from './recovery'
import { SegmentTable } from './segments'

/** Options of an opened device; none is recorded in the store. */
export interface CompressedDeviceOptions {
  /** Memory for cached map pages, bytes (default 16 MiB: the whole map of 4M blocks; a store passes max(cacheSize, 1 MiB), and its bucket cache yields to the map). */
  mapCacheBytes?: number
  /** Size of one write buffer (a chunk), bytes; a multiple of 4096, at most a segment (default 256 KiB; three exist). */
  writeBufferBytes?: number
  /** Checkpoint after this many bytes of log (default 64 MiB): bounds the replay at open. */
  checkpointLogBytes?: number
  /** Run the segment cleaner (default true). */
  cleaning?: boolean
  /** Segments kept free for the cleaner (default 8). */
  reserveSegments?: number
  /** Clean while idle, this long after the last write (default 250 ms; 0: never, cleaning only under the busy thresholds). */
  idleCleaningMs?: number
}

/** Options of a new store; those below `blocks` are recorded in it. */
export interface CompressedCreateOptions extends CompressedDeviceOptions {
  /** Logical capacity in 4 KiB blocks. */
  blocks: number
  /** Segment size, a power of two from 64 KiB to 64 MiB (default 1 MiB). */
  segmentBytes?: number
  /** Size of the data area (default: room for every block stored incompressibly, plus 35% for cleaning). */
  dataBytes?: number
}

export interface CompressedDeviceStats extends DeviceStats {
  mode: 'lz4'
  /** Estimated compressed bytes of the blocks in use (records, with headers). */
  liveBytes: number
  /** logicalBytes / liveBytes. */
  compressionRatio: number
  /** Record bytes written for the device's user since the store was created (as of its last checkpoint, plus this session). */
  writerRecordBytes: number
  /** Record bytes the cleaner copied since the store was created (likewise). */
  cleaningBytesMoved: number
  /** (writer + cleaner record bytes) / writer record bytes. */
  cleaningWriteAmplification: number
  /** Bytes the volume itself reports allocated (image file blocks). */
  volumeAllocatedBytes: number
  segments: { total: number; free: number; sealed: number; bytes: number }
  checkpoints: number
  mapPageLoads: number
  mapCachedPages: number
  mapDirtyPages: number
  chunksWritten: number
  paddingBytes: number
  chunksReplayed: number
}

const DEFAULTS = {
  mapCacheBytes: 16 * 1024 * 1024,
  writeBufferBytes: 256 * 1024,
  checkpointLogBytes: 64 * 1024 * 1024,
  reserveSegments: 8,
  segmentBytes: 1024 * 1024,
  idleCleaningMs: 250,
} as const

/** Blocks per write step: compressed together, then placed under one hold of the append lock. */
const WRITE_STEP_BLOCKS = 256
/** Reads of one block retried when its record moved under the read. */
const READ_ATTEMPTS = 3
/** Read buffers kept between batches. */
const READ_BUFFER_BYTES = 256 * 1024
const READ_BUFFERS_KEPT = 4
/** Cleaning thresholds: start above 1.2x live bytes + reserve; writers wait above 1.28x, which keeps use within the promised 1.3x. */
const CLEAN_START_RATIO = 1.2
const CLEAN_HARD_RATIO = 1.28
const CLEAN_BOUND_RATIO = 1.3
/**
 * Idle cleaning (cleaner.ts): once writes stop, clean down to about live bytes (the estimate runs a few
 * percent above the records' real size), copying only segments under 90% live, 16 at a time.
 */
const IDLE_RATIO = 1.0
const IDLE_MAX_UTILIZATION = 0.9
const IDLE_VICTIMS = 16
/** Cleaning rounds one write step waits for at most before it goes on (or fails with CUBBY_FULL). */
const ADMIT_CLEANING_ROUNDS = 4

interface ReadSlot {
  index: number
  entry: number
  seed: number
  buffer: Buffer
  at: number
  end: number
}

/** A readEach() batch: blocks not yet reported keep the device open. */
interface EachRead {
  requests: readonly BlockRequest[]
  onBlock: ReportEach
  unreported: number
}

/** One block of a readEach() batch being read: its record lands in span slot `span`, at [at, end) of its arena. */
interface EachSlot {
  index: number
  entry: number
  seed: number
  span: number
  at: number
  end: number
}

export class CompressedBlockDevice implements BlockDevice, CleanerHost {
  readonly mode = 'lz4' as const
  readonly blockCount: number
  readonly health: Health
  readonly map: BlockMap
  readonly mapper: Mapper
  readonly segments: SegmentTable
  readonly log: LogWriter
  readonly cleaner: Cleaner
  private readonly checkpointer: Checkpointer
  private readonly options: Required<CompressedDeviceOptions>
  private readonly dirtyLimit: number
  private closingFlag = false
  private closePromise: Promise<void> | undefined
  private operations = 0
  private operationsDrained: (() => void) | undefined
  private lockTail: Promise<void> = Promise.resolve()
  private bytesSinceCut = 0
  private writerRecordBytes: number
  private background: Promise<void> | undefined
  private readonly readBuffers: Buffer[] = []
  private readonly readSpans: ReadSpans
  private readBuffersMade = 0
  private readonly chunksReplayed: number
  private readonly counters = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, flushes: 0, trims: 0 }

  private constructor(
    readonly volume: Volume,
    readonly geometry: Geometry,
    options: Required<CompressedDeviceOptions>,
    recovered: Recovered,
  ) {
    this.blockCount = geometry.blockCount
    this.options = options
    this.health = new Health(volume.path)
    this.map = recovered.map
    this.mapper = recovered.mapper
    this.segments = recovered.segments
    this.chunksReplayed = recovered.chunksReplayed
    this.writerRecordBytes = recovered.writerRecordBytes
    this.dirtyLimit = Math.max(8, Math.min(512, Math.floor(this.map.budgetPages / 8)))
    this.readSpans = new ReadSpans(volume)
    const epoch = randomBytes(6).readUIntLE(0, 6)
    this.log = new LogWriter(geometry, volume, this.segments, this.health, recovered.position, epoch, () => this.checkpointer.generation, options.writeBufferBytes, 3)
    this.checkpointer = new Checkpointer(
      geometry,
      volume,
      this.health,
      this.map,
      this.segments,
      this.log,
      () => ({ mappedBlocks: this.mapper.mappedBlocks, writerRecordBytes: this.writerRecordBytes, cleanerRecordBytes: this.cleaner.bytesMoved }),
      recovered.checkpoint.generation,
    )
    this.cleaner = new Cleaner(this, {
      startRatio: CLEAN_START_RATIO,
      reserveSegments: options.reserveSegments,
      minimumVictims: 4,
      maximumVictims: 32,
      boundRatio: CLEAN_BOUND_RATIO,
      maxVictimUtilization: 0.9,
      idleDelayMs: options.cleaning && !volume.readOnly ? options.idleCleaningMs : 0,
      idleRatio: IDLE_RATIO,
      idleMaxUtilization: IDLE_MAX_UTILIZATION,
      idleVictims: IDLE_VICTIMS,
    })
    this.cleaner.bytesMoved = recovered.cleanerRecordBytes
    // Garbage left by an earlier session is cleaned in the first quiet period too.
    this.cleaner.noteActivity()
  }

  /**
   * Lays a new, empty compressed store on `volume` (destroying what it held)
   * and opens it. The device owns the volume from this call on: if creating
   * fails, the volume is closed.
   */
  static async create(volume: Volume, options: CompressedCreateOptions): Promise<CompressedBlockDevice> {
    try {
      await CompressedBlockDevice.format(volume, options)
      return await CompressedBlockDevice.openVolume(volume, resolveOptions(options))
    } catch (error) {
      await volume.close().catch(() => undefined)
      throw error
    }
  }

  /**
   * Opens the compressed store on `volume`, rolling its log forward. The
   * device owns the volume from this call on: if opening fails, the volume
   * is closed.
   */
  static async open(volume: Volume, options: CompressedDeviceOptions = {}): Promise<CompressedBlockDevice> {
    try {
      return await CompressedBlockDevice.openVolume(volume, resolveOptions(options))
    } catch (error) {
      await volume.close().catch(() => undefined)
      throw error
    }
  }

  /** Writes the header and the first checkpoint of a new store. */
  private static async format(volume: Volume, options: CompressedCreateOptions): Promise<void> {
    const settings = resolveOptions(options)
    const blocks = options.blocks
    if (!Number.isSafeInteger(blocks) || blocks < 1 || blocks > MAX_BLOCK_COUNT) {
      throw invalidArgument(`a compressed device holds 1 to ${MAX_BLOCK_COUNT} blocks, not ${blocks}`)
    }
    const segmentBytes = options.segmentBytes ?? DEFAULTS.segmentBytes
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < SEGMENT_MIN_BYTES || segmentBytes > SEGMENT_MAX_BYTES || (segmentBytes & (segmentBytes - 1)) !== 0) {
      throw invalidArgument(`segmentBytes must be a power of two from ${SEGMENT_MIN_BYTES} to ${SEGMENT_MAX_BYTES}, not ${segmentBytes}`)
    }
    if (volume.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, `${volume.path} is open read-only`, { path: volume.path })
    const minimumSegments = settings.reserveSegments + 4
    const dataBytes = options.dataBytes ?? Math.ceil(blocks * (RECORD_MAX_BYTES + 16) * 1.35) + minimumSegments * segmentBytes
    if (!Number.isSafeInteger(dataBytes) || dataBytes <= 0) throw invalidArgument(`dataBytes must be a positive integer, not ${dataBytes}`)
    const idBytes = randomBytes(8)
    const geometry = planGeometry(
      {
        blockCount: blocks,
        segmentBytes,
        dataBytes,
        volumeBytesLimit: volume.growable ? Number.POSITIVE_INFINITY : volume.size,
        storeId: { low: idBytes.readUInt32LE(0), high: idBytes.readUInt32LE(4) },
        createdAtMs: Date.now(),
      },
      minimumSegments,
    )
    if (geometry === undefined) {
      throw new CubbyError(ErrorCode.FULL, `${volume.path} (${volume.size} bytes) is too small for a compressed store of ${blocks} blocks`, { path: volume.path })
    }
    const needed = volumeBytesNeeded(geometry)
    if (volume.size < needed) await volume.grow(Math.ceil(needed / volume.sectorSize) * volume.sectorSize)

    const segments = new SegmentTable(geometry.segmentCount, segmentBytes, 1)
    segments.classify(-1, -1)
    const head = segments.allocate()!
    const successor = segments.allocate()!
    const slots = new CheckpointSlotWriter(geometry, volume)
    await slots.write(
      {
        generation: 1,
        headSegment: head,
        headOffset: 0,
        successorSegment: successor,
        lastSequence: 0,
        lastChunkCrc: 0,
        nextIncarnation: segments.nextIncarnation,
        mappedBlocks: 0,
        writerRecordBytes: 0,
        cleanerRecordBytes: 0,
      },
      checkpointTablesFrom(segments.snapshot(), { pageState: () => PageState.NEVER_WRITTEN, pageGeneration: () => 0 }),
    )
    // The older-generation slot is wiped, so no checkpoint of a store that lived here before can be taken for ours.
    await slots.wipe(0)
    const header = volume.allocate(HEADER_REGION_BYTES)
    encodeHeader(geometry, header)
    await volume.sync()
    await volume.write([{ offset: 0, length: HEADER_REGION_BYTES, buffer: header, bufferOffset: 0 }])
    await volume.sync()
  }

  private static async openVolume(volume: Volume, settings: Required<CompressedDeviceOptions>): Promise<CompressedBlockDevice> {
    const headerBuffer = volume.allocate(HEADER_REGION_BYTES)
    if (volume.size < HEADER_REGION_BYTES) throw new CubbyError(ErrorCode.NOT_A_STORE, `${volume.path} is too small to hold a store`, { path: volume.path })
    await volume.read([{ offset: 0, length: HEADER_REGION_BYTES, buffer: headerBuffer, bufferOffset: 0 }])
    const geometry = decodeHeader(headerBuffer, volume.path)
    if (volume.size < volumeBytesNeeded(geometry)) {
      throw corrupt(`${volume.path} holds ${volume.size} bytes, fewer than the ${volumeBytesNeeded(geometry)} its compressed store spans`, { path: volume.path })
    }
    if (settings.writeBufferBytes > geometry.segmentBytes) settings.writeBufferBytes = geometry.segmentBytes
    const budgetPages = Math.max(16, Math.floor(settings.mapCacheBytes / MAP_PAGE_BYTES))
    const recovered = await recover(geometry, volume, budgetPages)
    const device = new CompressedBlockDevice(volume, geometry, settings, recovered)
    device.checkpointer.waiting = recovered.staleSegments
    if (!volume.readOnly && recovered.chunksReplayed > 0) await device.checkpointNow()
    return device
  }

  get ioPath(): string {
    return this.volume.ioPath
  }

  get readOnly(): boolean {
    return this.volume.readOnly
  }

  get closing(): boolean {
    return this.closingFlag
  }

  allocate(blocks: number): Buffer {
    if (!Number.isSafeInteger(blocks) || blocks < 0) throw invalidArgument(`cannot allocate ${blocks} blocks`)
    return this.volume.allocate(blocks * BLOCK_SIZE)
  }

  // ------------------------------------------------------------------ reads

  async read(requests: readonly BlockRequest[]): Promise<void> {
    this.checkOpen()
    checkBlockRequests(requests, this.blockCount)
    if (requests.length === 0) return
    this.enter()
    try {
      let retry = await this.readAttempt(requests, undefined, false)
      for (let attempt = 2; retry !== undefined; attempt++) retry = await this.readAttempt(requests, retry, attempt === READ_ATTEMPTS)
      this.counters.reads += requests.length
      this.counters.bytesRead += requests.length * BLOCK_SIZE
    } finally {
      this.leave()
    }
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
    this.enter()
    this.readEachAttempt({ requests, onBlock, unreported: requests.length }, undefined, 1)
  }

  /**
   * Reads the blocks `indices` of a readEach batch (all when undefined), the
   * `attempt`-th time: loads their map pages if needed, serves what needs no
   * volume read, and sends the rest as one volume batch, each block decoded
   * and reported as soon as its own read is done.
   */
  private readEachAttempt(batch: EachRead, indices: readonly number[] | undefined, attempt: number): void {
    const { requests } = batch
    const count = indices === undefined ? requests.length : indices.length
    for (let position = 0; position < count; position++) {
      if (!this.map.isCached(BlockMap.pageOf(requests[indices === undefined ? position : indices[position]!]!.lba))) {
        const pinned: number[] = []
        for (let each = 0; each < count; each++) pinned.push(BlockMap.pageOf(requests[indices === undefined ? each : indices[each]!]!.lba))
        this.map.loadAndPin(pinned).then(
          () => {
            try {
              this.placeEachReads(batch, indices, attempt)
            } finally {
              this.map.unpinAll(pinned)
            }
          },
          (error: unknown) => {
            for (let each = 0; each < count; each++) this.reportBlock(batch, indices === undefined ? each : indices[each]!, error as CubbyError)
          },
        )
        return
      }
    }
    this.placeEachReads(batch, indices, attempt)
  }

  /** The blocks' map pages are cached: zero and resident blocks are reported in a microtask, the rest read. */
  private placeEachReads(batch: EachRead, indices: readonly number[] | undefined, attempt: number): void {
    const { requests } = batch
    const { geometry, map } = this
    const count = indices === undefined ? requests.length : indices.length
    const sector = this.volume.sectorSize
    let ready: number[] | undefined
    let slots: EachSlot[] | undefined
    let volumeRequests: VolumeRequest[] | undefined
    for (let position = 0; position < count; position++) {
      const index = indices === undefined ? position : indices[position]!
      const { lba, buffer, bufferOffset } = requests[index]!
      const entry = map.lookup(lba)
      assert(entry !== NOT_CACHED, 'the map page of a block being read is cached')
      if (this.servedWithoutRead(lba, entry, buffer, bufferOffset)) {
        ;(ready ??= []).push(index)
        continue
      }
      const address = entryAddress(entry, geometry.granuleBytes)
      const seed = this.segments.seedOf(Math.floor(address / geometry.segmentBytes))
      const start = spanStart(address, sector)
      const length = spanEnd(address, entry, sector) - start
      const span = this.readSpans.take()
      const spanOffset = this.readSpans.offsetOf(span)
      ;(volumeRequests ??= []).push({ offset: geometry.dataOffset + start, length, buffer: this.readSpans.bufferOf(span), bufferOffset: spanOffset })
      ;(slots ??= []).push({ index, entry, seed, span, at: spanOffset + (address - start), end: spanOffset + length })
    }
    if (ready !== undefined) {
      const served = ready
      queueMicrotask(() => {
        for (const index of served) this.reportBlock(batch, index, undefined)
      })
    }
    if (volumeRequests !== undefined) {
      const reading = slots!
      this.volume.readEach(volumeRequests, (position, error) => this.finishEachRead(batch, reading[position]!, error, attempt))
    }
  }

  /**
   * Serves block `lba` (map entry `entry`) without a volume read when it can:
   * a never-written or trimmed block is zeros, and a record still in the
   * write buffer decodes from memory. False when the record must be read.
   */
  private servedWithoutRead(lba: number, entry: number, buffer: Buffer, bufferOffset: number): boolean {
    if (entry === 0) {
      buffer.fill(0, bufferOffset, bufferOffset + BLOCK_SIZE)
      return true
    }
    const address = entryAddress(entry, this.geometry.granuleBytes)
    const resident = this.log.resident(address)
    if (resident === undefined) return false
    const seed = this.segments.seedOf(Math.floor(address / this.geometry.segmentBytes))
    const problem = decodeRecord(resident.buffer, resident.at, resident.buffer.length, seed, lba, buffer, bufferOffset)
    assert(problem === undefined, `block ${lba} in the write buffer does not decode: ${problem}`)
    return true
  }

  /** One block's volume read is done: decode it and report it, or read it again if its record moved meanwhile. */
  private finishEachRead(batch: EachRead, slot: EachSlot, error: CubbyError | undefined, attempt: number): void {
    const { lba, buffer, bufferOffset } = batch.requests[slot.index]!
    const source = this.readSpans.bufferOf(slot.span)
    const problem = error === undefined ? decodeRecord(source, slot.at, slot.end, slot.seed, lba, buffer, bufferOffset) : undefined
    this.readSpans.give(slot.span)
    if (error !== undefined || problem === undefined) {
      this.reportBlock(batch, slot.index, error)
    } else if (attempt < READ_ATTEMPTS && this.map.lookup(lba) !== slot.entry) {
      this.readEachAttempt(batch, [slot.index], attempt + 1)
    } else {
      this.reportBlock(batch, slot.index, this.recordCorrupt(lba, slot.entry, problem))
    }
  }

  private reportBlock(batch: EachRead, index: number, error: CubbyError | undefined): void {
    if (error === undefined) {
      this.counters.reads++
      this.counters.bytesRead += BLOCK_SIZE
    }
    batch.onBlock(index, error)
    if (--batch.unreported === 0) this.leave()
  }

  private recordCorrupt(lba: number, entry: number, problem: string): CubbyError {
    const address = entryAddress(entry, this.geometry.granuleBytes)
    return corrupt(
      `${this.volume.path}: block ${lba}: the record at data byte ${address} (volume byte ${this.geometry.dataOffset + address}, entry ${hex(entry)}) ${problem}`,
      { path: this.volume.path },
    )
  }

  /**
   * Reads the blocks `indices` of `requests` (all when undefined) in one
   * volume batch; returns those whose record moved meanwhile, if any.
   */
  private async readAttempt(requests: readonly BlockRequest[], indices: readonly number[] | undefined, last: boolean): Promise<number[] | undefined> {
    const { geometry, map } = this
    const count = indices === undefined ? requests.length : indices.length
    let pinned: number[] | undefined
    for (let position = 0; position < count; position++) {
      if (!map.isCached(BlockMap.pageOf(requests[indices === undefined ? position : indices[position]!]!.lba))) {
        pinned = []
        for (let each = 0; each < count; each++) pinned.push(BlockMap.pageOf(requests[indices === undefined ? each : indices[each]!]!.lba))
        await map.loadAndPin(pinned)
        break
      }
    }
    const slots: ReadSlot[] = []
    const volumeRequests: VolumeRequest[] = []
    const taken: Buffer[] = []
    let current: Buffer | undefined
    let used = 0
    try {
      for (let position = 0; position < count; position++) {
        const index = indices === undefined ? position : indices[position]!
        const { lba, buffer, bufferOffset } = requests[index]!
        const entry = map.lookup(lba)
        assert(entry !== NOT_CACHED, 'the map page of a block being read is pinned')
        if (this.servedWithoutRead(lba, entry, buffer, bufferOffset)) continue
        const address = entryAddress(entry, geometry.granuleBytes)
        const seed = this.segments.seedOf(Math.floor(address / geometry.segmentBytes))
        const start = spanStart(address, this.volume.sectorSize)
        const length = spanEnd(address, entry, this.volume.sectorSize) - start
        if (current === undefined || used + length > current.length) {
          current = this.takeReadBuffer(length)
          taken.push(current)
          used = 0
        }
        volumeRequests.push({ offset: geometry.dataOffset + start, length, buffer: current, bufferOffset: used })
        slots.push({ index, entry, seed, buffer: current, at: used + (address - start), end: used + length })
        used += length
      }
    } finally {
      if (pinned !== undefined) map.unpinAll(pinned)
    }
    try {
      if (volumeRequests.length > 0) await this.volume.read(volumeRequests)
      let retry: number[] | undefined
      for (const slot of slots) {
        const { lba, buffer, bufferOffset } = requests[slot.index]!
        const problem = decodeRecord(slot.buffer, slot.at, slot.end, slot.seed, lba, buffer, bufferOffset)
        if (problem === undefined) continue
        if (!last && map.lookup(lba) !== slot.entry) {
          ;(retry ??= []).push(slot.index)
          continue
        }
        throw this.recordCorrupt(lba, slot.entry, problem)
      }
      return retry
    } finally {
      for (const buffer of taken) this.giveReadBuffer(buffer)
    }
  }

  private takeReadBuffer(atLeast: number): Buffer {
    if (atLeast <= READ_BUFFER_BYTES) {
      const buffer = this.readBuffers.pop()
      if (buffer !== undefined) return buffer
      this.readBuffersMade++
      return this.volume.allocate(READ_BUFFER_BYTES)
    }
    return this.volume.allocate(atLeast)
  }

  private giveReadBuffer(buffer: Buffer): void {
    if (buffer.length === READ_BUFFER_BYTES && this.readBuffers.length < READ_BUFFERS_KEPT) this.readBuffers.push(buffer)
    else if (buffer.length === READ_BUFFER_BYTES) this.readBuffersMade--
  }

  // ----------------------------------------------------------------- writes

  async write(requests: readonly BlockRequest[]): Promise<void> {
    this.checkWritable()
    checkBlockRequests(requests, this.blockCount)
    if (requests.length === 0) return
    this.enter()
    try {
      for (let first = 0; first < requests.length; first += WRITE_STEP_BLOCKS) {
        await this.writeStep(requests.slice(first, first + WRITE_STEP_BLOCKS))
      }
      this.counters.writes += requests.length
      this.counters.bytesWritten += requests.length * BLOCK_SIZE
    } finally {
      this.leave()
    }
  }

  private async writeStep(requests: readonly BlockRequest[]): Promise<void> {
    const prepared: Array<{ lba: number; block: CompressedBlock | undefined }> = []
    let bytes = 0
    for (const { lba, buffer, bufferOffset } of requests) {
      if (isZeroBlock(buffer, bufferOffset)) {
        prepared.push({ lba, block: undefined })
        bytes += recordFootprint(0, this.geometry.granuleBytes)
        continue
      }
      const block = compressBlock(buffer, bufferOffset)
      prepared.push({ lba, block })
      bytes += recordFootprint(block.payload.length, this.geometry.granuleBytes)
    }
    await this.admit(bytes)
    const pages = prepared.map((item) => BlockMap.pageOf(item.lba))
    await this.map.loadAndPin(pages)
    try {
      await this.withAppendLock(async () => {
        this.health.check()
        for (const { lba, block } of prepared) {
          if (block === undefined) {
            if (this.map.lookup(lba) !== 0) await this.placeTrim(lba, 1)
          } else {
            await this.placeBlock(lba, block)
          }
        }
        this.afterPlacing()
      })
    } finally {
      this.map.unpinAll(pages)
    }
    await this.backpressure()
    this.cleaner.kick()
  }

  /** Appends a block record and points the map at it. Append lock held. */
  private async placeBlock(lba: number, block: CompressedBlock): Promise<void> {
    const storedBytes = block.payload.length
    const footprint = recordFootprint(storedBytes, this.geometry.granuleBytes)
    const placement = await this.log.place(footprint)
    const { buffer, at } = placement
    block.payload.copy(buffer, at + RECORD_HEADER_BYTES)
    buffer.fill(0, at + RECORD_HEADER_BYTES + storedBytes, at + footprint)
    sealRecord(buffer, at, lba, block.kind, storedBytes, BLOCK_SIZE, this.segments.seedOf(placement.segment))
    this.mapper.assign(lba, makeEntry(placement.address, RECORD_HEADER_BYTES + storedBytes, this.geometry.granuleBytes))
    this.writerRecordBytes += footprint
    this.bytesSinceCut += footprint
  }

  /** Appends a trim record of [lba, lba + count) and unmaps those blocks (their pages cached). Append lock held. */
  private async placeTrim(lba: number, count: number): Promise<void> {
    const footprint = recordFootprint(0, this.geometry.granuleBytes)
    const placement = await this.log.place(footprint)
    placement.buffer.fill(0, placement.at, placement.at + footprint)
    sealRecord(placement.buffer, placement.at, lba, RecordKind.TRIM, 0, count, this.segments.seedOf(placement.segment))
    for (let each = lba; each < lba + count; each++) this.mapper.assign(each, 0)
    this.writerRecordBytes += footprint
    this.bytesSinceCut += footprint
  }

  async trim(lba: number, count: number): Promise<void> {
    this.checkWritable()
    checkBlockRange(lba, count, this.blockCount)
    if (count === 0) return
    this.enter()
    try {
      for (let first = lba; first < lba + count; ) {
        const page = BlockMap.pageOf(first)
        const end = Math.min(lba + count, (page + 1) * ENTRIES_PER_PAGE)
        if (this.map.isCached(page) || this.map.pageState(page) !== PageState.NEVER_WRITTEN) await this.trimWithinPage(page, first, end)
        first = end
      }
      this.counters.trims++
    } finally {
      this.leave()
    }
  }

  /** Trims [first, end) inside one map page: one trim record covering the blocks that are mapped. */
  private async trimWithinPage(page: number, first: number, end: number): Promise<void> {
    await this.admit(0)
    await this.map.loadAndPin([page])
    try {
      await this.withAppendLock(async () => {
        this.health.check()
        let low = first
        while (low < end && this.map.lookup(low) === 0) low++
        let high = end - 1
        while (high >= low && this.map.lookup(high) === 0) high--
        if (low <= high) await this.placeTrim(low, high - low + 1)
        this.afterPlacing()
      })
    } finally {
      this.map.unpin(page)
    }
    this.cleaner.kick()
  }

  async flush(): Promise<void> {
    this.checkWritable()
    this.enter()
    try {
      const target = await this.withAppendLock(async () => {
        this.log.seal()
        return this.log.lastSequence
      })
      await this.log.syncThrough(target)
      this.counters.flushes++
    } finally {
      this.leave()
    }
  }

  /**
   * Waits, before placing `bytes` of records, until the space rules allow
   * it: free segments beyond the cleaner's reserve must hold them, and
   * physical use must be under the hard ratio to live bytes. Runs the
   * cleaner meanwhile; CUBBY_FULL when it can free nothing more.
   */
  private async admit(bytes: number): Promise<void> {
    const { geometry, segments } = this
    for (let round = 1; ; round++) {
      this.health.check()
      const headRoom = geometry.segmentBytes - this.log.headFill
      const room = (segments.freeCount - this.options.reserveSegments) * geometry.segmentBytes + headRoom
      const roomy = bytes === 0 ? segments.freeCount > 0 || headRoom > CHUNK_ALIGNMENT_BYTES : room >= bytes + 2 * CHUNK_ALIGNMENT_BYTES
      // What placing `bytes` of records may add: the records, chunk headers and padding, the tail of a full segment.
      const growth = bytes + bytes / 16 + 8 * CHUNK_ALIGNMENT_BYTES
      const bounded =
        !this.options.cleaning || bytes === 0 || this.cleaner.usedBytes() + growth <= segments.liveTotal * CLEAN_HARD_RATIO + this.cleaner.reserveBytes
      if (roomy && bounded) return
      let progressed = false
      if (this.options.cleaning) {
        const usedBefore = this.cleaner.usedBytes()
        const freeBefore = segments.freeCount
        await this.cleaner.makeProgress()
        progressed = this.cleaner.usedBytes() < usedBefore || segments.freeCount > freeBefore
      }
      if (!progressed || round === ADMIT_CLEANING_ROUNDS) {
        if (roomy) return
        throw new CubbyError(
          ErrorCode.FULL,
          `${this.volume.path}: the compressed store has no room for ${bytes} more bytes (${segments.freeCount} free segments, ${this.options.reserveSegments} kept for cleaning)`,
          { path: this.volume.path },
        )
      }
    }
  }

  /** After placing records (append lock held): start a checkpoint if the log or the dirty pages grew enough. */
  private afterPlacing(): void {
    if (this.checkpointer.running !== undefined || this.health.failure !== undefined) return
    if (this.map.dirtyCount >= this.dirtyLimit || this.bytesSinceCut >= this.options.checkpointLogBytes) {
      this.startBackground(this.cutCheckpoint())
    }
  }

  /** Writers wait for the running checkpoint when dirty pages pile up beyond twice the limit. */
  private async backpressure(): Promise<void> {
    while (this.map.dirtyCount >= 2 * this.dirtyLimit && this.health.failure === undefined) {
      const running = this.checkpointer.running
      if (running !== undefined) await running
      else await this.checkpointNow()
    }
  }

  private cutCheckpoint(): Promise<void> {
    this.bytesSinceCut = 0
    return this.checkpointer.cut()
  }

  /** Cuts a checkpoint once any running one is done, and waits for it to commit. */
  async checkpointNow(): Promise<void> {
    const { done } = await this.withAppendLock(async () => {
      while (this.checkpointer.running !== undefined) await this.checkpointer.running.catch(() => undefined)
      this.health.check()
      return { done: this.cutCheckpoint() }
    })
    await done
  }

  waitingSegments(): number {
    return this.checkpointer.waiting.length
  }

  private startBackground(work: Promise<void>): void {
    const tracked = work.catch(() => undefined).finally(() => {
      if (this.background === tracked) this.background = undefined
    })
    this.background = tracked
  }

  /** Runs `body` holding the append lock (FIFO). */
  async withAppendLock<T>(body: () => Promise<T>): Promise<T> {
    const previous = this.lockTail
    let release!: () => void
    this.lockTail = new Promise<void>((resolve) => (release = resolve))
    await previous
    try {
      return await body()
    } finally {
      release()
    }
  }

  // ------------------------------------------------------------ lifecycle

  cacheChargeBytes(): number {
    return this.map.cachedBytes()
  }

  stats(): CompressedDeviceStats {
    const { geometry, segments } = this
    const metadataBytes = HEADER_REGION_BYTES + 2 * geometry.checkpointSlotBytes + 2 * MAP_PAGE_BYTES * this.map.writtenPages
    const logicalBytes = this.mapper.mappedBlocks * BLOCK_SIZE
    const writer = this.writerRecordBytes
    const cleaner = this.cleaner.bytesMoved
    return {
      mode: this.mode,
      ...this.counters,
      logicalBytes,
      physicalBytes: metadataBytes + this.cleaner.usedBytes(),
      volume: this.volume.stats(),
      memoryBytes:
        this.map.memoryBytes() +
        segments.memoryBytes() +
        this.log.memoryBytes() +
        this.readBuffersMade * READ_BUFFER_BYTES +
        this.readSpans.memoryBytes() +
        this.cleaner.memoryBytes() +
        this.checkpointer.memoryBytes(),
      liveBytes: segments.liveTotal,
      compressionRatio: segments.liveTotal === 0 ? 1 : logicalBytes / segments.liveTotal,
      writerRecordBytes: writer,
      cleaningBytesMoved: cleaner,
      cleaningWriteAmplification: writer === 0 ? 1 : (writer + cleaner) / writer,
      volumeAllocatedBytes: this.volume.allocatedBytes(),
      segments: { total: geometry.segmentCount, free: segments.freeCount, sealed: segments.sealedCount, bytes: geometry.segmentBytes },
      checkpoints: this.checkpointer.checkpoints,
      mapPageLoads: this.map.pageLoads,
      mapCachedPages: this.map.cachedPages,
      mapDirtyPages: this.map.dirtyCount,
      chunksWritten: this.log.chunksWritten,
      paddingBytes: this.log.bytesPadded,
      chunksReplayed: this.chunksReplayed,
    }
  }

  /**
   * Waits for every operation in flight, writes a final checkpoint (so the
   * next open replays nothing), and closes the volume. The first call
   * rejects if that last checkpoint fails (the volume is closed anyway);
   * later calls resolve once it is closed.
   */
  close(): Promise<void> {
    if (this.closePromise !== undefined) return this.closePromise.catch(() => undefined)
    this.closePromise = this.shutDown()
    return this.closePromise
  }

  private async shutDown(): Promise<void> {
    this.closingFlag = true
    this.cleaner.stopIdle()
    if (this.operations > 0) await new Promise<void>((resolve) => (this.operationsDrained = resolve))
    await this.cleaner.idle()
    while (this.background !== undefined) await this.background
    let failure: unknown
    if (!this.volume.readOnly && this.health.failure === undefined) {
      try {
        await this.checkpointNow()
      } catch (error) {
        failure = error
      }
    }
    await this.log.idle()
    await this.volume.close()
    if (failure !== undefined) throw failure
  }

  private enter(): void {
    this.operations++
  }

  private leave(): void {
    this.operations--
    if (this.operations === 0 && this.operationsDrained !== undefined) {
      const resolve = this.operationsDrained
      this.operationsDrained = undefined
      resolve()
    }
  }

  private checkOpen(): void {
    if (this.closingFlag) throw closedError('device')
  }

  private checkWritable(): void {
    this.checkOpen()
    if (this.volume.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, `${this.volume.path} is open read-only`, { path: this.volume.path })
    this.health.check()
  }
}

/**
 * Checks the record at source[at, end) for block `lba` and decodes it into
 * target[targetOffset, +4096). Returns undefined on success, else what is
 * wrong (for a CUBBY_CORRUPT message).
 */
function decodeRecord(source: Buffer, at: number, end: number, seed: number, lba: number, target: Buffer, targetOffset: number): string | undefined {
  const record = readRecord(source, at, end, seed)
  if (record === undefined) return 'fails its checksum or header checks'
  if (record.lba !== lba) return `holds block ${record.lba}`
  const payload = at + RECORD_HEADER_BYTES
  if (record.kind === RecordKind.LZ4) {
    const written = decodeLz4Block(source, payload, payload + record.storedBytes, target, targetOffset, targetOffset + BLOCK_SIZE)
    return written === BLOCK_SIZE ? undefined : 'holds an LZ4 payload that does not decode to 4096 bytes'
  }
  if (record.kind === RecordKind.STORED) {
    source.copy(target, targetOffset, payload, payload + BLOCK_SIZE)
    return undefined
  }
  return 'is not a block record'
}

/** First byte (a data-area address, sector-aligned) of the range that holds the record at `address`. */
function spanStart(address: number, sector: number): number {
  return Math.floor((Math.floor(address / SPAN_UNIT_BYTES) * SPAN_UNIT_BYTES) / sector) * sector
}

/** End of that range: the sector after the last 512-byte unit of the record's span. */
function spanEnd(address: number, entry: number, sector: number): number {
  return Math.ceil((Math.floor(address / SPAN_UNIT_BYTES) * SPAN_UNIT_BYTES + entrySpan(entry) * SPAN_UNIT_BYTES) / sector) * sector
}

function resolveOptions(options: CompressedDeviceOptions): Required<CompressedDeviceOptions> {
  const settings = {
    mapCacheBytes: options.mapCacheBytes ?? DEFAULTS.mapCacheBytes,
    writeBufferBytes: options.writeBufferBytes ?? DEFAULTS.writeBufferBytes,
    checkpointLogBytes: options.checkpointLogBytes ?? DEFAULTS.checkpointLogBytes,
    cleaning: options.cleaning ?? true,
    reserveSegments: options.reserveSegments ?? DEFAULTS.reserveSegments,
    idleCleaningMs: options.idleCleaningMs ?? DEFAULTS.idleCleaningMs,
  }
  const positive = (name: string, value: number, minimum: number) => {
    if (!Number.isSafeInteger(value) || value < minimum) throw invalidArgument(`${name} must be an integer of at least ${minimum}, not ${value}`)
  }
  positive('mapCacheBytes', settings.mapCacheBytes, 64 * 1024)
  positive('writeBufferBytes', settings.writeBufferBytes, CHUNK_ALIGNMENT_BYTES)
  positive('checkpointLogBytes', settings.checkpointLogBytes, 1024 * 1024)
  positive('reserveSegments', settings.reserveSegments, 2)
  positive('idleCleaningMs', settings.idleCleaningMs, 0)
  if (settings.writeBufferBytes % CHUNK_ALIGNMENT_BYTES !== 0) throw invalidArgument(`writeBufferBytes must be a multiple of ${CHUNK_ALIGNMENT_BYTES}`)
  if (typeof settings.cleaning !== 'boolean') throw invalidArgument('cleaning must be a boolean')
  return settings
}
