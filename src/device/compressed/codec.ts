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
 * with no allocation (~2.6 µs per bucket, 0.2 µs for a stored block). It is
 * written from the LZ4 block format description and checks every bound, so a
 * malformed payload yields -1, never a read or write outside its ranges.
 * Payloads reach it only after their record CRC was verified.
 *
 * Who calls this: CompressedBlockDevice (write and read paths) and the tests.
 */

import { compressSync } from 'lz4-napi'
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
 * fit. No allocation; every read and write is bounds-checked.
 */
export function decodeLz4Block(source: Buffer, start: number, end: number, target: Buffer, targetStart: number, targetEnd: number): number {
  let input = start
  let output = targetStart
  while (input < end) {
    const token = source[input++]!
    let literals = token >>> 4
    if (literals === 15) {
      let more: number
      do {
        if (input >= end) return -1
        more = source[input++]!
        literals += more
      } while (more === 255)
    }
    if (literals > 0) {
      if (input + literals > end || output + literals > targetEnd) return -1
      if (literals > 16) source.copy(target, output, input, input + literals)
      else for (let index = 0; index < literals; index++) target[output + index] = source[input + index]!
      input += literals
      output += literals
    }
    if (input === end) break
    if (input + 2 > end) return -1
    const distance = source[input]! | (source[input + 1]! << 8)
    input += 2
    if (distance === 0 || distance > output - targetStart) return -1
    let length = (token & 15) + 4
    if ((token & 15) === 15) {
      let more: number
      do {
        if (input >= end) return -1
        more = source[input++]!
        length += more
      } while (more === 255)
    }
    if (output + length > targetEnd) return -1
    const from = output - distance
    if (length <= 16) {
      for (let index = 0; index < length; index++) target[output + index] = target[from + index]!
      output += length
    } else if (distance === 1) {
      target.fill(target[from]!, output, output + length)
      output += length
    } else if (distance >= length) {
      target.copyWithin(output, from, from + length)
      output += length
    } else {
      // Overlapping copy: repeat the `distance`-byte pattern, doubling each pass.
      let left = length
      while (left > 0) {
        const step = Math.min(left, output - from)
        target.copyWithin(output, from, from + step)
        output += step
        left -= step
      }
    }
  }
  return output - targetStart
}
