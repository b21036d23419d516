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

export class BlockMap {
  /** Per page: which copy is current in the last committed checkpoint (PageState). */
  readonly pageStates: Uint8Array
  /** Per page: low 32 bits of the generation that wrote the current copy (0: never written). */
  readonly pageGenerations: Uint32Array
  private readonly directory: Int32Array
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

  constructor(
    private readonly geometry: Geometry,
    private readonly volume: Volume,
    pageStates: Uint8Array,
    pageGenerations: Uint32Array,
    readonly budgetPages: number,
  ) {
    assert(pageStates.length === geometry.mapPageCount && pageGenerations.length === geometry.mapPageCount && budgetPages >= 1)
    this.pageStates = pageStates
    this.pageGenerations = pageGenerations
    this.directory = new Int32Array(geometry.mapPageCount).fill(-1)
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

  memoryBytes(): number {
    return this.cachedBytes() + this.directory.byteLength + this.pageStates.byteLength + this.pageGenerations.byteLength + this.loadBuffer.length
  }

  /** The entry of `lba`, or NOT_CACHED when its page must be loaded first. */
  lookup(lba: number): number {
    const slot = this.directory[Math.floor(lba / ENTRIES_PER_PAGE)]!
    if (slot < 0) return NOT_CACHED
    const cached = this.slots[slot]!
    cached.referenced = true
    return cached.entries[lba % ENTRIES_PER_PAGE]!
  }

  isCached(page: number): boolean {
    return this.directory[page]! >= 0
  }

  /** Sets the entry of `lba`, whose page must be cached; returns the previous entry. */
  set(lba: number, entry: number): number {
    const page = Math.floor(lba / ENTRIES_PER_PAGE)
    const slot = this.directory[page]!
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
    const fromDisk = pages.filter((page) => this.pageStates[page] !== PageState.NEVER_WRITTEN)
    for (const page of pages) if (this.pageStates[page] === PageState.NEVER_WRITTEN) this.install(page, undefined, 0)
    for (let start = 0; start < fromDisk.length; start += 16) {
      const group = fromDisk.slice(start, start + 16)
      const useShared = !this.loadBufferBusy
      const buffer = useShared ? this.loadBuffer : this.volume.allocate(MAP_PAGE_BYTES * group.length)
      if (useShared) this.loadBufferBusy = true
      try {
        await this.volume.read(
          group.map((page, index) => ({
            offset: mapPageOffset(this.geometry, page, this.pageStates[page]! - 1),
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
    if (this.directory[page]! >= 0) return
    if (source === undefined) this.scratch.fill(0)
    else decodeMapPage(this.geometry, page, this.pageStates[page]! - 1, this.pageGenerations[page]!, source, at, this.scratch)
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
    this.directory[page] = slot
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
      this.directory[cached.page] = -1
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
        this.directory[this.slots[victim]!.page] = -1
        this.slots[victim] = last
        this.directory[last.page] = victim
      } else {
        this.directory[last.page] = -1
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
      const state = this.pageStates[cached.page]!
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
      this.pageStates[page] = copy === 0 ? PageState.COPY_0 : PageState.COPY_1
      this.pageGenerations[page] = generation
      const slot = this.directory[page]!
      if (slot >= 0) this.slots[slot]!.inCheckpoint = false
    }
  }

  /** Page states and generations as the next checkpoint will record them: committed ones, with `staged` applied. */
  statesAfter(staged: readonly StagedPage[]): { states: Uint8Array; generations: Uint32Array } {
    const states = Uint8Array.from(this.pageStates)
    const generations = Uint32Array.from(this.pageGenerations)
    for (const { page, copy, generation } of staged) {
      states[page] = copy === 0 ? PageState.COPY_0 : PageState.COPY_1
      generations[page] = generation
    }
    return { states, generations }
  }
}
