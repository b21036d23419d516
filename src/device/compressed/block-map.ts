/**
 * BlockMap: logical block -> map entry (docs/format.md 3.4), held as a paged
 * map with a bounded cache of pages, after dm-vdo's block-map cache.
 *
 * Each page covers 1016 consecutive LBAs in a Uint32Array (4 bytes per
 * block: no JS object per block). Pages are loaded on demand from the copy
 * the last committed checkpoint names, and evicted (CLOCK) when the cache
 * holds `budgetPages`. A page never written reads as all zeros without I/O.
 *
 * Invariants:
 *  - A dirty page (changed since the last checkpoint cut) or a page whose
 *    checkpoint write has not committed is never evicted: the only durable
 *    copy of its changes is the log plus memory.
 *  - A pinned page (a caller is between loading it and using it) is never
 *    evicted.
 *  - The cache holds at most `budgetPages` pages except when every page is
 *    dirty, pinned or in a checkpoint; then it overflows rather than
 *    deadlocks, and `overflowPages` says by how much. The device bounds the
 *    dirty count (it checkpoints at `dirtyLimit`), so the overflow is bounded.
 *
 * Memory follows use, not the logical capacity: besides the cached pages,
 * the map keeps per page a cache slot, the copy that is current (PageState)
 * and the generation that wrote it (9 bytes), but only in chunks of
 * PAGES_PER_CHUNK pages that hold a page that was ever written or is
 * cached. A missing chunk means: never written, generation 0, not cached.
 * A chunk is made when one of its pages is first cached or committed, and
 * dropped when none of its pages is written or cached any more (a page once
 * written stays written, so only chunks of pages read while never written
 * come and go). The engine's blocks in use are packed at the low end
 * (buckets) and the top (its heap) of the logical space, so the chunks are
 * few: one per 1016 MiB of logical space in use, plus one at each end.
 *
 * Who calls this: CompressedBlockDevice, the recovery, the checkpointer and
 * the cleaner. Loads run concurrently with everything; all other methods are
 * synchronous.
 */

import assert from 'node:assert'
import type { Volume } from '../types'
import { ENTRIES_PER_PAGE, MAP_PAGE_BYTES, PageState, decodeMapPage, encodeMapPage, mapPageOffset, type Geometry } from './format'

/** What lookup() returns for a block whose page is not in the cache. */
export const NOT_CACHED = -1

interface CachedPage {
  page: number
  entries: Uint32Array
  dirty: boolean
  /** Written by a checkpoint that has not committed yet. */
  inCheckpoint: boolean
  referenced: boolean
}

/** A page serialised at a checkpoint cut, waiting to be written. */
export interface StagedPage {
  page: number
  copy: number
  bufferOffset: number
  /** Low 32 bits of the generation of the checkpoint writing it. */
  generation: number
}

/** Rough bytes of a cached page besides its entries (object, typed-array header). */
const PAGE_OVERHEAD_BYTES = 160

/** Map pages per chunk of per-page state (a power of two: a chunk is 2.25 KiB and covers 1016 MiB of logical blocks). */
export const PAGES_PER_CHUNK = 256
const CHUNK_SHIFT = 8
const CHUNK_MASK = PAGES_PER_CHUNK - 1
/** Bytes of state per page in a chunk: cache slot (i32), page state (u8), generation (u32). */
export const BYTES_PER_PAGE_STATE = 9
/** Rough bytes of a chunk besides its tables: the object, its ArrayBuffer, three typed-array views and its entry in the chunk map (measured ~470 with V8). */
export const CHUNK_OVERHEAD_BYTES = 512

/** The state of PAGES_PER_CHUNK consecutive map pages (fewer in the map's last chunk), in one ArrayBuffer. */
class PageChunk {
  /** Slot of the cached page, -1 when not cached. */
  readonly slots: Int32Array
  /** Low 32 bits of the generation that wrote the current copy (0: never written). */
  readonly generations: Uint32Array
  /** Which copy is current in the last committed checkpoint (PageState). */
  readonly states: Uint8Array
  /** Pages of the chunk that are written or cached: the chunk is dropped when none is. */
  inUse = 0

  constructor(readonly length: number) {
    const bytes = new ArrayBuffer(length * BYTES_PER_PAGE_STATE)
    this.slots = new Int32Array(bytes, 0, length).fill(-1)
    this.generations = new Uint32Array(bytes, 4 * length, length)
    this.states = new Uint8Array(bytes, 8 * length, length)
  }

  get bytes(): number {
    return this.length * BYTES_PER_PAGE_STATE + CHUNK_OVERHEAD_BYTES
  }
}

/** Per page, what a checkpoint records: its PageState and generation (one entry per map page). */
export interface PageTables {
  pageStates: ArrayLike<number>
  pageGenerations: ArrayLike<number>
}

export class BlockMap {
  /** Chunk i holds pages [i * PAGES_PER_CHUNK, (i + 1) * PAGES_PER_CHUNK); absent: none of them written or cached. */
  private readonly chunks = new Map<number, PageChunk>()
  /** Bytes of the chunks, overhead included. */
  private chunkBytes = 0
  /** Pages whose state is not NEVER_WRITTEN: each has two copies' room on disk, one of them current. */
  private written = 0
  /** The chunk chunkOf() found last and its index (-1: none). */
  private lastIndex = -1
  private lastChunk: PageChunk | undefined
  private readonly slots: CachedPage[] = []
  private readonly loading = new Map<number, Promise<void>>()
  /** Pages some caller is between loading and using: never evicted. Pinned before they load, so a load cannot be undone. */
  private readonly pins = new Map<number, number>()
  private hand = 0
  private dirtyPages = 0
  private readonly loadBuffer: Buffer
  private loadBufferBusy = false
  /** Decoding target, so a corrupt page never half-overwrites a slot. */
  private readonly scratch = new Uint32Array(ENTRIES_PER_PAGE)
  /** Page loads done since open (each is one volume read). */
  pageLoads = 0

  /**
   * A map with nothing cached. `initial` (a checkpoint's page tables, one
   * entry per map page) gives the pages' states and generations; the
   * written pages' are copied, and `initial` is not kept. Without it, no
   * page has been written.
   */
  constructor(
    private readonly geometry: Geometry,
    private readonly volume: Volume,
    initial: PageTables | undefined,
    readonly budgetPages: number,
  ) {
    assert(budgetPages >= 1)
    if (initial !== undefined) {
      assert(initial.pageStates.length === geometry.mapPageCount && initial.pageGenerations.length === geometry.mapPageCount)
      for (let page = 0; page < geometry.mapPageCount; page++) {
        const state = initial.pageStates[page]!
        if (state !== PageState.NEVER_WRITTEN) this.setWritten(page, state, initial.pageGenerations[page]!)
      }
    }
    this.loadBuffer = volume.allocate(MAP_PAGE_BYTES * 16)
  }

  static pageOf(lba: number): number {
    return Math.floor(lba / ENTRIES_PER_PAGE)
  }

  get cachedPages(): number {
    return this.slots.length
  }

  get dirtyCount(): number {
    return this.dirtyPages
  }

  get overflowPages(): number {
    return Math.max(0, this.slots.length - this.budgetPages)
  }

  /** Bytes of the cached pages (what the store's cache budget is charged). */
  cachedBytes(): number {
    return this.slots.length * (MAP_PAGE_BYTES + PAGE_OVERHEAD_BYTES)
  }

  /** Pages written at least once (their state is not NEVER_WRITTEN in the last committed checkpoint). */
  get writtenPages(): number {
    return this.written
  }

  /** Chunks of per-page state held (each PAGES_PER_CHUNK pages, the last one maybe fewer). */
  get chunkCount(): number {
    return this.chunks.size
  }

  memoryBytes(): number {
    return this.cachedBytes() + this.chunkBytes + this.loadBuffer.length
  }

  /** Which copy of `page` is current in the last committed checkpoint (PageState). */
  pageState(page: number): number {
    return this.chunkOf(page)?.states[page & CHUNK_MASK] ?? PageState.NEVER_WRITTEN
  }

  /** Low 32 bits of the generation that wrote the current copy of `page` (0: never written). */
  pageGeneration(page: number): number {
    return this.chunkOf(page)?.generations[page & CHUNK_MASK] ?? 0
  }

  /** The pages that are written or cached, ascending: every other page is all zeros and never written. */
  pagesInUse(): number[] {
    const pages: number[] = []
    for (const index of [...this.chunks.keys()].sort((left, right) => left - right)) {
      const chunk = this.chunks.get(index)!
      for (let at = 0; at < chunk.length; at++) {
        if (chunk.states[at] !== PageState.NEVER_WRITTEN || chunk.slots[at]! >= 0) pages.push(index * PAGES_PER_CHUNK + at)
      }
    }
    return pages
  }

  /** The slot of cached page `page`, or -1. */
  private slotOf(page: number): number {
    return this.chunkOf(page)?.slots[page & CHUNK_MASK] ?? -1
  }

  /** The chunk of `page`, if it exists (the last one found is remembered: lookups run in LBA order mostly). */
  private chunkOf(page: number): PageChunk | undefined {
    const index = page >>> CHUNK_SHIFT
    if (index === this.lastIndex) return this.lastChunk
    const chunk = this.chunks.get(index)
    if (chunk !== undefined) {
      this.lastIndex = index
      this.lastChunk = chunk
    }
    return chunk
  }

  /** The chunk of `page`, made if it does not exist. */
  private chunkFor(page: number): PageChunk {
    assert(Number.isSafeInteger(page) && page >= 0 && page < this.geometry.mapPageCount, `map page ${page} is outside the map`)
    const index = page >>> CHUNK_SHIFT
    let chunk = this.chunks.get(index)
    if (chunk === undefined) {
      chunk = new PageChunk(Math.min(PAGES_PER_CHUNK, this.geometry.mapPageCount - index * PAGES_PER_CHUNK))
      this.chunks.set(index, chunk)
      this.chunkBytes += chunk.bytes
    }
    return chunk
  }

  /** Records that `page` is cached in `slot` (-1: no longer cached), making or dropping its chunk as needed. */
  private setSlot(page: number, slot: number): void {
    const index = page >>> CHUNK_SHIFT
    const at = page & CHUNK_MASK
    if (slot < 0) {
      const chunk = this.chunks.get(index)
      if (chunk === undefined || chunk.slots[at]! < 0) return
      chunk.slots[at] = -1
      if (chunk.states[at] === PageState.NEVER_WRITTEN && --chunk.inUse === 0) {
        this.chunks.delete(index)
        if (this.lastIndex === index) {
          this.lastIndex = -1
          this.lastChunk = undefined
        }
        this.chunkBytes -= chunk.bytes
      }
      return
    }
    const chunk = this.chunkFor(page)
    if (chunk.slots[at]! < 0 && chunk.states[at] === PageState.NEVER_WRITTEN) chunk.inUse++
    chunk.slots[at] = slot
  }

  /** Records that copy `state` of `page`, written by `generation`, is current (a page never goes back to NEVER_WRITTEN). */
  private setWritten(page: number, state: number, generation: number): void {
    assert(state === PageState.COPY_0 || state === PageState.COPY_1, `page state ${state}`)
    assert(generation !== 0, 'a written page has a generation')
    const chunk = this.chunkFor(page)
    const at = page & CHUNK_MASK
    if (chunk.states[at] === PageState.NEVER_WRITTEN) {
      if (chunk.slots[at]! < 0) chunk.inUse++
      this.written++
    }
    chunk.states[at] = state
    chunk.generations[at] = generation
  }

  /** The entry of `lba`, or NOT_CACHED when its page must be loaded first. */
  lookup(lba: number): number {
    const slot = this.slotOf(Math.floor(lba / ENTRIES_PER_PAGE))
    if (slot < 0) return NOT_CACHED
    const cached = this.slots[slot]!
    cached.referenced = true
    return cached.entries[lba % ENTRIES_PER_PAGE]!
  }

  isCached(page: number): boolean {
    return this.slotOf(page) >= 0
  }

  /** Sets the entry of `lba`, whose page must be cached; returns the previous entry. */
  set(lba: number, entry: number): number {
    const page = Math.floor(lba / ENTRIES_PER_PAGE)
    const slot = this.slotOf(page)
    assert(slot >= 0, `map page ${page} is set while not cached`)
    const cached = this.slots[slot]!
    const index = lba % ENTRIES_PER_PAGE
    const previous = cached.entries[index]!
    if (previous !== entry) {
      cached.entries[index] = entry
      if (!cached.dirty) {
        cached.dirty = true
        this.dirtyPages++
      }
    }
    cached.referenced = true
    return previous
  }

  /**
   * Pins every page in `pages` and loads those not cached (one volume batch
   * for the misses); call unpinAll(pages) afterwards, also on failure paths.
   * On a load error the pins are released and the error is thrown.
   */
  async loadAndPin(pages: readonly number[]): Promise<void> {
    const unique = [...new Set(pages)]
    for (const page of unique) this.pins.set(page, (this.pins.get(page) ?? 0) + 1)
    try {
      let missing = unique.filter((page) => !this.isCached(page))
      while (missing.length > 0) {
        const waits: Promise<void>[] = []
        const toRead: number[] = []
        for (const page of missing) {
          const pending = this.loading.get(page)
          if (pending !== undefined) waits.push(pending)
          else toRead.push(page)
        }
        if (toRead.length > 0) waits.push(this.loadPages(toRead))
        await Promise.all(waits)
        missing = missing.filter((page) => !this.isCached(page))
      }
    } catch (error) {
      this.unpinAll(unique)
      throw error
    }
  }

  unpin(page: number): void {
    const count = this.pins.get(page)
    assert(count !== undefined && count > 0, `map page ${page} unpinned more often than pinned`)
    if (count === 1) this.pins.delete(page)
    else this.pins.set(page, count - 1)
  }

  unpinAll(pages: readonly number[]): void {
    for (const page of new Set(pages)) this.unpin(page)
  }

  private evictable(cached: CachedPage): boolean {
    return !cached.dirty && !cached.inCheckpoint && !this.pins.has(cached.page)
  }

  /**
   * Reads `pages` from their current copies. Pages never written need no I/O.
   * Each page read is verified (magic, CRC, store, page index, entry range).
   */
  private loadPages(pages: number[]): Promise<void> {
    const promise = this.readPages(pages).finally(() => {
      for (const page of pages) this.loading.delete(page)
    })
    for (const page of pages) this.loading.set(page, promise)
    return promise
  }

  private async readPages(pages: number[]): Promise<void> {
    const fromDisk = pages.filter((page) => this.pageState(page) !== PageState.NEVER_WRITTEN)
    for (const page of pages) if (this.pageState(page) === PageState.NEVER_WRITTEN) this.install(page, undefined, 0)
    for (let start = 0; start < fromDisk.length; start += 16) {
      const group = fromDisk.slice(start, start + 16)
      const useShared = !this.loadBufferBusy
      const buffer = useShared ? this.loadBuffer : this.volume.allocate(MAP_PAGE_BYTES * group.length)
      if (useShared) this.loadBufferBusy = true
      try {
        await this.volume.read(
          group.map((page, index) => ({
            offset: mapPageOffset(this.geometry, page, this.pageState(page) - 1),
            length: MAP_PAGE_BYTES,
            buffer,
            bufferOffset: index * MAP_PAGE_BYTES,
          })),
        )
        group.forEach((page, index) => this.install(page, buffer, index * MAP_PAGE_BYTES))
        this.pageLoads += group.length
      } finally {
        if (useShared) this.loadBufferBusy = false
      }
    }
  }

  /** Puts page `page` in a slot: decoded from source[at] or zeros when source is undefined. */
  private install(page: number, source: Buffer | undefined, at: number): void {
    if (this.isCached(page)) return
    if (source === undefined) this.scratch.fill(0)
    else decodeMapPage(this.geometry, page, this.pageState(page) - 1, this.pageGeneration(page), source, at, this.scratch)
    const slot = this.freeSlot()
    const cached = this.slots[slot]
    if (cached === undefined) {
      this.slots[slot] = { page, entries: Uint32Array.from(this.scratch), dirty: false, inCheckpoint: false, referenced: true }
    } else {
      cached.page = page
      cached.entries.set(this.scratch)
      cached.dirty = false
      cached.inCheckpoint = false
      cached.referenced = true
    }
    this.setSlot(page, slot)
  }

  /** A slot to fill: a new one under budget, else a CLOCK victim, else (all busy) a new one over budget. */
  private freeSlot(): number {
    if (this.slots.length < this.budgetPages) return this.slots.length
    for (let step = 0; step < 2 * this.slots.length; step++) {
      const slot = this.hand
      this.hand = (this.hand + 1) % this.slots.length
      const cached = this.slots[slot]!
      if (!this.evictable(cached)) continue
      if (cached.referenced) {
        cached.referenced = false
        continue
      }
      this.setSlot(cached.page, -1)
      return slot
    }
    return this.slots.length
  }

  /** Gives back slots above the budget once their pages can be evicted. */
  shrinkToBudget(): void {
    while (this.slots.length > this.budgetPages) {
      const last = this.slots[this.slots.length - 1]!
      if (!this.evictable(last)) {
        const victim = this.slots.findIndex((cached) => this.evictable(cached))
        if (victim < 0) return
        this.setSlot(this.slots[victim]!.page, -1)
        this.slots[victim] = last
        this.setSlot(last.page, victim)
      } else {
        this.setSlot(last.page, -1)
      }
      this.slots.pop()
      this.hand = 0
    }
  }

  /**
   * The checkpoint cut: serialises every dirty page into `target` (from
   * `allocateStaging(count)`), marks them clean and in-checkpoint, and says
   * which copy each goes to.
   */
  cut(generation: number, allocateStaging: (bytes: number) => Buffer): { staged: StagedPage[]; buffer: Buffer | undefined } {
    const dirty = this.slots.filter((cached) => cached.dirty)
    if (dirty.length === 0) return { staged: [], buffer: undefined }
    const buffer = allocateStaging(dirty.length * MAP_PAGE_BYTES)
    const staged = dirty.map((cached, index) => {
      const state = this.pageState(cached.page)
      const copy = state === PageState.COPY_0 ? 1 : 0
      encodeMapPage(this.geometry, cached.page, generation, cached.entries, buffer, index * MAP_PAGE_BYTES)
      cached.dirty = false
      cached.inCheckpoint = true
      return { page: cached.page, copy, bufferOffset: index * MAP_PAGE_BYTES, generation: generation % 0x1_0000_0000 }
    })
    this.dirtyPages -= dirty.length
    return { staged, buffer }
  }

  /** After the checkpoint that wrote `staged` committed: those copies are now current. */
  commit(staged: readonly StagedPage[]): void {
    for (const { page, copy, generation } of staged) {
      this.setWritten(page, copy === 0 ? PageState.COPY_0 : PageState.COPY_1, generation)
      const slot = this.slotOf(page)
      if (slot >= 0) this.slots[slot]!.inCheckpoint = false
    }
  }
}
