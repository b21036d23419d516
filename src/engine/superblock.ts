/**
 * The superblock (docs/format.md 2.3): the store's geometry, the linear
 * hashing state, counts, and the checkpoint, in the first 256 bytes of LBA 0
 * or LBA 1 (generation mod 2).
 *
 * `Superblock` is a plain record; the engine keeps one current copy in memory
 * and produces the next generation's copy in each flush step, where it travels
 * inside the journal header before it is written in place.
 */

import { crc32c } from '../util/crc32c'
import { BLOCK_SIZE, FORMAT_VERSION, HEADER, SB, SUPERBLOCK_BYTES, hasMagic, readU64, writeMagic, writeU64 } from './format'

export interface Superblock {
  storeId: number
  generation: number
  storeBlocks: number
  journalStart: number
  journalSlotBlocks: number
  walBlocks: number
  walStart: number
  bitmapStart: number
  bitmapBlocks: number
  regionStart: number
  regionBlocks: number
  initialBuckets: number
  level: number
  targetBucketBytes: number
  splitPointer: number
  keys: number
  entryBytes: number
  overflowBlocks: number
  overflowBuckets: number
  heapSpan: number
  checkpointLsn: number
  checkpointWalBlock: number
  checkpointWalSequence: number
  heapBlocksInUse: number
  createdMs: number
}

const U64_FIELDS = [
  'storeId',
  'generation',
  'storeBlocks',
  'journalStart',
  'walStart',
  'bitmapStart',
  'bitmapBlocks',
  'regionStart',
  'regionBlocks',
  'initialBuckets',
  'splitPointer',
  'keys',
  'entryBytes',
  'overflowBlocks',
  'overflowBuckets',
  'heapSpan',
  'checkpointLsn',
  'checkpointWalBlock',
  'checkpointWalSequence',
  'heapBlocksInUse',
  'createdMs',
] as const satisfies ReadonlyArray<keyof Superblock & keyof typeof SB>

const U32_FIELDS = ['journalSlotBlocks', 'walBlocks', 'level', 'targetBucketBytes'] as const satisfies ReadonlyArray<
  keyof Superblock & keyof typeof SB
>

/** Writes `superblock` into target[offset, offset + 256), checksum included. */
export function encodeSuperblock(superblock: Superblock, target: Buffer, offset: number): void {
  target.fill(0, offset, offset + SUPERBLOCK_BYTES)
  writeMagic(target, offset, 'superblock')
  target.writeUInt16LE(FORMAT_VERSION, offset + HEADER.version)
  target.writeUInt16LE(SUPERBLOCK_BYTES, offset + SB.headerBytes)
  for (const field of U64_FIELDS) writeU64(target, offset + SB[field], superblock[field])
  for (const field of U32_FIELDS) target.writeUInt32LE(superblock[field], offset + SB[field])
  target.writeUInt32LE(crc32c(target, offset + HEADER.checksumFrom, offset + SUPERBLOCK_BYTES), offset + HEADER.checksum)
}

export type SuperblockRead =
  | { kind: 'valid'; superblock: Superblock }
  | { kind: 'zero' }
  | { kind: 'foreign' }
  | { kind: 'version'; version: number }
  | { kind: 'corrupt'; reason: string }

/**
 * Classifies and decodes the superblock at the start of the block
 * source[offset, offset + 4096). 'zero' means the whole block is zero.
 */
export function decodeSuperblock(source: Buffer, offset: number): SuperblockRead {
  if (!hasMagic(source, offset, 'superblock')) {
    for (let index = offset; index < offset + BLOCK_SIZE; index++) if (source[index] !== 0) return { kind: 'foreign' }
    return { kind: 'zero' }
  }
  const version = source.readUInt16LE(offset + HEADER.version)
  if (version !== FORMAT_VERSION) return { kind: 'version', version }
  const stored = source.readUInt32LE(offset + HEADER.checksum)
  const computed = crc32c(source, offset + HEADER.checksumFrom, offset + SUPERBLOCK_BYTES)
  if (stored !== computed) return { kind: 'corrupt', reason: `checksum mismatch (stored ${stored}, computed ${computed})` }
  if (source.readUInt16LE(offset + SB.headerBytes) !== SUPERBLOCK_BYTES) return { kind: 'corrupt', reason: 'wrong superblock size' }
  const superblock = {} as Superblock
  for (const field of U64_FIELDS) superblock[field] = readU64(source, offset + SB[field])
  for (const field of U32_FIELDS) superblock[field] = source.readUInt32LE(offset + SB[field])
  return { kind: 'valid', superblock }
}

/** Buckets in use: N0 · 2^L + s. */
export function bucketCount(superblock: Superblock): number {
  return superblock.initialBuckets * 2 ** superblock.level + superblock.splitPointer
}

/**
 * Checks the geometry of a decoded superblock against itself and the device;
 * returns the first inconsistency, or undefined. A superblock can pass its
 * checksum and still be wrong if a bug wrote it, so open checks this too.
 */
export function checkGeometry(superblock: Superblock, deviceBlocks: number): string | undefined {
  const s = superblock
  if (s.storeBlocks > deviceBlocks) return `the store spans ${s.storeBlocks} blocks but the device has ${deviceBlocks}`
  if (s.journalStart + 2 * s.journalSlotBlocks > s.walStart) return 'the journal overlaps the log'
  if (s.walStart + s.walBlocks > s.bitmapStart) return 'the log overlaps the bitmap'
  if (s.bitmapStart + s.bitmapBlocks > s.regionStart) return 'the bitmap overlaps the region'
  if (s.regionStart + s.regionBlocks > s.storeBlocks) return 'the region runs past the store'
  if (s.initialBuckets < 1 || s.splitPointer >= s.initialBuckets * 2 ** s.level) return 'impossible linear hashing state'
  if (bucketCount(s) + s.heapSpan > s.regionBlocks) return 'buckets and heap overlap'
  if (s.checkpointWalBlock >= s.walBlocks) return 'checkpoint outside the log'
  if (s.journalSlotBlocks < 2 || s.walBlocks < 2) return 'journal or log too small'
  return undefined
}
