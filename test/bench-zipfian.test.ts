// The benchmark's key choosers: YCSB's zipfian, scrambled zipfian and skewed-latest, and their hash.
import test from 'ava'
import { Random } from '../bench/lib/random'
import {
  fnvHash64,
  modulo64,
  ScrambledZipfianGenerator,
  SCRAMBLED_ITEM_COUNT,
  SkewedLatestGenerator,
  zeta,
  ZipfianGenerator,
} from '../bench/lib/zipfian'

const mask64 = (1n << 64n) - 1n

/** YCSB's Utils.fnvhash64 written directly in 64-bit BigInt arithmetic, as the reference. */
function referenceFnv(value: number): bigint {
  let hash = 0xcbf29ce484222325n
  let remaining = BigInt(value)
  for (let octet = 0; octet < 8; octet++) {
    hash ^= remaining & 0xffn
    remaining >>= 8n
    hash = (hash * 1099511628211n) & mask64
  }
  return hash >= 1n << 63n ? (1n << 64n) - hash : hash
}

function directZeta(n: number, theta: number): number {
  let sum = 0
  for (let i = 1; i <= n; i++) sum += Math.pow(i, -theta)
  return sum
}

test('zeta over 10^10 items matches the constant YCSB precomputed for θ = 0.99', (t) => {
  const ycsbZetan = 26.46902820178302
  t.true(Math.abs(zeta(SCRAMBLED_ITEM_COUNT, 0.99) - ycsbZetan) / ycsbZetan < 1e-9)
})

test('zeta agrees with the direct sum beyond the exactly summed terms', (t) => {
  for (const [n, theta] of [
    [1001, 0.99],
    [50_000, 0.99],
    [200_000, 0.5],
  ] as const) {
    const direct = directZeta(n, theta)
    t.true(Math.abs(zeta(n, theta) - direct) / direct < 1e-12, `n=${n} θ=${theta}`)
  }
})

test('zipfian ranks follow P(i) ∝ 1/(i+1)^θ: exactly for ranks 0 and 1, within Gray’s approximation beyond', (t) => {
  const items = 1000
  const draws = 1_000_000
  const generator = new ZipfianGenerator(items, new Random(7, 'zipfian-shape'))
  const counts = new Float64Array(items)
  let outOfRange = 0
  for (let draw = 0; draw < draws; draw++) {
    const rank = generator.next()
    if (Number.isInteger(rank) && rank >= 0 && rank < items) counts[rank]++
    else outOfRange++
  }
  t.is(outOfRange, 0)
  const total = zeta(items, 0.99)
  const probability = (rank: number): number => Math.pow(rank + 1, -0.99) / total
  for (const rank of [0, 1]) {
    const expected = probability(rank)
    const sigma = Math.sqrt((expected * (1 - expected)) / draws)
    t.true(Math.abs(counts[rank] / draws - expected) < 5 * sigma, `rank ${rank}`)
  }
  // Past rank 1, Gray et al.'s closed form approximates the inverse CDF: its
  // cumulative error for 1000 items at θ = 0.99 is at most about 0.017. So the
  // empirical CDF must be within 0.02 of the true zipfian's, and within
  // sampling noise of the CDF that Gray's formula itself defines, which is
  // worked out here from the paper's definitions of η and α.
  const eta = (1 - Math.pow(2 / items, 1 - 0.99)) / (1 - zeta(2, 0.99) / total)
  const grayCdf = (rank: number): number =>
    Math.max((1 + Math.pow(0.5, 0.99)) / total, (Math.pow((rank + 1) / items, 1 - 0.99) - 1 + eta) / eta)
  let observed = 0
  let expected = 0
  for (let rank = 0; rank < items; rank++) {
    observed += counts[rank] / draws
    expected += probability(rank)
    if (![2, 5, 10, 50, 100, 500].includes(rank)) continue
    t.true(Math.abs(observed - expected) < 0.02, `CDF at rank ${rank}: ${observed} vs ${expected}`)
    const gray = grayCdf(rank)
    t.true(Math.abs(observed - gray) < 5 * Math.sqrt((gray * (1 - gray)) / draws), `CDF at rank ${rank}: ${observed} vs Gray's ${gray}`)
  }
})

test('zipfian draws are fixed by the seed and stream name', (t) => {
  const draw = (seed: number, stream: string): number[] => {
    const generator = new ZipfianGenerator(100_000, new Random(seed, stream))
    return Array.from({ length: 1000 }, () => generator.next())
  }
  t.deepEqual(draw(3, 'a'), draw(3, 'a'))
  t.notDeepEqual(draw(3, 'a'), draw(4, 'a'))
  t.notDeepEqual(draw(3, 'a'), draw(3, 'b'))
})

test('a zipfian grown to n items draws as one created with n items', (t) => {
  const grown = new ZipfianGenerator(500, new Random(11, 'grow'))
  grown.grow(1000)
  const fresh = new ZipfianGenerator(1000, new Random(11, 'grow'))
  t.is(grown.itemCount, 1000)
  t.deepEqual(
    Array.from({ length: 5000 }, () => grown.next()),
    Array.from({ length: 5000 }, () => fresh.next()),
  )
  t.throws(() => grown.grow(999), { instanceOf: RangeError })
})

test('fnvHash64 and modulo64 equal YCSB’s fnvhash64 and its remainder computed in 64-bit arithmetic', (t) => {
  const values = [0, 1, 2, 255, 256, 65_535, 123_456_789, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, 9_999_999_999, 2 ** 53 - 1]
  const random = new Random(5, 'fnv')
  for (let index = 0; index < 200; index++) values.push(random.nextBelow(2 ** 53))
  for (const value of values) {
    const [high, low] = fnvHash64(value)
    const hash = (BigInt(high) << 32n) | BigInt(low)
    t.is(hash, referenceFnv(value), `value ${value}`)
    for (const n of [1, 7, 1_000_000, 10_000_019, 2 ** 37]) t.is(modulo64(high, low, n), Number(hash % BigInt(n)))
  }
})

test('scrambled zipfian: in range, the hottest key is fnv(rank 0) with its theoretical share, hot keys scattered', (t) => {
  const records = 10_000
  const draws = 400_000
  const generator = new ScrambledZipfianGenerator(records, new Random(9, 'scrambled'))
  const counts = new Map<number, number>()
  let outOfRange = 0
  for (let draw = 0; draw < draws; draw++) {
    const key = generator.next()
    if (!(Number.isInteger(key) && key >= 0 && key < records)) outOfRange++
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  t.is(outOfRange, 0)
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1])
  const [hottestHigh, hottestLow] = fnvHash64(0)
  t.is(ranked[0]?.[0], modulo64(hottestHigh, hottestLow, records))
  const share = 1 / zeta(SCRAMBLED_ITEM_COUNT, 0.99)
  const sigma = Math.sqrt((share * (1 - share)) / draws)
  t.true(Math.abs((ranked[0]?.[1] ?? 0) / draws - share) < 5 * sigma + 2 / records)
  const topTen = ranked.slice(0, 10).map(([key]) => key)
  t.true(Math.max(...topTen) - Math.min(...topTen) > records / 4, 'the ten hottest keys spread over the key space')
})

test('skewed latest favours the newest key and never returns one beyond it', (t) => {
  const draws = 200_000
  const generator = new SkewedLatestGenerator(1000, new Random(13, 'latest'))
  let newest = 0
  let outOfRange = 0
  let latest = 999
  for (let draw = 0; draw < draws; draw++) {
    if (draw % 20 === 0) latest++
    const key = generator.next(latest)
    if (!(key >= 0 && key <= latest)) outOfRange++
    if (key === latest) newest++
  }
  t.is(outOfRange, 0)
  const expected = 1 / zeta(1000 + draws / 20, 0.99)
  t.true(newest / draws > expected * 0.9 && newest / draws < (1 / zeta(1001, 0.99)) * 1.1)
})
