/**
 * Codec of bucket and overflow blocks and of the entries packed in them
 * (docs/format.md 2.6, 2.7).
 *
 * A chain is a primary bucket block plus rare overflow blocks; all of its
 * blocks carry the same bucket number and LSN and are rewritten together.
 * Readers verify a block right after reading it (`checkChainBlock`), and the
 * flush checks every image right before writing it (`assertChainImage`).
 *
 * The lookup functions work on a block in place and allocate nothing: they
 * are the GET hot path. Decoding into ChainEntry objects and encoding are for
 * flush steps and iteration, which are allowed to allocate.
 */

import assert from 'node:assert/strict'
import { crc32c } from '../util/crc32c'
import {
  BLOCK_SIZE,
  BUCKET,
  BUCKET_CAPACITY,
  ENTRY_EXTENT_FLAG,
  ENTRY_HEADER_BYTES,
  ENTRY_KEY_LENGTH_MASK,
  EXTENT_POINTER_BYTES,
  FORMAT_VERSION,
  HEADER,
  INLINE_ENTRY_MAX,
  hasMagic,
  readU64,
  writeMagic,
  writeU64,
} from './format'

/** Where a value lives on the device: a value extent (docs/format.md 2.8). */
export interface ExtentPointer {
  lba: number
  length: number
  checksum: number
}

/** One entry of a chain, decoded (flush steps, iteration, splits). */
export interface ChainEntry {
  fingerprint: number
  key: Buffer
  /** Inline value bytes; undefined when the value is in an extent. */
  value: Buffer | undefined
  extent: ExtentPointer | undefined
}

export type ChainBlockKind = 'bucket' | 'overflow'

/** Header fields of a verified chain block. */
export interface ChainHeader {
  entryCount: number
  usedBytes: number
  lsn: number
  next: number
  bucketNumber: number
}

/** Bytes `entry` takes in a block. */
export function chainEntrySize(keyLength: number, value: Buffer | undefined): number {
  return ENTRY_HEADER_BYTES + keyLength + (value === undefined ? EXTENT_POINTER_BYTES : value.length)
}

/** Whether a value of `valueLength` bytes is stored inline with a key of `keyLength` bytes. */
export function isInlineValue(keyLength: number, valueLength: number): boolean {
  return ENTRY_HEADER_BYTES + keyLength + valueLength <= INLINE_ENTRY_MAX
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE)

function isZeroBlock(block: Buffer, offset: number): boolean {
  return block.compare(ZERO_BLOCK, 0, BLOCK_SIZE, offset, offset + BLOCK_SIZE) === 0
}

/**
 * Verifies the block at block[offset, offset + 4096) as the chain block at
 * `lba`. Returns undefined when it is valid (an all-zero primary bucket is a
 * valid empty bucket), else the reason it is not. `bucketNumber` is checked
 * when not negative.
 */
export function checkChainBlock(
  block: Buffer,
  offset: number,
  lba: number,
  kind: ChainBlockKind,
  bucketNumber: number,
  storeTag: number,
): string | undefined {
  if (!hasMagic(block, offset, kind)) {
    if (kind === 'bucket' && isZeroBlock(block, offset)) return undefined
    if (hasMagic(block, offset, kind === 'bucket' ? 'overflow' : 'bucket')) return `holds a ${kind === 'bucket' ? 'overflow' : 'bucket'} block where a ${kind} block belongs`
    return `has no ${kind} magic`
  }
  const usedBytes = block.readUInt16LE(offset + BUCKET.usedBytes)
  if (usedBytes > BUCKET_CAPACITY) return `claims ${usedBytes} bytes of entries, more than a block holds`
  const stored = block.readUInt32LE(offset + HEADER.checksum)
  const computed = crc32c(block, offset + HEADER.checksumFrom, offset + BUCKET.headerBytes + usedBytes)
  if (stored !== computed) return `checksum mismatch (stored ${hex(stored)}, computed ${hex(computed)})`
  const version = block.readUInt16LE(offset + HEADER.version)
  if (version !== FORMAT_VERSION) return `has format version ${version}`
  const ownLba = readU64(block, offset + BUCKET.lba)
  if (ownLba !== lba) return `was written for block ${ownLba} (misdirected write)`
  if (block.readUInt32LE(offset + BUCKET.storeTag) !== storeTag) return 'belongs to another store'
  if (bucketNumber >= 0 && readU64(block, offset + BUCKET.bucketNumber) !== bucketNumber) {
    return `belongs to bucket ${readU64(block, offset + BUCKET.bucketNumber)}, not ${bucketNumber}`
  }
  return undefined
}

export function readChainHeader(block: Buffer, offset: number, out: ChainHeader): ChainHeader {
  out.entryCount = block.readUInt16LE(offset + BUCKET.entryCount)
  out.usedBytes = block.readUInt16LE(offset + BUCKET.usedBytes)
  out.lsn = readU64(block, offset + BUCKET.lsn)
  out.next = readU64(block, offset + BUCKET.next)
  out.bucketNumber = readU64(block, offset + BUCKET.bucketNumber)
  return out
}

export function newChainHeader(): ChainHeader {
  return { entryCount: 0, usedBytes: 0, lsn: 0, next: 0, bucketNumber: 0 }
}

/**
 * Finds `key` (key[keyStart, keyStart + keyLength)) in a verified block.
 * Returns the entry's offset in `block`, or -1. Allocates nothing.
 */
export function findEntry(block: Buffer, offset: number, key: Uint8Array, keyStart: number, keyLength: number, fingerprint: number): number {
  const end = offset + BUCKET.headerBytes + block.readUInt16LE(offset + BUCKET.usedBytes)
  let position = offset + BUCKET.headerBytes
  while (position < end) {
    const keyField = block[position + 1]! | (block[position + 2]! << 8)
    const entryKeyLength = keyField & ENTRY_KEY_LENGTH_MASK
    const inlineBytes = block[position + 3]! | (block[position + 4]! << 8)
    if (block[position] === fingerprint && entryKeyLength === keyLength) {
      const entryKey = position + ENTRY_HEADER_BYTES
      let same = true
      for (let index = 0; index < keyLength; index++) {
        if (block[entryKey + index] !== key[keyStart + index]) {
          same = false
          break
        }
      }
      if (same) return position
    }
    position += ENTRY_HEADER_BYTES + entryKeyLength + inlineBytes
  }
  return -1
}

/** Whether the entry at `position` keeps its value in an extent. */
export function entryHasExtent(block: Buffer, position: number): boolean {
  return (block.readUInt16LE(position + 1) & ENTRY_EXTENT_FLAG) !== 0
}

/** Offset of the entry's inline value (or extent pointer) in `block`. */
export function entryValueOffset(block: Buffer, position: number): number {
  return position + ENTRY_HEADER_BYTES + (block.readUInt16LE(position + 1) & ENTRY_KEY_LENGTH_MASK)
}

export function entryInlineBytes(block: Buffer, position: number): number {
  return block.readUInt16LE(position + 3)
}

export function readExtentPointer(block: Buffer, at: number): ExtentPointer {
  return { lba: readU64(block, at), length: block.readUInt32LE(at + 8), checksum: block.readUInt32LE(at + 12) }
}

/**
 * Decodes every entry of a verified block, appending them to `out`: copies,
 * or with `views`, slices of `block` that stay valid only while it does.
 * Returns the reason when the entries do not parse exactly.
 */
export function decodeEntries(block: Buffer, offset: number, out: ChainEntry[], views = false): string | undefined {
  const slice = views ? (start: number, end: number): Buffer => block.subarray(start, end) : (start: number, end: number): Buffer => Buffer.from(block.subarray(start, end))
  const count = block.readUInt16LE(offset + BUCKET.entryCount)
  const end = offset + BUCKET.headerBytes + block.readUInt16LE(offset + BUCKET.usedBytes)
  let position = offset + BUCKET.headerBytes
  for (let index = 0; index < count; index++) {
    if (position + ENTRY_HEADER_BYTES > end) return `entry ${index} overruns the block's used bytes`
    const keyField = block.readUInt16LE(position + 1)
    const keyLength = keyField & ENTRY_KEY_LENGTH_MASK
    const inlineBytes = block.readUInt16LE(position + 3)
    const valueAt = position + ENTRY_HEADER_BYTES + keyLength
    if (keyLength === 0 || valueAt + inlineBytes > end) return `entry ${index} overruns the block's used bytes`
    const key = slice(position + ENTRY_HEADER_BYTES, valueAt)
    if ((keyField & ENTRY_EXTENT_FLAG) !== 0) {
      if (inlineBytes !== EXTENT_POINTER_BYTES) return `entry ${index} has an extent pointer of ${inlineBytes} bytes`
      out.push({ fingerprint: block[position]!, key, value: undefined, extent: readExtentPointer(block, valueAt) })
    } else {
      out.push({ fingerprint: block[position]!, key, value: slice(valueAt, valueAt + inlineBytes), extent: undefined })
    }
    position = valueAt + inlineBytes
  }
  if (position !== end) return `${count} entries end at byte ${position - offset}, not at the used bytes' end ${end - offset}`
  return undefined
}

/** How many blocks `entries` take when packed in order (at least one). */
export function countChainBlocks(entries: readonly ChainEntry[]): number {
  let blocks = 1
  let used = 0
  for (const entry of entries) {
    const size = chainEntrySize(entry.key.length, entry.value)
    if (used + size > BUCKET_CAPACITY) {
      blocks++
      used = 0
    }
    used += size
  }
  return blocks
}

export interface ChainImage {
  bucketNumber: number
  lsn: number
  storeTag: number
  /** LBA of each block of the chain: the bucket first, then its overflow blocks. */
  lbas: readonly number[]
}

/**
 * Packs `entries` in order into the chain's blocks, written to
 * target[targetOffsets[i], +4096). `chain.lbas.length` must equal
 * countChainBlocks(entries). The tail of every block is zeroed.
 */
export function encodeChain(entries: readonly ChainEntry[], chain: ChainImage, target: Buffer, targetOffsets: readonly number[]): void {
  assert.equal(chain.lbas.length, countChainBlocks(entries))
  let blockIndex = 0
  let offset = targetOffsets[0]!
  let position = offset + BUCKET.headerBytes
  let count = 0
  const finish = (next: number): void => {
    sealChainBlock(target, offset, blockIndex === 0 ? 'bucket' : 'overflow', chain, blockIndex, count, position - offset - BUCKET.headerBytes, next)
  }
  target.fill(0, offset, offset + BLOCK_SIZE)
  for (const entry of entries) {
    const size = chainEntrySize(entry.key.length, entry.value)
    if (position - offset - BUCKET.headerBytes + size > BUCKET_CAPACITY) {
      finish(chain.lbas[blockIndex + 1]!)
      blockIndex++
      offset = targetOffsets[blockIndex]!
      target.fill(0, offset, offset + BLOCK_SIZE)
      position = offset + BUCKET.headerBytes
      count = 0
    }
    target[position] = entry.fingerprint
    const keyLength = entry.key.length
    if (entry.value === undefined) {
      const extent = entry.extent!
      target.writeUInt16LE(keyLength | ENTRY_EXTENT_FLAG, position + 1)
      target.writeUInt16LE(EXTENT_POINTER_BYTES, position + 3)
      entry.key.copy(target, position + ENTRY_HEADER_BYTES)
      const at = position + ENTRY_HEADER_BYTES + keyLength
      writeU64(target, at, extent.lba)
      target.writeUInt32LE(extent.length, at + 8)
      target.writeUInt32LE(extent.checksum, at + 12)
    } else {
      target.writeUInt16LE(keyLength, position + 1)
      target.writeUInt16LE(entry.value.length, position + 3)
      entry.key.copy(target, position + ENTRY_HEADER_BYTES)
      entry.value.copy(target, position + ENTRY_HEADER_BYTES + keyLength)
    }
    position += size
    count++
  }
  finish(0)
}

function sealChainBlock(
  target: Buffer,
  offset: number,
  kind: ChainBlockKind,
  chain: ChainImage,
  blockIndex: number,
  entryCount: number,
  usedBytes: number,
  next: number,
): void {
  writeMagic(target, offset, kind)
  target.writeUInt16LE(FORMAT_VERSION, offset + HEADER.version)
  target.writeUInt16LE(entryCount, offset + BUCKET.entryCount)
  writeU64(target, offset + BUCKET.lba, chain.lbas[blockIndex]!)
  writeU64(target, offset + BUCKET.bucketNumber, chain.bucketNumber)
  writeU64(target, offset + BUCKET.lsn, chain.lsn)
  writeU64(target, offset + BUCKET.next, next)
  target.writeUInt16LE(usedBytes, offset + BUCKET.usedBytes)
  target.writeUInt32LE(chain.storeTag >>> 0, offset + BUCKET.storeTag)
  target.writeUInt32LE(crc32c(target, offset + HEADER.checksumFrom, offset + BUCKET.headerBytes + usedBytes), offset + HEADER.checksum)
}

/**
 * Checks an image right before it is written: it verifies as the block it
 * claims to be and its entries parse exactly. A failure is a bug in the
 * engine, so it is an assertion, not an operating error.
 */
export function assertChainImage(block: Buffer, offset: number, lba: number, kind: ChainBlockKind, bucketNumber: number, storeTag: number): void {
  const reason = checkChainBlock(block, offset, lba, kind, bucketNumber, storeTag)
  assert.equal(reason, undefined, `about to write a bad ${kind} block ${lba}: ${reason}`)
  const entries: ChainEntry[] = []
  const parse = decodeEntries(block, offset, entries, true)
  assert.equal(parse, undefined, `about to write a bad ${kind} block ${lba}: ${parse}`)
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`
}
