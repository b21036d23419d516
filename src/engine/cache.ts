/**
 * The bucket cache: verified block images by LBA, least recently used first
 * out, bounded by a byte budget (the `cacheSize` option). A Map keeps the
 * order: a hit moves the block to the end. Evicted buffers are reused, so a
 * full cache allocates nothing.
 *
 * Only verified images go in: blocks read and checked by the reader, and the
 * images a flush step writes. The engine invalidates or replaces an LBA when
 * a step rewrites it and never inserts a read that raced with a write.
 */

import { BLOCK_SIZE } from './format'

/** Estimated bytes of bookkeeping per cached block (Map entry and Buffer object). */
const ENTRY_OVERHEAD_BYTES = 96

export class BlockCache {
  private readonly blocks = new Map<number, Buffer>()
  private readonly spare: Buffer[] = []
  private readonly capacityBlocks: number
  hits = 0
  misses = 0

  constructor(budgetBytes: number) {
    this.capacityBlocks = Math.floor(budgetBytes / (BLOCK_SIZE + ENTRY_OVERHEAD_BYTES))
  }

  get memoryBytes(): number {
    return (this.blocks.size + this.spare.length) * (BLOCK_SIZE + ENTRY_OVERHEAD_BYTES)
  }

  get enabled(): boolean {
    return this.capacityBlocks > 0
  }

  /** The cached image of `lba`, or undefined; a hit becomes the most recently used. */
  get(lba: number): Buffer | undefined {
    if (this.capacityBlocks === 0) return undefined
    const block = this.blocks.get(lba)
    if (block === undefined) {
      this.misses++
      return undefined
    }
    this.hits++
    this.blocks.delete(lba)
    this.blocks.set(lba, block)
    return block
  }

  /** Caches a copy of source[offset, offset + 4096) as `lba`. */
  put(lba: number, source: Buffer, offset: number): void {
    if (this.capacityBlocks === 0) return
    let block = this.blocks.get(lba)
    if (block !== undefined) this.blocks.delete(lba)
    else if (this.blocks.size >= this.capacityBlocks) {
      const oldest = this.blocks.keys().next().value as number
      block = this.blocks.get(oldest)!
      this.blocks.delete(oldest)
    } else {
      block = this.spare.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE)
    }
    source.copy(block, 0, offset, offset + BLOCK_SIZE)
    this.blocks.set(lba, block)
  }

  /** Replaces `lba` if it is cached (a flush step rewrote it). */
  refresh(lba: number, source: Buffer, offset: number): void {
    const block = this.blocks.get(lba)
    if (block !== undefined) source.copy(block, 0, offset, offset + BLOCK_SIZE)
  }

  invalidate(lba: number): void {
    const block = this.blocks.get(lba)
    if (block === undefined) return
    this.blocks.delete(lba)
    this.spare.push(block)
  }

  clear(): void {
    for (const block of this.blocks.values()) this.spare.push(block)
    this.blocks.clear()
  }
}
