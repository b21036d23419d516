/**
 * Opening a store: choose the superblock, reinstall the flush journals, load
 * the bitmap, and read back the log after the checkpoint
 * (docs/format.md 2.3, 2.5, 2.4, 2.10).
 *
 * Read-write opens write the journals' images in place; read-only opens keep
 * them as an overlay in memory (at most two journal slots), so a read-only
 * open never writes and still sees exactly what a read-write open would.
 * Log records come back as a WriteBuffer; the engine then flushes it (or, read
 * only, serves reads from it).
 *
 * Called by Engine.open only.
 */

import { CubbyError, ErrorCode, corrupt } from '../errors'
import type { BlockDevice, BlockRequest } from '../device/types'
import { crc32c } from '../util/crc32c'
import { HeapAllocator } from './allocator'
import { BLOCK_SIZE, RECORD_DELETE, RECORD_PUT_EXTENT, SUPERBLOCK_LBAS } from './format'
import { hashKey, newKeyHash } from './hash'
import { journalSlotLba, readJournalHeader } from './journal'
import { type WriteRecord, extentBlocks } from './record'
import { type Superblock, checkGeometry, decodeSuperblock, encodeSuperblock } from './superblock'
import { type LoggedRecord, decodeFrameRecords, frameBlocks, readFrameHeader, verifyFrame } from './wal'
import { UNLIMITED, WriteBuffer } from './write-buffer'

export type SuperblockProbe = { kind: 'store'; superblock: Superblock } | { kind: 'empty' } | { kind: 'foreign' }

/** Blocks read at a time while scanning the log or loading the bitmap. */
const SCAN_BLOCKS = 256

/**
 * Reads both superblock copies: the valid one with the highest generation
 * wins. CUBBY_VERSION if a copy is of a newer format; CUBBY_CORRUPT if copies
 * carry the magic but none checks.
 */
export async function readSuperblocks(device: BlockDevice): Promise<SuperblockProbe> {
  if (device.blockCount < 2) return { kind: 'foreign' }
  const buffer = device.allocate(2)
  await device.read([
    { lba: SUPERBLOCK_LBAS[0], buffer, bufferOffset: 0 },
    { lba: SUPERBLOCK_LBAS[1], buffer, bufferOffset: BLOCK_SIZE },
  ])
  const copies = [decodeSuperblock(buffer, 0), decodeSuperblock(buffer, BLOCK_SIZE)]
  const version = copies.find((copy) => copy.kind === 'version')
  if (version !== undefined && version.kind === 'version') {
    throw new CubbyError(ErrorCode.VERSION, `the store has format version ${version.version}; this build reads version 1`)
  }
  let best: Superblock | undefined
  for (const copy of copies) {
    if (copy.kind === 'valid' && (best === undefined || copy.superblock.generation > best.generation)) best = copy.superblock
  }
  if (best !== undefined) {
    const problem = checkGeometry(best, device.blockCount)
    if (problem !== undefined) throw corrupt(`superblock generation ${best.generation}: ${problem}`)
    return { kind: 'store', superblock: best }
  }
  const broken = copies.find((copy) => copy.kind === 'corrupt')
  if (broken !== undefined && broken.kind === 'corrupt') throw corrupt(`no valid superblock: ${broken.reason}`)
  if (copies.every((copy) => copy.kind === 'zero')) return { kind: 'empty' }
  return { kind: 'foreign' }
}

export interface Recovered {
  superblock: Superblock
  /** Journal images a read-only open could not write in place. */
  overlay: Map<number, Buffer>
  allocator: HeapAllocator
  /** Records after the checkpoint, newest per key. */
  replay: WriteBuffer
  /** Virtual log positions and counters after the last valid frame. */
  checkpoint: number
  head: number
  lastSequence: number
  nextLsn: number
  /** Journals copied in place: the last step's (always, when there is one) and the next one's. */
  journalsApplied: number
  /** Whether the step after the superblock's generation was completed from its journal. */
  stepRedone: boolean
  framesReplayed: number
}

/**
 * Recovers the store whose winning superblock is `superblock`.
 * `bucketsReserved` gives the allocator the bucket count it must stay above.
 */
export async function recoverStore(
  device: BlockDevice,
  superblock: Superblock,
  readOnly: boolean,
  bucketsReserved: () => number,
): Promise<Recovered> {
  const overlay = new Map<number, Buffer>()
  const { superblock: current, applied } = await reinstallJournals(device, superblock, readOnly, overlay)
  const allocator = new HeapAllocator(
    { regionStart: current.regionStart, regionBlocks: current.regionBlocks, bitmapStart: current.bitmapStart, bitmapBlocks: current.bitmapBlocks },
    current.heapSpan,
    bucketsReserved,
  )
  await loadBitmap(device, current, allocator, overlay)
  const log = await replayLog(device, current, allocator)
  return { superblock: current, overlay, allocator, ...log, journalsApplied: applied, stepRedone: current !== superblock }
}

async function readBlocks(device: BlockDevice, lba: number, count: number, overlay: Map<number, Buffer>): Promise<Buffer> {
  const buffer = device.allocate(count)
  const requests: BlockRequest[] = []
  for (let index = 0; index < count; index++) requests.push({ lba: lba + index, buffer, bufferOffset: index * BLOCK_SIZE })
  await device.read(requests)
  for (let index = 0; index < count; index++) overlay.get(lba + index)?.copy(buffer, index * BLOCK_SIZE)
  return buffer
}

export interface JournalImages {
  superblock: Superblock
  lbas: number[]
  images: Buffer
}

/** Reads the journal of `generation`; undefined when absent; 'corrupt' when it does not check. (Also used by src/check.) */
export async function readJournal(device: BlockDevice, superblock: Superblock, generation: number): Promise<JournalImages | 'corrupt' | undefined> {
  const slot = journalSlotLba(superblock, generation)
  const header = await readBlocks(device, slot, 1, new Map())
  const read = readJournalHeader(header, 0, superblock.storeId, generation)
  if (read.kind === 'absent') return undefined
  if (read.kind === 'corrupt') return 'corrupt'
  const { lbas, imagesChecksum } = read.header
  if (lbas.length > superblock.journalSlotBlocks - 1) return 'corrupt'
  for (const lba of lbas) if (lba < superblock.bitmapStart || lba >= superblock.storeBlocks) return 'corrupt'
  const images = lbas.length === 0 ? device.allocate(0) : await readBlocks(device, slot + 1, lbas.length, new Map())
  if (crc32c(images, 0, lbas.length * BLOCK_SIZE) !== imagesChecksum) return 'corrupt'
  return { superblock: read.header.superblock, lbas, images }
}

/**
 * Copies journal g (repairing torn in-place writes of the last step) and, if
 * valid, journal g+1 (a step whose superblock may not have landed) in place.
 */
async function reinstallJournals(
  device: BlockDevice,
  superblock: Superblock,
  readOnly: boolean,
  overlay: Map<number, Buffer>,
): Promise<{ superblock: Superblock; applied: number }> {
  const generation = superblock.generation
  const own = await readJournal(device, superblock, generation)
  if (own === 'corrupt') throw corrupt(`the flush journal of generation ${generation} (slot ${generation % 2}) does not check: it was complete before that step wrote anything`)
  const following = await readJournal(device, superblock, generation + 1)
  const journals = [own, following === 'corrupt' ? undefined : following].filter((journal): journal is JournalImages => journal !== undefined)
  let current = superblock
  for (const journal of journals) {
    if (journal.superblock.generation === generation + 1) {
      const problem = checkGeometry(journal.superblock, device.blockCount)
      if (problem !== undefined) throw corrupt(`journal of generation ${generation + 1}: ${problem}`)
      current = journal.superblock
    }
    if (readOnly) {
      journal.lbas.forEach((lba, index) => overlay.set(lba, journal.images.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE)))
    } else if (journal.lbas.length > 0) {
      await device.write(journal.lbas.map((lba, index) => ({ lba, buffer: journal.images, bufferOffset: index * BLOCK_SIZE })))
    }
  }
  if (!readOnly && journals.length > 0) {
    if (current !== superblock) {
      const buffer = device.allocate(1)
      encodeSuperblock(current, buffer, 0)
      await device.write([{ lba: SUPERBLOCK_LBAS[current.generation % 2]!, buffer, bufferOffset: 0 }])
    }
    await device.flush()
  }
  return { superblock: current, applied: journals.length }
}

async function loadBitmap(device: BlockDevice, superblock: Superblock, allocator: HeapAllocator, overlay: Map<number, Buffer>): Promise<void> {
  const chunks = HeapAllocator.chunksFor(superblock.heapSpan)
  if (chunks > superblock.bitmapBlocks) throw corrupt(`the heap span ${superblock.heapSpan} needs more bitmap blocks than the store has`)
  for (let first = 0; first < chunks; first += SCAN_BLOCKS) {
    const count = Math.min(SCAN_BLOCKS, chunks - first)
    const buffer = await readBlocks(device, superblock.bitmapStart + first, count, overlay)
    for (let index = 0; index < count; index++) allocator.loadChunk(first + index, buffer, index * BLOCK_SIZE)
  }
}

/** Reads frames from the checkpoint on, into a write buffer, until the log ends. (Also used by src/check.) */
export async function replayLog(
  device: BlockDevice,
  superblock: Superblock,
  allocator: HeapAllocator,
): Promise<Pick<Recovered, 'replay' | 'checkpoint' | 'head' | 'lastSequence' | 'nextLsn' | 'framesReplayed'>> {
  const ring = superblock.walBlocks
  const replay = new WriteBuffer(UNLIMITED)
  const hash = newKeyHash()
  const checkpoint = superblock.checkpointWalBlock
  let position = checkpoint
  let sequence = superblock.checkpointWalSequence
  let nextLsn = superblock.checkpointLsn + 1
  let frames = 0
  const window = new LogWindow(device, superblock.walStart, ring)
  for (;;) {
    let index = position % ring
    let header = readFrameHeader(await window.block(index), 0, superblock.storeId, sequence)
    if (header === undefined && index !== 0) {
      index = 0
      header = readFrameHeader(await window.block(0), 0, superblock.storeId, sequence)
      if (header !== undefined) position += ring - (position % ring)
    }
    if (header === undefined) break
    const blocks = frameBlocks(header.payloadBytes)
    if (index + blocks > ring) break
    const frame = await window.blocks(index, blocks)
    if (!verifyFrame(frame, header)) break
    if (header.firstLsn !== nextLsn) throw corrupt(`log frame ${sequence} at ring block ${index} starts at LSN ${header.firstLsn}, expected ${nextLsn}`)
    const records = decodeFrameRecords(frame, header, `ring block ${index}`)
    if (!(await extentsIntact(device, superblock, records))) break
    for (const logged of records) {
      const record = toWriteRecord(logged, hash)
      if (record.extent !== undefined) allocator.markInUse(record.extent.lba, extentBlocks(record.extent.length))
      replay.add(record)
    }
    replay.walEnd = position + blocks
    replay.walEndSequence = sequence + 1
    position += blocks
    sequence++
    nextLsn += records.length
    frames++
  }
  return { replay, checkpoint, head: position, lastSequence: sequence - 1, nextLsn, framesReplayed: frames }
}

/** Whether every extent the frame's records refer to holds the value its record names. */
async function extentsIntact(device: BlockDevice, superblock: Superblock, records: readonly LoggedRecord[]): Promise<boolean> {
  const regionEnd = superblock.regionStart + superblock.regionBlocks
  for (const record of records) {
    if (record.type !== RECORD_PUT_EXTENT) continue
    const blocks = extentBlocks(record.valueLength)
    if (record.extentLba < superblock.regionStart || record.extentLba + blocks > regionEnd) {
      throw corrupt(`a log record points at blocks [${record.extentLba}, ${record.extentLba + blocks}) outside the heap`)
    }
    const value = await readBlocks(device, record.extentLba, blocks, new Map())
    if (crc32c(value, 0, record.valueLength) !== record.valueChecksum) return false
  }
  return true
}

function toWriteRecord(logged: LoggedRecord, hash: ReturnType<typeof newKeyHash>): WriteRecord {
  hashKey(logged.key, 0, logged.key.length, hash)
  return {
    key: logged.key,
    bucketHash: hash.bucketHash,
    fingerprint: hash.fingerprint,
    value: logged.type === RECORD_DELETE || logged.type === RECORD_PUT_EXTENT ? undefined : logged.value,
    extent: logged.type === RECORD_PUT_EXTENT ? { lba: logged.extentLba, length: logged.valueLength, checksum: logged.valueChecksum } : undefined,
    deleted: logged.type === RECORD_DELETE,
    lsn: logged.lsn,
  }
}

/** Reads the ring through a window of SCAN_BLOCKS blocks, so small frames cost no read each. */
class LogWindow {
  private buffer: Buffer | undefined
  private start = -1
  private count = 0

  constructor(
    private readonly device: BlockDevice,
    private readonly walStart: number,
    private readonly ring: number,
  ) {}

  async block(index: number): Promise<Buffer> {
    return this.blocks(index, 1)
  }

  /** Blocks [index, index + count) of the ring (count ≤ the ring's remainder), as one buffer. */
  async blocks(index: number, count: number): Promise<Buffer> {
    if (this.buffer === undefined || index < this.start || index + count > this.start + this.count) {
      const length = Math.min(this.ring - index, Math.max(count, SCAN_BLOCKS))
      this.buffer = await readBlocks(this.device, this.walStart + index, length, new Map())
      this.start = index
      this.count = length
    }
    const from = (index - this.start) * BLOCK_SIZE
    return this.buffer.subarray(from, from + count * BLOCK_SIZE)
  }
}
