/**
 * Argument checks shared by every Volume and BlockDevice implementation, so
 * that a misaligned or out-of-range request fails the same way everywhere:
 * CUBBY_INVALID_ARGUMENT before any I/O is issued, never a silent bounce copy.
 */

import { CubbyError, ErrorCode, invalidArgument } from '../errors'
import { BLOCK_SIZE, type BlockRequest, type VolumeRequest } from './types'

function isAligned(value: number, alignment: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value % alignment === 0
}

/** Checks a Volume batch: alignment of offsets, lengths and buffer offsets, bounds of buffers and volume. */
export function checkVolumeRequests(
  requests: readonly VolumeRequest[],
  sectorSize: number,
  volumeSize: number,
  path: string,
): void {
  if (!Array.isArray(requests)) throw invalidArgument('an I/O batch must be an array of requests')
  for (let index = 0; index < requests.length; index++) {
    const request = requests[index]!
    const { offset, length, buffer, bufferOffset } = request
    if (!Buffer.isBuffer(buffer)) throw invalidArgument(`request ${index}: buffer must be a Buffer from allocate()`)
    if (!isAligned(offset, sectorSize)) {
      throw invalidArgument(`request ${index}: offset ${offset} is not a multiple of the sector size ${sectorSize} (${path})`)
    }
    if (!isAligned(length, sectorSize) || length === 0) {
      throw invalidArgument(`request ${index}: length ${length} is not a positive multiple of the sector size ${sectorSize} (${path})`)
    }
    if (!isAligned(bufferOffset, sectorSize)) {
      throw invalidArgument(`request ${index}: buffer offset ${bufferOffset} is not a multiple of the sector size ${sectorSize}`)
    }
    if (bufferOffset + length > buffer.length) {
      throw invalidArgument(`request ${index}: ${length} bytes at buffer offset ${bufferOffset} overrun a ${buffer.length}-byte buffer`)
    }
    if (offset + length > volumeSize) {
      throw new CubbyError(
        ErrorCode.INVALID_ARGUMENT,
        `request ${index}: bytes [${offset}, ${offset + length}) lie past the end of ${path} (${volumeSize} bytes)`,
        { path },
      )
    }
  }
}

/** Checks a byte range (discard): sector-aligned and inside the volume. */
export function checkByteRange(offset: number, length: number, sectorSize: number, volumeSize: number, path: string): void {
  if (!isAligned(offset, sectorSize) || !isAligned(length, sectorSize)) {
    throw invalidArgument(`range [${offset}, ${offset + length}) is not aligned to the sector size ${sectorSize} (${path})`)
  }
  if (offset + length > volumeSize) {
    throw invalidArgument(`range [${offset}, ${offset + length}) lies past the end of ${path} (${volumeSize} bytes)`)
  }
}

/** Checks a BlockDevice batch: LBAs in range, whole blocks inside their buffers. */
export function checkBlockRequests(requests: readonly BlockRequest[], blockCount: number): void {
  if (!Array.isArray(requests)) throw invalidArgument('a block batch must be an array of requests')
  for (let index = 0; index < requests.length; index++) {
    const { lba, buffer, bufferOffset } = requests[index]!
    if (!Number.isSafeInteger(lba) || lba < 0 || lba >= blockCount) {
      throw invalidArgument(`request ${index}: block ${lba} is outside the device's ${blockCount} blocks`)
    }
    if (!Buffer.isBuffer(buffer)) throw invalidArgument(`request ${index}: buffer must be a Buffer from allocate()`)
    if (!Number.isSafeInteger(bufferOffset) || bufferOffset < 0 || bufferOffset + BLOCK_SIZE > buffer.length) {
      throw invalidArgument(`request ${index}: a block at buffer offset ${bufferOffset} does not fit a ${buffer.length}-byte buffer`)
    }
  }
}

/** Checks a block range for trim. */
export function checkBlockRange(lba: number, count: number, blockCount: number): void {
  if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(count) || lba < 0 || count < 0 || lba + count > blockCount) {
    throw invalidArgument(`blocks [${lba}, ${lba + count}) are outside the device's ${blockCount} blocks`)
  }
}
