/**
 * The dump format (docs/format.md, section 4): a store's pairs as a stream
 * of checksummed frames, for backups and for moving a store between devices
 * or compression modes. Every constant and codec of the format lives here.
 *
 *   file header (64 bytes) | pairs frame | pairs frame | … | end frame
 *
 * A frame is a 32-byte header and a payload. Pairs frames hold up to about
 * FRAME_TARGET_BYTES of pairs (a larger pair travels alone), so a writer or
 * reader holds one frame at a time: memory does not grow with the store. The
 * end frame carries the totals, so a truncated dump is told from a complete
 * one. Values marked *on disk* never change meaning in version 1.
 *
 * Used by ./export.ts and ./import.ts; nothing here does I/O.
 */

import { CubbyError, ErrorCode, corrupt } from '../errors'
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../engine/format'
import { crc32c } from '../util/crc32c'

/** Format version of a dump (on disk). */
export const DUMP_VERSION = 1
/** Magic at byte 0 of a dump (on disk). */
export const DUMP_MAGIC = 'CUBBYDMP'
/** Magic of a pairs frame and of the end frame (on disk). */
export const PAIRS_MAGIC = 'CUBBYPRS'
export const END_MAGIC = 'CUBBYEND'

/** Bytes of the file header (on disk). */
export const DUMP_HEADER_BYTES = 64
/** Bytes of a frame header (on disk). */
export const FRAME_HEADER_BYTES = 32
/** Bytes of a pair's own header: u16 key length, u32 value length (on disk). */
export const PAIR_HEADER_BYTES = 6
/** Bytes of the end frame's payload: pairs, key bytes, value bytes (u64 each; on disk). */
export const END_PAYLOAD_BYTES = 24
/** A writer closes a pairs frame once its payload reaches this many bytes. */
export const FRAME_TARGET_BYTES = 1024 * 1024
/** Largest payload a reader accepts: one pair of the largest key and value. */
export const MAX_FRAME_PAYLOAD_BYTES = PAIR_HEADER_BYTES + MAX_KEY_BYTES + MAX_VALUE_BYTES

/** Source compression byte of the file header (informational). */
export const SOURCE_MODE = { unknown: 0, none: 1, lz4: 2 } as const
export type SourceMode = keyof typeof SOURCE_MODE

/** File header fields (docs/format.md 4.1). */
const HEADER = {
  magic: 0,
  version: 8,
  headerBytes: 10,
  checksum: 12,
  pairsExpected: 16,
  createdMs: 24,
  sourceMode: 32,
} as const

/** Frame header fields (docs/format.md 4.2). */
const FRAME = {
  magic: 0,
  checksum: 8,
  sequence: 12,
  payloadBytes: 16,
  pairCount: 20,
  payloadChecksum: 24,
} as const

/** The file header of a dump (docs/format.md 4.1). */
export interface DumpHeader {
  /** Format version of the dump (1). */
  version: number
  /** Keys the source store held when the export began (a sizing hint; 0 when unknown). */
  pairsExpected: number
  /** When the export began, ms since 1970. */
  createdMs: number
  /** Compression of the store the dump came from (informational). */
  sourceMode: SourceMode
}

/** Pairs in a dump and the bytes of their keys and values. */
export interface DumpTotals {
  /** Pairs (keys with their values). */
  pairs: number
  /** Bytes of all keys. */
  keyBytes: number
  /** Bytes of all values. */
  valueBytes: number
}

export interface FrameHeader {
  kind: 'pairs' | 'end'
  sequence: number
  payloadBytes: number
  pairCount: number
  payloadChecksum: number
}

function writeU64(buffer: Buffer, offset: number, value: number): void {
  buffer.writeBigUInt64LE(BigInt(value), offset)
}

function readU64(buffer: Buffer, offset: number): number {
  const value = buffer.readBigUInt64LE(offset)
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`dump field at byte ${offset} holds ${value}, beyond any count a store has`)
  return Number(value)
}

const ZERO_FIELD = Buffer.alloc(4)

/** CRC-32C of `buffer[0, bytes)` with the 4-byte checksum field at `checksumAt` read as zero. */
function checksumWithout(buffer: Buffer, bytes: number, checksumAt: number): number {
  const head = crc32c(buffer, 0, checksumAt)
  const zero = crc32c(ZERO_FIELD, 0, 4, head)
  return crc32c(buffer, checksumAt + 4, bytes, zero)
}

export function encodeDumpHeader(header: Omit<DumpHeader, 'version'>): Buffer {
  const buffer = Buffer.alloc(DUMP_HEADER_BYTES)
  buffer.write(DUMP_MAGIC, HEADER.magic, 'latin1')
  buffer.writeUInt16LE(DUMP_VERSION, HEADER.version)
  buffer.writeUInt16LE(DUMP_HEADER_BYTES, HEADER.headerBytes)
  writeU64(buffer, HEADER.pairsExpected, header.pairsExpected)
  writeU64(buffer, HEADER.createdMs, header.createdMs)
  buffer.writeUInt8(SOURCE_MODE[header.sourceMode], HEADER.sourceMode)
  buffer.writeUInt32LE(checksumWithout(buffer, DUMP_HEADER_BYTES, HEADER.checksum), HEADER.checksum)
  return buffer
}

/** Decodes the file header; `bytes` may be short (a truncated or foreign input). */
export function decodeDumpHeader(bytes: Buffer): DumpHeader {
  if (bytes.length < 8 || bytes.toString('latin1', 0, 8) !== DUMP_MAGIC) {
    throw new CubbyError(ErrorCode.NOT_A_STORE, 'the input is not a CubbyDB dump (no CUBBYDMP magic at byte 0)')
  }
  if (bytes.length < DUMP_HEADER_BYTES) throw corrupt(`the dump ends inside its header (${bytes.length} of ${DUMP_HEADER_BYTES} bytes)`)
  const version = bytes.readUInt16LE(HEADER.version)
  if (version !== DUMP_VERSION) throw new CubbyError(ErrorCode.VERSION, `the dump has format version ${version}; this build reads version ${DUMP_VERSION}`)
  if (bytes.readUInt16LE(HEADER.headerBytes) !== DUMP_HEADER_BYTES) throw corrupt(`the dump header claims ${bytes.readUInt16LE(HEADER.headerBytes)} bytes, not ${DUMP_HEADER_BYTES}`)
  if (bytes.readUInt32LE(HEADER.checksum) !== checksumWithout(bytes, DUMP_HEADER_BYTES, HEADER.checksum)) throw corrupt('the dump header fails its checksum')
  const mode = bytes.readUInt8(HEADER.sourceMode)
  const sourceMode = (Object.keys(SOURCE_MODE) as SourceMode[]).find((name) => SOURCE_MODE[name] === mode)
  if (sourceMode === undefined) throw corrupt(`the dump header names source compression ${mode}, which no version-1 writer records`)
  return {
    version,
    pairsExpected: readU64(bytes, HEADER.pairsExpected),
    createdMs: readU64(bytes, HEADER.createdMs),
    sourceMode,
  }
}

/** Fills the frame header at buffer[0, 32) for a payload already at buffer[32, 32 + payloadBytes). */
export function sealFrame(buffer: Buffer, kind: 'pairs' | 'end', sequence: number, payloadBytes: number, pairCount: number): void {
  buffer.write(kind === 'pairs' ? PAIRS_MAGIC : END_MAGIC, FRAME.magic, 'latin1')
  buffer.writeUInt32LE(0, FRAME.checksum)
  buffer.writeUInt32LE(sequence, FRAME.sequence)
  buffer.writeUInt32LE(payloadBytes, FRAME.payloadBytes)
  buffer.writeUInt32LE(pairCount, FRAME.pairCount)
  buffer.writeUInt32LE(crc32c(buffer, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + payloadBytes), FRAME.payloadChecksum)
  buffer.writeUInt32LE(0, 28)
  buffer.writeUInt32LE(checksumWithout(buffer, FRAME_HEADER_BYTES, FRAME.checksum), FRAME.checksum)
}

/** Decodes and checks a frame header; `expectedSequence` is the frame's place in the dump. */
export function decodeFrameHeader(bytes: Buffer, expectedSequence: number, offset: number): FrameHeader {
  const where = `frame ${expectedSequence} (byte ${offset} of the dump)`
  const magic = bytes.toString('latin1', FRAME.magic, FRAME.magic + 8)
  if (magic !== PAIRS_MAGIC && magic !== END_MAGIC) throw corrupt(`${where} has no frame magic`)
  if (bytes.readUInt32LE(FRAME.checksum) !== checksumWithout(bytes, FRAME_HEADER_BYTES, FRAME.checksum)) throw corrupt(`${where}: the frame header fails its checksum`)
  const sequence = bytes.readUInt32LE(FRAME.sequence)
  if (sequence !== expectedSequence) throw corrupt(`${where} carries sequence ${sequence}: frames are missing or out of order`)
  const kind = magic === PAIRS_MAGIC ? 'pairs' : 'end'
  const payloadBytes = bytes.readUInt32LE(FRAME.payloadBytes)
  const pairCount = bytes.readUInt32LE(FRAME.pairCount)
  if (kind === 'end' && (payloadBytes !== END_PAYLOAD_BYTES || pairCount !== 0)) throw corrupt(`${where}: an end frame holds ${END_PAYLOAD_BYTES} bytes and no pairs`)
  if (kind === 'pairs' && (payloadBytes > MAX_FRAME_PAYLOAD_BYTES || pairCount === 0 || pairCount * PAIR_HEADER_BYTES > payloadBytes)) {
    throw corrupt(`${where}: ${pairCount} pairs in ${payloadBytes} bytes is not a frame any writer makes`)
  }
  return { kind, sequence, payloadBytes, pairCount, payloadChecksum: bytes.readUInt32LE(FRAME.payloadChecksum) }
}

/** Verifies a payload against its frame header. */
export function checkPayload(frame: FrameHeader, payload: Buffer, offset: number): void {
  if (crc32c(payload, 0, payload.length) !== frame.payloadChecksum) throw corrupt(`frame ${frame.sequence} (byte ${offset} of the dump): the payload fails its checksum`)
}

/** Bytes a pair takes in a payload. */
export function pairBytes(keyLength: number, valueLength: number): number {
  return PAIR_HEADER_BYTES + keyLength + valueLength
}

/** Writes one pair at `offset` of `buffer`; returns the offset after it. */
export function writePair(buffer: Buffer, offset: number, key: Uint8Array, value: Uint8Array): number {
  buffer.writeUInt16LE(key.length, offset)
  buffer.writeUInt32LE(value.length, offset + 2)
  buffer.set(key, offset + PAIR_HEADER_BYTES)
  buffer.set(value, offset + PAIR_HEADER_BYTES + key.length)
  return offset + PAIR_HEADER_BYTES + key.length + value.length
}

/**
 * Calls `each(key, value)` for every pair of a verified pairs payload, with
 * views into `payload`. Lengths out of range, or pairs that do not exactly
 * fill the payload, are CUBBY_CORRUPT.
 */
export function forEachPair(frame: FrameHeader, payload: Buffer, each: (key: Buffer, value: Buffer) => void): void {
  let at = 0
  for (let index = 0; index < frame.pairCount; index++) {
    if (at + PAIR_HEADER_BYTES > payload.length) throw corrupt(`frame ${frame.sequence}: pair ${index} runs past the payload`)
    const keyLength = payload.readUInt16LE(at)
    const valueLength = payload.readUInt32LE(at + 2)
    if (keyLength === 0 || keyLength > MAX_KEY_BYTES || valueLength > MAX_VALUE_BYTES) {
      throw corrupt(`frame ${frame.sequence}: pair ${index} has a ${keyLength}-byte key and a ${valueLength}-byte value, outside what a store holds`)
    }
    const keyAt = at + PAIR_HEADER_BYTES
    const end = keyAt + keyLength + valueLength
    if (end > payload.length) throw corrupt(`frame ${frame.sequence}: pair ${index} runs past the payload`)
    each(payload.subarray(keyAt, keyAt + keyLength), payload.subarray(keyAt + keyLength, end))
    at = end
  }
  if (at !== payload.length) throw corrupt(`frame ${frame.sequence}: ${payload.length - at} bytes follow the last pair`)
}

export function encodeEndPayload(buffer: Buffer, offset: number, totals: DumpTotals): void {
  writeU64(buffer, offset, totals.pairs)
  writeU64(buffer, offset + 8, totals.keyBytes)
  writeU64(buffer, offset + 16, totals.valueBytes)
}

export function decodeEndPayload(payload: Buffer): DumpTotals {
  return { pairs: readU64(payload, 0), keyBytes: readU64(payload, 8), valueBytes: readU64(payload, 16) }
}
