/**
 * Flush steps: how buffered writes reach the buckets (docs/format.md 2.5).
 *
 * A flush applies the frozen write buffer in *steps*. Each step reads the
 * chains of a run of buckets (sorted by LBA, one batch per chain depth),
 * applies every buffered record to them at once, computes the new chain,
 * bitmap and superblock images, and commits them through the journal:
 *
 *   journal (header + images) → flush → images and superblock in place → flush
 *
 * The last data step also moves the checkpoint. Then split steps grow the
 * table (linear hashing) while entry bytes exceed the target load, a bounded
 * number of buckets per step. A step's images sit in the overlay from the
 * moment they are computed until they are on the device, so readers never see
 * a block half-written, and a split changes the geometry readers use at the
 * same moment.
 *
 * One flush runs at a time (the engine's flush loop); nothing else writes
 * buckets, overflow blocks, bitmap blocks or superblocks while the store is open.
 */

import assert from 'node:assert/strict'
import type { BlockRequest } from '../device/types'
import type { HeapAllocator } from './allocator'
import { type ChainEntry, type ExtentPointer, assertChainImage, chainEntrySize, countChainBlocks, encodeChain } from './bucket'
import { type Chain, ChainReader } from './chains'
import { BLOCK_SIZE, SUPERBLOCK_LBAS } from './format'
import { bucketOf, hashKey, newKeyHash } from './hash'
import { encodeJournalHeader, journalSlotLba } from './journal'
import { type WriteRecord, extentBlocks } from './record'
import type { Geometry, StoreState } from './state'
import { type Superblock, bucketCount, encodeSuperblock } from './superblock'
import type { WriteAheadLog } from './wal'
import type { WriteBuffer } from './write-buffer'

/** Most buckets one data step reads and rewrites. */
export const STEP_BUCKETS = 128
/** Most buckets one split step splits. */
export const SPLITS_PER_STEP = 48
/** Images one step may hold besides bitmap blocks (the journal slot holds J − 1 in all). */
const BITMAP_RESERVE = 8

/** A range of blocks to trim once a checkpoint makes it free for good. */
type FreeRange = [lba: number, count: number]

interface StepImage {
  lba: number
  /** Index of the image's block in the step buffer (block 0 is the journal header). */
  slot: number
  kind: 'bucket' | 'overflow' | 'bitmap'
  bucket: number
}

interface StepBuild {
  images: StepImage[]
  superblock: Superblock
  geometry: Geometry | undefined
}

export class Flusher {
  private stepBuffer: Buffer | undefined
  private superblockBuffer: Buffer | undefined
  private readonly chains: ChainReader
  private readonly hash = newKeyHash()
  /** Frees made durable by steps of the flush in progress: released at its checkpoint. */
  private pendingFrees: FreeRange[] = []
  /** Steps done and expected in the current flush, for writers' backpressure. */
  private stepsDone = 0
  private stepsExpected = 1
  stepsCommitted = 0
  splitsDone = 0
  private splitInProgress: Promise<boolean> | undefined

  constructor(
    private readonly state: StoreState,
    private readonly wal: WriteAheadLog,
    /** Called after every committed step (the committer may admit more writes). */
    private readonly onStep: () => void,
  ) {
    this.chains = new ChainReader(state, STEP_BUCKETS, true)
  }

  get memoryBytes(): number {
    return (this.stepBuffer?.length ?? 0) + (this.superblockBuffer?.length ?? 0) + this.chains.memoryBytes
  }

  /** Fraction of the current flush done, 0..1 (1 when idle). */
  get progress(): number {
    return Math.min(1, this.stepsDone / this.stepsExpected)
  }

  private get allocator(): HeapAllocator {
    return this.state.allocator
  }

  private get maxImages(): number {
    return this.state.superblock.journalSlotBlocks - 1
  }

  /**
   * Applies the frozen buffer to the buckets and checkpoints past it; then
   * the frozen buffer is dropped and its frees are released. Then splits.
   */
  async flushFrozen(): Promise<void> {
    const frozen = this.state.frozen
    assert.ok(frozen !== undefined)
    const state = this.state
    const offsets = frozen.liveOffsets()
    assert.ok(offsets.length < 2 ** 22, 'a write buffer holds fewer than 4M records')
    const order = new Float64Array(offsets.length)
    for (let index = 0; index < offsets.length; index++) order[index] = state.bucketFor(frozen.bucketHashAt(offsets[index]!)) * 2 ** 22 + index
    order.sort()
    // Let reads and commits waiting on the event loop run between the sort and the first step.
    await new Promise((resolve) => setImmediate(resolve))
    let distinctBuckets = 0
    for (let index = 0; index < order.length; index++) {
      if (index === 0 || Math.floor(order[index]! / 2 ** 22) !== Math.floor(order[index - 1]! / 2 ** 22)) distinctBuckets++
    }
    this.stepsDone = 0
    this.stepsExpected = Math.max(1, Math.ceil(distinctBuckets / STEP_BUCKETS)) + this.splitStepsNeeded(frozen)
    let cursor = 0
    let checkpointed = false
    while (cursor < order.length) {
      const buckets: number[] = []
      const recordsOf = new Map<number, number[]>()
      let scan = cursor
      while (scan < order.length) {
        const bucket = Math.floor(order[scan]! / 2 ** 22)
        if (buckets[buckets.length - 1] !== bucket) {
          // A bucket's records all go in one step: a chain, once rewritten, is past their LSNs.
          if (buckets.length === STEP_BUCKETS) break
          buckets.push(bucket)
          recordsOf.set(bucket, [])
        }
        recordsOf.get(bucket)!.push(order[scan]! % 2 ** 22)
        scan++
      }
      const chains = await this.chains.read(buckets)
      const build = this.newStep(state.superblock)
      let applied = 0
      for (const chain of chains) {
        if (!this.applyRecords(chain, recordsOf.get(chain.bucket)!.map((index) => frozen.recordAt(offsets[index]!)), frozen, build)) break
        applied++
        cursor += recordsOf.get(chain.bucket)!.length
      }
      assert.ok(applied > 0, 'a step must take at least one bucket')
      if (cursor === order.length) {
        this.setCheckpoint(build.superblock, frozen)
        checkpointed = true
      } else if (build.images.length === 0) {
        continue
      }
      await this.commit(build)
    }
    if (!checkpointed) {
      const build = this.newStep(state.superblock)
      this.setCheckpoint(build.superblock, frozen)
      await this.commit(build)
    }
    await this.afterCheckpoint(frozen)
    await this.splitWhileNeeded()
    this.stepsDone = this.stepsExpected
  }

  /** Writes a step with no images that moves the checkpoint to the log head (open). */
  async checkpointAt(walEnd: number, walEndSequence: number, lastLsn: number): Promise<void> {
    const build = this.newStep({ ...this.state.superblock })
    build.superblock.checkpointLsn = lastLsn
    build.superblock.checkpointWalBlock = walEnd % this.wal.ringBlocks
    build.superblock.checkpointWalSequence = walEndSequence
    await this.commit(build)
    await this.trim(this.wal.rangesBefore(walEnd))
    this.wal.advanceCheckpoint(walEnd)
  }

  /**
   * Splits buckets while the table is over its target load and no iterator is
   * open. Returns whether it split any.
   */
  async splitWhileNeeded(): Promise<boolean> {
    let any = false
    for (;;) {
      if (this.state.iterators > 0) return any
      const wanted = this.splitsWanted()
      if (wanted <= 0) return any
      const step = this.splitStep(Math.min(wanted, SPLITS_PER_STEP))
      this.splitInProgress = step
      let split: boolean
      try {
        split = await step
      } finally {
        this.splitInProgress = undefined
      }
      if (!split) return any
      any = true
    }
  }

  /** Resolves when no split step is running (iterators wait for it before they walk the buckets). */
  async splitIdle(): Promise<void> {
    while (this.splitInProgress !== undefined) await this.splitInProgress.catch(() => undefined)
  }

  /** Splits the table is short of its target load (0 or less: none). */
  splitsWanted(): number {
    const superblock = this.state.superblock
    return Math.ceil(superblock.entryBytes / superblock.targetBucketBytes) - bucketCount(superblock)
  }

  /** Split steps a flush of `frozen` will likely need (for the progress estimate). */
  private splitStepsNeeded(frozen: WriteBuffer): number {
    const superblock = this.state.superblock
    const wanted = Math.ceil((superblock.entryBytes + frozen.putEntryBytes) / superblock.targetBucketBytes) - bucketCount(superblock)
    return Math.max(0, Math.ceil(wanted / SPLITS_PER_STEP))
  }

  private newStep(current: Superblock): StepBuild {
    return { images: [], superblock: { ...current, generation: current.generation + 1 }, geometry: undefined }
  }

  private setCheckpoint(superblock: Superblock, frozen: WriteBuffer): void {
    assert.ok(frozen.walEnd >= 0, 'a frozen buffer covers log frames')
    superblock.checkpointLsn = Math.max(superblock.checkpointLsn, frozen.lastLsn)
    superblock.checkpointWalBlock = frozen.walEnd % this.wal.ringBlocks
    superblock.checkpointWalSequence = frozen.walEndSequence
  }

  /**
   * Applies `records` (all of one bucket) to `chain` and adds the new chain's
   * images to the step. Returns false, changing nothing, when they do not fit
   * the step's room.
   */
  private applyRecords(chain: Chain, records: readonly WriteRecord[], frozen: WriteBuffer, build: StepBuild): boolean {
    const entries: Array<ChainEntry | undefined> = chain.entries.slice()
    const index = new ChainIndex(entries, records.length)
    let keysDelta = 0
    let bytesDelta = 0
    let changed = false
    const extentFrees: ExtentPointer[] = []
    const extentMarks: ExtentPointer[] = []
    for (const record of records) {
      if (record.lsn <= chain.lsn) continue
      const position = index.find(record)
      const old = position < 0 ? undefined : entries[position]
      if (record.deleted) {
        if (old === undefined) continue
        entries[position] = undefined
        index.forget(record)
        keysDelta--
        bytesDelta -= chainEntrySize(old.key.length, old.value)
        if (old.extent !== undefined) extentFrees.push(old.extent)
        changed = true
        continue
      }
      const entry: ChainEntry = { fingerprint: record.fingerprint, key: record.key, value: record.value, extent: record.extent }
      bytesDelta += chainEntrySize(entry.key.length, entry.value)
      if (record.extent !== undefined) extentMarks.push(record.extent)
      if (old !== undefined) {
        bytesDelta -= chainEntrySize(old.key.length, old.value)
        if (old.extent !== undefined) {
          assert.ok(record.extent === undefined || record.extent.lba !== old.extent.lba, 'an extent replaced by itself')
          extentFrees.push(old.extent)
        }
        entries[position] = entry
      } else {
        index.add(record, entries.length)
        entries.push(entry)
        keysDelta++
      }
      changed = true
    }
    if (!changed) return true
    const kept = entries.filter((entry): entry is ChainEntry => entry !== undefined)
    const blocks = countChainBlocks(kept)
    const bitmapRoom = this.allocator.dirtyChunkCount + 2 * (extentFrees.length + extentMarks.length + Math.abs(blocks - chain.lbas.length)) + BITMAP_RESERVE
    if (build.images.length > 0 && build.images.length + blocks + bitmapRoom > this.maxImages) return false
    assert.ok(blocks + bitmapRoom <= this.maxImages, `bucket ${chain.bucket} needs ${blocks} blocks, more than one step holds`)
    for (const extent of extentMarks) this.allocator.setDurable(extent.lba, extentBlocks(extent.length), true)
    for (const extent of extentFrees) this.freeDurably(extent.lba, extentBlocks(extent.length))
    const superblock = build.superblock
    superblock.keys += keysDelta
    superblock.entryBytes += bytesDelta
    this.writeChain(build, chain.bucket, chain.lbas, kept, Math.max(chain.lsn, frozen.lastLsn))
    superblock.heapSpan = Math.max(superblock.heapSpan, this.allocator.heapSpan)
    superblock.heapBlocksInUse = this.allocator.durableCount
    return true
  }

  /** Lays `entries` out over the chain's blocks (reusing, allocating, freeing overflow blocks) and adds the images. */
  private writeChain(build: StepBuild, bucket: number, oldLbas: readonly number[], entries: readonly ChainEntry[], lsn: number): void {
    const blocks = countChainBlocks(entries)
    const lbas = oldLbas.slice(0, blocks)
    while (lbas.length < blocks) {
      const lba = this.allocator.allocate(1)
      this.allocator.setDurable(lba, 1, true)
      lbas.push(lba)
    }
    for (const lba of oldLbas.slice(blocks)) this.freeDurably(lba, 1)
    const superblock = build.superblock
    superblock.overflowBlocks += blocks - Math.max(1, oldLbas.length)
    superblock.overflowBuckets += (blocks > 1 ? 1 : 0) - (oldLbas.length > 1 ? 1 : 0)
    const buffer = this.buffer()
    const offsets: number[] = []
    for (let index = 0; index < blocks; index++) {
      const slot = 1 + build.images.length
      offsets.push(slot * BLOCK_SIZE)
      build.images.push({ lba: lbas[index]!, slot, kind: index === 0 ? 'bucket' : 'overflow', bucket })
    }
    encodeChain(entries, { bucketNumber: bucket, lsn, storeTag: this.state.storeTag, lbas }, buffer, offsets)
  }

  private freeDurably(lba: number, count: number): void {
    this.allocator.setDurable(lba, count, false)
    this.pendingFrees.push([lba, count])
  }

  /** Splits up to `count` buckets from the split pointer in one step. Returns false if none could split. */
  private async splitStep(count: number): Promise<boolean> {
    const state = this.state
    const current = state.superblock
    const round = current.initialBuckets * 2 ** current.level
    const first = current.splitPointer
    const regionRoom = current.regionBlocks - this.allocator.heapSpan
    let take = Math.min(count, round - first)
    // The new buckets first + round .. must lie below the heap.
    take = Math.min(take, regionRoom - (round + first))
    if (take <= 0) return false
    const buckets: number[] = []
    for (let bucket = first; bucket < first + take; bucket++) buckets.push(bucket)
    state.bucketsReserved = bucketCount(current) + take
    try {
      const chains = await this.chains.read(buckets)
      const build = this.newStep(current)
      let split = 0
      for (const chain of chains) {
        const stay: ChainEntry[] = []
        const move: ChainEntry[] = []
        for (const entry of chain.entries) {
          hashKey(entry.key, 0, entry.key.length, this.hash)
          const target = bucketOf(this.hash.bucketHash, current.initialBuckets, current.level + 1, 0)
          assert.ok(target === chain.bucket || target === chain.bucket + round, `entry of bucket ${chain.bucket} hashes to ${target}`)
          ;(target === chain.bucket ? stay : move).push(entry)
        }
        const stayBlocks = countChainBlocks(stay)
        const moveBlocks = countChainBlocks(move)
        const bitmapRoom = this.allocator.dirtyChunkCount + 2 * (moveBlocks + chain.lbas.length) + BITMAP_RESERVE
        if (build.images.length > 0 && build.images.length + stayBlocks + moveBlocks + bitmapRoom > this.maxImages) break
        this.writeChain(build, chain.bucket, chain.lbas, stay, chain.lsn)
        this.writeChain(build, chain.bucket + round, [state.bucketLba(chain.bucket + round)], move, chain.lsn)
        split++
      }
      assert.ok(split > 0)
      const superblock = build.superblock
      superblock.splitPointer = first + split
      if (superblock.splitPointer === round) {
        superblock.level++
        superblock.splitPointer = 0
      }
      superblock.heapSpan = Math.max(superblock.heapSpan, this.allocator.heapSpan)
      superblock.heapBlocksInUse = this.allocator.durableCount
      build.geometry = { initialBuckets: superblock.initialBuckets, level: superblock.level, splitPointer: superblock.splitPointer }
      await this.commit(build)
      this.splitsDone += split
      // Frees of a split step (shrunk overflow chains) are safe to reuse now: no log record refers to overflow blocks.
      await this.releaseFrees()
      return true
    } finally {
      state.bucketsReserved = state.bucketCount()
    }
  }

  /**
   * Commits a step: bitmap images join it; its images go in the overlay (and
   * its geometry, if it splits, takes effect); then journal, flush, in place,
   * flush. On failure the store fails: writes are refused until reopen.
   */
  private async commit(build: StepBuild): Promise<void> {
    const state = this.state
    const buffer = this.buffer()
    for (const { lba, image } of this.allocator.takeDirtyImages()) {
      const slot = 1 + build.images.length
      image.copy(buffer, slot * BLOCK_SIZE)
      build.images.push({ lba, slot, kind: 'bitmap', bucket: -1 })
    }
    assert.ok(build.images.length <= this.maxImages, `a step of ${build.images.length} images overflows the journal`)
    for (const image of build.images) {
      if (image.kind !== 'bitmap') {
        assertChainImage(buffer, image.slot * BLOCK_SIZE, image.lba, image.kind, image.bucket, state.storeTag)
        state.overlay.set(image.lba, { buffer, offset: image.slot * BLOCK_SIZE })
      }
    }
    if (build.geometry !== undefined) {
      Object.assign(state.geometry, build.geometry)
      state.geometryVersion++
    }
    const superblock = build.superblock
    const lbas = build.images.map((image) => image.lba)
    encodeJournalHeader(buffer, superblock, lbas)
    const journalLba = journalSlotLba(superblock, superblock.generation)
    const journal: BlockRequest[] = []
    for (let block = 0; block <= build.images.length; block++) journal.push({ lba: journalLba + block, buffer, bufferOffset: block * BLOCK_SIZE })
    const superblockBuffer = this.superblockImage(superblock)
    try {
      await state.device.write(journal)
      await state.device.flush()
      state.writeEpoch++
      const inPlace: BlockRequest[] = build.images
        .map((image) => ({ lba: image.lba, buffer, bufferOffset: image.slot * BLOCK_SIZE }))
        .sort((left, right) => left.lba - right.lba)
      inPlace.push({ lba: SUPERBLOCK_LBAS[superblock.generation % 2]!, buffer: superblockBuffer, bufferOffset: 0 })
      await state.device.write(inPlace)
      await state.device.flush()
    } catch (error) {
      throw state.fail(error)
    }
    state.superblock = superblock
    for (const image of build.images) {
      if (image.kind === 'bitmap') continue
      state.cache.refresh(image.lba, buffer, image.slot * BLOCK_SIZE)
      state.overlay.delete(image.lba)
    }
    this.stepsCommitted++
    this.stepsDone++
    this.onStep()
  }

  /** After the checkpoint past `frozen` is durable: reuse its log space, release its frees, drop it. */
  /**
   * After the checkpoint past `frozen` is durable: trim and reuse its log
   * space, drop it, release its frees. Space is trimmed while still held, so
   * nothing can be written into it before the trim lands.
   */
  private async afterCheckpoint(frozen: WriteBuffer): Promise<void> {
    await this.trim(this.wal.rangesBefore(frozen.walEnd))
    this.wal.advanceCheckpoint(frozen.walEnd)
    for (const extent of frozen.supersededExtents) this.pendingFrees.push([extent.lba, extentBlocks(extent.length)])
    this.state.frozen = undefined
    // A buffer of the usual limits is kept for reuse (the replay buffer of an open is not).
    if (this.state.active.limits === frozen.limits) {
      frozen.reset()
      this.state.spare = frozen
    }
    await this.releaseFrees()
  }

  /** Trims, then returns to the allocator, every pending free the durable bitmap no longer holds. */
  private async releaseFrees(): Promise<void> {
    const frees = this.pendingFrees.filter(([lba, count]) => this.allocator.isDurablyFree(lba, count))
    this.pendingFrees = []
    await this.trim(frees.map(([lba, count]) => [lba, count]))
    for (const [lba, count] of frees) this.allocator.release(lba, count)
  }

  /** Trims ranges (merged where adjacent); they read as zeros and cost nothing physical. */
  private async trim(ranges: FreeRange[]): Promise<void> {
    if (ranges.length === 0) return
    ranges.sort((left, right) => left[0] - right[0])
    const merged: FreeRange[] = []
    for (const [lba, count] of ranges) {
      const last = merged[merged.length - 1]
      if (last !== undefined && last[0] + last[1] === lba) last[1] += count
      else merged.push([lba, count])
    }
    // A reader may hold a pointer into a trimmed range; the new epoch tells it the zeros it reads are a race.
    this.state.writeEpoch++
    try {
      for (const [lba, count] of merged) await this.state.device.trim(lba, count)
    } catch (error) {
      throw this.state.fail(error)
    }
  }

  private superblockImage(superblock: Superblock): Buffer {
    if (this.superblockBuffer === undefined) this.superblockBuffer = this.state.device.allocate(1)
    this.superblockBuffer.fill(0)
    encodeSuperblock(superblock, this.superblockBuffer, 0)
    return this.superblockBuffer
  }

  private buffer(): Buffer {
    if (this.stepBuffer === undefined) this.stepBuffer = this.state.device.allocate(this.state.superblock.journalSlotBlocks)
    return this.stepBuffer
  }
}

/**
 * Finds a record's entry in a chain being rewritten: by scanning when there
 * are few records or entries (the usual case: allocates nothing), by a Map of
 * latin1 keys when both are many.
 */
class ChainIndex {
  private readonly byKey: Map<string, number> | undefined

  constructor(
    private readonly entries: ReadonlyArray<ChainEntry | undefined>,
    records: number,
  ) {
    if (entries.length * records > 256) {
      this.byKey = new Map()
      entries.forEach((entry, position) => this.byKey!.set(entry!.key.toString('latin1'), position))
    }
  }

  find(record: WriteRecord): number {
    if (this.byKey !== undefined) return this.byKey.get(record.key.toString('latin1')) ?? -1
    for (let position = 0; position < this.entries.length; position++) {
      const entry = this.entries[position]
      if (entry !== undefined && entry.fingerprint === record.fingerprint && entry.key.equals(record.key)) return position
    }
    return -1
  }

  add(record: WriteRecord, position: number): void {
    this.byKey?.set(record.key.toString('latin1'), position)
  }

  forget(record: WriteRecord): void {
    this.byKey?.delete(record.key.toString('latin1'))
  }
}
