/**
 * Compression of one 4 KiB block, and the LZ4 block decoder of the read path.
 *
 * Compression uses lz4-napi (`compressSync`: lz4_flex's block format with a
 * 4-byte little-endian size prefix, which the record header carries instead;
 * see docs/format.md 3.6). It allocates one Buffer per call and costs about
 * 12 µs for a half-random bucket: acceptable on the write path, which the
 * engine batches.
 *
 * Decompression does not use lz4-napi: `uncompressSync` allocates a new
 * Buffer per call and costs ~4.4 µs per bucket, most of it allocation and
 * the copy out. `decodeLz4Block` decodes straight into the caller's buffer
 * with no allocation, in the native shim (native/lz4.h): ~0.4 µs for a
 * half-full bucket, where the JavaScript decoder it replaced took ~2 µs. It checks every bound, so a
 * malformed payload yields -1, never a read or write outside its ranges.
 * Payloads reach it only after their record CRC was verified.
 *
 * Who calls this: CompressedBlockDevice (write and read paths) and the tests.
 */

import { compressSync } from 'lz4-napi'
import { binding } from '../../native'
import { BLOCK_SIZE } from '../types'
import { RecordKind } from './format'

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE)

/** True when block[at, at + 4096) is all zeros. */
export function isZeroBlock(block: Buffer, at: number): boolean {
  return block.compare(ZERO_BLOCK, 0, BLOCK_SIZE, at, at + BLOCK_SIZE) === 0
}

export interface CompressedBlock {
  kind: typeof RecordKind.LZ4 | typeof RecordKind.STORED
  /** The bytes to store: an LZ4 block-format payload, or the block itself. */
  payload: Buffer
}

/** Compresses block[at, at + 4096); a block that does not shrink is stored as is. */
export function compressBlock(block: Buffer, at: number): CompressedBlock {
  const view = block.subarray(at, at + BLOCK_SIZE)
  const framed = compressSync(view)
  const payloadBytes = framed.length - 4
  if (payloadBytes >= BLOCK_SIZE) return { kind: RecordKind.STORED, payload: view }
  return { kind: RecordKind.LZ4, payload: framed.subarray(4) }
}

/**
 * Decodes the LZ4 block source[start, end) into target[targetStart, targetEnd).
 * Returns the bytes written, or -1 if the payload is malformed or does not
 * fit. No allocation; every read and write is bounds-checked (native/lz4.h).
 */
export function decodeLz4Block(source: Buffer, start: number, end: number, target: Buffer, targetStart: number, targetEnd: number): number {
  return binding.lz4Decode(source, start, end, target, targetStart, targetEnd)
}
