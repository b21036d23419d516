/**
 * The write buffer (memtable): the newest record of each key written since
 * the buffer was started, in memory until a flush applies it to the buckets.
 *
 * Records live back to back in one arena Buffer; a newer record of a key is
 * appended and takes over its index slot, the older one becomes dead bytes.
 * The index is open addressing over typed arrays, keyed by the key's 48-bit
 * bucket hash and confirmed by comparing key bytes. So a buffer holds no
 * JavaScript object per record: the garbage collector never walks them, and
 * its memory is exactly its arrays.
 *
 * Both arrays start small and double up to the buffer's limits (half the
 * writeBufferSize, split between arena and index). The engine holds at most
 * two buffers plus one spare: the active one, a frozen one being flushed, and
 * a reset one ready to become active. Each knows the log range it covers, so
 * once it is applied the checkpoint can move to its end. The replay buffer of
 * recovery has no limit: the log bounds it.
 *
 * Record layout in the arena (little-endian):
 *   0 u8 type (format.ts RECORD_*)  1 u8 fingerprint  2 u16 key length
 *   4 u32 value length (inline bytes, or the extent's value length)
 *   8 f64 LSN  16 f64 bucket hash  24 f64 extent LBA  32 u32 extent CRC-32C
 *   36 key bytes, then inline value bytes
 */

import assert from 'node:assert/strict'
import type { ExtentPointer } from './bucket'
import { ENTRY_HEADER_BYTES, EXTENT_POINTER_BYTES, RECORD_DELETE, RECORD_PUT_EXTENT, RECORD_PUT_INLINE } from './format'
import type { WriteRecord } from './record'

const TYPE = 0
const FINGERPRINT = 1
const KEY_LENGTH = 2
const VALUE_LENGTH = 4
const LSN = 8
const BUCKET_HASH = 16
const EXTENT_LBA = 24
const EXTENT_CHECKSUM = 32
const HEADER_BYTES = 36

const INITIAL_ARENA_BYTES = 256 * 1024
const INITIAL_SLOTS = 4096
/** Index slots per byte of budget: 12 bytes per slot, a fifth of the budget. */
const INDEX_SHARE = 0.2
const BYTES_PER_SLOT = 12

/** Arena bytes `record` takes. */
export function bufferedBytes(record: WriteRecord): number {
  return HEADER_BYTES + record.key.length + (record.value?.length ?? 0)
}

export interface WriteBufferLimits {
  arenaBytes: number
  /** Most index slots; the buffer holds at most half as many records. */
  slots: number
}

/** Limits of each buffer when write buffers may hold `writeBufferSize` bytes in all. */
export function limitsFor(writeBufferSize: number): WriteBufferLimits {
  const half = writeBufferSize / 2
  let slots = INITIAL_SLOTS
  while (slots * 2 * BYTES_PER_SLOT <= half * INDEX_SHARE) slots *= 2
  return { arenaBytes: Math.floor(half - slots * BYTES_PER_SLOT), slots }
}

export const UNLIMITED: WriteBufferLimits = { arenaBytes: Number.MAX_SAFE_INTEGER, slots: 2 ** 30 }

export class WriteBuffer {
  private arena = Buffer.allocUnsafe(INITIAL_ARENA_BYTES)
  private used = 0
  private hashes = new Float64Array(INITIAL_SLOTS)
  private offsets = new Int32Array(INITIAL_SLOTS).fill(-1)
  /** Live records (keys). */
  size = 0
  /** Log position (virtual block) and sequence just after the last frame in this buffer. */
  walEnd = -1
  walEndSequence = -1
  /** LSN of the last record in this buffer. */
  lastLsn = 0
  /** Extents of records superseded inside this buffer: free once its checkpoint passes. */
  supersededExtents: ExtentPointer[] = []
  /** Bytes the live puts will take as bucket entries (the flush's estimate of splits to come). */
  putEntryBytes = 0

  constructor(readonly limits: WriteBufferLimits) {}

  /** Arena bytes written, live and dead. */
  get bytes(): number {
    return this.used
  }

  /** Bytes of memory the buffer holds. */
  get memoryBytes(): number {
    return this.arena.length + this.hashes.byteLength + this.offsets.byteLength
  }

  get maxRecords(): number {
    return this.limits.slots / 2
  }

  /** Whether `records` more records of `bytes` arena bytes fit within the limits. */
  hasRoom(bytes: number, records: number): boolean {
    return this.used + bytes <= this.limits.arenaBytes && this.size + records <= this.maxRecords
  }

  /** Forgets every record; the arrays stay for the next use. */
  reset(): void {
    this.used = 0
    this.size = 0
    this.offsets.fill(-1)
    this.walEnd = -1
    this.walEndSequence = -1
    this.lastLsn = 0
    this.supersededExtents = []
    this.putEntryBytes = 0
  }

  /** Adds `record` (its LSN assigned), superseding an older record of the same key. */
  add(record: WriteRecord): void {
    const keyLength = record.key.length
    const inline = record.value?.length ?? 0
    const need = HEADER_BYTES + keyLength + inline
    assert.ok(this.hasRoom(need, 1), 'the committer checks room before adding')
    if (this.used + need > this.arena.length) this.growArena(this.used + need)
    if ((this.size + 1) * 2 > this.offsets.length) this.growIndex()
    const at = this.used
    const arena = this.arena
    arena[at + TYPE] = record.deleted ? RECORD_DELETE : record.extent !== undefined ? RECORD_PUT_EXTENT : RECORD_PUT_INLINE
    arena[at + FINGERPRINT] = record.fingerprint
    arena.writeUInt16LE(keyLength, at + KEY_LENGTH)
    arena.writeUInt32LE(record.extent !== undefined ? record.extent.length : inline, at + VALUE_LENGTH)
    arena.writeDoubleLE(record.lsn, at + LSN)
    arena.writeDoubleLE(record.bucketHash, at + BUCKET_HASH)
    arena.writeDoubleLE(record.extent?.lba ?? 0, at + EXTENT_LBA)
    arena.writeUInt32LE(record.extent?.checksum ?? 0, at + EXTENT_CHECKSUM)
    record.key.copy(arena, at + HEADER_BYTES)
    if (inline > 0) record.value!.copy(arena, at + HEADER_BYTES + keyLength)
    this.used += need
    if (record.lsn > this.lastLsn) this.lastLsn = record.lsn
    const slot = this.slotFor(record.key, 0, keyLength, record.bucketHash)
    const previous = this.offsets[slot]!
    this.putEntryBytes += this.entryBytesAt(at)
    if (previous >= 0) {
      this.putEntryBytes -= this.entryBytesAt(previous)
      if (arena[previous + TYPE] === RECORD_PUT_EXTENT) this.supersededExtents.push(this.extentAt(previous))
    } else {
      this.hashes[slot] = record.bucketHash
      this.size++
    }
    this.offsets[slot] = at
  }

  /** Bytes the record at `at` takes as a bucket entry; 0 for a delete (docs/format.md 2.7). */
  private entryBytesAt(at: number): number {
    const type = this.arena[at + TYPE]
    if (type === RECORD_DELETE) return 0
    const keyLength = this.arena.readUInt16LE(at + KEY_LENGTH)
    return ENTRY_HEADER_BYTES + keyLength + (type === RECORD_PUT_EXTENT ? EXTENT_POINTER_BYTES : this.arena.readUInt32LE(at + VALUE_LENGTH))
  }

  /** Offset of the record of key[start, start + length), or -1. */
  find(key: Uint8Array, start: number, length: number, bucketHash: number): number {
    if (this.size === 0) return -1
    return this.offsets[this.slotFor(key, start, length, bucketHash)]!
  }

  isDeleted(at: number): boolean {
    return this.arena[at + TYPE] === RECORD_DELETE
  }

  hasExtent(at: number): boolean {
    return this.arena[at + TYPE] === RECORD_PUT_EXTENT
  }

  extentAt(at: number): ExtentPointer {
    return {
      lba: this.arena.readDoubleLE(at + EXTENT_LBA),
      length: this.arena.readUInt32LE(at + VALUE_LENGTH),
      checksum: this.arena.readUInt32LE(at + EXTENT_CHECKSUM),
    }
  }

  /** A copy of the inline value of the record at `at`. */
  copyValue(at: number): Buffer {
    const start = at + HEADER_BYTES + this.arena.readUInt16LE(at + KEY_LENGTH)
    const value = Buffer.allocUnsafe(this.arena.readUInt32LE(at + VALUE_LENGTH))
    this.arena.copy(value, 0, start, start + value.length)
    return value
  }

  bucketHashAt(at: number): number {
    return this.arena.readDoubleLE(at + BUCKET_HASH)
  }

  /**
   * The record at `at` as a WriteRecord whose key and value are views of the
   * arena: valid until the buffer is reset (flush steps use them).
   */
  recordAt(at: number): WriteRecord {
    const arena = this.arena
    const type = arena[at + TYPE]!
    const keyLength = arena.readUInt16LE(at + KEY_LENGTH)
    const key = arena.subarray(at + HEADER_BYTES, at + HEADER_BYTES + keyLength)
    const valueStart = at + HEADER_BYTES + keyLength
    return {
      key,
      bucketHash: arena.readDoubleLE(at + BUCKET_HASH),
      fingerprint: arena[at + FINGERPRINT]!,
      value: type === RECORD_PUT_INLINE ? arena.subarray(valueStart, valueStart + arena.readUInt32LE(at + VALUE_LENGTH)) : undefined,
      extent: type === RECORD_PUT_EXTENT ? this.extentAt(at) : undefined,
      deleted: type === RECORD_DELETE,
      lsn: arena.readDoubleLE(at + LSN),
    }
  }

  /** Offsets of every live record (one per key), in index order. */
  liveOffsets(): Int32Array {
    const out = new Int32Array(this.size)
    let count = 0
    for (const at of this.offsets) if (at >= 0) out[count++] = at
    return out
  }

  /** The slot holding key[start, start + length), or the empty slot where it would go. */
  private slotFor(key: Uint8Array, start: number, length: number, bucketHash: number): number {
    const mask = this.offsets.length - 1
    let slot = (bucketHash % 0x1_0000_0000) & mask
    for (;;) {
      const at = this.offsets[slot]!
      if (at < 0) return slot
      if (this.hashes[slot] === bucketHash && this.arena.readUInt16LE(at + KEY_LENGTH) === length) {
        if (this.arena.compare(key, start, start + length, at + HEADER_BYTES, at + HEADER_BYTES + length) === 0) return slot
      }
      slot = (slot + 1) & mask
    }
  }

  private growArena(needed: number): void {
    let length = this.arena.length * 2
    while (length < needed) length *= 2
    const arena = Buffer.allocUnsafe(Math.min(length, Math.max(needed, this.limits.arenaBytes)))
    this.arena.copy(arena, 0, 0, this.used)
    this.arena = arena
  }

  private growIndex(): void {
    const oldHashes = this.hashes
    const oldOffsets = this.offsets
    this.hashes = new Float64Array(oldOffsets.length * 2)
    this.offsets = new Int32Array(oldOffsets.length * 2).fill(-1)
    const mask = this.offsets.length - 1
    for (let index = 0; index < oldOffsets.length; index++) {
      const at = oldOffsets[index]!
      if (at < 0) continue
      let slot = (oldHashes[index]! % 0x1_0000_0000) & mask
      while (this.offsets[slot]! >= 0) slot = (slot + 1) & mask
      this.hashes[slot] = oldHashes[index]!
      this.offsets[slot] = at
    }
  }
}
