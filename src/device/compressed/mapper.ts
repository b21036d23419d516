/**
 * Mapper: the one place where a logical block's map entry changes, keeping
 * the segment table's live bytes and the count of mapped blocks in step.
 * The write path, the cleaner and log replay all go through it, so the
 * accounting a checkpoint records is the accounting replay reproduces.
 *
 * Invariant: for every segment, liveBytes equals the sum of
 * entryLiveBytes(entry) over the map entries that point into it; and
 * mappedBlocks equals the number of non-zero entries.
 *
 * Callers must have the block's map page cached (BlockMap.loadAndPin).
 */

import type { BlockMap } from './block-map'
import { entryAddress, entryLiveBytes, type Geometry } from './format'
import type { SegmentTable } from './segments'

export class Mapper {
  mappedBlocks: number

  constructor(
    private readonly geometry: Geometry,
    private readonly map: BlockMap,
    private readonly segments: SegmentTable,
    mappedBlocks: number,
  ) {
    this.mappedBlocks = mappedBlocks
  }

  segmentOf(entry: number): number {
    return Math.floor(entryAddress(entry, this.geometry.granuleBytes) / this.geometry.segmentBytes)
  }

  /** Points `lba` at `entry` (0: unmapped) and moves its live bytes. Returns the previous entry. */
  assign(lba: number, entry: number): number {
    const previous = this.map.set(lba, entry)
    if (previous === entry) return previous
    if (previous !== 0) this.segments.removeLive(this.segmentOf(previous), entryLiveBytes(previous))
    else this.mappedBlocks++
    if (entry !== 0) this.segments.addLive(this.segmentOf(entry), entryLiveBytes(entry))
    else this.mappedBlocks--
    return previous
  }
}
