/**
 * The flush journal (docs/format.md 2.5): the redo record that makes one
 * flush step atomic. Slot g mod 2 holds the step that installs superblock
 * generation g: a header block (the LBAs of the images, their checksum, the
 * new superblock) followed by the images.
 *
 * Encoding is done by flush steps; reading and reinstalling by open
 * (recovery.ts). Both copy blocks in place idempotently, so a crash at any
 * point of a step, or of the repair of one, leaves a store that opens.
 */

import assert from 'node:assert/strict'
import { crc32c } from '../util/crc32c'
import { BLOCK_SIZE, FORMAT_VERSION, HEADER, JOURNAL, JOURNAL_MAX_IMAGES, SUPERBLOCK_BYTES, hasMagic, readU64, writeMagic, writeU64 } from './format'
import { type Superblock, decodeSuperblock, encodeSuperblock } from './superblock'

/** LBA of the header block of the slot that generation `generation` uses. */
export function journalSlotLba(superblock: Superblock, generation: number): number {
  return superblock.journalStart + (generation % 2) * superblock.journalSlotBlocks
}

/**
 * Writes the journal header into buffer[0, 4096) for a step whose images
 * sit in buffer[4096, 4096 · (1 + lbas.length)).
 */
export function encodeJournalHeader(buffer: Buffer, superblock: Superblock, lbas: readonly number[]): void {
  assert.ok(lbas.length <= JOURNAL_MAX_IMAGES && lbas.length <= superblock.journalSlotBlocks - 1, `a step of ${lbas.length} images does not fit the journal`)
  buffer.fill(0, 0, BLOCK_SIZE)
  writeMagic(buffer, 0, 'journal')
  buffer.writeUInt16LE(FORMAT_VERSION, HEADER.version)
  writeU64(buffer, JOURNAL.storeId, superblock.storeId)
  writeU64(buffer, JOURNAL.generation, superblock.generation)
  buffer.writeUInt32LE(lbas.length, JOURNAL.imageCount)
  buffer.writeUInt32LE(crc32c(buffer, BLOCK_SIZE, BLOCK_SIZE * (1 + lbas.length)), JOURNAL.imagesChecksum)
  encodeSuperblock(superblock, buffer, JOURNAL.superblock)
  for (let index = 0; index < lbas.length; index++) writeU64(buffer, JOURNAL.lbas + 8 * index, lbas[index]!)
  buffer.writeUInt32LE(crc32c(buffer, HEADER.checksumFrom, BLOCK_SIZE), HEADER.checksum)
}

export interface JournalHeader {
  superblock: Superblock
  lbas: number[]
  imagesChecksum: number
}

export type JournalRead = { kind: 'valid'; header: JournalHeader } | { kind: 'absent' } | { kind: 'corrupt'; reason: string }

/**
 * Reads the header in block[offset, +4096) as the journal of `generation`.
 * 'absent' when it is some other journal, or none; 'corrupt' when it claims
 * to be this one but does not check.
 */
export function readJournalHeader(block: Buffer, offset: number, storeId: number, generation: number): JournalRead {
  if (!hasMagic(block, offset, 'journal')) return { kind: 'absent' }
  if (block.readUInt32LE(offset + HEADER.checksum) !== crc32c(block, offset + HEADER.checksumFrom, offset + BLOCK_SIZE)) {
    // A torn header cannot be attributed to a generation; its generation field may still be legible.
    return readU64(block, offset + JOURNAL.storeId) === storeId && readU64(block, offset + JOURNAL.generation) === generation
      ? { kind: 'corrupt', reason: 'header checksum mismatch' }
      : { kind: 'absent' }
  }
  if (readU64(block, offset + JOURNAL.storeId) !== storeId || readU64(block, offset + JOURNAL.generation) !== generation) return { kind: 'absent' }
  if (block.readUInt16LE(offset + HEADER.version) !== FORMAT_VERSION) return { kind: 'corrupt', reason: 'unknown journal version' }
  const count = block.readUInt32LE(offset + JOURNAL.imageCount)
  if (count > JOURNAL_MAX_IMAGES) return { kind: 'corrupt', reason: `claims ${count} images` }
  const decoded = decodeSuperblock(block.subarray(offset + JOURNAL.superblock, offset + JOURNAL.superblock + BLOCK_SIZE - JOURNAL.superblock), 0)
  if (decoded.kind !== 'valid' || decoded.superblock.generation !== generation) return { kind: 'corrupt', reason: 'its superblock image does not check' }
  const lbas: number[] = []
  for (let index = 0; index < count; index++) lbas.push(readU64(block, offset + JOURNAL.lbas + 8 * index))
  return { kind: 'valid', header: { superblock: decoded.superblock, lbas, imagesChecksum: block.readUInt32LE(offset + JOURNAL.imagesChecksum) } }
}

assert.ok(JOURNAL.superblock + SUPERBLOCK_BYTES <= JOURNAL.lbas)
