// The benchmark's log-bucketed latency histogram against exact percentiles.
import test from 'ava'
import { LogHistogram } from '../bench/lib/histogram'
import { Random } from '../bench/lib/random'

/** The nearest-rank percentile of sorted values: the definition the histogram approximates. */
function exactPercentile(sorted: readonly number[], percent: number): number {
  const rank = Math.max(1, Math.ceil((percent / 100) * sorted.length))
  return sorted[rank - 1] as number
}

const percents = [1, 25, 50, 90, 99, 99.9, 99.99, 100]

function checkAgainstExact(t: { true(condition: boolean, message?: string): void }, values: number[], precisionBits = 7): void {
  const histogram = new LogHistogram(precisionBits)
  for (const value of values) histogram.record(value)
  const sorted = [...values].sort((a, b) => a - b)
  for (const percent of percents) {
    const exact = exactPercentile(sorted, percent)
    const reported = histogram.percentile(percent)
    t.true(reported >= exact && reported <= exact * (1 + 2 ** -precisionBits), `p${percent}: ${reported} for exact ${exact}`)
  }
}

test('percentiles of 1 … 100000 are within one bucket above the exact ones', (t) => {
  checkAgainstExact(
    t,
    Array.from({ length: 100_000 }, (_, index) => index + 1),
  )
})

test('percentiles of skewed latencies from 100 ns to 10 s are within one bucket above the exact ones', (t) => {
  const random = new Random(17, 'latencies')
  const values = Array.from({ length: 200_000 }, () => Math.round(100 * Math.pow(10, 8 * Math.pow(random.nextDouble(), 3))))
  checkAgainstExact(t, values)
  checkAgainstExact(t, values, 10)
})

test('small values are counted exactly', (t) => {
  const histogram = new LogHistogram()
  for (const value of [0, 1, 2, 3, 200, 255]) histogram.record(value)
  t.is(histogram.percentile(100 / 6), 0)
  t.is(histogram.percentile(50), 2)
  t.is(histogram.percentile(100), 255)
  const summary = histogram.summary()
  t.is(summary.count, 6)
  t.is(summary.minimum, 0)
  t.is(summary.maximum, 255)
  t.is(summary.mean, (0 + 1 + 2 + 3 + 200 + 255) / 6)
})

test('values above the trackable range are clamped and counted, not lost', (t) => {
  const histogram = new LogHistogram(7, 2 ** 20)
  histogram.record(5)
  histogram.record(2 ** 30)
  t.is(histogram.count, 2)
  t.is(histogram.clampedCount, 1)
  t.is(histogram.percentile(100), 2 ** 20)
  t.throws(() => histogram.record(-1), { instanceOf: RangeError })
})

test('adding histograms gives the percentiles of recording everything in one', (t) => {
  const random = new Random(19, 'add')
  const values = Array.from({ length: 50_000 }, () => random.nextBelow(5_000_000))
  const whole = new LogHistogram()
  const first = new LogHistogram()
  const second = new LogHistogram()
  values.forEach((value, index) => {
    whole.record(value)
    ;(index % 3 === 0 ? first : second).record(value)
  })
  first.add(second)
  t.deepEqual(first.summary(), whole.summary())
  t.throws(() => first.add(new LogHistogram(8)), { instanceOf: RangeError })
})

test('an empty histogram reports no percentiles rather than zeros', (t) => {
  const summary = new LogHistogram().summary()
  t.is(summary.count, 0)
  t.true(Number.isNaN(summary.p50))
  t.true(Number.isNaN(summary.p999))
})
