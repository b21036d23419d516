/**
 * Per-call counters of the public API: how many calls of each kind ended
 * well or badly, and how long they took.
 *
 * The handle (src/db.ts) notes the time a call starts and passes it down
 * with the call; the engine settles the call's promise through closures it
 * makes anyway (the reader's lookup, the committer's write), and calls
 * `settle()` there. So a get, has, put, del or batch costs the meter no
 * allocation: one `performance.now()` at each end, a counter increment and
 * one histogram bucket. getMany, one call over many lookups, is counted
 * once through `track()` (one `.then` per call). Calls refused before they
 * reach the engine go through `refuse()`. The counters are typed arrays and
 * the histograms have fixed buckets, made once per handle: nothing grows
 * with traffic.
 *
 * Latency is from the call to the settling of its promise, argument checks
 * included; calls refused at once (bad argument, closed store) count as
 * errors with that short latency.
 */

import { Histogram } from './histogram'

/** The operation kinds counted, in the order of their index. */
export const OPERATION_KINDS = ['get', 'getMany', 'has', 'put', 'del', 'batch'] as const
export type OperationKind = (typeof OPERATION_KINDS)[number]

/** Index of each kind in the meter's arrays. */
export const OP = {
  get: 0,
  getMany: 1,
  has: 2,
  put: 3,
  del: 4,
  batch: 5,
} as const satisfies Record<OperationKind, number>

/** The kind of an engine call made for the store's own purposes (iteration), which is not counted. */
export const UNMETERED = -1

/**
 * Upper bounds of the latency buckets, in seconds: 5 µs (a cached GET) to
 * 10 s (a write stalled behind a flush of a slow device).
 */
export const LATENCY_BOUNDS_SECONDS: readonly number[] = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

export class OperationMeter {
  /** Calls per kind: [kind * 2] ended well, [kind * 2 + 1] ended in an error. */
  readonly outcomes = new Float64Array(OPERATION_KINDS.length * 2)
  /** Latency of every call, per kind, in seconds. */
  readonly latency: readonly Histogram[] = OPERATION_KINDS.map(() => new Histogram(LATENCY_BOUNDS_SECONDS))

  /** Counts `promise` under `kind` when it settles; returns a promise of the same outcome. */
  track<T>(kind: number, startedMs: number, promise: Promise<T>): Promise<T> {
    return promise.then(
      (value) => {
        this.settle(kind, startedMs, 0)
        return value
      },
      (error: unknown) => {
        this.settle(kind, startedMs, 1)
        throw error
      },
    )
  }

  /** Counts a call refused before it started; returns the rejected promise the caller hands back. */
  refuse<T>(kind: number, startedMs: number, error: unknown): Promise<T> {
    this.settle(kind, startedMs, 1)
    return Promise.reject(error)
  }

  /** Counts one call of `kind` that started at `startedMs` (performance.now()) and ended well (0) or in an error (1). */
  settle(kind: number, startedMs: number, outcome: 0 | 1): void {
    if (kind === UNMETERED) return
    this.outcomes[kind * 2 + outcome]!++
    this.latency[kind]!.observe((performance.now() - startedMs) / 1000)
  }
}
