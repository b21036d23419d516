/**
 * FaultyVolume: a Volume wrapper that makes the failures a real device can
 * produce happen on purpose, for tests (after leveldb's
 * db/fault_injection_test.cc).
 *
 *  - failNext(): fail the Nth read / write / sync / discard batch from now,
 *    once or forever, with CUBBY_IO and the errno of your choice.
 *  - powerCut(): simulate losing power. Every write not covered by a
 *    completed sync() is kept, dropped, or torn at sector granularity,
 *    chosen by a seed; the surviving bytes are left in the wrapped volume and
 *    this wrapper refuses all further I/O. Open the wrapped volume again to
 *    recover from what is left.
 *
 * To undo unsynced writes the wrapper reads the old bytes of every range
 * before it writes it, so it costs one extra read per write: test use only.
 */

import { CubbyError, ErrorCode, closedError, invalidArgument } from '../errors'
import { reportWhenSettled } from './report-each'
import { DelegatingVolume } from './delegating'
import type { ReportEach, VolumeRequest } from './types'

export type FaultOperation = 'read' | 'write' | 'sync' | 'discard'

export interface FaultRule {
  operation: FaultOperation
  /** Fail the nth batch of this kind counted from now (1 = the very next). */
  nth: number
  /** Fail that batch and every later one of the kind (default: only that one). */
  persistent?: boolean
  /** errno to report (default 'EIO'). */
  errno?: string
}

export interface PowerCutOptions {
  /** Seed of the choices; the same seed over the same writes gives the same result. */
  seed: number
  /**
   * What happens to each unsynced write:
   *  - 'drop'  : every one is lost;
   *  - 'keep'  : every one survives;
   *  - 'random': each write survives or is lost as a whole (default);
   *  - 'tear'  : each `atomicBytes` unit of each write survives or is lost on its own.
   */
  policy?: 'drop' | 'keep' | 'random' | 'tear'
  /** Atomic unit for 'tear' (512 = sectors tear; 4096 = the device writes 4 KiB atomically). Default 512. */
  atomicBytes?: number
}

/** A write not yet covered by a completed sync: its bytes, and what the range held before it. */
export interface PendingWrite {
  offset: number
  before: Buffer
  after: Buffer
}

export interface PowerCutResult {
  /** Every sector any pending write touched, with the bytes it holds after the cut, in order of first touch. */
  units: Array<{ offset: number; bytes: Buffer }>
  summary: { kept: number; dropped: number; torn: number }
}

/**
 * Decides what a power cut leaves of `pending` (in write order): for each
 * write, and with 'tear' each aligned `atomicBytes` unit of it (a write
 * shorter than a unit, or not aligned to one, tears only at unit
 * boundaries), whether its bytes reached the medium, chosen by the seed.
 * Each touched sector (`sectorBytes`) is rebuilt from its oldest pre-image,
 * overlaid in write order by every surviving version. FaultyVolume.powerCut
 * uses it; so do tests that rebuild crash images from a recorded trace.
 */
export function resolvePowerCut(pending: readonly PendingWrite[], options: PowerCutOptions, sectorBytes = 512): PowerCutResult {
  const random = seededRandom(options.seed)
  const policy = options.policy ?? 'random'
  const atomic = Math.max(options.atomicBytes ?? 512, sectorBytes)
  const summary = { kept: 0, dropped: 0, torn: 0 }
  // Per write, per sector: did it survive? Sectors of one aligned atomic unit share their fate.
  const survivals = pending.map((write) => {
    const sectors = write.after.length / sectorBytes
    const kept = new Array<boolean>(sectors)
    if (policy === 'tear') {
      let unit = -1
      let fate = false
      let count = 0
      for (let index = 0; index < sectors; index++) {
        const unitIndex = Math.floor((write.offset + index * sectorBytes) / atomic)
        if (unitIndex !== unit) {
          unit = unitIndex
          fate = random() < 0.5
        }
        kept[index] = fate
        if (fate) count++
      }
      if (count === sectors) summary.kept++
      else if (count === 0) summary.dropped++
      else summary.torn++
    } else {
      const keep = policy === 'keep' ? true : policy === 'drop' ? false : random() < 0.5
      kept.fill(keep)
      if (keep) summary.kept++
      else summary.dropped++
    }
    return kept
  })
  const units: Array<{ offset: number; bytes: Buffer }> = []
  const byOffset = new Map<number, Buffer>()
  for (const write of pending) {
    for (let index = 0; index < write.after.length / sectorBytes; index++) {
      const offset = write.offset + index * sectorBytes
      if (byOffset.has(offset)) continue
      const bytes = Buffer.from(write.before.subarray(index * sectorBytes, (index + 1) * sectorBytes))
      byOffset.set(offset, bytes)
      units.push({ offset, bytes })
    }
  }
  pending.forEach((write, writeIndex) => {
    const kept = survivals[writeIndex]!
    for (let index = 0; index < kept.length; index++) {
      if (kept[index]) write.after.copy(byOffset.get(write.offset + index * sectorBytes)!, 0, index * sectorBytes, (index + 1) * sectorBytes)
    }
  })
  return { units, summary }
}

/** Small deterministic PRNG (mulberry32): the same seed gives the same crash. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class FaultyVolume extends DelegatingVolume {
  private rules: Array<FaultRule & { remaining: number }> = []
  private pending: PendingWrite[] = []
  /** Pending writes whose call has completed: the ones a sync that starts now covers. */
  private readonly completed = new Set<PendingWrite>()
  private dead: CubbyError | undefined
  private closed = false
  private readonly counts: Record<FaultOperation, number> = { read: 0, write: 0, sync: 0, discard: 0 }

  override get ioPath(): string {
    return `faulty(${this.inner.ioPath})`
  }

  /** How many batches of each kind have been issued through this wrapper. */
  operationCounts(): Readonly<Record<FaultOperation, number>> {
    return { ...this.counts }
  }

  /** Bytes written since the last completed sync, which a power cut may lose. */
  unsyncedWrites(): number {
    return this.pending.length
  }

  /** Arms a failure. Rules accumulate; clearFaults() removes them. */
  failNext(rule: FaultRule): void {
    if (!Number.isSafeInteger(rule.nth) || rule.nth < 1) throw invalidArgument(`nth must be a positive integer, not ${rule.nth}`)
    this.rules.push({ ...rule, remaining: rule.nth })
  }

  clearFaults(): void {
    this.rules = []
  }

  override async read(requests: readonly VolumeRequest[]): Promise<void> {
    this.enter('read')
    await this.inner.read(requests)
  }

  override readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
    reportWhenSettled(this.read(requests), requests.length, onRequest)
  }

  override async write(requests: readonly VolumeRequest[]): Promise<void> {
    this.enter('write')
    const records: PendingWrite[] = []
    for (const request of requests) {
      const before = this.inner.allocate(request.length)
      await this.inner.read([{ offset: request.offset, length: request.length, buffer: before, bufferOffset: 0 }])
      const after = Buffer.from(request.buffer.subarray(request.bufferOffset, request.bufferOffset + request.length))
      records.push({ offset: request.offset, before, after })
    }
    this.checkAlive()
    // Recorded before the bytes reach the wrapped volume, so a power cut that
    // starts while the write is in flight knows to decide its fate.
    this.pending.push(...records)
    try {
      await this.inner.write(requests)
    } catch (error) {
      this.pending = this.pending.filter((record) => !records.includes(record))
      throw error
    }
    for (const record of records) this.completed.add(record)
  }

  override async sync(): Promise<void> {
    this.enter('sync')
    // fdatasync covers the writes that completed before it was called; writes
    // still in flight, and later ones, stay unsynced.
    const covered = new Set(this.pending.filter((record) => this.completed.has(record)))
    await this.inner.sync()
    this.checkAlive()
    this.pending = this.pending.filter((record) => !covered.has(record))
    for (const record of covered) this.completed.delete(record)
  }

  override async discard(offset: number, length: number): Promise<void> {
    this.enter('discard')
    if (length > 0) {
      const before = this.inner.allocate(length)
      await this.inner.read([{ offset, length, buffer: before, bufferOffset: 0 }])
      this.checkAlive()
      const record = { offset, before, after: Buffer.alloc(length) }
      this.pending.push(record)
      await this.inner.discard(offset, length)
      this.completed.add(record)
    }
  }

  override async grow(size: number): Promise<void> {
    this.checkAlive()
    await this.inner.grow(size)
  }

  /**
   * Loses power now. Unsynced writes are resolved by `options` into the
   * wrapped volume, which stays open for the test to inspect or close; this
   * wrapper fails every later call with CUBBY_IO.
   */
  async powerCut(options: PowerCutOptions): Promise<{ kept: number; dropped: number; torn: number }> {
    this.checkAlive()
    const unit = options.atomicBytes ?? 512
    if (unit % this.inner.sectorSize !== 0) throw invalidArgument(`atomicBytes ${unit} is not a multiple of the sector size`)
    // Dead from this instant: an operation still in flight fails at its next
    // step instead of landing after the cut, and a sync cannot complete.
    this.dead = new CubbyError(ErrorCode.IO, `${this.path}: power was cut (simulated)`, { errno: 'EIO', syscall: 'power-cut', path: this.path })
    const pending = this.pending
    this.pending = []
    this.completed.clear()
    const { units, summary } = resolvePowerCut(pending, options, this.inner.sectorSize)
    for (const { offset, bytes } of units) {
      const buffer = this.inner.allocate(bytes.length)
      bytes.copy(buffer)
      await this.inner.write([{ offset, length: bytes.length, buffer, bufferOffset: 0 }])
    }
    return summary
  }

  override async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.inner.close()
  }

  private checkAlive(): void {
    if (this.closed) throw closedError('volume')
    if (this.dead !== undefined) throw this.dead
  }

  /** Counts the operation and throws if a rule says this one fails. */
  private enter(operation: FaultOperation): void {
    this.checkAlive()
    this.counts[operation]++
    let fail: (FaultRule & { remaining: number }) | undefined
    for (const rule of this.rules) {
      if (rule.operation !== operation) continue
      if (rule.remaining > 0) rule.remaining--
      if (rule.remaining === 0) {
        fail = rule
        if (!rule.persistent) rule.remaining = -1
      }
    }
    if (fail !== undefined) {
      const errno = fail.errno ?? 'EIO'
      throw new CubbyError(ErrorCode.IO, `${this.path}: injected ${errno} on ${operation} #${this.counts[operation]}`, {
        errno,
        syscall: operation === 'sync' ? 'fdatasync' : operation,
        path: this.path,
      })
    }
  }
}
