/**
 * A fixed-bucket histogram: the one primitive behind every latency and size
 * distribution in `db.metrics()`.
 *
 * The buckets are chosen when the histogram is made and never change, so
 * memory is bounded (one double per bucket) and `observe()` allocates
 * nothing: it walks the bounds to the first one at or above the value and
 * increments that bucket. Counts are kept per bucket (not cumulative); the
 * exposition (./exposition.ts) adds them up into Prometheus's cumulative
 * `le` buckets.
 *
 * Leaf module: imports nothing, so the engine may count with it too.
 */

export class Histogram {
  /** Observations per bucket: counts[i] holds values in (bounds[i-1], bounds[i]]; the last one everything above the last bound. */
  readonly counts: Float64Array
  /** Sum of every observed value. */
  sum = 0
  /** Number of observations. */
  count = 0

  /** `bounds`: upper bounds, ascending, finite; +Inf is implied. */
  constructor(readonly bounds: readonly number[]) {
    for (let index = 1; index < bounds.length; index++) {
      if (!(bounds[index]! > bounds[index - 1]!)) throw new RangeError('histogram bounds must ascend strictly')
    }
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    const bounds = this.bounds
    let index = 0
    while (index < bounds.length && value > bounds[index]!) index++
    this.counts[index]!++
    this.sum += value
    this.count++
  }
}
