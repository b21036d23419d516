/**
 * The write-ahead log: frames in a ring of W blocks (docs/format.md 2.4).
 *
 * Positions are kept as *virtual* block numbers that only grow; the ring
 * index is virtual mod W. Blocks in [checkpoint, head) hold frames whose
 * records are not yet all in the buckets and must not be overwritten; a frame
 * is placed at the head, or at the next multiple of W when it would run past
 * the end of the ring (frames never wrap).
 *
 * This module encodes and decodes frames and tracks space; the engine's
 * committer decides what goes into a frame and when to sync. One frame is in
 * flight at a time (the committer guarantees it).
 */

import assert from 'node:assert/strict'
import { corrupt } from '../errors'
import type { BlockDevice, BlockRequest } from '../device/types'
import { crc32c } from '../util/crc32c'
import {
  BLOCK_SIZE,
  FORMAT_VERSION,
  FRAME,
  HEADER,
  MAX_FRAME_BLOCKS,
  RECORD_DELETE,
  RECORD_HEADER_BYTES,
  RECORD_PUT_EXTENT,
  RECORD_PUT_INLINE,
  hasMagic,
  readU64,
  writeMagic,
  writeU64,
} from './format'
import type { WriteRecord } from './record'

/** Bytes `record` takes in a frame's payload. */
export function recordBytes(record: WriteRecord): number {
  if (record.deleted) return RECORD_HEADER_BYTES[RECORD_DELETE] + record.key.length
  if (record.extent !== undefined) return RECORD_HEADER_BYTES[RECORD_PUT_EXTENT] + record.key.length
  return RECORD_HEADER_BYTES[RECORD_PUT_INLINE] + record.key.length + record.value!.length
}

/** Blocks a frame with `payloadBytes` of records takes. */
export function frameBlocks(payloadBytes: number): number {
  return Math.ceil((FRAME.headerBytes + payloadBytes) / BLOCK_SIZE)
}

export interface FrameHeader {
  sequence: number
  firstLsn: number
  payloadBytes: number
  recordCount: number
}

/** A record decoded from a frame during replay. */
export interface LoggedRecord {
  type: typeof RECORD_PUT_INLINE | typeof RECORD_PUT_EXTENT | typeof RECORD_DELETE
  key: Buffer
  value: Buffer | undefined
  extentLba: number
  valueLength: number
  valueChecksum: number
  lsn: number
}

export interface WalState {
  /** Virtual block of the oldest frame still needed (the checkpoint). */
  checkpoint: number
  /** Virtual block where the next frame goes (before any wrap). */
  head: number
  /** Sequence number of the next frame. */
  nextSequence: number
  /** LSN of the next record. */
  nextLsn: number
}

export class WriteAheadLog {
  private frameBuffer: Buffer | undefined

  constructor(
    private readonly device: BlockDevice,
    private readonly walStart: number,
    readonly ringBlocks: number,
    private readonly storeId: number,
    readonly state: WalState,
  ) {}

  /** Bytes of the frame buffer (memory accounting). */
  get bufferBytes(): number {
    return this.frameBuffer?.length ?? 0
  }

  /** Blocks between the checkpoint and the head. */
  get usedBlocks(): number {
    return this.state.head - this.state.checkpoint
  }

  /** Virtual position a frame of `blocks` would take, or -1 if the ring has no room for it now. */
  placement(blocks: number): number {
    assert.ok(blocks <= MAX_FRAME_BLOCKS)
    let position = this.state.head
    const index = position % this.ringBlocks
    if (index + blocks > this.ringBlocks) position += this.ringBlocks - index
    return position + blocks - this.state.checkpoint <= this.ringBlocks ? position : -1
  }

  /**
   * Encodes `records` (LSNs assigned here, consecutive from nextLsn) into a
   * frame and writes it at `position` (from placement). Does not sync.
   * Advances the head; returns the frame's end (virtual).
   */
  async writeFrame(records: readonly WriteRecord[], payloadBytes: number, position: number): Promise<number> {
    const blocks = frameBlocks(payloadBytes)
    const buffer = this.buffer(blocks)
    const firstLsn = this.state.nextLsn
    buffer.fill(0, 0, blocks * BLOCK_SIZE)
    let at: number = FRAME.headerBytes
    for (let index = 0; index < records.length; index++) {
      const record = records[index]!
      record.lsn = firstLsn + index
      at = encodeRecord(record, buffer, at)
    }
    assert.equal(at, FRAME.headerBytes + payloadBytes)
    writeMagic(buffer, 0, 'wal')
    buffer.writeUInt16LE(FORMAT_VERSION, HEADER.version)
    writeU64(buffer, FRAME.storeId, this.storeId)
    writeU64(buffer, FRAME.sequence, this.state.nextSequence)
    writeU64(buffer, FRAME.firstLsn, firstLsn)
    buffer.writeUInt32LE(payloadBytes, FRAME.payloadBytes)
    buffer.writeUInt32LE(records.length, FRAME.recordCount)
    buffer.writeUInt32LE(crc32c(buffer, HEADER.checksumFrom, at), HEADER.checksum)
    const ringIndex = position % this.ringBlocks
    const requests: BlockRequest[] = []
    for (let block = 0; block < blocks; block++) {
      requests.push({ lba: this.walStart + ringIndex + block, buffer, bufferOffset: block * BLOCK_SIZE })
    }
    this.state.nextSequence++
    this.state.nextLsn += records.length
    this.state.head = position + blocks
    await this.device.write(requests)
    return position + blocks
  }

  /** The ring's blocks [lba, count) from the checkpoint up to virtual block `position`. */
  rangesBefore(position: number): Array<[number, number]> {
    assert.ok(position >= this.state.checkpoint && position <= this.state.head)
    const ranges: Array<[number, number]> = []
    let from = this.state.checkpoint
    while (from < position) {
      const index = from % this.ringBlocks
      const count = Math.min(this.ringBlocks - index, position - from)
      ranges.push([this.walStart + index, count])
      from += count
    }
    return ranges
  }

  /** Moves the checkpoint to virtual block `position`: the space before it may be written again. */
  advanceCheckpoint(position: number): void {
    assert.ok(position >= this.state.checkpoint && position <= this.state.head)
    this.state.checkpoint = position
  }

  private buffer(blocks: number): Buffer {
    if (this.frameBuffer === undefined || this.frameBuffer.length < blocks * BLOCK_SIZE) {
      let size = 1
      while (size < blocks) size *= 2
      this.frameBuffer = this.device.allocate(Math.min(size, MAX_FRAME_BLOCKS))
    }
    return this.frameBuffer
  }
}

function encodeRecord(record: WriteRecord, buffer: Buffer, at: number): number {
  const keyLength = record.key.length
  if (record.deleted) {
    buffer[at] = RECORD_DELETE
    buffer.writeUInt16LE(keyLength, at + 1)
    record.key.copy(buffer, at + 3)
    return at + 3 + keyLength
  }
  if (record.extent !== undefined) {
    buffer[at] = RECORD_PUT_EXTENT
    buffer.writeUInt16LE(keyLength, at + 1)
    writeU64(buffer, at + 3, record.extent.lba)
    buffer.writeUInt32LE(record.extent.length, at + 11)
    buffer.writeUInt32LE(record.extent.checksum, at + 15)
    record.key.copy(buffer, at + 19)
    return at + 19 + keyLength
  }
  const value = record.value!
  buffer[at] = RECORD_PUT_INLINE
  buffer.writeUInt16LE(keyLength, at + 1)
  buffer.writeUInt32LE(value.length, at + 3)
  record.key.copy(buffer, at + 7)
  value.copy(buffer, at + 7 + keyLength)
  return at + 7 + keyLength + value.length
}

/**
 * Checks the frame header in block[offset, +4096): magic, version, store id
 * and sequence. Returns the header, or undefined if this is not the expected
 * frame (the log may end here). The checksum needs the whole frame: see
 * `verifyFrame`.
 */
export function readFrameHeader(block: Buffer, offset: number, storeId: number, sequence: number): FrameHeader | undefined {
  if (!hasMagic(block, offset, 'wal')) return undefined
  if (block.readUInt16LE(offset + HEADER.version) !== FORMAT_VERSION) return undefined
  if (readU64(block, offset + FRAME.storeId) !== storeId) return undefined
  if (readU64(block, offset + FRAME.sequence) !== sequence) return undefined
  const payloadBytes = block.readUInt32LE(offset + FRAME.payloadBytes)
  if (frameBlocks(payloadBytes) > MAX_FRAME_BLOCKS) return undefined
  return {
    sequence,
    firstLsn: readU64(block, offset + FRAME.firstLsn),
    payloadBytes,
    recordCount: block.readUInt32LE(offset + FRAME.recordCount),
  }
}

/** Whether the whole frame in frame[0, blocks·4096) passes its checksum. */
export function verifyFrame(frame: Buffer, header: FrameHeader): boolean {
  const end = FRAME.headerBytes + header.payloadBytes
  return frame.readUInt32LE(HEADER.checksum) === crc32c(frame, HEADER.checksumFrom, end)
}

/**
 * Decodes the records of a verified frame. A frame that passed its checksum
 * but does not parse was written by a bug or a collision: CUBBY_CORRUPT.
 */
export function decodeFrameRecords(frame: Buffer, header: FrameHeader, where: string): LoggedRecord[] {
  const out: LoggedRecord[] = []
  const end = FRAME.headerBytes + header.payloadBytes
  let at: number = FRAME.headerBytes
  for (let index = 0; index < header.recordCount; index++) {
    const fail = (): never => {
      throw corrupt(`log frame ${header.sequence} at ${where}: record ${index} does not parse`)
    }
    if (at + 3 > end) fail()
    const type = frame[at]!
    const keyLength = frame.readUInt16LE(at + 1)
    if (keyLength === 0 || keyLength > 1024) fail()
    const lsn = header.firstLsn + index
    if (type === RECORD_DELETE) {
      if (at + 3 + keyLength > end) fail()
      out.push({ type, key: Buffer.from(frame.subarray(at + 3, at + 3 + keyLength)), value: undefined, extentLba: 0, valueLength: 0, valueChecksum: 0, lsn })
      at += 3 + keyLength
    } else if (type === RECORD_PUT_EXTENT) {
      if (at + 19 + keyLength > end) fail()
      out.push({
        type,
        key: Buffer.from(frame.subarray(at + 19, at + 19 + keyLength)),
        value: undefined,
        extentLba: readU64(frame, at + 3),
        valueLength: frame.readUInt32LE(at + 11),
        valueChecksum: frame.readUInt32LE(at + 15),
        lsn,
      })
      at += 19 + keyLength
    } else if (type === RECORD_PUT_INLINE) {
      if (at + 7 > end) fail()
      const valueLength = frame.readUInt32LE(at + 3)
      if (at + 7 + keyLength + valueLength > end) fail()
      const keyAt = at + 7
      out.push({
        type,
        key: Buffer.from(frame.subarray(keyAt, keyAt + keyLength)),
        value: Buffer.from(frame.subarray(keyAt + keyLength, keyAt + keyLength + valueLength)),
        extentLba: 0,
        valueLength,
        valueChecksum: 0,
        lsn,
      })
      at = keyAt + keyLength + valueLength
    } else {
      fail()
    }
  }
  if (at !== end) throw corrupt(`log frame ${header.sequence} at ${where}: records end at ${at}, not at ${end}`)
  return out
}
