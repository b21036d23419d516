/**
 * Every on-disk constant and field offset of the engine, in one place.
 *
 * The contract is docs/format.md, section 2; each group below names its
 * subsection. Values marked "on disk" are part of format version 1 and never
 * change: a change is a new format version. Nothing else in src/engine/ writes
 * a literal offset or magic number; codecs import them from here.
 *
 * Relationships between the constants are asserted once, at load (bottom of
 * this file), so a wrong edit fails the first test that imports the engine.
 */

import assert from 'node:assert/strict'
import { BLOCK_SIZE } from '../device/types'

export { BLOCK_SIZE }

/** Format version of every engine structure (on disk). */
export const FORMAT_VERSION = 1

/** 8-byte ASCII magics (on disk), as [low u32, high u32] little-endian for fast comparison. */
function magic(text: string): readonly [number, number] {
  assert.equal(text.length, 8)
  const bytes = Buffer.from(text, 'latin1')
  return [bytes.readUInt32LE(0), bytes.readUInt32LE(4)]
}

export const MAGIC_TEXT = {
  superblock: 'CUBBY-SB',
  journal: 'CUBBY-JN',
  wal: 'CUBBYWAL',
  bucket: 'CUBBY-BK',
  overflow: 'CUBBY-OV',
  bitmap: 'CUBBY-BM',
} as const

export const MAGIC = {
  superblock: magic(MAGIC_TEXT.superblock),
  journal: magic(MAGIC_TEXT.journal),
  wal: magic(MAGIC_TEXT.wal),
  bucket: magic(MAGIC_TEXT.bucket),
  overflow: magic(MAGIC_TEXT.overflow),
  bitmap: magic(MAGIC_TEXT.bitmap),
} as const

export type MagicName = keyof typeof MAGIC

export function writeMagic(buffer: Buffer, offset: number, name: MagicName): void {
  const [low, high] = MAGIC[name]
  buffer.writeUInt32LE(low, offset)
  buffer.writeUInt32LE(high, offset + 4)
}

export function hasMagic(buffer: Buffer, offset: number, name: MagicName): boolean {
  const [low, high] = MAGIC[name]
  return buffer.readUInt32LE(offset) === low && buffer.readUInt32LE(offset + 4) === high
}

/** Reads a u64 that must fit a double exactly (every count and LBA does). */
export function readU64(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset) + buffer.readUInt32LE(offset + 4) * 0x1_0000_0000
}

export function writeU64(buffer: Buffer, offset: number, value: number): void {
  assert.ok(Number.isSafeInteger(value) && value >= 0, `u64 field out of range: ${value}`)
  buffer.writeUInt32LE(value % 0x1_0000_0000, offset)
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 4)
}

/** Common to every checksummed header: magic at 0, CRC-32C at 8, version at 12 (on disk). */
export const HEADER = { magic: 0, checksum: 8, version: 12, checksumFrom: 12 } as const

// ---------------------------------------------------------------------------
// 2.1 Layout: superblock copies, then the journal slots, log, bitmap, region.

export const SUPERBLOCK_LBAS = [0, 1] as const
export const JOURNAL_START_LBA = 2
/** Journal slot size of a new store: header + 256 images. Readers use the superblock's value. */
export const DEFAULT_JOURNAL_SLOT_BLOCKS = 257
/** Log ring size of a new store (64 MiB of logical space). */
export const DEFAULT_WAL_BLOCKS = 16384
/** Smallest log ring a store may have. */
export const MIN_WAL_BLOCKS = 256

// ---------------------------------------------------------------------------
// 2.2 Hash (on disk: these decide where every key lives).

export const HASH_SEED_A = 0x9747b28c
export const HASH_SEED_B = 0x5bd1e995

// ---------------------------------------------------------------------------
// 2.3 Superblock.

export const SUPERBLOCK_BYTES = 256
export const SB = {
  headerBytes: 14,
  storeId: 16,
  generation: 24,
  storeBlocks: 32,
  journalStart: 40,
  journalSlotBlocks: 48,
  walBlocks: 52,
  walStart: 56,
  bitmapStart: 64,
  bitmapBlocks: 72,
  regionStart: 80,
  regionBlocks: 88,
  initialBuckets: 96,
  level: 104,
  targetBucketBytes: 108,
  splitPointer: 112,
  keys: 120,
  entryBytes: 128,
  overflowBlocks: 136,
  overflowBuckets: 144,
  heapSpan: 152,
  checkpointLsn: 160,
  checkpointWalBlock: 168,
  checkpointWalSequence: 176,
  heapBlocksInUse: 184,
  createdMs: 192,
  reserved: 200,
} as const

// ---------------------------------------------------------------------------
// 2.4 Write-ahead log.

export const FRAME = {
  storeId: 16,
  sequence: 24,
  firstLsn: 32,
  payloadBytes: 40,
  recordCount: 44,
  headerBytes: 48,
} as const
/** Largest frame, header included (4 MiB). A batch that does not fit is refused. */
export const MAX_FRAME_BLOCKS = 1024
export const MAX_FRAME_BYTES = MAX_FRAME_BLOCKS * BLOCK_SIZE

export const RECORD_PUT_INLINE = 1
export const RECORD_PUT_EXTENT = 2
export const RECORD_DELETE = 3
/** Header bytes of each record type, before the key (on disk). */
export const RECORD_HEADER_BYTES = { [RECORD_PUT_INLINE]: 7, [RECORD_PUT_EXTENT]: 19, [RECORD_DELETE]: 3 } as const

// ---------------------------------------------------------------------------
// 2.5 Flush journal.

export const JOURNAL = {
  storeId: 16,
  generation: 24,
  imageCount: 32,
  imagesChecksum: 36,
  superblock: 64,
  lbas: 320,
} as const
/** Most images one journal header can list. */
export const JOURNAL_MAX_IMAGES = (BLOCK_SIZE - JOURNAL.lbas) / 8

// ---------------------------------------------------------------------------
// 2.6 Bucket and overflow blocks.

export const BUCKET = {
  entryCount: 14,
  lba: 16,
  bucketNumber: 24,
  lsn: 32,
  next: 40,
  usedBytes: 48,
  storeTag: 52,
  headerBytes: 64,
} as const
/** Bytes of entries one bucket or overflow block holds. */
export const BUCKET_CAPACITY = BLOCK_SIZE - BUCKET.headerBytes

// ---------------------------------------------------------------------------
// 2.7 Entry.

export const ENTRY_HEADER_BYTES = 5
/** Bit 15 of an entry's key-length field: the value is in an extent. */
export const ENTRY_EXTENT_FLAG = 0x8000
export const ENTRY_KEY_LENGTH_MASK = 0x07ff
/** Extent pointer: u64 LBA, u32 value length, u32 value CRC-32C. */
export const EXTENT_POINTER_BYTES = 16
/** A value is inline when 5 + key + value ≤ this: half a bucket, so a bucket holds at least two entries (on disk). */
export const INLINE_ENTRY_MAX = BUCKET_CAPACITY / 2

// ---------------------------------------------------------------------------
// 2.9 Allocation bitmap.

export const BITMAP = { lba: 16, bitsOffset: 32 } as const
export const BITMAP_BITS_PER_BLOCK = (BLOCK_SIZE - BITMAP.bitsOffset) * 8

// ---------------------------------------------------------------------------
// Limits of the public API (docs/api.md), asserted against the format.

export const MAX_KEY_BYTES = 1024
export const MAX_VALUE_BYTES = 64 * 1024 * 1024

// Relationships, asserted once at load.
assert.equal(BLOCK_SIZE, 4096)
assert.ok(SUPERBLOCK_BYTES <= 512, 'the superblock must fit one 512-byte sector so a torn write cannot split it')
assert.equal(SB.reserved + 56, SUPERBLOCK_BYTES)
assert.equal(JOURNAL.superblock + SUPERBLOCK_BYTES, JOURNAL.lbas)
assert.ok(DEFAULT_JOURNAL_SLOT_BLOCKS - 1 <= JOURNAL_MAX_IMAGES)
assert.ok(MAX_KEY_BYTES <= ENTRY_KEY_LENGTH_MASK, 'key length must fit its entry field')
assert.ok(ENTRY_HEADER_BYTES + MAX_KEY_BYTES + EXTENT_POINTER_BYTES <= BUCKET_CAPACITY, 'the longest key must fit an empty bucket')
assert.ok(INLINE_ENTRY_MAX <= BUCKET_CAPACITY)
assert.ok(INLINE_ENTRY_MAX <= 0xffff, 'inline bytes must fit a u16')
assert.ok(MAX_VALUE_BYTES <= 0xffff_ffff)
assert.equal(BITMAP_BITS_PER_BLOCK, 32512)
assert.ok(MAX_FRAME_BLOCKS * 4 <= DEFAULT_WAL_BLOCKS, 'a frame must be small against the ring')
