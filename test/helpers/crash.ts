// Crash-test helpers: a volume that cuts its own power at the Nth write or
// sync, a random write workload whose operations are recorded in issue order
// with what became of each, and the check every crash test makes: the
// recovered store equals the result of applying some prefix of the issued
// operations that includes every acknowledged one (so nothing acknowledged is
// lost, nothing is applied out of order, no batch is half there).
import { FaultyVolume, type PowerCutOptions, seededRandom } from '../../src/device'
import type { Volume, VolumeRequest } from '../../src/device/types'

/** Cuts power (FaultyVolume.powerCut) just before its `crashAt`-th write or sync batch. */
export class CrashingVolume extends FaultyVolume {
  private calls = 0
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

  override async write(requests: readonly VolumeRequest[]): Promise<void> {
    await this.maybeCrash()
    return super.write(requests)
  }

  override async sync(): Promise<void> {
    await this.maybeCrash()
    return super.sync()
  }

  /** Cuts power now if it has not been cut yet. */
  async crashNow(): Promise<void> {
    if (this.crashed) return
    this.crashed = true
    this.cutSummary = await this.powerCut(this.cut)
  }

  private async maybeCrash(): Promise<void> {
    this.calls++
    if (!this.crashed && this.calls >= this.crashAt) await this.crashNow()
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
