/**
 * Seeded pseudo-random numbers for the benchmark's load generator.
 *
 * Every stream the benchmark draws from (operation choice, key choice, value
 * bytes) is a `Random` built from the run's seed and the name of the stream,
 * so two engines given the same seed see exactly the same sequence. The
 * generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting generator,
 * 32-bit state words), seeded through splitmix32; both are cheap in 32-bit
 * integer arithmetic, which is what JavaScript does fastest.
 */

const twoToThe32 = 4294967296
const twoToThe53 = 9007199254740992

/** One step of splitmix32: a well-mixed 32-bit output from a 32-bit counter. */
function splitmix32(state: number): number {
  let z = (state + 0x9e3779b9) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

/** 32-bit FNV-1a of a string, used to turn a stream name into seed bits. */
export function hashName(name: string): number {
  let hash = 0x811c9dc5
  for (let index = 0; index < name.length; index++) {
    hash ^= name.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

export class Random {
  private a: number
  private b: number
  private c: number
  private counter: number

  /**
   * REQUIRES: seed is an integer in [0, 2^32). `stream` names an independent
   * sequence under the same seed (for example "workload-A/zipfian").
   */
  constructor(seed: number, stream = '') {
    if (!Number.isInteger(seed) || seed < 0 || seed >= twoToThe32) {
      throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`)
    }
    let state = (seed ^ hashName(stream)) >>> 0
    state = splitmix32(state)
    this.a = state
    state = splitmix32(state)
    this.b = state
    state = splitmix32(state)
    this.c = state
    this.counter = 1
    for (let round = 0; round < 12; round++) this.nextUint32()
  }

  /** A uniformly distributed integer in [0, 2^32). */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.counter) | 0
    this.counter = (this.counter + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** A uniformly distributed double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const high = this.nextUint32() >>> 5
    const low = this.nextUint32() >>> 6
    return (high * 67108864 + low) / twoToThe53
  }

  /** A uniformly distributed integer in [0, bound). REQUIRES: 0 < bound <= 2^53. */
  nextBelow(bound: number): number {
    return Math.floor(this.nextDouble() * bound)
  }

  /** Fill `target` with random bytes. */
  fill(target: Uint8Array): void {
    let index = 0
    while (index + 4 <= target.length) {
      const word = this.nextUint32()
      target[index] = word & 0xff
      target[index + 1] = (word >>> 8) & 0xff
      target[index + 2] = (word >>> 16) & 0xff
      target[index + 3] = word >>> 24
      index += 4
    }
    if (index < target.length) {
      let word = this.nextUint32()
      for (; index < target.length; index++) {
        target[index] = word & 0xff
        word >>>= 8
      }
    }
  }
}
