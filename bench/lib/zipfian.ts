/**
 * YCSB's skewed key choosers: zipfian, scrambled zipfian and skewed-latest.
 *
 * These follow YCSB's generators (core/.../generator/ZipfianGenerator.java,
 * ScrambledZipfianGenerator.java, SkewedLatestGenerator.java), which draw
 * zipfian ranks with the method of Gray et al., "Quickly Generating
 * Billion-Record Synthetic Databases" (SIGMOD 1994):
 *
 * - `ZipfianGenerator` draws ranks in [0, n): rank 0 is the most popular,
 *   P(rank = i) ∝ 1 / (i + 1)^θ. Ranks 0 and 1 are exact; beyond them Gray's
 *   closed form approximates the inverse CDF.
 * - `ScrambledZipfianGenerator` draws a rank from a zipfian over 10^10 items
 *   (YCSB's ITEM_COUNT), hashes it with YCSB's 64-bit FNV-1a (`fnvhash64`,
 *   including its Math.abs of the signed result) and reduces it modulo the
 *   record count, so the popular keys are scattered over the key space.
 * - `SkewedLatestGenerator` favours the most recently inserted keys: it
 *   returns `latest - rank` for a zipfian rank over the current key count.
 *
 * YCSB sums ζ(n, θ) = Σ_{i=1..n} i^-θ term by term (over a minute for 10^8
 * items, so it ships ζ(10^10, 0.99) = 26.46902820178302 as a constant). Here
 * `zeta` sums the first terms exactly and the tail by Euler–Maclaurin, which
 * agrees with that constant and works for any θ and n in microseconds.
 */

import { Random } from './random'

/** YCSB's default zipfian constant θ. */
export const ZIPFIAN_THETA_DEFAULT = 0.99
/** The item count of the zipfian behind YCSB's scrambled zipfian. */
export const SCRAMBLED_ITEM_COUNT = 1e10
/** Largest record count the scrambled zipfian's modular reduction handles exactly. */
export const SCRAMBLED_RECORDS_MAX = 2 ** 37

const exactTermsMax = 1000

function validateTheta(theta: number): void {
  if (!(theta > 0 && theta < 1)) {
    throw new RangeError(`zipfian θ must be in (0, 1), got ${theta}`)
  }
}

/**
 * Σ_{i=from+1..to} i^-θ, term by term. REQUIRES: 0 <= from <= to.
 */
function zetaTerms(from: number, to: number, theta: number): number {
  let sum = 0
  for (let i = from + 1; i <= to; i++) sum += 1 / Math.pow(i, theta)
  return sum
}

/**
 * ζ(n, θ) = Σ_{i=1..n} i^-θ. The first 1000 terms are summed exactly; the
 * tail is the Euler–Maclaurin formula with corrections through the third
 * derivative, whose remaining error is far below double precision there.
 */
export function zeta(n: number, theta: number): number {
  validateTheta(theta)
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`zeta needs a count >= 0, got ${n}`)
  if (n <= exactTermsMax) return zetaTerms(0, n, theta)
  const m = exactTermsMax
  const f = (x: number): number => Math.pow(x, -theta)
  const firstDerivative = (x: number): number => -theta * Math.pow(x, -theta - 1)
  const thirdDerivative = (x: number): number => -theta * (theta + 1) * (theta + 2) * Math.pow(x, -theta - 3)
  const integral = (Math.pow(n, 1 - theta) - Math.pow(m, 1 - theta)) / (1 - theta)
  const tail =
    integral +
    (f(n) - f(m)) / 2 +
    (firstDerivative(n) - firstDerivative(m)) / 12 -
    (thirdDerivative(n) - thirdDerivative(m)) / 720
  return zetaTerms(0, m, theta) + tail
}

/**
 * Zipfian ranks over [0, itemCount), with the item count allowed to grow
 * (ζ is then extended, not recomputed). Holds O(1) state.
 */
export class ZipfianGenerator {
  private readonly random: Random
  private readonly theta: number
  private readonly alpha: number
  private readonly zeta2: number
  private readonly halfPowTheta: number
  private count: number
  private zetaCount: number
  private eta: number

  /** REQUIRES: itemCount >= 1; 0 < θ < 1. `zetaOfCount` may be given when known. */
  constructor(itemCount: number, random: Random, theta = ZIPFIAN_THETA_DEFAULT, zetaOfCount?: number) {
    validateTheta(theta)
    if (!Number.isInteger(itemCount) || itemCount < 1) {
      throw new RangeError(`zipfian item count must be an integer >= 1, got ${itemCount}`)
    }
    this.random = random
    this.theta = theta
    this.alpha = 1 / (1 - theta)
    this.zeta2 = zeta(2, theta)
    this.halfPowTheta = Math.pow(0.5, theta)
    this.count = itemCount
    this.zetaCount = zetaOfCount ?? zeta(itemCount, theta)
    this.eta = this.computeEta()
  }

  private computeEta(): number {
    return (1 - Math.pow(2 / this.count, 1 - this.theta)) / (1 - this.zeta2 / this.zetaCount)
  }

  /** The current item count. */
  get itemCount(): number {
    return this.count
  }

  /** Let ranks reach up to `itemCount - 1` from now on. REQUIRES: itemCount >= the current count. */
  grow(itemCount: number): void {
    if (itemCount === this.count) return
    if (!Number.isInteger(itemCount) || itemCount < this.count) {
      throw new RangeError(`zipfian item count may only grow: ${this.count} -> ${itemCount}`)
    }
    this.zetaCount =
      itemCount - this.count <= exactTermsMax
        ? this.zetaCount + zetaTerms(this.count, itemCount, this.theta)
        : zeta(itemCount, this.theta)
    this.count = itemCount
    this.eta = this.computeEta()
  }

  /** The next rank in [0, itemCount). */
  next(): number {
    const u = this.random.nextDouble()
    const uz = u * this.zetaCount
    if (uz < 1) return 0
    if (uz < 1 + this.halfPowTheta) return Math.min(1, this.count - 1)
    const rank = Math.floor(this.count * Math.pow(this.eta * u - this.eta + 1, this.alpha))
    return Math.min(rank, this.count - 1)
  }
}

const fnvPrimeLow = 0x1b3
const twoToThe32 = 4294967296

/**
 * YCSB's `Utils.fnvhash64`: FNV-1a over the 8 little-endian bytes of a
 * non-negative integer, then the absolute value of the result read as a
 * signed 64-bit integer. Returned as [high 32 bits, low 32 bits].
 * REQUIRES: value is an integer in [0, 2^53).
 */
export function fnvHash64(value: number): [number, number] {
  let high = 0xcbf29ce4
  let low = 0x84222325
  let valueLow = value >>> 0
  let valueHigh = Math.floor(value / twoToThe32)
  for (let octetIndex = 0; octetIndex < 8; octetIndex++) {
    const octet = valueLow & 0xff
    valueLow = (valueLow >>> 8) | ((valueHigh & 0xff) << 24)
    valueHigh = valueHigh >>> 8
    low = (low ^ octet) >>> 0
    const lowProduct = low * fnvPrimeLow
    const carry = Math.floor(lowProduct / twoToThe32)
    const highSum = high * fnvPrimeLow + carry + ((low << 8) >>> 0)
    low = lowProduct >>> 0
    high = highSum >>> 0
  }
  if (high >= 0x80000000) {
    low = (~low + 1) >>> 0
    high = (~high + (low === 0 ? 1 : 0)) >>> 0
  }
  return [high, low]
}

/** (high · 2^32 + low) mod n, exactly. REQUIRES: 1 <= n <= 2^37. */
export function modulo64(high: number, low: number, n: number): number {
  let remainder = high % n
  remainder = (remainder * 65536) % n
  remainder = (remainder * 65536) % n
  return (remainder + low) % n
}

/** YCSB's scrambled zipfian over [0, recordCount): popular keys scattered by FNV. */
export class ScrambledZipfianGenerator {
  private readonly ranks: ZipfianGenerator
  private readonly records: number

  constructor(recordCount: number, random: Random, theta = ZIPFIAN_THETA_DEFAULT) {
    if (!Number.isInteger(recordCount) || recordCount < 1 || recordCount > SCRAMBLED_RECORDS_MAX) {
      throw new RangeError(`scrambled zipfian record count must be in [1, 2^37], got ${recordCount}`)
    }
    this.records = recordCount
    this.ranks = new ZipfianGenerator(SCRAMBLED_ITEM_COUNT, random, theta)
  }

  next(): number {
    const [high, low] = fnvHash64(this.ranks.next())
    return modulo64(high, low, this.records)
  }
}

/** YCSB's skewed-latest chooser: recent keys are the popular ones. */
export class SkewedLatestGenerator {
  private readonly ranks: ZipfianGenerator

  /** REQUIRES: initialCount >= 1 keys exist, numbered 0 .. initialCount - 1. */
  constructor(initialCount: number, random: Random, theta = ZIPFIAN_THETA_DEFAULT) {
    this.ranks = new ZipfianGenerator(initialCount, random, theta)
  }

  /**
   * A key number in [0, latest], skewed towards `latest`, the highest key
   * number known to exist. REQUIRES: latest + 1 >= the count given before.
   */
  next(latest: number): number {
    this.ranks.grow(latest + 1)
    return latest - this.ranks.next()
  }
}
