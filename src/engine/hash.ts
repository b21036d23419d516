/**
 * The key hash: two MurmurHash3 x86_32 lanes over the key bytes in one pass
 * (docs/format.md 2.2). Lane A and the high half of lane B make the 48-bit
 * bucket hash; the low byte of lane B is the in-bucket fingerprint, so the
 * bits that pick a bucket and the bits that filter inside it are independent.
 *
 * The result is written into a caller-owned KeyHash so the hot path allocates
 * nothing. Part of the format: changing it moves every key.
 */

import { HASH_SEED_A, HASH_SEED_B } from './format'

export interface KeyHash {
  /** 48-bit bucket hash H: lane A · 2^16 + (lane B >>> 16). */
  bucketHash: number
  /** 8-bit fingerprint: lane B & 0xff. */
  fingerprint: number
  laneA: number
  laneB: number
}

export function newKeyHash(): KeyHash {
  return { bucketHash: 0, fingerprint: 0, laneA: 0, laneB: 0 }
}

const C1 = 0xcc9e2d51
const C2 = 0x1b873593

function mixFinal(h: number, length: number): number {
  h ^= length
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Hashes key[start, end) into `out`. */
export function hashKey(key: Uint8Array, start: number, end: number, out: KeyHash): KeyHash {
  let a = HASH_SEED_A | 0
  let b = HASH_SEED_B | 0
  let index = start
  const blocksEnd = start + ((end - start) & ~3)
  for (; index < blocksEnd; index += 4) {
    let k = key[index]! | (key[index + 1]! << 8) | (key[index + 2]! << 16) | (key[index + 3]! << 24)
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, C2)
    a ^= k
    a = (a << 13) | (a >>> 19)
    a = (Math.imul(a, 5) + 0xe6546b64) | 0
    b ^= k
    b = (b << 13) | (b >>> 19)
    b = (Math.imul(b, 5) + 0xe6546b64) | 0
  }
  const tail = end - index
  if (tail > 0) {
    let k = 0
    if (tail === 3) k ^= key[index + 2]! << 16
    if (tail >= 2) k ^= key[index + 1]! << 8
    k ^= key[index]!
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, C2)
    a ^= k
    b ^= k
  }
  const length = end - start
  const laneA = mixFinal(a, length)
  const laneB = mixFinal(b, length)
  out.laneA = laneA
  out.laneB = laneB
  out.bucketHash = laneA * 65536 + (laneB >>> 16)
  out.fingerprint = laneB & 0xff
  return out
}

/**
 * Linear hashing address (Litwin): the bucket of hash H with `initialBuckets`
 * N0, level L and split pointer s.
 */
export function bucketOf(bucketHash: number, initialBuckets: number, level: number, splitPointer: number): number {
  const roundBuckets = initialBuckets * 2 ** level
  const address = bucketHash % roundBuckets
  return address < splitPointer ? bucketHash % (roundBuckets * 2) : address
}
