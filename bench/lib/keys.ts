/**
 * Keys and values of the benchmark's records.
 *
 * A record is identified by its key number (0, 1, 2, … in insertion order).
 * Its key is YCSB-style: "user" followed by decimal digits, zero-padded to the
 * configured key size (24 bytes by default). As in YCSB's hashed insert order,
 * the digits are a scrambled form of the key number, so consecutive inserts
 * land all over the key space; unlike YCSB (which uses FNV and can in
 * principle collide) the scramble is a 4-round Feistel permutation on 48 bits,
 * a bijection, so distinct key numbers always give distinct keys.
 *
 * A value is `valueSize` bytes: the key number as two little-endian uint32
 * words (so a read can check it got its own key's value), then bytes taken
 * from a 1 MiB pool of seeded random bytes at a random offset. Random bytes do
 * not compress, so no engine gains from compressing the values themselves.
 */

import { Random } from './random'

/** Key numbers must stay below 2^48 (the Feistel permutation's domain). */
export const KEY_NUMBER_LIMIT = 2 ** 48
/** Shortest key that still holds every key number: "user" + 15 digits. */
export const KEY_SIZE_MIN = 4 + String(KEY_NUMBER_LIMIT - 1).length
export const KEY_SIZE_MAX = 1024
/** Bytes at the start of each value that name its key number. */
export const VALUE_TAG_BYTES = 8

const halfMask = 0xffffff
const halfRange = 0x1000000
const roundKeys = [0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c]
const keyPrefix = 'user'

/** A bijection on [0, 2^48): four Feistel rounds over two 24-bit halves. */
export function permute48(keyNumber: number): number {
  let left = Math.floor(keyNumber / halfRange) & halfMask
  let right = keyNumber % halfRange
  for (const roundKey of roundKeys) {
    const mixed = Math.imul(right ^ roundKey, 0x9e3779b1)
    const next = (left ^ ((mixed ^ (mixed >>> 15)) >>> 8)) & halfMask
    left = right
    right = next
  }
  return left * halfRange + right
}

export function validateKeySize(keySize: number): void {
  if (!Number.isInteger(keySize) || keySize < KEY_SIZE_MIN || keySize > KEY_SIZE_MAX) {
    throw new RangeError(`key size must be an integer in [${KEY_SIZE_MIN}, ${KEY_SIZE_MAX}], got ${keySize}`)
  }
}

/** The key of record `keyNumber`, exactly `keySize` bytes of ASCII. */
export function keyFor(keyNumber: number, keySize: number): Buffer {
  const digits = String(permute48(keyNumber))
  return Buffer.from(keyPrefix + digits.padStart(keySize - keyPrefix.length, '0'), 'latin1')
}

const valuePoolBytes = 1 << 20

/** Builds values: tag + random pool bytes. Holds the 1 MiB pool, nothing per record. */
export class ValueSource {
  readonly valueSize: number
  private readonly pool: Buffer
  private readonly random: Random

  /** REQUIRES: 0 <= valueSize <= 1 MiB. */
  constructor(valueSize: number, seed: number, stream: string) {
    if (!Number.isInteger(valueSize) || valueSize < 0 || valueSize > valuePoolBytes) {
      throw new RangeError(`value size must be an integer in [0, ${valuePoolBytes}], got ${valueSize}`)
    }
    this.valueSize = valueSize
    this.pool = Buffer.allocUnsafe(valuePoolBytes)
    new Random(seed, 'value-pool').fill(this.pool)
    this.random = new Random(seed, stream)
  }

  /** A fresh value for record `keyNumber`. */
  valueFor(keyNumber: number): Buffer {
    const value = Buffer.allocUnsafe(this.valueSize)
    const offset = this.random.nextBelow(valuePoolBytes - this.valueSize + 1)
    this.pool.copy(value, 0, offset, offset + this.valueSize)
    if (this.valueSize >= VALUE_TAG_BYTES) {
      value.writeUInt32LE(keyNumber % 4294967296, 0)
      value.writeUInt32LE(Math.floor(keyNumber / 4294967296), 4)
    }
    return value
  }
}

/**
 * Whether `value` is a value written for record `keyNumber` with this size.
 * Values shorter than the tag can only be checked for length.
 */
export function valueMatches(value: Uint8Array, keyNumber: number, valueSize: number): boolean {
  if (value.length !== valueSize) return false
  if (valueSize < VALUE_TAG_BYTES) return true
  const view = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  return view.readUInt32LE(0) === keyNumber % 4294967296 && view.readUInt32LE(4) === Math.floor(keyNumber / 4294967296)
}
