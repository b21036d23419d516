/**
 * A write as the engine carries it from the API to the buckets: the same
 * record is encoded into a log frame, held in the write buffer, and applied
 * by a flush step. Keys and values here are the engine's own copies.
 */

import type { ExtentPointer } from './bucket'

export interface WriteRecord {
  key: Buffer
  bucketHash: number
  fingerprint: number
  /** Inline value of a put; undefined for a delete or a value in an extent. */
  value: Buffer | undefined
  /** Extent of a put whose value is too large to be inline. */
  extent: ExtentPointer | undefined
  /** Whether this record deletes the key. */
  deleted: boolean
  /** Log sequence number, assigned when the record is placed in a frame. */
  lsn: number
}

/** Blocks a value extent of `length` bytes takes (a zero-length value never has one). */
export function extentBlocks(length: number): number {
  return Math.max(1, Math.ceil(length / 4096))
}
