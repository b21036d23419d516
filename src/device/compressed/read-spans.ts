/**
 * ReadSpans: where readEach() lands the records it reads, one fixed-size
 * *span slot* per block in flight, so that each slot can be given back the
 * moment its own read is decoded (a batch-sized buffer could only be given
 * back after the slowest read of the batch).
 *
 * A slot holds the sector-aligned range a map entry's span can cover: at
 * most 15 units of 512 bytes (docs/format.md 3.4) starting anywhere in a
 * sector, rounded out to whole sectors. Slots are carved from arenas of
 * SLOTS_PER_ARENA, made on demand from the volume's aligned memory and kept:
 * their number follows the most block reads ever in flight at once, which
 * the caller bounds (the engine's reader: READ_SLOTS blocks).
 *
 * Who calls this: CompressedBlockDevice.readEach only.
 */

import assert from 'node:assert'
import type { Volume } from '../types'
import { SPAN_BITS, SPAN_UNIT_BYTES } from './format'

const SLOTS_PER_ARENA = 64
const MAX_SPAN_UNITS = 2 ** SPAN_BITS - 1

export class ReadSpans {
  /** Bytes of one slot: enough for any span, from any offset in a sector. */
  readonly slotBytes: number
  private readonly arenas: Buffer[] = []
  private readonly free: number[] = []

  constructor(private readonly volume: Volume) {
    const sector = volume.sectorSize
    assert(sector >= SPAN_UNIT_BYTES && sector % SPAN_UNIT_BYTES === 0, `sector size ${sector} is a multiple of the ${SPAN_UNIT_BYTES}-byte span unit`)
    this.slotBytes = Math.ceil((sector - SPAN_UNIT_BYTES + MAX_SPAN_UNITS * SPAN_UNIT_BYTES) / sector) * sector
  }

  memoryBytes(): number {
    return this.arenas.length * SLOTS_PER_ARENA * this.slotBytes
  }

  /** A free slot (see bufferOf / offsetOf), made if none is free. */
  take(): number {
    if (this.free.length === 0) {
      const arena = this.arenas.length
      this.arenas.push(this.volume.allocate(SLOTS_PER_ARENA * this.slotBytes))
      for (let index = SLOTS_PER_ARENA - 1; index >= 0; index--) this.free.push(arena * SLOTS_PER_ARENA + index)
    }
    return this.free.pop()!
  }

  give(slot: number): void {
    this.free.push(slot)
  }

  bufferOf(slot: number): Buffer {
    return this.arenas[Math.floor(slot / SLOTS_PER_ARENA)]!
  }

  offsetOf(slot: number): number {
    return (slot % SLOTS_PER_ARENA) * this.slotBytes
  }
}
