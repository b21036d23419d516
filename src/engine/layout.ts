/**
 * Laying out and formatting a new store (docs/format.md 2.1).
 *
 * `layoutStore` turns a device size and a sizing plan into a superblock;
 * `formatStore` trims what the store will interpret (so no stale bytes from
 * an earlier occupant can be read as buckets or bitmap), then writes both
 * superblock copies. Until the superblocks are durable the device reads as
 * empty, so a crash during formatting leaves a device that formats again.
 *
 * Called by the engine's create path only.
 */

import { randomBytes } from 'node:crypto'
import { CubbyError, ErrorCode } from '../errors'
import type { BlockDevice } from '../device/types'
import {
  BITMAP_BITS_PER_BLOCK,
  BLOCK_SIZE,
  DEFAULT_JOURNAL_SLOT_BLOCKS,
  DEFAULT_WAL_BLOCKS,
  JOURNAL_START_LBA,
  MAX_FRAME_BLOCKS,
  MIN_WAL_BLOCKS,
  SUPERBLOCK_LBAS,
} from './format'
import type { Plan } from './sizing'
import { type Superblock, encodeSuperblock } from './superblock'

/** Heap blocks a new store keeps free beyond its initial buckets at the least. */
const MIN_HEAP_BLOCKS = 64

/** The log ring for a store of `blocks`: 64 MiB, or an eighth of a small store (at least 256 blocks). */
export function walBlocksFor(blocks: number): number {
  return Math.max(MIN_WAL_BLOCKS, Math.min(DEFAULT_WAL_BLOCKS, Math.floor(blocks / 8)))
}

/** Largest frame a ring of `walBlocks` takes: a quarter of the ring, at most 4 MiB. */
export function maxFrameBlocksFor(walBlocks: number): number {
  return Math.min(MAX_FRAME_BLOCKS, Math.floor(walBlocks / 4))
}

/** Fewest blocks a store with `buckets` initial buckets needs. */
export function minimumStoreBlocks(buckets: number): number {
  return JOURNAL_START_LBA + 2 * DEFAULT_JOURNAL_SLOT_BLOCKS + MIN_WAL_BLOCKS + 1 + buckets + MIN_HEAP_BLOCKS
}

/** The superblock (generation 1) of a new store of `blocks` blocks sized by `plan`. */
export function layoutStore(blocks: number, plan: Plan): Superblock {
  if (blocks < minimumStoreBlocks(plan.buckets)) {
    throw new CubbyError(
      ErrorCode.FULL,
      `a store for ${plan.buckets} buckets needs at least ${minimumStoreBlocks(plan.buckets) * BLOCK_SIZE} bytes; the target has ${blocks * BLOCK_SIZE}`,
    )
  }
  const journalSlotBlocks = DEFAULT_JOURNAL_SLOT_BLOCKS
  const walStart = JOURNAL_START_LBA + 2 * journalSlotBlocks
  const walBlocks = walBlocksFor(blocks)
  const bitmapStart = walStart + walBlocks
  const remaining = blocks - bitmapStart
  const bitmapBlocks = Math.ceil(remaining / (BITMAP_BITS_PER_BLOCK + 1))
  const regionStart = bitmapStart + bitmapBlocks
  const regionBlocks = blocks - regionStart
  if (regionBlocks < plan.buckets + MIN_HEAP_BLOCKS) {
    throw new CubbyError(ErrorCode.FULL, `the target is too small for ${plan.buckets} buckets`)
  }
  const id = randomBytes(8)
  // 53 bits of randomness: the id must be exact as a double.
  const storeId = id.readUInt32LE(0) + (id.readUInt32LE(4) & 0x1f_ffff) * 0x1_0000_0000
  return {
    storeId,
    generation: 1,
    storeBlocks: blocks,
    journalStart: JOURNAL_START_LBA,
    journalSlotBlocks,
    walBlocks,
    walStart,
    bitmapStart,
    bitmapBlocks,
    regionStart,
    regionBlocks,
    initialBuckets: plan.buckets,
    level: 0,
    targetBucketBytes: plan.targetBucketBytes,
    splitPointer: 0,
    keys: 0,
    entryBytes: 0,
    overflowBlocks: 0,
    overflowBuckets: 0,
    heapSpan: 0,
    checkpointLsn: 0,
    checkpointWalBlock: 0,
    checkpointWalSequence: 1,
    heapBlocksInUse: 0,
    createdMs: Date.now(),
  }
}

/**
 * Formats `device` with `superblock`. With `trim`, first trims every block
 * the store interprets (everything but the heap's never-read free space is
 * simpler to trim whole: the whole store).
 */
export async function formatStore(device: BlockDevice, superblock: Superblock, trim: boolean): Promise<void> {
  if (trim) {
    await device.trim(0, superblock.storeBlocks)
    await device.flush()
  }
  const buffer = device.allocate(2)
  encodeSuperblock({ ...superblock, generation: 0 }, buffer, 0)
  encodeSuperblock(superblock, buffer, BLOCK_SIZE)
  await device.write([
    { lba: SUPERBLOCK_LBAS[0], buffer, bufferOffset: 0 },
    { lba: SUPERBLOCK_LBAS[1], buffer, bufferOffset: BLOCK_SIZE },
  ])
  await device.flush()
}
