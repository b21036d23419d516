/**
 * A latency histogram with log-spaced buckets, in the manner of HdrHistogram.
 *
 * Values are non-negative integers (the benchmark records nanoseconds). Values
 * below 2^(precisionBits+1) get a bucket each; above that, each power-of-two
 * range [2^e, 2^(e+1)) is split into 2^precisionBits equal buckets, so a
 * bucket is never wider than 1/2^precisionBits of the values in it (1/128 by
 * default: under 0.8 %). Memory is fixed at construction (about 35 KiB for
 * nanoseconds up to 2^42, i.e. 73 minutes); larger values are clamped to the
 * top bucket and counted in `clampedCount`. Count, sum, minimum and maximum
 * are kept exactly.
 *
 * A percentile is answered by the nearest-rank rule (the smallest recorded
 * value with at least p % of the values at or below it), reported as the
 * upper edge of that value's bucket, never above the recorded maximum, so it
 * is within one bucket width above the exact answer.
 */

export interface HistogramSummary {
  count: number
  minimum: number
  maximum: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
}

const twoToThe32 = 4294967296

/** floor(log2(value)) for an integer value >= 1 below 2^53. */
function floorLog2(value: number): number {
  if (value < twoToThe32) return 31 - Math.clz32(value)
  return 32 + 31 - Math.clz32(Math.floor(value / twoToThe32))
}

export class LogHistogram {
  readonly precisionBits: number
  readonly highestTrackable: number
  private readonly counts: Float64Array
  private readonly linearLimit: number
  private total = 0
  private sum = 0
  private min = Number.POSITIVE_INFINITY
  private max = 0
  private clamped = 0

  /** REQUIRES: 1 <= precisionBits <= 16; highestTrackable >= 2^(precisionBits+1), below 2^53. */
  constructor(precisionBits = 7, highestTrackable = 2 ** 42) {
    if (!Number.isInteger(precisionBits) || precisionBits < 1 || precisionBits > 16) {
      throw new RangeError(`precisionBits must be an integer in [1, 16], got ${precisionBits}`)
    }
    this.precisionBits = precisionBits
    this.linearLimit = 2 ** (precisionBits + 1)
    if (!(highestTrackable >= this.linearLimit && highestTrackable < 2 ** 53)) {
      throw new RangeError(`highestTrackable must be in [${this.linearLimit}, 2^53), got ${highestTrackable}`)
    }
    this.highestTrackable = Math.floor(highestTrackable)
    this.counts = new Float64Array(this.indexOf(this.highestTrackable) + 1)
  }

  private indexOf(value: number): number {
    if (value < this.linearLimit) return value
    const exponent = floorLog2(value)
    const shift = exponent - this.precisionBits
    const subBucket = Math.floor(value / 2 ** shift) - (1 << this.precisionBits)
    return this.linearLimit + (exponent - this.precisionBits - 1) * (1 << this.precisionBits) + subBucket
  }

  /** The largest value that falls in bucket `index`. */
  private upperEdgeOf(index: number): number {
    if (index < this.linearLimit) return index
    const subBuckets = 1 << this.precisionBits
    const offset = index - this.linearLimit
    const exponent = Math.floor(offset / subBuckets) + this.precisionBits + 1
    const shift = exponent - this.precisionBits
    const subBucket = offset % subBuckets
    return (subBuckets + subBucket + 1) * 2 ** shift - 1
  }

  /** Record one value. Non-integers are rounded; negatives are a caller bug. */
  record(value: number): void {
    if (!(value >= 0)) throw new RangeError(`histogram values must be >= 0, got ${value}`)
    let rounded = Math.round(value)
    if (rounded > this.highestTrackable) {
      rounded = this.highestTrackable
      this.clamped++
    }
    this.counts[this.indexOf(rounded)]++
    this.total++
    this.sum += rounded
    if (rounded < this.min) this.min = rounded
    if (rounded > this.max) this.max = rounded
  }

  /** Add every value recorded in `other`. REQUIRES: the same precision and range. */
  add(other: LogHistogram): void {
    if (other.precisionBits !== this.precisionBits || other.highestTrackable !== this.highestTrackable) {
      throw new RangeError('histograms with different precision or range cannot be added')
    }
    for (let index = 0; index < this.counts.length; index++) this.counts[index] += other.counts[index]
    this.total += other.total
    this.sum += other.sum
    this.clamped += other.clamped
    if (other.total > 0) {
      this.min = Math.min(this.min, other.min)
      this.max = Math.max(this.max, other.max)
    }
  }

  get count(): number {
    return this.total
  }

  get clampedCount(): number {
    return this.clamped
  }

  /** The nearest-rank percentile (0 < percent <= 100), or NaN when empty. */
  percentile(percent: number): number {
    if (!(percent > 0 && percent <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${percent}`)
    if (this.total === 0) return Number.NaN
    const rank = Math.max(1, Math.ceil((percent / 100) * this.total))
    let seen = 0
    for (let index = 0; index < this.counts.length; index++) {
      seen += this.counts[index]
      if (seen >= rank) return Math.max(this.min, Math.min(this.upperEdgeOf(index), this.max))
    }
    return this.max
  }

  summary(): HistogramSummary {
    const empty = this.total === 0
    return {
      count: this.total,
      minimum: empty ? Number.NaN : this.min,
      maximum: empty ? Number.NaN : this.max,
      mean: empty ? Number.NaN : this.sum / this.total,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      p999: this.percentile(99.9),
    }
  }
}
