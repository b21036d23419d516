/**
 * The closed-loop load generator: issues a phase's operations against an
 * engine adapter with at most `concurrency` of them outstanding, and times
 * each one into a latency histogram per operation kind.
 *
 * `concurrency` workers each take the next operation from the source, await
 * it, record its latency and take another, until the source runs dry or the
 * time limit passes; so the number of operations in flight never exceeds
 * `concurrency`, and nothing is queued. The first failed operation stops the
 * phase and is rethrown once every worker has stopped.
 *
 * Reads are checked: a missing key and a value that is not the key's own (by
 * its tag, see keys.ts) are counted, never ignored.
 */

import type { EngineAdapter } from '../engines/adapter'
import { LogHistogram } from './histogram'
import { keyFor, valueMatches, ValueSource } from './keys'
import { OPERATION_KINDS, type Operation, type OperationKind } from './workloads'

export interface OperationSource {
  next(): Operation | undefined
  acknowledgeInsert?(keyNumber: number): void
}

/** At most `count` operations of `source`. */
export function limitOperations(source: { next(): Operation; acknowledgeInsert?(keyNumber: number): void }, count: number): OperationSource {
  let remaining = count
  return {
    next: () => (remaining-- > 0 ? source.next() : undefined),
    acknowledgeInsert: source.acknowledgeInsert?.bind(source),
  }
}

/**
 * An engine that answers synchronously (LMDB's get) never lets the event loop
 * turn; yielding this often keeps timers (memory sampling) and IPC running.
 */
const yieldEveryOperations = 256
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export interface DriveOptions {
  concurrency: number
  maxSeconds: number
  keySize: number
  values: ValueSource
}

export interface DriveOutcome {
  operations: number
  seconds: number
  stoppedByTime: boolean
  byKind: Record<OperationKind, LogHistogram>
  all: LogHistogram
  gets: number
  notFound: number
  wrongValue: number
}

export async function drive(adapter: EngineAdapter, source: OperationSource, options: DriveOptions): Promise<DriveOutcome> {
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
    throw new RangeError(`concurrency must be an integer >= 1, got ${options.concurrency}`)
  }
  const byKind = Object.fromEntries(OPERATION_KINDS.map((kind) => [kind, new LogHistogram()])) as Record<OperationKind, LogHistogram>
  const all = new LogHistogram()
  const valueSize = options.values.valueSize
  const start = performance.now()
  const deadline = start + options.maxSeconds * 1000
  let operations = 0
  let gets = 0
  let notFound = 0
  let wrongValue = 0
  let stoppedByTime = false
  let failure: unknown
  let failed = false

  const read = async (keyNumber: number, key: Buffer): Promise<void> => {
    gets++
    const value = await adapter.get(key)
    if (value === undefined) notFound++
    else if (!valueMatches(value, keyNumber, valueSize)) wrongValue++
  }

  const perform = async (operation: Operation): Promise<void> => {
    const key = keyFor(operation.keyNumber, options.keySize)
    switch (operation.kind) {
      case 'read':
        await read(operation.keyNumber, key)
        return
      case 'update':
        await adapter.put(key, options.values.valueFor(operation.keyNumber))
        return
      case 'insert':
        await adapter.put(key, options.values.valueFor(operation.keyNumber))
        source.acknowledgeInsert?.(operation.keyNumber)
        return
      case 'readModifyWrite':
        await read(operation.keyNumber, key)
        await adapter.put(key, options.values.valueFor(operation.keyNumber))
        return
    }
  }

  const worker = async (): Promise<void> => {
    while (!failed) {
      if (performance.now() >= deadline) {
        stoppedByTime = true
        return
      }
      if (operations % yieldEveryOperations === yieldEveryOperations - 1) await yieldToEventLoop()
      const operation = source.next()
      if (operation === undefined) return
      const began = performance.now()
      try {
        await perform(operation)
      } catch (error) {
        failed = true
        failure = error
        return
      }
      const nanoseconds = (performance.now() - began) * 1e6
      byKind[operation.kind].record(nanoseconds)
      all.record(nanoseconds)
      operations++
    }
  }

  await Promise.all(Array.from({ length: options.concurrency }, worker))
  if (failed) throw failure
  return {
    operations,
    seconds: (performance.now() - start) / 1000,
    stoppedByTime,
    byKind,
    all,
    gets,
    notFound,
    wrongValue,
  }
}
