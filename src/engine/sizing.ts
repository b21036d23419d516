/**
 * The sizing model: how many buckets a store needs, how full to keep them,
 * and what it costs (docs/format.md 2.9; the public `plan()`).
 *
 * Entries per bucket are about Poisson(λ). An entry of e bytes leaves room for
 * c = ⌊4032 / e⌋ entries in a block; the rest spills into overflow blocks,
 * each of which costs a GET one more device read. Linear hashing keeps the
 * average load at α but, during a round of splits, the buckets not yet split
 * carry up to 2α. The model takes the largest α for which the expected extra
 * reads per GET, at the worst point of a round, stay within the target for
 * existing and for missing keys.
 *
 * Pure functions, no I/O. Called by db.ts (`plan`, creation of a store) and
 * by the engine to size a new store.
 */

import { BLOCK_SIZE, BUCKET, BUCKET_CAPACITY, ENTRY_HEADER_BYTES, EXTENT_POINTER_BYTES, INLINE_ENTRY_MAX } from './format'

/** Extra device reads per GET the model allows (1%: reads per GET ≤ 1.01 by design). */
export const EXTRA_READS_TARGET = 0.01

export interface PlanInput {
  /** Number of keys the store is sized for. */
  keys: number
  /** Typical key size in bytes. */
  keySize: number
  /** Typical value size in bytes. */
  valueSize: number
}

/** What the sizing model answers: plan() and `cubby plan`. */
export interface Plan {
  /** Buckets (4 KiB blocks) for `keys` keys. */
  buckets: number
  /** Average entries per bucket the store keeps (α). */
  entriesPerBucket: number
  /** Bytes of one entry in a bucket. */
  entryBytes: number
  /** Whether values are stored inside buckets (else in value extents: one more read per GET). */
  valuesInline: boolean
  /** Splits keep entry bytes per bucket at or below this. */
  targetBucketBytes: number
  /** Logical bytes of buckets and value extents for `keys` keys. */
  logicalBytes: number
  /** Expected physical bytes under compression (empty space in buckets costs nothing). */
  physicalBytes: number
  /** Expected fraction of buckets with an overflow block, at `keys` keys. */
  overflowFraction: number
  /** Expected device reads per GET at the worst point of growth (1 more for values in extents). */
  readsPerGet: { existing: number; missing: number }
}

/** Size of one entry as stored in a bucket (docs/format.md 2.7). */
export function entrySize(keySize: number, valueSize: number): number {
  const inline = ENTRY_HEADER_BYTES + keySize + valueSize
  return inline <= INLINE_ENTRY_MAX ? inline : ENTRY_HEADER_BYTES + keySize + EXTENT_POINTER_BYTES
}

export interface ExtraReads {
  existing: number
  missing: number
}

/**
 * Expected extra reads per GET at Poisson load λ with c entries per block:
 * existing keys E[Σ_m≥1 (X − m·c)+] / λ, missing keys Σ_m≥1 P(X > m·c).
 */
export function extraReadsAt(lambda: number, perBlock: number): ExtraReads {
  if (lambda <= 0) return { existing: 0, missing: 0 }
  // Sum the Poisson terms until they vanish: P(X = j) for j up to well past λ.
  const last = Math.ceil(lambda + 12 * Math.sqrt(lambda) + 30)
  let probability = Math.exp(-lambda)
  let existing = 0
  let missing = 0
  for (let j = 0; j <= last; j++) {
    if (j > 0) probability *= lambda / j
    if (j > perBlock) {
      const overflowBlocks = Math.ceil(j / perBlock) - 1
      missing += probability * overflowBlocks
      // Entries in overflow block m (m ≥ 1) cost m extra reads each.
      let extra = 0
      for (let m = 1; m <= overflowBlocks; m++) extra += Math.min(perBlock, j - m * perBlock) * m
      existing += probability * extra
    }
  }
  return { existing: existing / lambda, missing }
}

/** Worst extra reads over a linear-hashing round at average load α. */
export function worstExtraReads(alpha: number, perBlock: number): ExtraReads {
  const worst = { existing: 0, missing: 0 }
  for (let step = 0; step <= 64; step++) {
    const splitFraction = step / 64
    const unsplit = extraReadsAt(alpha * (1 + splitFraction), perBlock)
    const split = extraReadsAt((alpha * (1 + splitFraction)) / 2, perBlock)
    const existing = (1 - splitFraction) * unsplit.existing + splitFraction * split.existing
    const missing = (1 - splitFraction) * unsplit.missing + splitFraction * split.missing
    worst.existing = Math.max(worst.existing, existing)
    worst.missing = Math.max(worst.missing, missing)
  }
  return worst
}

/** The largest average load α whose worst extra reads stay within the target. */
export function targetLoad(perBlock: number, target = EXTRA_READS_TARGET): number {
  let low = 0
  let high = perBlock
  for (let iteration = 0; iteration < 40; iteration++) {
    const middle = (low + high) / 2
    const worst = worstExtraReads(middle, perBlock)
    if (worst.existing <= target && worst.missing <= target) low = middle
    else high = middle
  }
  return low
}

/** The sizing model's answer for `input` (no validation: db.ts validates). */
export function planStore(input: PlanInput): Plan {
  const entryBytes = entrySize(input.keySize, input.valueSize)
  const valuesInline = ENTRY_HEADER_BYTES + input.keySize + input.valueSize <= INLINE_ENTRY_MAX
  const perBlock = Math.max(1, Math.floor(BUCKET_CAPACITY / entryBytes))
  const alpha = targetLoad(perBlock)
  const buckets = Math.max(1, Math.ceil(input.keys / alpha))
  const extentBlocks = valuesInline ? 0 : Math.ceil(input.valueSize / BLOCK_SIZE)
  const worst = worstExtraReads(alpha, perBlock)
  const valueRead = valuesInline ? 0 : 1
  return {
    buckets,
    entriesPerBucket: alpha,
    entryBytes,
    valuesInline,
    targetBucketBytes: Math.max(entryBytes, Math.floor(alpha * entryBytes)),
    logicalBytes: (buckets + input.keys * extentBlocks) * BLOCK_SIZE,
    physicalBytes: Math.round(input.keys * entryBytes + buckets * BUCKET.headerBytes + input.keys * (valuesInline ? 0 : input.valueSize)),
    overflowFraction: probabilityAbove(input.keys / buckets, perBlock),
    readsPerGet: { existing: 1 + valueRead + worst.existing, missing: 1 + worst.missing },
  }
}

/** P(X > c) for X ~ Poisson(λ). */
function probabilityAbove(lambda: number, perBlock: number): number {
  let probability = Math.exp(-lambda)
  let atOrBelow = probability
  for (let j = 1; j <= perBlock; j++) {
    probability *= lambda / j
    atOrBelow += probability
  }
  return Math.max(0, 1 - atOrBelow)
}
