// Injected I/O errors (after SQLite's I/O-error tests and leveldb's
// fault_injection_test): for an operation (open, put, batch, get, flush,
// close), a kind of volume call (read, write, sync, discard) and once or
// persistently, fail the Nth such call for N = 1, 2, ... until the operation
// completes without reaching it. Every case must end in success or a typed
// CUBBY_IO; a store whose write, flush or sync failed refuses writes with
// CUBBY_IO until reopened while a failed read fails only that read; and
// reopened without faults, the store holds every acknowledged write (a failed
// one may or may not be there, nothing out of order) and checks healthy.
import { type CubbyDB, openOnVolume } from '../../src/db'
import { FaultyVolume, type FaultOperation, MemoryBacking, MemoryVolume, seededRandom } from '../../src/device'
import { checkVolume } from '../../src/check'
import { type IssuedWrite, type Operation, matchingPrefix } from './crash'
import { contents } from './store'
import { type Compression, SMALL_LZ4 } from './power'

export type FaultedOperation = 'open' | 'put' | 'batch' | 'get' | 'flush' | 'close'
export const FAULTED_OPERATIONS: FaultedOperation[] = ['open', 'put', 'batch', 'get', 'flush', 'close']
export const FAULT_KINDS: FaultOperation[] = ['read', 'write', 'sync', 'discard']

const STORE = { size: 32 * 1024 * 1024, expectedKeys: 150, keySize: 9, valueSize: 40, writeBufferSize: 1024 * 1024, cacheSize: 0 }
/** The largest N tried: an operation that still reaches the Nth call is a runaway (a retry loop on a failing device). */
export const MAX_NTH = 400

export interface FaultBase {
  compression: Compression
  backing: MemoryBacking
  state: Map<string, Buffer>
}

function value(random: () => number, large: boolean): Buffer {
  const out = Buffer.alloc(large ? 3000 + Math.floor(random() * 6000) : Math.floor(random() * 60))
  for (let index = 0; index < out.length; index++) out[index] = Math.floor(random() * 256)
  return out
}

/** A closed store with a few hundred keys, some with values in extents, and a log left to replay. */
export async function faultBase(compression: Compression, seed: number): Promise<FaultBase> {
  const random = seededRandom(seed)
  const volume = new MemoryVolume({ size: 0 })
  const db = await openOnVolume(volume, { ...STORE, compression }, { fresh: true, lz4: SMALL_LZ4 })
  const state = new Map<string, Buffer>()
  for (let index = 0; index < 300; index++) {
    const key = `key-${index}`
    const bytes = value(random, index % 23 === 0)
    await db.put(key, bytes, { sync: false })
    state.set(key, bytes)
  }
  await db.close()
  // A few writes after the last flush, left in the log by a process that dies: an open replays them.
  const dying = new FaultyVolume(new MemoryVolume({}, volume.backing))
  const again = await openOnVolume(dying, STORE, { lz4: SMALL_LZ4 })
  for (let index = 0; index < 5; index++) {
    const bytes = value(random, index === 2)
    await again.put(`late-${index}`, bytes)
    state.set(`late-${index}`, bytes)
  }
  await dying.powerCut({ seed, policy: 'keep' })
  volume.backing.isOpen = false
  return { compression, backing: volume.backing, state }
}

export interface FaultCase {
  operation: FaultedOperation
  kind: FaultOperation
  nth: number
  persistent: boolean
}

export interface FaultOutcome {
  /** The operation reached the failing call. */
  hit: boolean
  /** The operation (or the open before it) failed. */
  failed: boolean
  failure: string | undefined
}

const TYPED = 'CUBBY_IO'

/** The writes an operation makes (deterministic per case). */
function writesOf(operation: FaultedOperation, random: () => number): Operation[][] {
  if (operation === 'put') return [[{ type: 'put', key: 'key-7', value: value(random, true) }], [{ type: 'put', key: 'new-1', value: value(random, false) }]]
  if (operation === 'batch') {
    return [
      [
        { type: 'put', key: 'key-1', value: value(random, false) },
        { type: 'del', key: 'key-2' },
        { type: 'put', key: 'new-2', value: value(random, true) },
        { type: 'put', key: 'key-46', value: value(random, false) },
      ],
    ]
  }
  if (operation === 'flush' || operation === 'close') {
    return Array.from({ length: 12 }, (_, index) => [{ type: 'put', key: `key-${index * 17}`, value: value(random, index === 5) }] as Operation[])
  }
  return []
}

/** Runs one case on a copy of `base`. */
export async function runFaultCase(base: FaultBase, spec: FaultCase): Promise<FaultOutcome> {
  const label = `${base.compression}: ${spec.operation} with the ${spec.persistent ? 'persistent ' : ''}failure of ${spec.kind} #${spec.nth}`
  const backing = base.backing.clone()
  const faulty = new FaultyVolume(new MemoryVolume({}, backing))
  const problems: string[] = []
  const typed = (what: string, error: unknown): void => {
    if ((error as { code?: string }).code !== TYPED) problems.push(`${what}: ${(error as { code?: string }).code ?? 'untyped'} ${(error as Error)?.message ?? String(error)}`)
  }
  const random = seededRandom(spec.nth * 31 + FAULTED_OPERATIONS.indexOf(spec.operation))
  const writes: IssuedWrite[] = writesOf(spec.operation, random).map((operations) => ({ operations, status: 'pending' }))
  let failed = false
  let armedAt = 0
  const arm = (): void => {
    armedAt = faulty.operationCounts()[spec.kind]
    faulty.failNext({ operation: spec.kind, nth: spec.nth, persistent: spec.persistent })
  }
  if (spec.operation === 'open') arm()
  let db: CubbyDB | undefined
  try {
    db = await openOnVolume(faulty, { ...STORE, create: false }, { lz4: SMALL_LZ4 })
  } catch (error) {
    failed = true
    typed('open', error)
  }
  if (db !== undefined) {
    // Writes a flush or close will apply go in before the fault is armed.
    const early = spec.operation === 'flush' || spec.operation === 'close'
    if (early) {
      // Half of them sync: the others are not acknowledged as durable (the lz4 device holds them in memory until a flush).
      for (const [index, write] of writes.entries()) {
        const sync = index % 2 === 0
        await db.batch(write.operations, { sync })
        if (sync) write.status = 'acked'
      }
    }
    if (spec.operation !== 'open') arm()
    try {
      if (spec.operation === 'put' || spec.operation === 'batch') {
        for (const write of writes) {
          await db.batch(write.operations, { sync: true })
          write.status = 'acked'
        }
      } else if (spec.operation === 'get') {
        for (const key of ['key-0', 'key-23', 'key-99', 'late-2', 'missing']) {
          const got = await db.get(key)
          const expected = base.state.get(key)
          if (expected === undefined ? got !== undefined : !(got?.equals(expected) ?? false)) problems.push(`get ${key} returned a wrong value`)
        }
      } else if (spec.operation === 'flush') {
        await db.flush()
      } else if (spec.operation === 'close') {
        await db.close()
      }
    } catch (error) {
      failed = true
      typed(spec.operation, error)
    }
    const writeSide = spec.kind !== 'read' || spec.operation === 'flush' || spec.operation === 'close' || spec.operation === 'put' || spec.operation === 'batch'
    if (failed && spec.operation !== 'close' && writeSide) {
      // A failed write, sync or flush: writes are refused until the store is reopened.
      faulty.clearFaults()
      const refused = await db.put('probe', 'x').then(
        () => undefined,
        (error: unknown) => error,
      )
      if (refused === undefined) problems.push('after the failure the store still accepted a write')
      else typed('a write after the failure', refused)
    } else if (failed && spec.operation === 'get') {
      faulty.clearFaults()
      const again = await db.get('key-0').catch((error: unknown) => error)
      if (!(again instanceof Buffer) || !again.equals(base.state.get('key-0')!)) problems.push('a read after a failed read did not work')
    }
    faulty.clearFaults()
    await db.close().catch((error: unknown) => typed('close after the case', error))
  } else {
    await faulty.close()
  }
  const hit = faulty.operationCounts()[spec.kind] - armedAt >= spec.nth
  // Reopened without faults: every acknowledged write is there, and the store checks healthy.
  try {
    const reopened = await openOnVolume(new MemoryVolume({}, backing), { ...STORE, create: false }, { lz4: SMALL_LZ4 })
    let state: Map<string, Buffer>
    try {
      state = await contents(reopened)
    } finally {
      await reopened.close()
    }
    if (matchingPrefix(writes, state, base.state) < 0) problems.push('reopened, the store is no prefix of the writes holding every acknowledged one')
    const report = await checkVolume(new MemoryVolume({ readOnly: true }, backing))
    if (!report.healthy) problems.push(`reopened and closed, the store checks with ${JSON.stringify(report.problems.slice(0, 2))}`)
  } catch (error) {
    problems.push(`reopened without faults, the store fails: ${(error as Error).message}`)
  }
  return { hit, failed, failure: problems.length === 0 ? undefined : `${label}: ${problems.join('; ')}` }
}

/** Runs N = 1, 2, ... for one operation, kind and persistence until the operation no longer reaches the fault. */
export async function sweepFault(base: FaultBase, operation: FaultedOperation, kind: FaultOperation, persistent: boolean, stride = 1): Promise<{ cases: number; failures: string[]; reached: number }> {
  const failures: string[] = []
  let cases = 0
  let reached = 0
  for (let nth = 1; nth <= MAX_NTH; nth += stride) {
    const outcome = await runFaultCase(base, { operation, kind, nth, persistent })
    cases++
    if (outcome.failure !== undefined) failures.push(outcome.failure)
    if (!outcome.hit) return { cases, failures, reached }
    reached = nth
  }
  failures.push(`${base.compression}: ${operation} still reaches ${kind} #${MAX_NTH}: a runaway`)
  return { cases, failures, reached }
}
