/**
 * The on-disk format of the compressed block device: every constant, and the
 * encoder and checked decoder of every structure. docs/format.md section 3
 * is the specification; this module is its only implementation, and a change
 * here changes that section in the same commit.
 *
 * Values marked FIXED are stored on disk: they never change meaning. A new
 * layout gets a new version number instead.
 *
 * Decoders verify magic, version, checksum and store id, and return a typed
 * object; they throw CUBBY_CORRUPT (or CUBBY_VERSION) with a message that
 * names the structure and where it lies, so nothing unchecked leaves here.
 * Encoders assert the relationships a well-formed structure must satisfy
 * before the bytes go to disk.
 *
 * Who calls this: the rest of src/device/compressed/, and probeVolume.
 */

import assert from 'node:assert'
import { CubbyError, ErrorCode, corrupt } from '../../errors'
import { crc32c } from '../../util/crc32c'
import { BLOCK_SIZE } from '../types'

// ---------------------------------------------------------------- constants

/** FIXED. Magic of the header at volume byte 0: "CUBBYLZ4". */
export const HEADER_MAGIC = Buffer.from('CUBBYLZ4', 'latin1')
/** FIXED. Magic of a checkpoint: "CUBBYCKP". */
export const CHECKPOINT_MAGIC = Buffer.from('CUBBYCKP', 'latin1')
/** FIXED. Magic of a map page copy: "CUBBYMAP". */
export const MAP_PAGE_MAGIC = Buffer.from('CUBBYMAP', 'latin1')
/** FIXED. Magic of a log chunk header: "CUBBYCHK". */
export const CHUNK_MAGIC = Buffer.from('CUBBYCHK', 'latin1')

/**
 * FIXED. The format version this build writes and the only one it reads.
 * Version 2 added the checkpoint's page generation table, which lets a map
 * page load tell a stale copy from the current one (docs/format.md 3.3).
 */
export const FORMAT_VERSION = 2

/** FIXED. Bytes used of the header; the header region is HEADER_REGION_BYTES. */
export const HEADER_BYTES = 128
/** FIXED. The header's region at byte 0; checkpoint slot 0 follows it. */
export const HEADER_REGION_BYTES = 4096
/** FIXED. Fixed part of a checkpoint, before the segment table. */
export const CHECKPOINT_FIXED_BYTES = 96
/** FIXED. Bytes per segment in the checkpoint's segment table. */
export const SEGMENT_TABLE_ENTRY_BYTES = 8
/** FIXED. Bytes per map page in the checkpoint: its state (u8) and the generation that wrote its current copy (u32). */
export const PAGE_TABLE_ENTRY_BYTES = 5
/** FIXED. A map page copy. */
export const MAP_PAGE_BYTES = 4096
/** FIXED. Header of a map page. */
export const MAP_PAGE_HEADER_BYTES = 32
/** FIXED. Entries (u32) per map page. */
export const ENTRIES_PER_PAGE = (MAP_PAGE_BYTES - MAP_PAGE_HEADER_BYTES) / 4
/** FIXED. Chunk header. */
export const CHUNK_HEADER_BYTES = 128
/** FIXED. Record header. */
export const RECORD_HEADER_BYTES = 16
/** FIXED. Unit of a map entry's span. */
export const SPAN_UNIT_BYTES = 512
/** FIXED. Chunks start at, and are padded to, multiples of this (a physical sector of current drives). */
export const CHUNK_ALIGNMENT_BYTES = 4096
/** FIXED. Bits of a map entry holding the span. */
export const SPAN_BITS = 4
/** FIXED. Bits of a map entry holding the address in granules. */
export const ADDRESS_BITS = 32 - SPAN_BITS
/** FIXED. Smallest and largest placement granule. */
export const GRANULE_MIN_BYTES = 16
export const GRANULE_MAX_BYTES = 256

/** FIXED. Record kinds. */
export const RecordKind = {
  LZ4: 1,
  STORED: 2,
  TRIM: 3,
} as const
export type RecordKindValue = (typeof RecordKind)[keyof typeof RecordKind]

/** FIXED. Page states in a checkpoint: which copy of a map page is current. */
export const PageState = {
  NEVER_WRITTEN: 0,
  COPY_0: 1,
  COPY_1: 2,
} as const

/** The largest logical capacity: LBAs are u32 on disk. */
export const MAX_BLOCK_COUNT = 0xffff_ffff
/** Segment sizes accepted at create. */
export const SEGMENT_MIN_BYTES = 64 * 1024
export const SEGMENT_MAX_BYTES = 64 * 1024 * 1024
/** The largest data area this format can address (2^28 granules of at most 256 bytes: 64 GiB). */
export const MAX_DATA_BYTES = 2 ** ADDRESS_BITS * GRANULE_MAX_BYTES
/** The most a record can occupy: header plus a block stored as is. */
export const RECORD_MAX_BYTES = RECORD_HEADER_BYTES + BLOCK_SIZE

assert(ENTRIES_PER_PAGE === 1016, 'a map page holds 1016 entries')
assert(HEADER_BYTES <= HEADER_REGION_BYTES)
assert(CHUNK_HEADER_BYTES % GRANULE_MIN_BYTES === 0)
assert(CHUNK_ALIGNMENT_BYTES % SPAN_UNIT_BYTES === 0 && SPAN_UNIT_BYTES % GRANULE_MAX_BYTES === 0, 'every chunk start is a multiple of every granule')
assert(Math.ceil((SPAN_UNIT_BYTES - GRANULE_MIN_BYTES + RECORD_MAX_BYTES) / SPAN_UNIT_BYTES) < 2 ** SPAN_BITS, 'any record span fits the span bits')

// ------------------------------------------------------------ small helpers

/** Writes a non-negative integer below 2^53 as u64 little-endian. */
export function writeU64(buffer: Buffer, value: number, offset: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `u64 field value ${value}`)
  buffer.writeUInt32LE(value % 0x1_0000_0000, offset)
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 4)
}

/** Reads a u64 little-endian field; values of 2^53 or more are corrupt in every structure here. */
export function readU64(buffer: Buffer, offset: number, what: string): number {
  const high = buffer.readUInt32LE(offset + 4)
  if (high >= 0x20_0000) throw corrupt(`${what}: a 64-bit field holds ${high} * 2^32, beyond any value this format writes`)
  return high * 0x1_0000_0000 + buffer.readUInt32LE(offset)
}

function roundUp(value: number, unit: number): number {
  return Math.ceil(value / unit) * unit
}

/** The 8-byte store id, held as two u32 so comparisons are cheap. */
export interface StoreId {
  low: number
  high: number
}

function writeStoreId(buffer: Buffer, id: StoreId, offset: number): void {
  buffer.writeUInt32LE(id.low, offset)
  buffer.writeUInt32LE(id.high, offset + 4)
}

function sameStoreId(buffer: Buffer, id: StoreId, offset: number): boolean {
  return buffer.readUInt32LE(offset) === id.low && buffer.readUInt32LE(offset + 4) === id.high
}

/** CRC-32C of buffer[start, start + length) with the 4-byte field at crcOffset read as zero. */
function crcWithZeroField(buffer: Buffer, start: number, length: number, crcOffset: number): number {
  const before = crc32c(buffer, start, crcOffset)
  const zeros = crc32c(ZERO_WORD, 0, 4, before)
  return crc32c(buffer, crcOffset + 4, start + length, zeros)
}
const ZERO_WORD = Buffer.alloc(4)

function hasMagic(buffer: Buffer, offset: number, magic: Buffer): boolean {
  return buffer.compare(magic, 0, magic.length, offset, offset + magic.length) === 0
}

// ------------------------------------------------------------------ geometry

/** Where everything lies on the volume; fixed at create and recorded in the header. */
export interface Geometry {
  storeId: StoreId
  blockCount: number
  granuleBytes: number
  segmentBytes: number
  segmentCount: number
  mapPageCount: number
  checkpointOffset: number
  checkpointSlotBytes: number
  mapOffset: number
  dataOffset: number
  createdAtMs: number
}

export interface GeometryRequest {
  blockCount: number
  segmentBytes: number
  /** Size of the data area wanted, before capping (bytes). */
  dataBytes: number
  /** Bytes the volume can hold at most (Infinity for a growable one). */
  volumeBytesLimit: number
  storeId: StoreId
  createdAtMs: number
}

/** Lays out a new store; returns undefined if the volume cannot hold even `minimumSegments` segments. */
export function planGeometry(request: GeometryRequest, minimumSegments: number): Geometry | undefined {
  const { blockCount, segmentBytes } = request
  const mapPageCount = Math.ceil(blockCount / ENTRIES_PER_PAGE)
  let segmentCount = Math.max(minimumSegments, Math.ceil(Math.min(request.dataBytes, MAX_DATA_BYTES) / segmentBytes))
  segmentCount = Math.min(segmentCount, Math.floor(MAX_DATA_BYTES / segmentBytes))
  const layout = (segments: number) => {
    const checkpointSlotBytes = roundUp(checkpointBytesFor(segments, mapPageCount), 4096)
    const checkpointOffset = HEADER_REGION_BYTES
    const mapOffset = checkpointOffset + 2 * checkpointSlotBytes
    const dataOffset = dataAreaOffset(mapOffset, mapPageCount, segmentBytes)
    return { checkpointSlotBytes, checkpointOffset, mapOffset, dataOffset }
  }
  let placed = layout(segmentCount)
  if (Number.isFinite(request.volumeBytesLimit)) {
    const fits = Math.floor((request.volumeBytesLimit - placed.dataOffset) / segmentBytes)
    if (fits < segmentCount) {
      segmentCount = fits
      if (segmentCount < minimumSegments) return undefined
      placed = layout(segmentCount)
    }
  }
  let granuleBytes = GRANULE_MIN_BYTES
  while (granuleBytes < GRANULE_MAX_BYTES && 2 ** ADDRESS_BITS * granuleBytes < segmentCount * segmentBytes) granuleBytes *= 2
  const geometry: Geometry = {
    storeId: request.storeId,
    blockCount,
    granuleBytes,
    segmentBytes,
    segmentCount,
    mapPageCount,
    createdAtMs: request.createdAtMs,
    ...placed,
  }
  checkGeometry(geometry, 'new store')
  return geometry
}

/** The structural rules every geometry obeys; a header breaking one is corrupt. */
function checkGeometry(geometry: Geometry, where: string): void {
  const problems: string[] = []
  const powerOfTwo = (value: number) => Number.isSafeInteger(value) && value > 0 && (value & (value - 1)) === 0
  if (!(geometry.blockCount >= 1 && geometry.blockCount <= MAX_BLOCK_COUNT)) problems.push(`block count ${geometry.blockCount}`)
  if (!powerOfTwo(geometry.granuleBytes) || geometry.granuleBytes < GRANULE_MIN_BYTES || geometry.granuleBytes > GRANULE_MAX_BYTES) {
    problems.push(`granule ${geometry.granuleBytes}`)
  }
  if (!powerOfTwo(geometry.segmentBytes) || geometry.segmentBytes < SEGMENT_MIN_BYTES || geometry.segmentBytes > SEGMENT_MAX_BYTES) {
    problems.push(`segment size ${geometry.segmentBytes}`)
  }
  if (!(geometry.segmentCount >= 1) || geometry.segmentCount * geometry.segmentBytes > 2 ** ADDRESS_BITS * geometry.granuleBytes) {
    problems.push(`${geometry.segmentCount} segments do not fit the address bits`)
  }
  if (geometry.mapPageCount !== Math.ceil(geometry.blockCount / ENTRIES_PER_PAGE)) problems.push(`map page count ${geometry.mapPageCount}`)
  const slot = roundUp(checkpointBytesFor(geometry.segmentCount, geometry.mapPageCount), 4096)
  if (geometry.checkpointOffset !== HEADER_REGION_BYTES || geometry.checkpointSlotBytes !== slot) problems.push('checkpoint area')
  if (geometry.mapOffset !== geometry.checkpointOffset + 2 * slot) problems.push('map area offset')
  if (geometry.dataOffset !== dataAreaOffset(geometry.mapOffset, geometry.mapPageCount, geometry.segmentBytes)) problems.push('data area offset')
  if (problems.length > 0) throw corrupt(`${where}: the compressed store's header describes an impossible layout (${problems.join(', ')})`)
}

/** FIXED rule: the data area starts after the map copies, aligned to min(segment size, 1 MiB) so discards free whole ranges. */
function dataAreaOffset(mapOffset: number, mapPageCount: number, segmentBytes: number): number {
  return roundUp(mapOffset + 2 * MAP_PAGE_BYTES * mapPageCount, Math.min(segmentBytes, 1024 * 1024))
}

/** Bytes the volume must have to hold the whole layout. */
export function volumeBytesNeeded(geometry: Geometry): number {
  return geometry.dataOffset + geometry.segmentCount * geometry.segmentBytes
}

// -------------------------------------------------------------------- header

export function encodeHeader(geometry: Geometry, target: Buffer): void {
  assert(target.length >= HEADER_BYTES)
  target.fill(0, 0, HEADER_BYTES)
  HEADER_MAGIC.copy(target, 0)
  target.writeUInt16LE(FORMAT_VERSION, 8)
  target.writeUInt16LE(HEADER_BYTES, 10)
  writeStoreId(target, geometry.storeId, 16)
  target.writeUInt32LE(geometry.blockCount, 24)
  target.writeUInt32LE(geometry.granuleBytes, 28)
  target.writeUInt32LE(geometry.segmentBytes, 32)
  target.writeUInt32LE(geometry.segmentCount, 36)
  target.writeUInt32LE(ENTRIES_PER_PAGE, 40)
  target.writeUInt32LE(geometry.mapPageCount, 44)
  writeU64(target, geometry.checkpointOffset, 48)
  target.writeUInt32LE(geometry.checkpointSlotBytes, 56)
  writeU64(target, geometry.mapOffset, 64)
  writeU64(target, geometry.dataOffset, 72)
  writeU64(target, geometry.createdAtMs, 80)
  target.writeUInt32LE(crcWithZeroField(target, 0, HEADER_BYTES, 12), 12)
}

/** True when `bytes` begin with the header magic (how probeVolume recognises a store). */
export function hasHeaderMagic(bytes: Buffer): boolean {
  return bytes.length >= HEADER_MAGIC.length && hasMagic(bytes, 0, HEADER_MAGIC)
}

export function decodeHeader(source: Buffer, path: string): Geometry {
  const where = `${path}: compressed-store header`
  if (!hasHeaderMagic(source)) throw new CubbyError(ErrorCode.NOT_A_STORE, `${path} does not begin with the compressed store's magic`, { path })
  const version = source.readUInt16LE(8)
  if (version !== FORMAT_VERSION) {
    throw new CubbyError(ErrorCode.VERSION, `${where} has format version ${version}; this build reads version ${FORMAT_VERSION}`, { path })
  }
  if (source.readUInt16LE(10) !== HEADER_BYTES) throw corrupt(`${where}: header length ${source.readUInt16LE(10)}`, { path })
  const stored = source.readUInt32LE(12)
  const computed = crcWithZeroField(source, 0, HEADER_BYTES, 12)
  if (stored !== computed) throw corrupt(`${where}: checksum mismatch (stored ${hex(stored)}, computed ${hex(computed)})`, { path })
  if (source.readUInt32LE(40) !== ENTRIES_PER_PAGE) throw corrupt(`${where}: ${source.readUInt32LE(40)} entries per map page`, { path })
  const geometry: Geometry = {
    storeId: { low: source.readUInt32LE(16), high: source.readUInt32LE(20) },
    blockCount: source.readUInt32LE(24),
    granuleBytes: source.readUInt32LE(28),
    segmentBytes: source.readUInt32LE(32),
    segmentCount: source.readUInt32LE(36),
    mapPageCount: source.readUInt32LE(44),
    checkpointOffset: readU64(source, 48, where),
    checkpointSlotBytes: source.readUInt32LE(56),
    mapOffset: readU64(source, 64, where),
    dataOffset: readU64(source, 72, where),
    createdAtMs: readU64(source, 80, where),
  }
  checkGeometry(geometry, where)
  return geometry
}

// ---------------------------------------------------------------- checkpoint

/** A checkpoint's fields besides its per-segment and per-page tables. */
export interface CheckpointFields {
  generation: number
  headSegment: number
  headOffset: number
  successorSegment: number
  lastSequence: number
  lastChunkCrc: number
  nextIncarnation: number
  mappedBlocks: number
  writerRecordBytes: number
  cleanerRecordBytes: number
}

export interface Checkpoint extends CheckpointFields {
  /** Per segment: estimated live bytes. */
  liveBytes: Uint32Array
  /** Per segment: incarnation, 0 when the segment holds no data. */
  incarnations: Uint32Array
  /** Per map page: PageState. */
  pageStates: Uint8Array
  /** Per map page: low 32 bits of the generation of the checkpoint that wrote its current copy (0: never written). */
  pageGenerations: Uint32Array
}

/**
 * A checkpoint's tables read entry by entry, so that a checkpoint can be
 * encoded a piece at a time (encodeCheckpointPiece) from state that is not
 * held as whole-volume arrays.
 */
export interface CheckpointTables {
  liveBytes(segment: number): number
  incarnation(segment: number): number
  pageState(page: number): number
  pageGeneration(page: number): number
}

/** The tables of a decoded (or fully built) checkpoint. */
export function checkpointTables(checkpoint: Checkpoint): CheckpointTables {
  return {
    liveBytes: (segment) => checkpoint.liveBytes[segment]!,
    incarnation: (segment) => checkpoint.incarnations[segment]!,
    pageState: (page) => checkpoint.pageStates[page]!,
    pageGeneration: (page) => checkpoint.pageGenerations[page]!,
  }
}

function checkpointBytesFor(segments: number, mapPages: number): number {
  return CHECKPOINT_FIXED_BYTES + SEGMENT_TABLE_ENTRY_BYTES * segments + PAGE_TABLE_ENTRY_BYTES * mapPages
}

export function checkpointBytes(geometry: Geometry): number {
  return checkpointBytesFor(geometry.segmentCount, geometry.mapPageCount)
}

/** Asserts what a checkpoint's fields must satisfy to be encoded (decodeCheckpoint refuses the rest). */
export function checkCheckpointFields(geometry: Geometry, fields: CheckpointFields): void {
  assert(fields.headSegment < geometry.segmentCount && fields.successorSegment < geometry.segmentCount)
  assert(fields.headSegment !== fields.successorSegment, 'the successor is another segment than the head')
  assert(fields.headOffset <= geometry.segmentBytes && fields.headOffset % CHUNK_ALIGNMENT_BYTES === 0)
}

function encodeCheckpointFixed(geometry: Geometry, fields: CheckpointFields, target: Buffer): void {
  checkCheckpointFields(geometry, fields)
  target.fill(0, 0, CHECKPOINT_FIXED_BYTES)
  CHECKPOINT_MAGIC.copy(target, 0)
  target.writeUInt16LE(FORMAT_VERSION, 8)
  target.writeUInt16LE(CHECKPOINT_FIXED_BYTES, 10)
  writeStoreId(target, geometry.storeId, 16)
  writeU64(target, fields.generation, 24)
  target.writeUInt32LE(checkpointBytes(geometry), 32)
  target.writeUInt32LE(fields.headSegment, 36)
  target.writeUInt32LE(fields.headOffset, 40)
  target.writeUInt32LE(fields.successorSegment, 44)
  writeU64(target, fields.lastSequence, 48)
  target.writeUInt32LE(fields.lastChunkCrc, 56)
  target.writeUInt32LE(fields.nextIncarnation, 60)
  writeU64(target, fields.mappedBlocks, 64)
  writeU64(target, fields.writerRecordBytes, 72)
  writeU64(target, fields.cleanerRecordBytes, 80)
}

/**
 * Encodes bytes [from, from + length) of a checkpoint (3.3) into
 * target[at, at + length), with the CRC field (bytes 12..15) zero and zeros
 * from totalBytes on. Pieces encoded this way, put together, are
 * encodeCheckpoint's bytes except the CRC, which is the CRC-32C of their
 * bytes [0, totalBytes): a checkpoint can be written through a buffer of
 * any size.
 */
export function encodeCheckpointPiece(
  geometry: Geometry,
  fields: CheckpointFields,
  tables: CheckpointTables,
  from: number,
  length: number,
  target: Buffer,
  at: number,
): void {
  assert(from >= 0 && length >= 0 && target.length >= at + length)
  const end = from + length
  target.fill(0, at, at + length)
  if (from < CHECKPOINT_FIXED_BYTES) {
    const fixed = Buffer.alloc(CHECKPOINT_FIXED_BYTES)
    encodeCheckpointFixed(geometry, fields, fixed)
    fixed.copy(target, at, from, Math.min(end, CHECKPOINT_FIXED_BYTES))
  }
  // A u32 at checkpoint byte `offset`, or the part of it inside [from, end) (nothing for 0: the piece is zeros already).
  const word = Buffer.alloc(4)
  const put32 = (offset: number, value: number) => {
    if (value === 0) return
    if (offset >= from && offset + 4 <= end) {
      target.writeUInt32LE(value, at + offset - from)
      return
    }
    word.writeUInt32LE(value, 0)
    for (let byte = Math.max(offset, from); byte < Math.min(offset + 4, end); byte++) target[at + byte - from] = word[byte - offset]!
  }
  // Entries of `size` bytes from checkpoint byte `start` that overlap [from, end): [first, last).
  const overlapping = (start: number, size: number, count: number) => ({
    first: Math.max(0, Math.floor((from - start) / size)),
    last: Math.min(count, Math.ceil((end - start) / size)),
  })
  const segmentsAt = CHECKPOINT_FIXED_BYTES
  const segments = overlapping(segmentsAt, SEGMENT_TABLE_ENTRY_BYTES, geometry.segmentCount)
  for (let segment = segments.first; segment < segments.last; segment++) {
    const offset = segmentsAt + SEGMENT_TABLE_ENTRY_BYTES * segment
    put32(offset, tables.liveBytes(segment))
    put32(offset + 4, tables.incarnation(segment))
  }
  const statesAt = segmentsAt + SEGMENT_TABLE_ENTRY_BYTES * geometry.segmentCount
  const states = overlapping(statesAt, 1, geometry.mapPageCount)
  for (let page = states.first; page < states.last; page++) target[at + statesAt + page - from] = tables.pageState(page)
  const generationsAt = statesAt + geometry.mapPageCount
  const generations = overlapping(generationsAt, 4, geometry.mapPageCount)
  for (let page = generations.first; page < generations.last; page++) {
    const generation = tables.pageGeneration(page)
    assert((tables.pageState(page) === PageState.NEVER_WRITTEN) === (generation === 0), 'a written page has a generation')
    put32(generationsAt + 4 * page, generation)
  }
}

export function encodeCheckpoint(geometry: Geometry, checkpoint: Checkpoint, target: Buffer): number {
  const total = checkpointBytes(geometry)
  assert(target.length >= total && total <= geometry.checkpointSlotBytes)
  assert(checkpoint.liveBytes.length === geometry.segmentCount && checkpoint.pageStates.length === geometry.mapPageCount)
  assert(checkpoint.incarnations.length === geometry.segmentCount && checkpoint.pageGenerations.length === geometry.mapPageCount)
  encodeCheckpointPiece(geometry, checkpoint, checkpointTables(checkpoint), 0, total, target, 0)
  target.writeUInt32LE(crcWithZeroField(target, 0, total, 12), 12)
  return total
}

/**
 * Decodes checkpoint slot `slot`. Returns undefined when the slot holds no
 * valid checkpoint of this store (never written, torn, or another store's):
 * the caller decides whether that is corruption.
 */
export function decodeCheckpoint(geometry: Geometry, source: Buffer): Checkpoint | undefined {
  const total = checkpointBytes(geometry)
  if (source.length < total || !hasMagic(source, 0, CHECKPOINT_MAGIC)) return undefined
  if (source.readUInt16LE(8) !== FORMAT_VERSION || source.readUInt16LE(10) !== CHECKPOINT_FIXED_BYTES) return undefined
  if (source.readUInt32LE(32) !== total || !sameStoreId(source, geometry.storeId, 16)) return undefined
  if (source.readUInt32LE(12) !== crcWithZeroField(source, 0, total, 12)) return undefined
  const where = 'checkpoint'
  const checkpoint: Checkpoint = {
    generation: readU64(source, 24, where),
    headSegment: source.readUInt32LE(36),
    headOffset: source.readUInt32LE(40),
    successorSegment: source.readUInt32LE(44),
    lastSequence: readU64(source, 48, where),
    lastChunkCrc: source.readUInt32LE(56),
    nextIncarnation: source.readUInt32LE(60),
    mappedBlocks: readU64(source, 64, where),
    writerRecordBytes: readU64(source, 72, where),
    cleanerRecordBytes: readU64(source, 80, where),
    liveBytes: new Uint32Array(geometry.segmentCount),
    incarnations: new Uint32Array(geometry.segmentCount),
    pageStates: new Uint8Array(geometry.mapPageCount),
    pageGenerations: new Uint32Array(geometry.mapPageCount),
  }
  let offset = CHECKPOINT_FIXED_BYTES
  for (let segment = 0; segment < geometry.segmentCount; segment++) {
    checkpoint.liveBytes[segment] = source.readUInt32LE(offset)
    checkpoint.incarnations[segment] = source.readUInt32LE(offset + 4)
    offset += SEGMENT_TABLE_ENTRY_BYTES
  }
  checkpoint.pageStates.set(source.subarray(offset, offset + geometry.mapPageCount))
  offset += geometry.mapPageCount
  for (let page = 0; page < geometry.mapPageCount; page++, offset += 4) checkpoint.pageGenerations[page] = source.readUInt32LE(offset)
  const problems: string[] = []
  if (checkpoint.generation < 1) problems.push('generation 0')
  if (checkpoint.headSegment >= geometry.segmentCount || checkpoint.successorSegment >= geometry.segmentCount) problems.push('head segment')
  if (checkpoint.headSegment === checkpoint.successorSegment) problems.push('successor equals head')
  if (checkpoint.headOffset > geometry.segmentBytes || checkpoint.headOffset % CHUNK_ALIGNMENT_BYTES !== 0) problems.push('head offset')
  if (checkpoint.mappedBlocks > geometry.blockCount) problems.push('blocks in use')
  for (const state of checkpoint.pageStates) if (state > PageState.COPY_1) problems.push(`page state ${state}`)
  checkpoint.pageStates.forEach((state, page) => {
    if ((state === PageState.NEVER_WRITTEN) !== (checkpoint.pageGenerations[page] === 0)) problems.push(`page ${page} has state ${state} and generation ${checkpoint.pageGenerations[page]}`)
  })
  if (problems.length > 0) throw corrupt(`checkpoint generation ${checkpoint.generation}: checksum is valid but the content is not (${problems.join(', ')})`)
  return checkpoint
}

export function checkpointSlotOffset(geometry: Geometry, generation: number): number {
  return geometry.checkpointOffset + (generation % 2) * geometry.checkpointSlotBytes
}

// ------------------------------------------------------------------ map page

export function mapPageOffset(geometry: Geometry, page: number, copy: number): number {
  return geometry.mapOffset + (2 * page + copy) * MAP_PAGE_BYTES
}

export function encodeMapPage(geometry: Geometry, page: number, generation: number, entries: Uint32Array, target: Buffer, at: number): void {
  assert(entries.length >= ENTRIES_PER_PAGE && target.length >= at + MAP_PAGE_BYTES)
  MAP_PAGE_MAGIC.copy(target, at)
  target.writeUInt16LE(FORMAT_VERSION, at + 8)
  target.writeUInt16LE(MAP_PAGE_HEADER_BYTES, at + 10)
  writeStoreId(target, geometry.storeId, at + 16)
  target.writeUInt32LE(page, at + 24)
  target.writeUInt32LE(generation % 0x1_0000_0000, at + 28)
  let offset = at + MAP_PAGE_HEADER_BYTES
  for (let index = 0; index < ENTRIES_PER_PAGE; index++, offset += 4) target.writeUInt32LE(entries[index]!, offset)
  target.writeUInt32LE(crcWithZeroField(target, at, MAP_PAGE_BYTES, at + 12), at + 12)
}

/**
 * Decodes the copy `copy` of map page `page` from source[at]. The copy must
 * have been written by the checkpoint whose generation (low 32 bits) is
 * `generation`, as the committed checkpoint records: an older copy (a lost or
 * misdirected write of the page) is CUBBY_CORRUPT, never a stale map.
 */
export function decodeMapPage(geometry: Geometry, page: number, copy: number, generation: number, source: Buffer, at: number, entries: Uint32Array): void {
  const where = `map page ${page} copy ${copy} (volume byte ${mapPageOffset(geometry, page, copy)})`
  if (!hasMagic(source, at, MAP_PAGE_MAGIC)) throw corrupt(`${where}: bad magic`)
  if (source.readUInt16LE(at + 8) !== FORMAT_VERSION || source.readUInt16LE(at + 10) !== MAP_PAGE_HEADER_BYTES) throw corrupt(`${where}: bad version`)
  const stored = source.readUInt32LE(at + 12)
  const computed = crcWithZeroField(source, at, MAP_PAGE_BYTES, at + 12)
  if (stored !== computed) throw corrupt(`${where}: checksum mismatch (stored ${hex(stored)}, computed ${hex(computed)})`)
  if (!sameStoreId(source, geometry.storeId, at + 16)) throw corrupt(`${where}: belongs to another store`)
  if (source.readUInt32LE(at + 24) !== page) throw corrupt(`${where}: holds page ${source.readUInt32LE(at + 24)}`)
  if (source.readUInt32LE(at + 28) !== generation) {
    throw corrupt(`${where}: was written by checkpoint generation ${source.readUInt32LE(at + 28)}, not ${generation} as the checkpoint records (a stale or misdirected copy)`)
  }
  const limit = geometry.segmentCount * geometry.segmentBytes
  let offset = at + MAP_PAGE_HEADER_BYTES
  for (let index = 0; index < ENTRIES_PER_PAGE; index++, offset += 4) {
    const entry = source.readUInt32LE(offset)
    if (entry !== 0 && (entrySpan(entry) === 0 || entryAddress(entry, geometry.granuleBytes) >= limit)) {
      throw corrupt(`${where}: entry ${index} (${hex(entry)}) points outside the data area`)
    }
    entries[index] = entry
  }
}

// ------------------------------------------------------------------ map entry

/** Packs a record's physical address (bytes from dataOffset) and length into a map entry. */
export function makeEntry(address: number, recordBytes: number, granuleBytes: number): number {
  assert(address % granuleBytes === 0 && recordBytes >= RECORD_HEADER_BYTES && recordBytes <= RECORD_MAX_BYTES)
  const firstUnit = Math.floor(address / SPAN_UNIT_BYTES)
  const span = Math.ceil((address + recordBytes) / SPAN_UNIT_BYTES) - firstUnit
  const granules = address / granuleBytes
  assert(granules < 2 ** ADDRESS_BITS && span >= 1 && span < 2 ** SPAN_BITS)
  return (granules * 2 ** SPAN_BITS + span) >>> 0
}

export function entryAddress(entry: number, granuleBytes: number): number {
  return (entry >>> SPAN_BITS) * granuleBytes
}

export function entrySpan(entry: number): number {
  return entry & (2 ** SPAN_BITS - 1)
}

/** The live-bytes estimate of a record from its entry alone (docs/format.md 3.3). */
export function entryLiveBytes(entry: number): number {
  return entrySpan(entry) * SPAN_UNIT_BYTES - SPAN_UNIT_BYTES / 2
}

// --------------------------------------------------------------------- chunk

export interface ChunkHeader {
  sequence: number
  chain: number
  segment: number
  incarnation: number
  offset: number
  chunkBytes: number
  recordBytes: number
  dataCrc: number
  successor: number
  flushedThrough: number
  epoch: number
  generation: number
}

/** Bytes from a chunk's start to its first record. */
export function chunkRecordStart(granuleBytes: number): number {
  return Math.max(CHUNK_HEADER_BYTES, granuleBytes)
}

/** Writes the header of a sealed chunk and returns its header CRC (the next chunk's chain value). */
export function encodeChunkHeader(geometry: Geometry, header: ChunkHeader, target: Buffer, at: number): number {
  assert(header.chunkBytes % CHUNK_ALIGNMENT_BYTES === 0 && header.offset % CHUNK_ALIGNMENT_BYTES === 0)
  assert(header.offset + header.chunkBytes <= geometry.segmentBytes)
  assert(chunkRecordStart(geometry.granuleBytes) + header.recordBytes <= header.chunkBytes)
  assert(header.sequence >= 1 && header.segment < geometry.segmentCount && header.successor < geometry.segmentCount)
  target.fill(0, at, at + CHUNK_HEADER_BYTES)
  CHUNK_MAGIC.copy(target, at)
  target.writeUInt16LE(FORMAT_VERSION, at + 8)
  target.writeUInt16LE(CHUNK_HEADER_BYTES, at + 10)
  writeStoreId(target, geometry.storeId, at + 16)
  writeU64(target, header.sequence, at + 24)
  target.writeUInt32LE(header.chain, at + 32)
  target.writeUInt32LE(header.segment, at + 36)
  target.writeUInt32LE(header.incarnation, at + 40)
  target.writeUInt32LE(header.offset, at + 44)
  target.writeUInt32LE(header.chunkBytes, at + 48)
  target.writeUInt32LE(header.recordBytes, at + 52)
  target.writeUInt32LE(header.dataCrc, at + 56)
  target.writeUInt32LE(header.successor, at + 60)
  writeU64(target, header.flushedThrough, at + 64)
  writeU64(target, header.epoch, at + 72)
  writeU64(target, header.generation, at + 80)
  const crc = crcWithZeroField(target, at, CHUNK_HEADER_BYTES, at + 12)
  target.writeUInt32LE(crc, at + 12)
  return crc
}

/**
 * Reads the chunk header at source[at]. Returns undefined if there is none
 * of this store (wrong magic, version, store id, header CRC or impossible
 * fields): at the end of the log that is a torn or never-written chunk.
 */
export function decodeChunkHeader(geometry: Geometry, source: Buffer, at: number): (ChunkHeader & { headerCrc: number }) | undefined {
  if (at + CHUNK_HEADER_BYTES > source.length || !hasMagic(source, at, CHUNK_MAGIC)) return undefined
  if (source.readUInt16LE(at + 8) !== FORMAT_VERSION || source.readUInt16LE(at + 10) !== CHUNK_HEADER_BYTES) return undefined
  if (!sameStoreId(source, geometry.storeId, at + 16)) return undefined
  const headerCrc = source.readUInt32LE(at + 12)
  if (headerCrc !== crcWithZeroField(source, at, CHUNK_HEADER_BYTES, at + 12)) return undefined
  if (source.readUInt32LE(at + 28) >= 0x20_0000 || source.readUInt32LE(at + 68) >= 0x20_0000) return undefined
  if (source.readUInt32LE(at + 76) >= 0x20_0000 || source.readUInt32LE(at + 84) >= 0x20_0000) return undefined
  const header = {
    headerCrc,
    sequence: readU64(source, at + 24, 'chunk'),
    chain: source.readUInt32LE(at + 32),
    segment: source.readUInt32LE(at + 36),
    incarnation: source.readUInt32LE(at + 40),
    offset: source.readUInt32LE(at + 44),
    chunkBytes: source.readUInt32LE(at + 48),
    recordBytes: source.readUInt32LE(at + 52),
    dataCrc: source.readUInt32LE(at + 56),
    successor: source.readUInt32LE(at + 60),
    flushedThrough: readU64(source, at + 64, 'chunk'),
    epoch: readU64(source, at + 72, 'chunk'),
    generation: readU64(source, at + 80, 'chunk'),
  }
  const sane =
    header.sequence >= 1 &&
    header.segment < geometry.segmentCount &&
    header.successor < geometry.segmentCount &&
    header.chunkBytes >= CHUNK_ALIGNMENT_BYTES &&
    header.chunkBytes % CHUNK_ALIGNMENT_BYTES === 0 &&
    header.offset % CHUNK_ALIGNMENT_BYTES === 0 &&
    header.offset + header.chunkBytes <= geometry.segmentBytes &&
    chunkRecordStart(geometry.granuleBytes) + header.recordBytes <= header.chunkBytes &&
    header.recordBytes % geometry.granuleBytes === 0
  return sane ? header : undefined
}

// -------------------------------------------------------------------- record

/** Bytes a record occupies in its chunk: header and payload rounded up to the granule. */
export function recordFootprint(storedBytes: number, granuleBytes: number): number {
  return roundUp(RECORD_HEADER_BYTES + storedBytes, granuleBytes)
}

/** CRC seed of a segment incarnation: the CRC of its 4 little-endian bytes (docs/format.md 3.6). */
export function incarnationSeed(incarnation: number): number {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32LE(incarnation >>> 0, 0)
  return crc32c(bytes)
}

/**
 * Writes a record header at target[at] for a payload already at
 * target[at + 16, at + 16 + storedBytes), and its CRC.
 */
export function sealRecord(
  target: Buffer,
  at: number,
  lba: number,
  kind: RecordKindValue,
  storedBytes: number,
  word: number,
  seed: number,
): void {
  assert(storedBytes >= 0 && storedBytes <= BLOCK_SIZE && (kind !== RecordKind.TRIM || storedBytes === 0))
  target.writeUInt32LE(lba, at + 4)
  target.writeUInt16LE(storedBytes, at + 8)
  target[at + 10] = kind
  target[at + 11] = 0
  target.writeUInt32LE(word, at + 12)
  target.writeUInt32LE(crc32c(target, at + 4, at + RECORD_HEADER_BYTES + storedBytes, seed), at)
}

export interface RecordView {
  lba: number
  kind: RecordKindValue
  storedBytes: number
  /** Kinds 1 and 2: 4096; kind 3: blocks trimmed. */
  word: number
}

/**
 * Checks the record at source[at] (no further than `end`): CRC with the
 * segment's seed, kind, lengths. Returns undefined when it is not a valid
 * record; the caller says what that means where it is.
 */
export function readRecord(source: Buffer, at: number, end: number, seed: number): RecordView | undefined {
  if (at + RECORD_HEADER_BYTES > end) return undefined
  const storedBytes = source.readUInt16LE(at + 8)
  const kind = source[at + 10]!
  const word = source.readUInt32LE(at + 12)
  if (at + RECORD_HEADER_BYTES + storedBytes > end || source[at + 11] !== 0) return undefined
  if (kind === RecordKind.LZ4) {
    if (storedBytes === 0 || storedBytes >= BLOCK_SIZE || word !== BLOCK_SIZE) return undefined
  } else if (kind === RecordKind.STORED) {
    if (storedBytes !== BLOCK_SIZE || word !== BLOCK_SIZE) return undefined
  } else if (kind === RecordKind.TRIM) {
    if (storedBytes !== 0 || word === 0) return undefined
  } else {
    return undefined
  }
  if (source.readUInt32LE(at) !== crc32c(source, at + 4, at + RECORD_HEADER_BYTES + storedBytes, seed)) return undefined
  return { lba: source.readUInt32LE(at + 4), kind: kind as RecordKindValue, storedBytes, word }
}

export function hex(value: number): string {
  return `0x${(value >>> 0).toString(16).padStart(8, '0')}`
}
