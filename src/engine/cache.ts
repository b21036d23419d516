/**
 * The bucket cache: verified block images by LBA, least recently used first
 * out, bounded by a byte budget (the `cacheSize` option).
 *
 * All blocks live in one slab Buffer, in slots; a Map finds an LBA's slot and
 * two typed arrays chain the slots in recency order. So a full cache holds no
 * JavaScript object per block and allocates nothing: a hit moves a slot to the
 * front, a miss reuses the slot at the back. The slab grows by doubling up to
 * the budget, so a small store does not hold a large cache it never fills.
 *
 * Only verified images go in: blocks read and checked by the reader, and the
 * images a flush step writes. The engine replaces an LBA's image when a step
 * rewrites it and never inserts a read that raced with a write.
 */

import { BLOCK_SIZE } from './format'

/** Bytes of bookkeeping per slot: recency links, LBA, and the Map entry. */
const SLOT_OVERHEAD_BYTES = 8 + 8 + 48
const FIRST_SLOTS = 64

export class BlockCache {
  /** Blocks, slot i at bytes [i·4096, (i+1)·4096). */
  slab: Buffer = Buffer.alloc(0)
  private readonly slotOf = new Map<number, number>()
  private lbaOf = new Float64Array(0)
  private newer = new Int32Array(0)
  private older = new Int32Array(0)
  /** Most and least recently used slots; -1 when empty. */
  private newest = -1
  private oldest = -1
  private readonly capacitySlots: number
  hits = 0
  misses = 0

  constructor(budgetBytes: number) {
    this.capacitySlots = Math.floor(budgetBytes / (BLOCK_SIZE + SLOT_OVERHEAD_BYTES))
  }

  get memoryBytes(): number {
    return this.slab.length + this.lbaOf.length * SLOT_OVERHEAD_BYTES
  }

  /** Slot of `lba` (its image is slab[slot·4096, +4096)), or -1; a hit becomes the most recently used. */
  lookup(lba: number): number {
    if (this.capacitySlots === 0) return -1
    const slot = this.slotOf.get(lba)
    if (slot === undefined) {
      this.misses++
      return -1
    }
    this.hits++
    this.unlink(slot)
    this.pushNewest(slot)
    return slot
  }

  /** Caches a copy of source[offset, offset + 4096) as `lba`. */
  put(lba: number, source: Buffer, offset: number): void {
    if (this.capacitySlots === 0) return
    let slot = this.slotOf.get(lba)
    if (slot !== undefined) {
      this.unlink(slot)
    } else {
      const used = this.slotOf.size
      if (used < this.capacitySlots) {
        if (used === this.lbaOf.length) this.grow()
        slot = used
      } else {
        slot = this.oldest
        this.unlink(slot)
        this.slotOf.delete(this.lbaOf[slot]!)
      }
      this.slotOf.set(lba, slot)
      this.lbaOf[slot] = lba
    }
    source.copy(this.slab, slot * BLOCK_SIZE, offset, offset + BLOCK_SIZE)
    this.pushNewest(slot)
  }

  /** Replaces `lba`'s image if it is cached (a flush step rewrote it). */
  refresh(lba: number, source: Buffer, offset: number): void {
    const slot = this.slotOf.get(lba)
    if (slot !== undefined) source.copy(this.slab, slot * BLOCK_SIZE, offset, offset + BLOCK_SIZE)
  }

  private grow(): void {
    const slots = Math.min(this.capacitySlots, Math.max(FIRST_SLOTS, this.lbaOf.length * 2))
    const slab = Buffer.allocUnsafeSlow(slots * BLOCK_SIZE)
    this.slab.copy(slab)
    this.slab = slab
    const lbaOf = new Float64Array(slots)
    lbaOf.set(this.lbaOf)
    this.lbaOf = lbaOf
    const newer = new Int32Array(slots)
    newer.set(this.newer)
    this.newer = newer
    const older = new Int32Array(slots)
    older.set(this.older)
    this.older = older
  }

  private unlink(slot: number): void {
    const newer = this.newer[slot]!
    const older = this.older[slot]!
    if (newer >= 0) this.older[newer] = older
    else this.newest = older
    if (older >= 0) this.newer[older] = newer
    else this.oldest = newer
  }

  private pushNewest(slot: number): void {
    this.newer[slot] = -1
    this.older[slot] = this.newest
    if (this.newest >= 0) this.newer[this.newest] = slot
    this.newest = slot
    if (this.oldest < 0) this.oldest = slot
  }
}
