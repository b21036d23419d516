// Power-cut harness for the compressed device: a volume wrapper that cuts
// power (through FaultyVolume) just before the Nth matching operation, a
// seeded workload that records what a crash may and may not lose, and the
// check run after recovery.
import {
  BLOCK_SIZE,
  CompressedBlockDevice,
  DelegatingVolume,
  FaultyVolume,
  MemoryBacking,
  MemoryVolume,
  reportWhenSettled,
  seededRandom,
  type CompressedCreateOptions,
  type PowerCutOptions,
  type ReportEach,
  type VolumeRequest,
} from '../../src/device'
import { makeBlock, readBlocks, writeBlocks, type BlockKind } from './compressed'

export type OperationKind = 'read' | 'write' | 'sync' | 'discard'

/** Which operation trips the power cut: the `nth` one that `matches`. */
export interface Tripwire {
  nth: number
  matches?: (kind: OperationKind, requests: readonly VolumeRequest[]) => boolean
  cut: PowerCutOptions
}

/**
 * Delegates to a FaultyVolume; cuts its power right before the tripping
 * operation, which then fails like every later one. FaultyVolume.powerCut
 * only turns the volume dead when it finishes rebuilding the unsynced
 * writes, so operations issued meanwhile would still succeed (a sync could
 * "complete" and then be undone); here every operation after the trip waits
 * for the cut to finish, and so fails.
 */
export class TripVolume extends DelegatingVolume<FaultyVolume> {
  operations = 0
  tripped = false
  private matched = 0
  private cutting: Promise<unknown> | undefined

  constructor(
    faulty: FaultyVolume,
    private readonly tripwire: Tripwire | undefined,
  ) {
    super(faulty)
  }

  get faulty(): FaultyVolume {
    return this.inner
  }

  private async enter(kind: OperationKind, requests: readonly VolumeRequest[]): Promise<void> {
    this.operations++
    if (this.cutting !== undefined) {
      await this.cutting
      return
    }
    if (this.tripwire === undefined) return
    if (this.tripwire.matches !== undefined && !this.tripwire.matches(kind, requests)) return
    if (++this.matched === this.tripwire.nth) {
      this.tripped = true
      this.cutting = this.inner.powerCut(this.tripwire.cut)
      await this.cutting
    }
  }

  override async read(requests: readonly VolumeRequest[]): Promise<void> {
    await this.enter('read', requests)
    return this.inner.read(requests)
  }
  override readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
    reportWhenSettled(this.read(requests), requests.length, onRequest)
  }
  override async write(requests: readonly VolumeRequest[]): Promise<void> {
    await this.enter('write', requests)
    return this.inner.write(requests)
  }
  override async sync(): Promise<void> {
    await this.enter('sync', [])
    return this.inner.sync()
  }
  override async discard(offset: number, length: number): Promise<void> {
    await this.enter('discard', [])
    return this.inner.discard(offset, length)
  }
}

export const CRASH_BLOCKS = 20_000

/** Where the workload's block i (0 <= i < CRASH_BLOCKS) lives: itself, unless a run spreads the blocks over a larger device. */
export type Placement = (index: number) => number
const IN_PLACE: Placement = (index) => index
export const CRASH_SETTINGS = { mapCacheBytes: 64 * 1024, writeBufferBytes: 16 * 1024, checkpointLogBytes: 1024 * 1024, reserveSegments: 4 }

/** What the workload wrote: per block, the value made durable by the last completed flush, and the values written since. */
export class CrashModel {
  readonly durable = new Map<number, Buffer>()
  readonly since = new Map<number, Buffer[]>()

  wrote(lba: number, data: Buffer): void {
    const list = this.since.get(lba)
    if (list === undefined) this.since.set(lba, [data])
    else list.push(data)
  }

  flushed(): void {
    for (const [lba, list] of this.since) this.durable.set(lba, list[list.length - 1]!)
    this.since.clear()
  }

  clone(): CrashModel {
    const copy = new CrashModel()
    for (const [lba, data] of this.durable) copy.durable.set(lba, data)
    for (const [lba, list] of this.since) copy.since.set(lba, [...list])
    return copy
  }

  /** After a check passed: what the device holds is now the durable truth. */
  async adopt(device: CompressedBlockDevice): Promise<void> {
    const lbas = [...this.since.keys()]
    for (let first = 0; first < lbas.length; first += 256) {
      const group = lbas.slice(first, first + 256)
      const blocks = await readBlocks(device, group)
      group.forEach((lba, index) => this.durable.set(lba, blocks[index]!))
    }
    this.since.clear()
  }

  /** Every block the device may hold after a crash: the durable value or any later one. */
  async check(device: CompressedBlockDevice): Promise<string | undefined> {
    const zero = Buffer.alloc(BLOCK_SIZE)
    const lbas = [...new Set([...this.durable.keys(), ...this.since.keys()])].sort((left, right) => left - right)
    for (let first = 0; first < lbas.length; first += 256) {
      const group = lbas.slice(first, first + 256)
      const blocks = await readBlocks(device, group)
      for (let index = 0; index < group.length; index++) {
        const lba = group[index]!
        const allowed = [this.durable.get(lba) ?? zero, ...(this.since.get(lba) ?? [])]
        if (!allowed.some((value) => value.equals(blocks[index]!))) {
          const flushed = this.durable.has(lba) && !this.since.has(lba)
          return `block ${lba} holds none of its ${allowed.length} allowed values${flushed ? ' (it was covered by a completed flush)' : ''}`
        }
      }
    }
    return undefined
  }
}

/**
 * A seeded workload of write batches (hot range and scattered, every kind of
 * block), trims and flushes, long enough to roll segments, checkpoint, spill
 * write buffers and clean. Stops at the first error (the power cut). Block
 * i of the workload is written at `place(i)`; a trim covers the `count`
 * blocks from `place(i)` on.
 */
export async function crashWorkload(device: CompressedBlockDevice, model: CrashModel, seed: number, steps: number, place: Placement = IN_PLACE): Promise<void> {
  const random = seededRandom(seed)
  const kinds: BlockKind[] = ['bucket', 'bucket', 'bucket', 'random', 'text', 'zero']
  const zero = Buffer.alloc(BLOCK_SIZE)
  for (let step = 0; step < steps; step++) {
    const choice = random()
    if (choice < 0.7) {
      const writes = new Map<number, Buffer>()
      const count = 1 + Math.floor(random() * 24)
      for (let index = 0; index < count; index++) {
        const lba = place(random() < 0.6 ? Math.floor(random() * 400) : Math.floor(random() * CRASH_BLOCKS))
        writes.set(lba, makeBlock(kinds[Math.floor(random() * kinds.length)]!, seed * 1e6 + step * 100 + index))
      }
      for (const [lba, data] of writes) model.wrote(lba, data)
      await writeBlocks(device, [...writes].map(([lba, data]) => ({ lba, data })))
    } else if (choice < 0.75) {
      const lba = place(Math.floor(random() * 400))
      const count = 1 + Math.floor(random() * 20)
      for (let each = lba; each < lba + count; each++) model.wrote(each, zero)
      await device.trim(lba, count)
    } else {
      await device.flush()
      model.flushed()
    }
  }
}

export interface CrashRun {
  backing: MemoryBacking
  trip: TripVolume
  model: CrashModel
  failure: unknown
  /** Where the run put the workload's blocks (later workloads on the store use it too). */
  place: Placement
}

/**
 * Creates a store (`create` overrides its options), runs the workload on it
 * (its blocks where `place` says) with the tripwire armed, and leaves the
 * volume as the power cut left it.
 */
export async function runUntilCrash(
  seed: number,
  steps: number,
  tripwire: Tripwire | undefined,
  create: Partial<CompressedCreateOptions> = {},
  place: Placement = IN_PLACE,
): Promise<CrashRun> {
  const memory = new MemoryVolume({ size: 0 })
  const backing = memory.backing
  const created = await CompressedBlockDevice.create(memory, { blocks: CRASH_BLOCKS, segmentBytes: 64 * 1024, ...CRASH_SETTINGS, ...create })
  await created.close()
  const trip = new TripVolume(new FaultyVolume(new MemoryVolume({}, backing)), tripwire)
  const model = new CrashModel()
  let failure: unknown
  let device: CompressedBlockDevice | undefined
  try {
    device = await CompressedBlockDevice.open(trip, CRASH_SETTINGS)
    await crashWorkload(device, model, seed, steps, place)
  } catch (error) {
    failure = error
  }
  if (device !== undefined) await device.close().catch(() => undefined)
  else await trip.close().catch(() => undefined)
  return { backing, trip, model, failure, place }
}
