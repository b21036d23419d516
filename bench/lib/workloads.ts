/**
 * YCSB's core workloads and the stream of operations each one issues.
 *
 * The mixes are YCSB's (workloads/workloada … workloadf): A is 50 % reads and
 * 50 % updates, B 95/5, C reads only, D 95 % reads of recently inserted keys
 * and 5 % inserts, F 50 % reads and 50 % read-modify-writes. E (short range
 * scans) needs ordered keys, which a hash store does not have by design, so
 * it is listed and not run. A, B, C and F run with uniform and with
 * scrambled-zipfian key choice; D's key choice is "latest" by definition.
 *
 * An `OperationStream` is deterministic from its seed and stream name: the
 * n-th call of `next()` gives the same operation for every engine. The one
 * exception is D, where (as in YCSB's AcknowledgedCounterGenerator) reads
 * pick among inserts already acknowledged, which depends on completion order.
 */

import { Random } from './random'
import { ScrambledZipfianGenerator, SkewedLatestGenerator, ZIPFIAN_THETA_DEFAULT } from './zipfian'

export type OperationKind = 'read' | 'update' | 'insert' | 'readModifyWrite'
export const OPERATION_KINDS: readonly OperationKind[] = ['read', 'update', 'insert', 'readModifyWrite']

export type KeyDistribution = 'uniform' | 'zipfian' | 'latest'
export type WorkloadId = 'A' | 'B' | 'C' | 'D' | 'F'

export type Proportions = Readonly<Record<OperationKind, number>>

export interface WorkloadSpec {
  id: WorkloadId
  title: string
  proportions: Proportions
  /** The key distributions the workload runs with. */
  distributions: readonly KeyDistribution[]
}

const mix = (read: number, update: number, insert: number, readModifyWrite: number): Proportions => ({
  read,
  update,
  insert,
  readModifyWrite,
})

export const WORKLOADS: Readonly<Record<WorkloadId, WorkloadSpec>> = {
  A: { id: 'A', title: 'update heavy (50% read, 50% update)', proportions: mix(0.5, 0.5, 0, 0), distributions: ['uniform', 'zipfian'] },
  B: { id: 'B', title: 'read mostly (95% read, 5% update)', proportions: mix(0.95, 0.05, 0, 0), distributions: ['uniform', 'zipfian'] },
  C: { id: 'C', title: 'read only (100% read)', proportions: mix(1, 0, 0, 0), distributions: ['uniform', 'zipfian'] },
  D: { id: 'D', title: 'read latest (95% read, 5% insert)', proportions: mix(0.95, 0, 0.05, 0), distributions: ['latest'] },
  F: { id: 'F', title: 'read-modify-write (50% read, 50% RMW)', proportions: mix(0.5, 0, 0, 0.5), distributions: ['uniform', 'zipfian'] },
}

/** The warm-up before a measured phase may take this share of the phase's time limit. */
export const WARMUP_SHARE_OF_PHASE_TIME = 0.25

/** YCSB's recommended order: D last, because it adds keys. */
export const WORKLOAD_ORDER: readonly WorkloadId[] = ['A', 'B', 'C', 'F', 'D']

export const NOT_APPLICABLE_WORKLOADS = [
  {
    id: 'E',
    title: 'short ranges (95% scan, 5% insert)',
    reason: 'range scans need keys in order; a table-less hash store places keys by hash, so it has no scan to measure',
  },
] as const

export function isWorkloadId(text: string): text is WorkloadId {
  return Object.prototype.hasOwnProperty.call(WORKLOADS, text)
}

/** Picks operation kinds with the given proportions. */
export class OperationChooser {
  private readonly thresholds: number[]
  private readonly kinds: OperationKind[]
  private readonly random: Random

  /** REQUIRES: proportions are >= 0 and sum to 1 (within 1e-9). */
  constructor(proportions: Proportions, random: Random) {
    let total = 0
    this.thresholds = []
    this.kinds = []
    for (const kind of OPERATION_KINDS) {
      const share = proportions[kind]
      if (!(share >= 0)) throw new RangeError(`proportion of ${kind} must be >= 0, got ${share}`)
      if (share === 0) continue
      total += share
      this.thresholds.push(total)
      this.kinds.push(kind)
    }
    if (Math.abs(total - 1) > 1e-9) throw new RangeError(`operation proportions must sum to 1, got ${total}`)
    this.thresholds[this.thresholds.length - 1] = 1
    this.random = random
  }

  next(): OperationKind {
    const draw = this.random.nextDouble()
    for (let index = 0; index < this.thresholds.length; index++) {
      if (draw < this.thresholds[index]) return this.kinds[index]
    }
    return this.kinds[this.kinds.length - 1]
  }
}

/**
 * Tracks which inserted key numbers are acknowledged, and the highest key
 * number below which every insert is. Keeps a ring of `window` flags, so at
 * most `window` inserts may be outstanding at once.
 */
export class AcknowledgedCounter {
  private readonly flags: Uint8Array
  private latest: number

  /** `firstPending` is the first key number still to be inserted. */
  constructor(firstPending: number, window: number) {
    this.flags = new Uint8Array(window)
    this.latest = firstPending - 1
  }

  /** The highest key number such that it and every smaller one exist. */
  get latestContiguous(): number {
    return this.latest
  }

  acknowledge(keyNumber: number): void {
    const window = this.flags.length
    if (keyNumber <= this.latest || keyNumber - this.latest > window) {
      throw new RangeError(`insert ${keyNumber} acknowledged outside the window after ${this.latest}`)
    }
    this.flags[keyNumber % window] = 1
    while (this.flags[(this.latest + 1) % window] === 1) {
      this.flags[(this.latest + 1) % window] = 0
      this.latest++
    }
  }
}

export interface Operation {
  kind: OperationKind
  keyNumber: number
}

export interface StreamOptions {
  proportions: Proportions
  distribution: KeyDistribution
  /** Key numbers 0 … existingRecords - 1 exist when the stream starts. */
  existingRecords: number
  seed: number
  /** Names the stream; the same name and seed give the same operations. */
  streamName: string
  /** Upper bound on operations in flight, which bounds outstanding inserts. */
  concurrency: number
  theta?: number
}

interface KeyChooser {
  next(latest: number): number
}

function keyChooserFor(options: StreamOptions, random: Random): KeyChooser {
  const theta = options.theta ?? ZIPFIAN_THETA_DEFAULT
  switch (options.distribution) {
    case 'uniform':
      return { next: (latest) => random.nextBelow(latest + 1) }
    case 'zipfian': {
      const scrambled = new ScrambledZipfianGenerator(options.existingRecords, random, theta)
      return { next: () => scrambled.next() }
    }
    case 'latest': {
      const skewed = new SkewedLatestGenerator(options.existingRecords, random, theta)
      return { next: (latest) => skewed.next(latest) }
    }
  }
}

/**
 * The operations of one phase. Reads and updates choose among keys that
 * exist; inserts take the next key number after the existing records. The
 * zipfian choice covers the records present when the stream starts.
 */
export class OperationStream {
  private readonly chooser: OperationChooser
  private readonly keys: KeyChooser
  private readonly acknowledged: AcknowledgedCounter
  private nextInsert: number

  /** REQUIRES: existingRecords >= 1. */
  constructor(options: StreamOptions) {
    if (!Number.isInteger(options.existingRecords) || options.existingRecords < 1) {
      throw new RangeError(`a workload needs at least one existing record, got ${options.existingRecords}`)
    }
    const random = new Random(options.seed, options.streamName)
    this.chooser = new OperationChooser(options.proportions, random)
    this.keys = keyChooserFor(options, random)
    this.nextInsert = options.existingRecords
    this.acknowledged = new AcknowledgedCounter(options.existingRecords, Math.max(2, options.concurrency * 2))
  }

  next(): Operation {
    const kind = this.chooser.next()
    if (kind === 'insert') return { kind, keyNumber: this.nextInsert++ }
    return { kind, keyNumber: this.keys.next(this.acknowledged.latestContiguous) }
  }

  /** Tell the stream an insert completed, so reads may choose its key. */
  acknowledgeInsert(keyNumber: number): void {
    this.acknowledged.acknowledge(keyNumber)
  }

  /** Key numbers handed to inserts so far end before this one. */
  get insertedUpTo(): number {
    return this.nextInsert
  }
}

/** The inserts of a load phase: key numbers from … to - 1, in order. */
export class LoadStream {
  private nextKey: number
  private readonly end: number

  constructor(from: number, to: number) {
    this.nextKey = from
    this.end = to
  }

  next(): Operation | undefined {
    if (this.nextKey >= this.end) return undefined
    return { kind: 'insert', keyNumber: this.nextKey++ }
  }
}
