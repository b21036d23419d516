// The power-cut harness of test/reliability-power.test.ts and the soak
// (bench/soak.ts): a seeded workload of puts, deletes and batches (sync and
// not), large values, flushes, bucket splits and, in lz4 mode, checkpoints
// and cleaning on a deliberately small compressed device, recorded once as a
// trace of volume writes and syncs (./trace.ts); then, for any trace point
// and cut, the crash image is rebuilt, checked (src/check.ts), recovered,
// compared with what was acknowledged, closed and checked again.
import { type OpenOptions, openOnVolume } from '../../src/db'
import { MemoryBacking, MemoryVolume, type PowerCutOptions, seededRandom } from '../../src/device'
import type { CreateDeviceOptions } from '../../src/device/open'
import { type CheckReport, checkVolume } from '../../src/check'
import { type IssuedWrite, type Operation, matchingPrefix, writeWorkload } from './crash'
import { contents } from './store'
import { CrashImages, TracingVolume } from './trace'

export type Compression = 'lz4' | 'none'

/** A store small enough to split, overflow and flush often under a short workload. */
export const POWER_STORE: OpenOptions = {
  size: 64 * 1024 * 1024,
  expectedKeys: 150,
  keySize: 9,
  valueSize: 40,
  writeBufferSize: 1024 * 1024,
  cacheSize: 256 * 1024,
}

/** An lz4 device tuned so that a short workload rolls segments, checkpoints, evicts map pages and cleans. */
export const SMALL_LZ4: NonNullable<CreateDeviceOptions['lz4']> = {
  segmentBytes: 64 * 1024,
  writeBufferBytes: 16 * 1024,
  checkpointLogBytes: 1024 * 1024,
  mapCacheBytes: 64 * 1024,
  reserveSegments: 4,
}

/** A write of the workload, with when (trace point) it was issued and acknowledged. */
export interface LoggedWrite extends IssuedWrite {
  sync: boolean
  issuedAt: number
  ackedAt: number
}

export interface Trace {
  compression: Compression
  base: MemoryBacking
  volume: TracingVolume
  writes: LoggedWrite[]
  /** Completed flushes (and the final close): every write before `writesBefore` is durable from trace point `at` on. */
  barriers: Array<{ writesBefore: number; at: number }>
}

/** Runs the seeded workload of `waves` waves on a new store, recording its trace. */
export async function recordTrace(compression: Compression, seed: number, waves: number): Promise<Trace> {
  const first = new MemoryVolume({ size: 0 })
  const created = await openOnVolume(first, { ...POWER_STORE, compression }, { fresh: true, lz4: SMALL_LZ4 })
  await created.put('created', 'yes')
  await created.close()
  const base = first.backing.clone()
  const volume = new TracingVolume(new MemoryVolume({}, first.backing))
  const db = await openOnVolume(volume, { ...POWER_STORE, compression }, { lz4: SMALL_LZ4 })
  const random = seededRandom(seed)
  const next = writeWorkload(seed, 40)
  const writes: LoggedWrite[] = []
  const barriers: Trace['barriers'] = []
  for (let wave = 0; wave < waves; wave++) {
    // The key space grows, so buckets split while the trace runs.
    const keySpace = 40 + wave * 4
    const pending: Array<Promise<void>> = []
    const count = 1 + Math.floor(random() * 6)
    for (let index = 0; index < count; index++) {
      const operations = renameKeys(next(), keySpace, random)
      const write: LoggedWrite = { operations, status: 'pending', sync: random() < 0.7, issuedAt: volume.position, ackedAt: -1 }
      writes.push(write)
      pending.push(
        db.batch(operations, { sync: write.sync }).then(() => {
          write.status = 'acked'
          write.ackedAt = volume.position
        }),
      )
    }
    if (random() < 0.12) {
      const writesBefore = writes.length
      pending.push(db.flush().then(() => void barriers.push({ writesBefore, at: volume.position })))
    }
    await Promise.all(pending)
  }
  await db.close()
  barriers.push({ writesBefore: writes.length, at: volume.position })
  return { compression, base, volume, writes, barriers }
}

/** Spreads the workload's keys over `keySpace` keys (the workload's own space is fixed). */
function renameKeys(operations: Operation[], keySpace: number, random: () => number): Operation[] {
  return operations.map((operation) => ({ ...operation, key: `key-${Math.floor(random() * keySpace)}` }))
}

/**
 * Whether a check of a store a crash left (before any open recovered it)
 * reports only what the crash left and an open repairs: a fallback
 * checkpoint slot torn while it was written, and blocks of the last flush
 * step that differ from its journal.
 */
export function onlyCrashLeftovers(report: CheckReport): boolean {
  return report.problems.every(
    (problem) => (problem.structure === 'lz4-checkpoint' && problem.location.startsWith('checkpoint slot')) || problem.location.includes('(in the journal of generation'),
  )
}

/** How many writes must survive a power cut just before trace point `point`. */
export function durableWrites(trace: Trace, point: number): number {
  let durable = 0
  trace.writes.forEach((write, index) => {
    if (write.sync && write.ackedAt >= 0 && write.ackedAt <= point) durable = Math.max(durable, index + 1)
  })
  for (const barrier of trace.barriers) if (barrier.at <= point) durable = Math.max(durable, barrier.writesBefore)
  return durable
}

export interface CutOutcome {
  /** What went wrong, or undefined. */
  failure: string | undefined
  /** The check of the crash image, before any recovery. */
  before: CheckReport | undefined
  after: CheckReport | undefined
  unsynced: number
  durable: number
  recovered: { journalsApplied: number; stepRedone: boolean; framesReplayed: number } | undefined
}

async function check(backing: MemoryBacking): Promise<CheckReport> {
  const volume = new MemoryVolume({ readOnly: true }, backing)
  try {
    return await checkVolume(volume)
  } finally {
    await volume.close()
  }
}

/**
 * Cuts power just before `point` (from `images`, points in increasing order)
 * with `cut`; checks the crash image, recovers it, compares it with the
 * acknowledged writes, closes it and checks it again.
 */
export async function cutAndRecover(trace: Trace, images: CrashImages, point: number, cut: PowerCutOptions): Promise<CutOutcome> {
  const { backing, unsynced } = images.imageAt(point, cut)
  const durable = durableWrites(trace, point)
  const outcome: CutOutcome = { failure: undefined, before: undefined, after: undefined, unsynced, durable, recovered: undefined }
  const label = `${trace.compression}, cut before trace point ${point} (${JSON.stringify(cut)}, ${unsynced} unsynced writes)`
  outcome.before = await check(backing)
  let state: Map<string, Buffer>
  try {
    const db = await openOnVolume(new MemoryVolume({}, backing), { ...POWER_STORE, create: false }, { lz4: SMALL_LZ4 })
    try {
      outcome.recovered = db.stats().recovery
      state = await contents(db)
    } finally {
      await db.close()
    }
  } catch (error) {
    outcome.failure = `${label}: the store does not recover: ${(error as Error).message}`
    return outcome
  }
  const candidates = trace.writes.filter((write) => write.issuedAt < point).map((write, index) => ({ ...write, status: index < durable ? ('acked' as const) : ('pending' as const) }))
  state.delete('created')
  const prefix = matchingPrefix(candidates, state)
  if (prefix < 0) {
    outcome.failure = `${label}: the recovered store is no prefix of the writes holding the ${durable} durable ones`
    return outcome
  }
  outcome.after = await check(backing)
  if (!outcome.after.healthy) outcome.failure = `${label}: after recovery, check reports ${JSON.stringify(outcome.after.problems.slice(0, 3))}`
  return outcome
}

/** Trace points to cut at: every sync point when `every`, else an even sample of about `count`, plus seeded extras. */
export function pickPoints(trace: Trace, count: number, seed: number): number[] {
  const syncs = trace.volume.syncPoints()
  const step = Math.max(1, syncs.length / count)
  const points = new Set<number>()
  for (let index = 0; index < syncs.length; index += step) points.add(syncs[Math.floor(index)]!)
  const random = seededRandom(seed)
  for (let extra = 0; extra < count / 4; extra++) points.add(1 + Math.floor(random() * (trace.volume.position - 1)))
  return [...points].sort((left, right) => left - right)
}
