/**
 * The write buffer (memtable): the newest record of each key written since
 * the buffer was started, in memory until a flush applies it to the buckets.
 *
 * The engine holds at most two: the active one, which takes new records as
 * their log frames are written, and a frozen one being flushed. Each buffer
 * knows the log range it covers, so once it is applied the checkpoint can
 * move to its end. Its byte size is an estimate of the memory it holds
 * (keys, values, and a fixed overhead per record), and the engine bounds it.
 */

import type { ExtentPointer } from './bucket'
import type { WriteRecord } from './record'

/** Estimated bytes of bookkeeping per buffered record (Map entry, record object, key string). */
export const RECORD_OVERHEAD_BYTES = 160

export function bufferedBytes(record: WriteRecord): number {
  return RECORD_OVERHEAD_BYTES + 2 * record.key.length + (record.value?.length ?? 0)
}

export class WriteBuffer {
  readonly records = new Map<string, WriteRecord>()
  bytes = 0
  /** Log position (virtual block) and sequence just after the last frame in this buffer. */
  walEnd = -1
  walEndSequence = -1
  /** LSN of the last record in this buffer. */
  lastLsn = 0
  /** Extents of records superseded inside this buffer: free once its checkpoint passes. */
  readonly supersededExtents: ExtentPointer[] = []

  get size(): number {
    return this.records.size
  }

  /** Adds `record`, replacing an older record of the same key. */
  add(record: WriteRecord): void {
    const previous = this.records.get(record.mapKey)
    if (previous !== undefined) {
      this.bytes -= bufferedBytes(previous)
      if (previous.extent !== undefined) this.supersededExtents.push(previous.extent)
    }
    this.records.set(record.mapKey, record)
    this.bytes += bufferedBytes(record)
    if (record.lsn > this.lastLsn) this.lastLsn = record.lsn
  }

  get(mapKey: string): WriteRecord | undefined {
    return this.records.get(mapKey)
  }
}
