// Crash-test helpers: a volume that cuts its own power at the Nth write or
// sync, a random write workload whose operations are recorded in issue order
// with what became of each, and the check every crash test makes: the
// recovered store equals the result of applying some prefix of the issued
// operations that includes every acknowledged one (so nothing acknowledged is
// lost, nothing is applied out of order, no batch is half there).
import { FaultyVolume, type PowerCutOptions, seededRandom } from '../../src/device'
import { CubbyError, ErrorCode } from '../../src/errors'
import type { Volume, VolumeRequest } from '../../src/device/types'

/**
 * Cuts power (FaultyVolume.powerCut) just before its `crashAt`-th write or
 * sync batch. The cut waits for the batches already in flight to finish, so
 * none of them completes after it (a real device never reports success after
 * losing power; FaultyVolume alone would let an in-flight write land on the
 * post-cut image, or an in-flight sync succeed after it). Every batch that
 * starts after the cut fails with CUBBY_IO.
 */
export class CrashingVolume extends FaultyVolume {
  private calls = 0
  private inFlight = 0
  private idle: Array<() => void> = []
  crashed = false
  cutSummary: { kept: number; dropped: number; torn: number } | undefined

  constructor(
    inner: Volume,
    /** The write or sync batch (counted from 1) before which power is cut; may be moved later. */
    public crashAt: number,
    private readonly cut: PowerCutOptions,
  ) {
    super(inner)
  }

  get callsSeen(): number {
    return this.calls
  }

  override async read(requests: readonly VolumeRequest[]): Promise<void> {
    return this.tracked(false, () => super.read(requests))
  }

  override async write(requests: readonly VolumeRequest[]): Promise<void> {
    return this.tracked(true, () => super.write(requests))
  }

  override async sync(): Promise<void> {
    return this.tracked(true, () => super.sync())
  }

  override async discard(offset: number, length: number): Promise<void> {
    return this.tracked(false, () => super.discard(offset, length))
  }

  /** Cuts power now (once the batches in flight have finished), if it has not been cut yet. */
  async crashNow(): Promise<void> {
    if (this.crashed) return
    this.crashed = true
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve))
    this.cutSummary = await this.powerCut(this.cut)
  }

  private async tracked(counted: boolean, operation: () => Promise<void>): Promise<void> {
    if (counted) {
      this.calls++
      if (!this.crashed && this.calls >= this.crashAt) await this.crashNow()
    }
    if (this.crashed) throw new CubbyError(ErrorCode.IO, `${this.path}: power was cut (simulated)`, { errno: 'EIO', syscall: 'power-cut' })
    this.inFlight++
    try {
      await operation()
    } finally {
      this.inFlight--
      if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve()
    }
  }
}

export type Operation = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string }

/** One write call: a put, a del, or a batch, and what became of it. */
export interface IssuedWrite {
  operations: Operation[]
  status: 'pending' | 'acked' | 'failed'
}

/** A reproducible random write workload over `keySpace` keys, with small, medium and large values. */
export function writeWorkload(seed: number, keySpace: number): () => Operation[] {
  const random = seededRandom(seed)
  const value = (): Buffer => {
    const roll = random()
    const length = roll < 0.03 ? 3000 + Math.floor(random() * 9000) : roll < 0.1 ? 400 + Math.floor(random() * 1400) : Math.floor(random() * 60)
    const out = Buffer.alloc(length)
    for (let index = 0; index < length; index++) out[index] = Math.floor(random() * 256)
    return out
  }
  const one = (): Operation => {
    const key = `key-${Math.floor(random() * keySpace)}`
    return random() < 0.85 ? { type: 'put', key, value: value() } : { type: 'del', key }
  }
  return () => {
    if (random() < 0.2) return Array.from({ length: 2 + Math.floor(random() * 8) }, one)
    return [one()]
  }
}

/** The state after applying `writes` in order. */
export function applyWrites(writes: readonly IssuedWrite[], base = new Map<string, Buffer>()): Map<string, Buffer> {
  const state = new Map(base)
  for (const write of writes) {
    for (const operation of write.operations) {
      if (operation.type === 'put') state.set(operation.key, operation.value)
      else state.delete(operation.key)
    }
  }
  return state
}

function sameState(left: ReadonlyMap<string, Buffer>, right: ReadonlyMap<string, Buffer>): boolean {
  if (left.size !== right.size) return false
  for (const [key, value] of left) if (!right.get(key)?.equals(value)) return false
  return true
}

/**
 * Finds the prefix of `writes` (at least every acknowledged one) whose result
 * equals `recovered`; returns its length, or -1 when none does.
 */
export function matchingPrefix(writes: readonly IssuedWrite[], recovered: ReadonlyMap<string, Buffer>, base = new Map<string, Buffer>()): number {
  let lastAcked = -1
  writes.forEach((write, index) => {
    if (write.status === 'acked') lastAcked = index
  })
  let state = applyWrites(writes.slice(0, lastAcked + 1), base)
  for (let length = lastAcked + 1; length <= writes.length; length++) {
    if (sameState(state, recovered)) return length
    if (length < writes.length) state = applyWrites([writes[length]!], state)
  }
  return -1
}
