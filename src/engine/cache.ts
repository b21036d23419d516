/**
 * The bucket cache: verified block images by LBA, least recently used first
 * out, bounded by a byte budget (the `cacheSize` option) that it shares with
 * the device underneath.
 *
 * Sharing: `cacheSize` is the one budget for everything cached that scales
 * with the store — the device's own cache counted by `charged()` (the LZ4
 * layer's block-map pages, which spare a read for ~1016 buckets each) first,
 * bucket images in what is left. When the device's share grows, the bucket
 * cache evicts to make room and hands memory back (fit()), so the two
 * together stay within the budget at any store size.
 *
 * Blocks live in chunks of CHUNK_SLOTS slots (one Buffer each; the last one
 * ends at the room, so slots never outnumber what the budget allows); a Map finds
 * an LBA's slot and typed arrays chain the slots in recency order, so a full
 * cache holds no JavaScript object per block and allocates nothing: a hit
 * moves a slot to the front, a miss reuses the slot at the back. Chunks are
 * added as the cache fills; when the room shrinks, blocks beyond it move
 * down and the memory above goes, so a small store holds no large cache it
 * never fills, and a shrinking share gives memory back.
 *
 * Only verified images go in: blocks read and checked by the reader. A flush
 * step replaces the image of a cached block it rewrote, but does not insert
 * the ones it wrote (a sweep over the store would flush out what reads use:
 * tried, and YCSB A and F got slower); a read that raced with a write is
 * never inserted.
 *
 * Invariants: slots in use are exactly the values of `slotOf`; every slot
 * below `chunks.length * CHUNK_SLOTS` not in use is on the free stack; in-use
 * slots ≤ the room from the budget after the last put or fit().
 */

import { BLOCK_SIZE } from './format'

/** Bytes of bookkeeping per slot: recency links, LBA, free stack and the Map entry. */
const SLOT_OVERHEAD_BYTES = 8 + 4 + 4 + 4 + 48
/** Slots per chunk: 128 KiB of block images, the most copied when the room changes. */
const CHUNK_SLOTS = 32
const SLOT_BYTES = BLOCK_SIZE + SLOT_OVERHEAD_BYTES

export class BlockCache {
  /** Block images; slot s is at bytes [(s mod CHUNK_SLOTS)·4096, +4096) of chunks[s / CHUNK_SLOTS]. */
  private readonly chunks: Buffer[] = []
  private readonly slotOf = new Map<number, number>()
  private lbaOf = new Float64Array(0)
  private newer = new Int32Array(0)
  private older = new Int32Array(0)
  /** Slots of the existing chunks not in use (a stack). */
  private free = new Int32Array(0)
  private freeCount = 0
  /** Slots of the existing chunks. */
  private slots = 0
  /** Most and least recently used slots; -1 when empty. */
  private newest = -1
  private oldest = -1
  hits = 0
  misses = 0
  /** Blocks evicted to make room for the device's share of the budget. */
  yielded = 0

  /**
   * @param budgetBytes the whole budget (cacheSize)
   * @param charged bytes of it the device's cache holds now; the bucket cache uses the rest
   */
  constructor(
    private readonly budgetBytes: number,
    private readonly charged: () => number = () => 0,
  ) {}

  get memoryBytes(): number {
    return this.slots * SLOT_BYTES
  }

  /** Blocks cached. */
  get size(): number {
    return this.slotOf.size
  }

  /** The chunk holding `slot`'s image; its image starts at offsetOf(slot). */
  bufferOf(slot: number): Buffer {
    return this.chunks[(slot / CHUNK_SLOTS) | 0]!
  }

  offsetOf(slot: number): number {
    return (slot % CHUNK_SLOTS) * BLOCK_SIZE
  }

  /** Slot of `lba`, or -1; a hit becomes the most recently used. */
  lookup(lba: number): number {
    const slot = this.slotOf.get(lba)
    if (slot === undefined) {
      if (this.budgetBytes > 0) this.misses++
      return -1
    }
    this.hits++
    this.unlink(slot)
    this.pushNewest(slot)
    return slot
  }

  /** Caches a copy of source[offset, offset + 4096) as `lba`, if the budget leaves room for a block. */
  put(lba: number, source: Buffer, offset: number): void {
    let slot = this.slotOf.get(lba)
    if (slot !== undefined) {
      this.unlink(slot)
    } else {
      const room = this.fit()
      if (room === 0) return
      if (this.freeCount === 0 && this.slots < room) this.growTo(room)
      if (this.freeCount > 0) {
        slot = this.free[--this.freeCount]!
      } else {
        slot = this.oldest
        this.unlink(slot)
        this.slotOf.delete(this.lbaOf[slot]!)
      }
      this.slotOf.set(lba, slot)
      this.lbaOf[slot] = lba
    }
    source.copy(this.bufferOf(slot), this.offsetOf(slot), offset, offset + BLOCK_SIZE)
    this.pushNewest(slot)
  }

  /** Replaces `lba`'s image if it is cached (a flush step rewrote it). */
  refresh(lba: number, source: Buffer, offset: number): void {
    const slot = this.slotOf.get(lba)
    if (slot !== undefined) source.copy(this.bufferOf(slot), this.offsetOf(slot), offset, offset + BLOCK_SIZE)
  }

  /**
   * Evicts down to the room the budget leaves beside the device's share and
   * gives back the memory of the slots beyond it; returns that room in
   * blocks. Called on every insertion and by the engine after work that
   * may grow the device's share (flush steps).
   */
  fit(): number {
    const room = Math.max(0, Math.floor((this.budgetBytes - this.charged()) / SLOT_BYTES))
    while (this.slotOf.size > room) this.evictOldest()
    if (this.slots > room) this.shrinkTo(room)
    return room
  }

  private evictOldest(): void {
    const slot = this.oldest
    this.unlink(slot)
    this.slotOf.delete(this.lbaOf[slot]!)
    this.free[this.freeCount++] = slot
    this.yielded++
  }

  /**
   * Keeps slots [0, target) only. The blocks in use fit there (size ≤
   * target), so each one above moves to a free slot below and keeps its
   * place in the recency order; chunks above go, a chunk cut in two is
   * reallocated at its new length.
   */
  private shrinkTo(target: number): void {
    let kept = 0
    for (let index = 0; index < this.freeCount; index++) {
      const slot = this.free[index]!
      if (slot < target) this.free[kept++] = slot
    }
    this.freeCount = kept
    for (let slot = target; slot < this.slots; slot++) {
      const lba = this.lbaOf[slot]!
      if (this.slotOf.get(lba) !== slot) continue
      const to = this.free[--this.freeCount]!
      this.bufferOf(slot).copy(this.bufferOf(to), this.offsetOf(to), this.offsetOf(slot), this.offsetOf(slot) + BLOCK_SIZE)
      this.replace(slot, to)
      this.slotOf.set(lba, to)
      this.lbaOf[to] = lba
    }
    this.chunks.length = Math.ceil(target / CHUNK_SLOTS)
    this.resizeLastChunk(target)
    this.resize(target)
  }

  /** Adds up to a chunk's worth of slots, no more than `target` in all; the new ones are free. */
  private growTo(target: number): void {
    const from = this.slots
    const end = Math.min(target, (Math.floor(from / CHUNK_SLOTS) + 1) * CHUNK_SLOTS)
    if (from % CHUNK_SLOTS === 0) this.chunks.push(Buffer.alloc(0))
    this.resizeLastChunk(end)
    this.resize(end)
    // Pushed highest first, so the lowest slot is handed out first.
    for (let slot = end - 1; slot >= from; slot--) this.free[this.freeCount++] = slot
  }

  /** Reallocates the last chunk to end at slot `end`, keeping the images it had below that. */
  private resizeLastChunk(end: number): void {
    const last = this.chunks.length - 1
    if (last < 0) return
    const bytes = (end - last * CHUNK_SLOTS) * BLOCK_SIZE
    const chunk = this.chunks[last]!
    if (chunk.length === bytes) return
    const resized = Buffer.allocUnsafeSlow(bytes)
    chunk.copy(resized, 0, 0, Math.min(bytes, chunk.length))
    this.chunks[last] = resized
  }

  /** Resizes the per-slot arrays to `slots` (links and LBAs of new slots are set when they are used). */
  private resize(slots: number): void {
    this.slots = slots
    const keep = Math.min(slots, this.lbaOf.length)
    const lbaOf = new Float64Array(slots)
    lbaOf.set(this.lbaOf.subarray(0, keep))
    this.lbaOf = lbaOf
    const newer = new Int32Array(slots)
    newer.set(this.newer.subarray(0, keep))
    this.newer = newer
    const older = new Int32Array(slots)
    older.set(this.older.subarray(0, keep))
    this.older = older
    const free = new Int32Array(slots)
    free.set(this.free.subarray(0, this.freeCount))
    this.free = free
  }

  /** Puts slot `to` where `slot` is in the recency order. */
  private replace(slot: number, to: number): void {
    const newer = this.newer[slot]!
    const older = this.older[slot]!
    this.newer[to] = newer
    this.older[to] = older
    if (newer >= 0) this.older[newer] = to
    else this.newest = to
    if (older >= 0) this.newer[older] = to
    else this.oldest = to
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
