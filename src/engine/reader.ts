/**
 * The read path: write buffers → flush overlay → bucket cache → one device
 * read (docs/format.md 2.6 for the blocks it checks).
 *
 * Every lookup that needs the device is queued; a microtask sends the whole
 * queue as one batch, so all gets issued in the same tick reach the device
 * together (two gets of one bucket share one read). The device reports each
 * block of the batch as soon as it is read (BlockDevice.readEach), so a get
 * never waits for another get's slower read. Blocks land in a fixed arena of
 * READ_SLOTS blocks, which bounds the reads in flight; lookups beyond it wait
 * for a slot.
 *
 * A block is verified right after it is read. A lookup whose block fails
 * verification, whose chain changed under it, or whose bucket moved (a split)
 * starts again from the write buffers when a write or split happened since it
 * began; otherwise the failure is corruption and the get rejects with
 * CUBBY_CORRUPT. Allocates per lookup only its record, its promise and the
 * returned value.
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

/** One get or has() in progress. A class, so that every lookup has one shape. */
class Lookup {
  bucketHash = 0
  fingerprint = 0
  bucket = 0
  lba = 0
  overflow = false
  chainLsn = 0
  geometryVersion = 0
  restarts = 0
  /** The next lookup waiting for the same block read of a batch. */
  nextInRead: Lookup | undefined = undefined

  constructor(
    readonly key: Buffer,
    /** false: has() — only whether the key exists. */
    readonly wantValue: boolean,
    /** The API call's kind and start time, for the operation meter (UNMETERED: not counted). */
    readonly kind: number,
    readonly startedMs: number,
    readonly resolve: (result: LookupResult) => void,
    readonly reject: (error: unknown) => void,
  ) {}
}

/** A batch of block reads in flight: for request i, its arena slot and the lookups waiting for it. */
interface ReadBatch {
  slots: number[]
  waiting: Lookup[]
  /** The write epoch when the batch was issued. */
  epoch: number
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
      const lookup = new Lookup(key, wantValue, kind, startedMs, resolve, reject)
      hashKey(key, 0, key.length, this.hash)
      lookup.bucketHash = this.hash.bucketHash
      lookup.fingerprint = this.hash.fingerprint
      this.begin(lookup)
    })
  }

  private succeed(lookup: Lookup, result: LookupResult): void {
    this.settled()
    this.meter.settle(lookup.kind, lookup.startedMs, 0)
    lookup.resolve(result)
  }

  private fail(lookup: Lookup, error: unknown): void {
    this.settled()
    this.meter.settle(lookup.kind, lookup.startedMs, 1)
    lookup.reject(error)
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
      if (buffer.isDeleted(at)) this.succeed(lookup, lookup.wantValue ? undefined : false)
      else if (!lookup.wantValue) this.succeed(lookup, true)
      else if (buffer.hasExtent(at)) void this.readExtent(lookup, buffer.extentAt(at))
      else this.succeed(lookup, buffer.copyValue(at))
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
      this.fail(lookup, corrupt(`block ${lookup.lba} (bucket ${lookup.bucket}): ${why}, and it did not settle after ${MAX_RESTARTS} retries`))
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
      this.examine(lookup, this.state.cache.bufferOf(slot), this.state.cache.offsetOf(slot), -1)
      return
    }
    this.queue.push(lookup)
    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(this.dispatchNow)
    }
  }

  /** Sends every queued lookup's block read (as many as the arena has slots for) as one batch. */
  private dispatch(): void {
    this.scheduled = false
    if (this.arena === undefined) {
      this.arena = this.state.device.allocate(READ_SLOTS)
      for (let slot = READ_SLOTS - 1; slot >= 0; slot--) this.freeSlots.push(slot)
    }
    const queue = this.queue
    if (queue.length === 0 || this.freeSlots.length === 0) return
    const arena = this.arena
    const requests: BlockRequest[] = []
    const batch: ReadBatch = { slots: [], waiting: [], epoch: this.state.writeEpoch }
    let taken = 0
    for (; taken < queue.length; taken++) {
      const lookup = queue[taken]!
      let index = requests.length - 1
      while (index >= 0 && requests[index]!.lba !== lookup.lba) index--
      if (index < 0) {
        if (this.freeSlots.length === 0) break
        const slot = this.freeSlots.pop()!
        index = requests.length
        requests.push({ lba: lookup.lba, buffer: arena, bufferOffset: slot * BLOCK_SIZE })
        batch.slots.push(slot)
        batch.waiting.push(lookup)
      } else {
        lookup.nextInRead = batch.waiting[index]
        batch.waiting[index] = lookup
      }
    }
    this.queue = taken === queue.length ? [] : queue.slice(taken)
    this.state.device.readEach(requests, (index, error) => this.blockRead(batch, index, error))
  }

  /** Block `index` of a batch is read (or failed): every lookup waiting for it goes on, then its slot is free. */
  private blockRead(batch: ReadBatch, index: number, error: CubbyError | undefined): void {
    const slot = batch.slots[index]!
    let lookup: Lookup | undefined = batch.waiting[index]
    while (lookup !== undefined) {
      const next: Lookup | undefined = lookup.nextInRead
      lookup.nextInRead = undefined
      if (error === undefined) this.examine(lookup, this.arena!, slot * BLOCK_SIZE, batch.epoch)
      else this.fail(lookup, error)
      lookup = next
    }
    this.freeSlots.push(slot)
    if (this.queue.length > 0 && !this.scheduled) {
      this.scheduled = true
      queueMicrotask(this.dispatchNow)
    }
  }

  private readonly dispatchNow = (): void => this.dispatch()

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
      else this.fail(lookup, corrupt(`${kind} block ${lookup.lba} (bucket ${lookup.bucket}) ${reason}`))
      return
    }
    const header = readChainHeader(block, offset, this.header)
    if (lookup.overflow && header.lsn !== lookup.chainLsn) {
      if (raced) this.restart(lookup, 'its chain was rewritten while it was read')
      else this.fail(lookup, corrupt(`overflow block ${lookup.lba} (bucket ${lookup.bucket}) has LSN ${header.lsn}, its chain ${lookup.chainLsn}`))
      return
    }
    if (epoch >= 0 && !raced) state.cache.put(lookup.lba, block, offset)
    const position = findEntry(block, offset, lookup.key, 0, lookup.key.length, lookup.fingerprint)
    if (position >= 0) {
      if (!lookup.wantValue) this.succeed(lookup, true)
      else if (entryHasExtent(block, position)) void this.readExtent(lookup, readExtentPointer(block, entryValueOffset(block, position)))
      else {
        const at = entryValueOffset(block, position)
        const value = Buffer.allocUnsafe(entryInlineBytes(block, position))
        block.copy(value, 0, at, at + value.length)
        this.succeed(lookup, value)
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
    this.succeed(lookup, lookup.wantValue ? undefined : false)
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
        else this.fail(lookup, corrupt(`value extent at block ${extent.lba} (${extent.length} bytes): checksum mismatch`))
        return
      }
      this.succeed(lookup, blocks * BLOCK_SIZE === extent.length ? buffer : buffer.subarray(0, extent.length))
    } catch (error) {
      this.fail(lookup, error instanceof CubbyError ? error : new CubbyError(ErrorCode.IO, String(error), { cause: error }))
    } finally {
      this.extentBudget.release(bytes)
    }
  }
}
