/**
 * The read path: write buffers → flush overlay → bucket cache → one device
 * read (docs/format.md 2.6 for the blocks it checks).
 *
 * Every lookup that needs the device is queued; a microtask sends the whole
 * queue as one batch, so all gets issued in the same tick reach the device
 * together (two gets of one bucket share one read). Blocks land in a fixed
 * arena of READ_SLOTS blocks, which bounds the reads in flight; lookups
 * beyond it wait for the next batch.
 *
 * A block is verified right after it is read. A lookup whose block fails
 * verification, whose chain changed under it, or whose bucket moved (a split)
 * starts again from the write buffers when a write or split happened since it
 * began; otherwise the failure is corruption and the get rejects with
 * CUBBY_CORRUPT. Allocates per lookup only its record and the returned value.
 */

import { CubbyError, ErrorCode, corrupt } from '../errors'
import type { BlockRequest } from '../device/types'
import { type OperationMeter, UNMETERED } from '../metrics/operations'
import { crc32c } from '../util/crc32c'
import {
  type ChainHeader,
  type ExtentPointer,
  checkChainBlock,
  entryHasExtent,
  entryInlineBytes,
  entryValueOffset,
  findEntry,
  newChainHeader,
  readChainHeader,
  readExtentPointer,
} from './bucket'
import { ByteBudget } from './budget'
import { BLOCK_SIZE } from './format'
import { type KeyHash, hashKey, newKeyHash } from './hash'
import { extentBlocks } from './record'
import type { StoreState } from './state'

/** Blocks the read arena holds: the most block reads in flight (1 MiB). */
export const READ_SLOTS = 256
/** Bytes of large values being read at once. */
export const EXTENT_READ_BUDGET_BYTES = 64 * 1024 * 1024
/** A lookup that must start again more often than this is reported as corruption. */
const MAX_RESTARTS = 32

export type LookupResult = Buffer | undefined | boolean

interface Lookup {
  key: Buffer
  /** false: has() — only whether the key exists. */
  wantValue: boolean
  bucketHash: number
  fingerprint: number
  bucket: number
  lba: number
  overflow: boolean
  chainLsn: number
  geometryVersion: number
  restarts: number
  resolve: (result: LookupResult) => void
  reject: (error: unknown) => void
}

export class Reader {
  private queue: Lookup[] = []
  private scheduled = false
  private arena: Buffer | undefined
  private readonly freeSlots: number[] = []
  private readonly hash: KeyHash = newKeyHash()
  private readonly header: ChainHeader = newChainHeader()
  private readonly extentBudget = new ByteBudget(EXTENT_READ_BUDGET_BYTES)
  private pending = 0
  private drained: Array<() => void> = []

  constructor(
    private readonly state: StoreState,
    private readonly meter: OperationMeter,
  ) {}

  get memoryBytes(): number {
    return (this.arena?.length ?? 0) + this.extentBudget.usedBytes
  }

  /** Lookups not yet settled. */
  get pendingLookups(): number {
    return this.pending
  }

  /** Resolves once no lookup is pending. */
  async drain(): Promise<void> {
    if (this.pending === 0) return
    await new Promise<void>((resolve) => this.drained.push(resolve))
  }

  /**
   * Looks `key` up: its value (wantValue) or whether it exists. A call of
   * the API passes its kind and start time: the meter counts it when it settles.
   */
  lookup(key: Buffer, wantValue: boolean, kind: number = UNMETERED, startedMs = 0): Promise<LookupResult> {
    return new Promise<LookupResult>((resolve, reject) => {
      this.pending++
      const lookup: Lookup = {
        key,
        wantValue,
        bucketHash: 0,
        fingerprint: 0,
        bucket: 0,
        lba: 0,
        overflow: false,
        chainLsn: 0,
        geometryVersion: 0,
        restarts: 0,
        resolve: (result) => {
          this.settled()
          this.meter.settle(kind, startedMs, 0)
          resolve(result)
        },
        reject: (error) => {
          this.settled()
          this.meter.settle(kind, startedMs, 1)
          reject(error)
        },
      }
      hashKey(key, 0, key.length, this.hash)
      lookup.bucketHash = this.hash.bucketHash
      lookup.fingerprint = this.hash.fingerprint
      this.begin(lookup)
    })
  }

  private settled(): void {
    this.pending--
    if (this.pending === 0 && this.drained.length > 0) {
      const waiting = this.drained
      this.drained = []
      for (const resolve of waiting) resolve()
    }
  }

  /** Write buffers first; then the key's bucket. */
  private begin(lookup: Lookup): void {
    const state = this.state
    let buffer = state.active
    let at = buffer.find(lookup.key, 0, lookup.key.length, lookup.bucketHash)
    if (at < 0 && state.frozen !== undefined) {
      buffer = state.frozen
      at = buffer.find(lookup.key, 0, lookup.key.length, lookup.bucketHash)
    }
    if (at >= 0) {
      if (buffer.isDeleted(at)) lookup.resolve(lookup.wantValue ? undefined : false)
      else if (!lookup.wantValue) lookup.resolve(true)
      else if (buffer.hasExtent(at)) void this.readExtent(lookup, buffer.extentAt(at))
      else lookup.resolve(buffer.copyValue(at))
      return
    }
    lookup.geometryVersion = state.geometryVersion
    lookup.bucket = state.bucketFor(lookup.bucketHash)
    lookup.lba = state.bucketLba(lookup.bucket)
    lookup.overflow = false
    this.fetch(lookup)
  }

  private restart(lookup: Lookup, why: string): void {
    lookup.restarts++
    if (lookup.restarts > MAX_RESTARTS) {
      lookup.reject(corrupt(`block ${lookup.lba} (bucket ${lookup.bucket}): ${why}, and it did not settle after ${MAX_RESTARTS} retries`))
      return
    }
    this.begin(lookup)
  }

  private fetch(lookup: Lookup): void {
    const overlay = this.state.overlay.get(lookup.lba)
    if (overlay !== undefined) {
      this.examine(lookup, overlay.buffer, overlay.offset, -1)
      return
    }
    const slot = this.state.cache.lookup(lookup.lba)
    if (slot >= 0) {
      this.examine(lookup, this.state.cache.slab, slot * BLOCK_SIZE, -1)
      return
    }
    this.queue.push(lookup)
    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(() => this.dispatch())
    }
  }

  private dispatch(): void {
    this.scheduled = false
    while (this.queue.length > 0) {
      if (this.arena === undefined) {
        this.arena = this.state.device.allocate(READ_SLOTS)
        for (let slot = READ_SLOTS - 1; slot >= 0; slot--) this.freeSlots.push(slot)
      }
      if (this.freeSlots.length === 0) return
      const batch: Lookup[] = []
      const slotOf = new Map<number, number>()
      const requests: BlockRequest[] = []
      const slots: number[] = []
      const queue = this.queue
      let taken = 0
      for (; taken < queue.length; taken++) {
        const lookup = queue[taken]!
        if (!slotOf.has(lookup.lba)) {
          if (this.freeSlots.length === 0) break
          const slot = this.freeSlots.pop()!
          slotOf.set(lookup.lba, slot)
          slots.push(slot)
          requests.push({ lba: lookup.lba, buffer: this.arena, bufferOffset: slot * BLOCK_SIZE })
        }
        batch.push(lookup)
      }
      this.queue = taken === queue.length ? [] : queue.slice(taken)
      const epoch = this.state.writeEpoch
      const arena = this.arena
      this.state.device.read(requests).then(
        () => {
          for (const lookup of batch) this.examine(lookup, arena, slotOf.get(lookup.lba)! * BLOCK_SIZE, epoch)
          this.releaseSlots(slots)
        },
        (error: unknown) => {
          this.releaseSlots(slots)
          for (const lookup of batch) lookup.reject(error)
        },
      )
    }
  }

  private releaseSlots(slots: number[]): void {
    for (const slot of slots) this.freeSlots.push(slot)
    if (this.queue.length > 0 && !this.scheduled) {
      this.scheduled = true
      queueMicrotask(() => this.dispatch())
    }
  }

  /**
   * Looks at the block a lookup asked for. `epoch` is the write epoch when
   * the device read was issued, or -1 for a block from the overlay or cache.
   */
  private examine(lookup: Lookup, block: Buffer, offset: number, epoch: number): void {
    const state = this.state
    if (lookup.geometryVersion !== state.geometryVersion) {
      this.restart(lookup, 'the bucket split while it was read')
      return
    }
    const raced = epoch >= 0 && epoch !== state.writeEpoch
    const kind = lookup.overflow ? 'overflow' : 'bucket'
    const reason = checkChainBlock(block, offset, lookup.lba, kind, lookup.bucket, state.storeTag)
    if (reason !== undefined) {
      if (raced) this.restart(lookup, reason)
      else lookup.reject(corrupt(`${kind} block ${lookup.lba} (bucket ${lookup.bucket}) ${reason}`))
      return
    }
    const header = readChainHeader(block, offset, this.header)
    if (lookup.overflow && header.lsn !== lookup.chainLsn) {
      if (raced) this.restart(lookup, 'its chain was rewritten while it was read')
      else lookup.reject(corrupt(`overflow block ${lookup.lba} (bucket ${lookup.bucket}) has LSN ${header.lsn}, its chain ${lookup.chainLsn}`))
      return
    }
    if (epoch >= 0 && !raced) state.cache.put(lookup.lba, block, offset)
    const position = findEntry(block, offset, lookup.key, 0, lookup.key.length, lookup.fingerprint)
    if (position >= 0) {
      if (!lookup.wantValue) lookup.resolve(true)
      else if (entryHasExtent(block, position)) void this.readExtent(lookup, readExtentPointer(block, entryValueOffset(block, position)))
      else {
        const at = entryValueOffset(block, position)
        const value = Buffer.allocUnsafe(entryInlineBytes(block, position))
        block.copy(value, 0, at, at + value.length)
        lookup.resolve(value)
      }
      return
    }
    if (header.next !== 0) {
      lookup.chainLsn = header.lsn
      lookup.lba = header.next
      lookup.overflow = true
      this.fetch(lookup)
      return
    }
    lookup.resolve(lookup.wantValue ? undefined : false)
  }

  private async readExtent(lookup: Lookup, extent: ExtentPointer): Promise<void> {
    const blocks = extentBlocks(extent.length)
    const bytes = blocks * BLOCK_SIZE
    await this.extentBudget.acquire(bytes)
    try {
      const epoch = this.state.writeEpoch
      const buffer = this.state.device.allocate(blocks)
      const requests: BlockRequest[] = []
      for (let block = 0; block < blocks; block++) requests.push({ lba: extent.lba + block, buffer, bufferOffset: block * BLOCK_SIZE })
      await this.state.device.read(requests)
      if (crc32c(buffer, 0, extent.length) !== extent.checksum) {
        if (epoch !== this.state.writeEpoch) this.restart(lookup, 'its value extent changed while it was read')
        else lookup.reject(corrupt(`value extent at block ${extent.lba} (${extent.length} bytes): checksum mismatch`))
        return
      }
      lookup.resolve(blocks * BLOCK_SIZE === extent.length ? buffer : buffer.subarray(0, extent.length))
    } catch (error) {
      lookup.reject(error instanceof CubbyError ? error : new CubbyError(ErrorCode.IO, String(error), { cause: error }))
    } finally {
      this.extentBudget.release(bytes)
    }
  }
}
