/**
 * CRC-32C (Castagnoli) of a byte range: the checksum of every CubbyDB block
 * and record. Computed natively (SSE4.2 where present), because a table-driven
 * JavaScript loop costs about 10 µs per 4 KiB block, which is the whole CPU
 * budget of a GET.
 *
 * crc32c(Buffer.from('123456789')) === 0xe3069283.
 */

import { binding } from '../native'

/** CRC-32C of data[start, end), continuing from `seed` (the CRC of the bytes before). */
export function crc32c(data: Uint8Array, start = 0, end = data.length, seed = 0): number {
  return binding.crc32c(data, start, end, seed)
}
