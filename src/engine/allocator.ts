/**
 * The heap allocator: overflow blocks and value extents, over the allocation
 * bitmap (docs/format.md 2.1, 2.9).
 *
 * Heap block j (j = 0 at the top of the region) is LBA regionEnd − 1 − j. Two
 * bit sets cover every loaded bitmap chunk:
 *  - `durable`: the bits as the last flush step left them on the device (the
 *    chunk's block image, ready to journal);
 *  - `inUse`: durable, plus extents written for records not yet flushed, plus
 *    frees that may not be reused yet (their checkpoint has not passed).
 * Invariant: durable ⊆ inUse. Allocation looks only at inUse; flush steps
 * change durable (through the journal); a checkpoint releases pending frees
 * from inUse.
 *
 * Memory: two 4 KiB arrays per chunk of 32512 heap blocks (127 MiB), only for
 * chunks the heap has reached. Called by the engine (extents) and by flush
 * steps (overflow blocks, durable bits).
 */

import assert from 'node:assert/strict'
import { CubbyError, ErrorCode, corrupt } from '../errors'
import { crc32c } from '../util/crc32c'
import { BITMAP, BITMAP_BITS_PER_BLOCK, BLOCK_SIZE, FORMAT_VERSION, HEADER, hasMagic, readU64, writeMagic, writeU64 } from './format'

interface Chunk {
  /** Block image: header + durable bits at BITMAP.bitsOffset. */
  durable: Buffer
  /** Bits in use (durable ∪ pending), same layout without the header. */
  inUse: Uint8Array
  inUseCount: number
}

export interface HeapGeometry {
  regionStart: number
  regionBlocks: number
  bitmapStart: number
  bitmapBlocks: number
}

export class HeapAllocator {
  private readonly chunks: Chunk[] = []
  private readonly dirty = new Set<number>()
  /** Durable bits set, kept in step with setDurable (the superblock's heap blocks in use). */
  durableCount = 0
  /** Heap blocks [0, span) may be in use; the rest of the region is free. */
  private spanBlocks: number

  constructor(
    private readonly geometry: HeapGeometry,
    heapSpan: number,
    /** Current bucket count: the heap never reaches down into the buckets. */
    private readonly bucketCount: () => number,
  ) {
    this.spanBlocks = heapSpan
  }

  /** Bitmap chunks that must be loaded to cover `heapSpan` blocks. */
  static chunksFor(heapSpan: number): number {
    return Math.ceil(heapSpan / BITMAP_BITS_PER_BLOCK)
  }

  /** Installs chunk `index` from its on-disk block (verified here). */
  loadChunk(index: number, block: Buffer, offset: number): void {
    const lba = this.geometry.bitmapStart + index
    const image = Buffer.alloc(BLOCK_SIZE)
    block.copy(image, 0, offset, offset + BLOCK_SIZE)
    if (!hasMagic(image, 0, 'bitmap')) {
      if (!image.every((byte) => byte === 0)) throw corrupt(`bitmap block ${lba}: no bitmap magic`)
      this.initializeImage(image, lba)
    } else {
      const stored = image.readUInt32LE(HEADER.checksum)
      const computed = crc32c(image, HEADER.checksumFrom, BLOCK_SIZE)
      if (stored !== computed) throw corrupt(`bitmap block ${lba}: checksum mismatch (stored ${stored}, computed ${computed})`)
      if (image.readUInt16LE(HEADER.version) !== FORMAT_VERSION) {
        throw new CubbyError(ErrorCode.VERSION, `bitmap block ${lba} has format version ${image.readUInt16LE(HEADER.version)}`)
      }
      if (readU64(image, BITMAP.lba) !== lba) throw corrupt(`bitmap block ${lba}: written for block ${readU64(image, BITMAP.lba)} (misdirected write)`)
    }
    const inUse = new Uint8Array(BLOCK_SIZE - BITMAP.bitsOffset)
    inUse.set(image.subarray(BITMAP.bitsOffset))
    let count = 0
    for (const byte of inUse) count += popcount(byte)
    this.chunks[index] = { durable: image, inUse, inUseCount: count }
    this.durableCount += count
  }

  get heapSpan(): number {
    return this.spanBlocks
  }

  get memoryBytes(): number {
    return this.chunks.length * (2 * BLOCK_SIZE)
  }

  /** LBA of heap block j. */
  lbaOf(heapIndex: number): number {
    return this.geometry.regionStart + this.geometry.regionBlocks - 1 - heapIndex
  }

  heapIndexOf(lba: number): number {
    return this.geometry.regionStart + this.geometry.regionBlocks - 1 - lba
  }

  /** Whether [lba, lba + count) lies in the heap part of the region. */
  isHeapRange(lba: number, count: number): boolean {
    const regionEnd = this.geometry.regionStart + this.geometry.regionBlocks
    return count > 0 && lba >= this.geometry.regionStart + this.bucketCount() && lba + count <= regionEnd
  }

  /**
   * Allocates `count` contiguous free blocks, as high in the region as
   * possible; returns the lowest LBA of the run. CUBBY_FULL when no run fits
   * above the buckets.
   */
  allocate(count: number): number {
    assert.ok(count >= 1)
    const limit = this.geometry.regionBlocks - this.bucketCount()
    let runStart = 0
    let runLength = 0
    let heapIndex = 0
    while (heapIndex < limit && runLength < count) {
      const chunkIndex = Math.floor(heapIndex / BITMAP_BITS_PER_BLOCK)
      const within = heapIndex - chunkIndex * BITMAP_BITS_PER_BLOCK
      const chunk = this.chunks[chunkIndex]
      if (chunk === undefined || chunk.inUseCount === 0) {
        // A whole free chunk (or the free part of it from here).
        const free = Math.min(BITMAP_BITS_PER_BLOCK - within, limit - heapIndex)
        if (runLength === 0) runStart = heapIndex
        runLength += free
        heapIndex += free
        continue
      }
      if (chunk.inUseCount === BITMAP_BITS_PER_BLOCK) {
        runLength = 0
        heapIndex += BITMAP_BITS_PER_BLOCK - within
        continue
      }
      const byte = chunk.inUse[within >>> 3]!
      if ((within & 7) === 0 && byte === 0xff) {
        runLength = 0
        heapIndex += 8
      } else if ((within & 7) === 0 && byte === 0 && heapIndex + 8 <= limit) {
        if (runLength === 0) runStart = heapIndex
        runLength += 8
        heapIndex += 8
      } else {
        if ((byte & (1 << (within & 7))) !== 0) runLength = 0
        else {
          if (runLength === 0) runStart = heapIndex
          runLength++
        }
        heapIndex++
      }
    }
    if (runLength < count) {
      throw new CubbyError(ErrorCode.FULL, `no room for ${count} contiguous heap block${count === 1 ? '' : 's'}: the store is full`)
    }
    this.setInUse(runStart, count, true)
    return this.lbaOf(runStart + count - 1)
  }

  /**
   * Marks [lba, lba + count) in use for a replayed record that refers to an
   * extent. Blocks already in use are left so: a record applied before the
   * crash has its extent in the durable bitmap.
   */
  markInUse(lba: number, count: number): void {
    const first = this.heapIndexOf(lba + count - 1)
    for (let heapIndex = first; heapIndex < first + count; heapIndex++) {
      if (!this.inUseBit(heapIndex)) this.setInUse(heapIndex, 1, true)
    }
  }

  /**
   * Frees [lba, lba + count) for reuse: clears each block's in-use bit unless
   * the durable bitmap still holds it (then a later step frees it durably and
   * a later checkpoint releases it). Returns whether the whole range was released.
   */
  release(lba: number, count: number): boolean {
    const first = this.heapIndexOf(lba + count - 1)
    let released = true
    for (let heapIndex = first; heapIndex < first + count; heapIndex++) {
      if (this.durableBit(heapIndex)) released = false
      else this.setInUse(heapIndex, 1, false)
    }
    return released
  }

  /** Whether the durable bitmap holds none of [lba, lba + count). */
  isDurablyFree(lba: number, count: number): boolean {
    const first = this.heapIndexOf(lba + count - 1)
    for (let heapIndex = first; heapIndex < first + count; heapIndex++) if (this.durableBit(heapIndex)) return false
    return true
  }

  /** Sets or clears durable bits of [lba, lba + count) for the step being built. */
  setDurable(lba: number, count: number, used: boolean): void {
    const first = this.heapIndexOf(lba + count - 1)
    for (let heapIndex = first; heapIndex < first + count; heapIndex++) {
      const chunkIndex = Math.floor(heapIndex / BITMAP_BITS_PER_BLOCK)
      const within = heapIndex - chunkIndex * BITMAP_BITS_PER_BLOCK
      const chunk = this.chunk(chunkIndex)
      const at = BITMAP.bitsOffset + (within >>> 3)
      const mask = 1 << (within & 7)
      const wasSet = (chunk.durable[at]! & mask) !== 0
      if (used) {
        assert.ok((chunk.inUse[within >>> 3]! & mask) !== 0, `heap block ${this.lbaOf(heapIndex)} made durable without being in use`)
        assert.ok(!wasSet, `heap block ${this.lbaOf(heapIndex)} made durable twice`)
        chunk.durable[at] = chunk.durable[at]! | mask
        this.durableCount++
      } else {
        assert.ok(wasSet, `heap block ${this.lbaOf(heapIndex)} freed but not durable`)
        chunk.durable[at] = chunk.durable[at]! & ~mask
        this.durableCount--
      }
      this.dirty.add(chunkIndex)
    }
  }

  /** Whether durable bits of any chunk changed since takeDirtyImages. */
  get dirtyChunkCount(): number {
    return this.dirty.size
  }

  /** Chunk indexes [lba, lba + count) touches. */
  chunksOf(lba: number, count: number): number[] {
    const first = Math.floor(this.heapIndexOf(lba + count - 1) / BITMAP_BITS_PER_BLOCK)
    const last = Math.floor(this.heapIndexOf(lba) / BITMAP_BITS_PER_BLOCK)
    const out: number[] = []
    for (let index = first; index <= last; index++) out.push(index)
    return out
  }

  isDirty(chunkIndex: number): boolean {
    return this.dirty.has(chunkIndex)
  }

  /**
   * Seals the changed chunks' images for the step's journal and forgets that
   * they changed. Returns [LBA, image] pairs; the images are the allocator's
   * own buffers, valid until the next setDurable.
   */
  takeDirtyImages(): Array<{ lba: number; image: Buffer }> {
    const out: Array<{ lba: number; image: Buffer }> = []
    for (const chunkIndex of [...this.dirty].sort((left, right) => left - right)) {
      const chunk = this.chunks[chunkIndex]!
      chunk.durable.writeUInt32LE(crc32c(chunk.durable, HEADER.checksumFrom, BLOCK_SIZE), HEADER.checksum)
      out.push({ lba: this.geometry.bitmapStart + chunkIndex, image: chunk.durable })
    }
    this.dirty.clear()
    return out
  }

  /** Counts in-use and durable bits (tests and checks). */
  census(): { inUse: number; durable: number } {
    let inUse = 0
    let durable = 0
    for (const chunk of this.chunks) {
      if (chunk === undefined) continue
      inUse += chunk.inUseCount
      for (let index = BITMAP.bitsOffset; index < BLOCK_SIZE; index++) durable += popcount(chunk.durable[index]!)
    }
    return { inUse, durable }
  }

  private inUseBit(heapIndex: number): boolean {
    const chunkIndex = Math.floor(heapIndex / BITMAP_BITS_PER_BLOCK)
    const chunk = this.chunks[chunkIndex]
    if (chunk === undefined) return false
    const within = heapIndex - chunkIndex * BITMAP_BITS_PER_BLOCK
    return (chunk.inUse[within >>> 3]! & (1 << (within & 7))) !== 0
  }

  private durableBit(heapIndex: number): boolean {
    const chunkIndex = Math.floor(heapIndex / BITMAP_BITS_PER_BLOCK)
    const chunk = this.chunks[chunkIndex]
    if (chunk === undefined) return false
    const within = heapIndex - chunkIndex * BITMAP_BITS_PER_BLOCK
    return (chunk.durable[BITMAP.bitsOffset + (within >>> 3)]! & (1 << (within & 7))) !== 0
  }

  private setInUse(first: number, count: number, used: boolean): void {
    for (let heapIndex = first; heapIndex < first + count; heapIndex++) {
      const chunkIndex = Math.floor(heapIndex / BITMAP_BITS_PER_BLOCK)
      const within = heapIndex - chunkIndex * BITMAP_BITS_PER_BLOCK
      const chunk = this.chunk(chunkIndex)
      const mask = 1 << (within & 7)
      const byte = chunk.inUse[within >>> 3]!
      if (used) {
        assert.ok((byte & mask) === 0, `heap block ${this.lbaOf(heapIndex)} allocated twice`)
        chunk.inUse[within >>> 3] = byte | mask
        chunk.inUseCount++
      } else if ((byte & mask) !== 0) {
        chunk.inUse[within >>> 3] = byte & ~mask
        chunk.inUseCount--
      }
    }
    if (used) this.spanBlocks = Math.max(this.spanBlocks, first + count)
  }

  private chunk(chunkIndex: number): Chunk {
    assert.ok(chunkIndex < this.geometry.bitmapBlocks, `heap chunk ${chunkIndex} is past the bitmap`)
    let chunk = this.chunks[chunkIndex]
    if (chunk === undefined) {
      const image = Buffer.alloc(BLOCK_SIZE)
      this.initializeImage(image, this.geometry.bitmapStart + chunkIndex)
      chunk = { durable: image, inUse: new Uint8Array(BLOCK_SIZE - BITMAP.bitsOffset), inUseCount: 0 }
      this.chunks[chunkIndex] = chunk
    }
    return chunk
  }

  private initializeImage(image: Buffer, lba: number): void {
    writeMagic(image, 0, 'bitmap')
    image.writeUInt16LE(FORMAT_VERSION, HEADER.version)
    writeU64(image, BITMAP.lba, lba)
  }
}

function popcount(byte: number): number {
  let count = 0
  for (let value = byte; value !== 0; value &= value - 1) count++
  return count
}
