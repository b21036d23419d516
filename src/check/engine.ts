/**
 * The engine's structures, read and verified without changing anything
 * (docs/format.md section 2): superblocks, flush journals, the allocation
 * bitmap, the log, bucket chains, value extents.
 *
 * StoreInspector sees a store the way a read-only open does: the newest
 * valid superblock, the journals' images as an overlay over the blocks they
 * rewrite, the log after the checkpoint replayed in memory. What such an
 * open completes by itself after a crash (a torn last frame, a step to
 * finish from its journal) is counted, not reported. Everything a clean
 * close would not leave is a problem, with its structure and location; that
 * includes blocks an open would rewrite from the last step's journal (a
 * crash during that step leaves them too, which the problem says).
 *
 * The same inspector serves salvage (src/check/salvage.ts): it walks every
 * bucket chain and hands over the entries of every block that verifies,
 * whatever else is broken. In 'check' mode it also verifies every entry
 * (fingerprint, bucket under the linear-hashing state, duplicates), every
 * value extent (range, CRC, double use), the counts in the superblock, and
 * the bitmap against what the chains reference (leaks and double use).
 *
 * Memory: one batch of chains at a time (BUCKETS_PER_BATCH buckets), the
 * overlay (two journal slots at most), the replayed log (bounded by the ring
 * like recovery's), one bit per heap block for references, and one extent
 * at a time.
 *
 * Who calls it: src/check.ts and src/check/salvage.ts.
 */

import { CubbyError, ErrorCode } from '../errors'
import type { BlockDevice, BlockRequest } from '../device/types'
import { crc32c } from '../util/crc32c'
import { HeapAllocator } from '../engine/allocator'
import { type ChainEntry, type ExtentPointer, checkChainBlock, chainEntrySize, decodeEntries, isInlineValue, newChainHeader, readChainHeader } from '../engine/bucket'
import {
  BITMAP,
  BITMAP_BITS_PER_BLOCK,
  BLOCK_SIZE,
  BUCKET,
  BUCKET_CAPACITY,
  ENTRY_HEADER_BYTES,
  FORMAT_VERSION,
  HEADER,
  SUPERBLOCK_BYTES,
  SUPERBLOCK_LBAS,
  hasMagic,
  readU64,
} from '../engine/format'
import { bucketOf, hashKey, newKeyHash } from '../engine/hash'
import { journalSlotLba } from '../engine/journal'
import { extentBlocks } from '../engine/record'
import { type JournalImages, readJournal, replayLog } from '../engine/recovery'
import { type Superblock, bucketCount, checkGeometry, decodeSuperblock } from '../engine/superblock'
import type { WriteBuffer } from '../engine/write-buffer'
import type { Findings, Progress } from './findings'

/** Buckets read per batch. */
const BUCKETS_PER_BATCH = 64
/** Longest chain followed before it is called a loop. */
const MAX_CHAIN_BLOCKS = 4096
/** Most entries a block can hold (5-byte entries with 1-byte keys and no value would be 6 bytes). */
const MAX_ENTRIES_PER_BLOCK = Math.floor(BUCKET_CAPACITY / (ENTRY_HEADER_BYTES + 1))
/** Blocks listed by LBA in one problem about many of them. */
const LISTED_BLOCKS = 8

/** One bucket chain as read: the entries of every block that verified, and what could not be read. */
export interface ChainVisit {
  bucket: number
  lsn: number
  entries: ChainEntry[]
  /** Some block of the chain could not be read or did not verify. */
  broken: boolean
  /** Entries the unreadable blocks' headers claimed (best effort: 0 when even that is unreadable). */
  lostEntries: number
}

export type InspectMode = 'check' | 'salvage'

export class StoreInspector {
  /** The superblock an open would use (after completing a pending step from its journal). */
  superblock: Superblock | undefined
  /** Journal images, by LBA: what an open writes in place before anything is read. */
  readonly overlay = new Map<number, Buffer>()
  /** Records of the log after the checkpoint, newest per key (undefined when the log could not be read). */
  replay: WriteBuffer | undefined
  private lastLsn = 0
  /** Durable bitmap bits per loaded chunk (undefined: not loaded, or damaged). */
  private durable: Array<Uint8Array | undefined> = []
  /** One bit per heap block below the heap span: referenced by a chain or an extent. */
  private referenced = new Uint8Array(0)
  private readonly hash = newKeyHash()
  private readonly header = newChainHeader()
  private readonly totals = { keys: 0, entryBytes: 0, overflowBlocks: 0, overflowBuckets: 0 }

  constructor(
    private readonly device: BlockDevice,
    private readonly findings: Findings,
    private readonly mode: InspectMode,
  ) {}

  // -------------------------------------------------------------------------
  // Superblocks, journals, bitmap, log

  /**
   * Reads the superblocks, journals, bitmap (check) and log. Returns false
   * when no superblock can be found: nothing more can be read.
   */
  async openStructures(): Promise<boolean> {
    const chosen = await this.superblocks()
    if (chosen === undefined) return false
    const geometry = checkGeometry(chosen.superblock, this.device.blockCount)
    if (geometry !== undefined) {
      this.findings.corrupt('superblock', superblockLocation(chosen.superblock), geometry)
      return false
    }
    const pending = await this.journals(chosen.superblock, chosen.otherCopyBroken)
    const superblock = pending ?? chosen.superblock
    const problem = checkGeometry(superblock, this.device.blockCount)
    if (problem !== undefined) {
      const where = pending === undefined ? superblockLocation(superblock) : `the journal of generation ${superblock.generation} (the superblock it completes)`
      this.findings.corrupt('superblock', where, problem)
      return false
    }
    this.superblock = superblock
    if (this.mode === 'check') await this.bitmap(superblock)
    await this.log(superblock)
    return true
  }

  /** Both copies: the newest valid one wins; a copy that does not check is a problem unless a pending step explains it. */
  private async superblocks(): Promise<{ superblock: Superblock; otherCopyBroken: string | undefined } | undefined> {
    const blocks = await this.readBlocks([SUPERBLOCK_LBAS[0], SUPERBLOCK_LBAS[1]], false)
    const copies = blocks.map((block, index) => {
      if (block instanceof CubbyError) {
        this.findings.fromError('superblock', `copy ${index} (LBA ${SUPERBLOCK_LBAS[index]})`, block)
        return undefined
      }
      const decoded = decodeSuperblock(block, 0)
      if (decoded.kind === 'valid' && !isZero(block, SUPERBLOCK_BYTES, BLOCK_SIZE)) {
        this.findings.corrupt('superblock', `copy ${index} (LBA ${SUPERBLOCK_LBAS[index]})`, `holds non-zero bytes after its ${SUPERBLOCK_BYTES} bytes`)
      }
      return decoded
    })
    let best: { superblock: Superblock; copy: number } | undefined
    copies.forEach((copy, index) => {
      if (copy?.kind === 'valid' && (best === undefined || copy.superblock.generation > best.superblock.generation)) {
        best = { superblock: copy.superblock, copy: index }
      }
    })
    if (best === undefined) {
      const version = copies.find((copy) => copy?.kind === 'version')
      if (version?.kind === 'version') {
        this.findings.add('superblock', 'LBA 0-1', ErrorCode.VERSION, `the store has format version ${version.version}; this build reads version ${FORMAT_VERSION}`)
      } else if (copies.every((copy) => copy?.kind === 'zero' || copy?.kind === 'foreign')) {
        this.findings.add('superblock', 'LBA 0-1', ErrorCode.NOT_A_STORE, 'neither superblock copy holds a CubbyDB superblock')
      } else {
        this.findings.corrupt('superblock', 'LBA 0-1', 'no superblock copy checks')
      }
      return undefined
    }
    const { superblock, copy: winner } = best
    if (superblock.generation % 2 !== winner) {
      this.findings.corrupt('superblock', `copy ${winner} (LBA ${winner})`, `holds generation ${superblock.generation}, which belongs in copy ${superblock.generation % 2} (a misdirected write)`)
    }
    const other = copies[1 - winner]
    let otherCopyBroken: string | undefined
    if (other?.kind === 'valid') {
      if (other.superblock.generation !== superblock.generation - 1 || other.superblock.storeId !== superblock.storeId) {
        this.findings.corrupt('superblock', `copy ${1 - winner} (LBA ${1 - winner})`, `holds generation ${other.superblock.generation} of store ${other.superblock.storeId}; generation ${superblock.generation - 1} of store ${superblock.storeId} belongs there`)
      }
    } else if (other !== undefined) {
      otherCopyBroken = other.kind === 'corrupt' ? other.reason : other.kind === 'version' ? `format version ${other.version}` : `holds ${other.kind === 'zero' ? 'zeros' : 'no superblock'}`
    }
    return { superblock, otherCopyBroken }
  }

  /**
   * Journal g must check (an open fails otherwise); its images overlay the
   * blocks they rewrite. A valid journal g+1 is a step an open completes:
   * its superblock is returned. A torn superblock copy is a problem unless
   * that pending step explains it.
   */
  private async journals(superblock: Superblock, otherCopyBroken: string | undefined): Promise<Superblock | undefined> {
    const generation = superblock.generation
    const own = await this.journal(superblock, generation)
    if (own === 'corrupt') {
      this.findings.corrupt('journal', `slot ${generation % 2} (LBA ${journalSlotLba(superblock, generation)})`, `the journal of generation ${generation} does not check; it was complete before that step wrote anything, so the store does not open`)
    } else if (own === undefined && generation > 1) {
      this.findings.corrupt('journal', `slot ${generation % 2} (LBA ${journalSlotLba(superblock, generation)})`, `the journal of generation ${generation} is missing`)
    }
    const next = await this.journal(superblock, generation + 1)
    const pending = next !== undefined && next !== 'corrupt' ? next : undefined
    if (otherCopyBroken !== undefined) {
      if (pending === undefined) this.findings.corrupt('superblock', `copy ${(generation + 1) % 2} (LBA ${(generation + 1) % 2})`, `does not check (${otherCopyBroken})`)
      else this.findings.count('superblock copies an open rewrites')
    }
    for (const journal of [own, pending]) {
      if (journal === undefined || journal === 'corrupt') continue
      const current = await this.readBlocks(journal.lbas, false)
      journal.lbas.forEach((lba, index) => {
        const image = journal.images.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE)
        const inPlace = current[index]!
        // A step's journal is written before its blocks; after a clean close every block equals its image.
        if (journal === own && (inPlace instanceof CubbyError || !inPlace.equals(image))) {
          this.findings.corrupt(
            blockKind(image),
            `LBA ${lba} (in the journal of generation ${generation})`,
            'differs from its image in the journal of the last flush step: a crash during that step, or damage since; an open rewrites it from the journal',
          )
        }
        this.overlay.set(lba, image)
      })
    }
    if (pending === undefined) return undefined
    this.findings.count('flush steps an open completes')
    return pending.superblock
  }

  private async journal(superblock: Superblock, generation: number): Promise<JournalImages | 'corrupt' | undefined> {
    try {
      return await readJournal(this.device, superblock, generation)
    } catch (error) {
      this.findings.fromError('journal', `slot ${generation % 2} (LBA ${journalSlotLba(superblock, generation)})`, error)
      return 'corrupt'
    }
  }

  /** Loads the bitmap chunks down to the heap span; a chunk that does not verify is a problem (its bits are unknown). */
  private async bitmap(superblock: Superblock): Promise<void> {
    const chunks = HeapAllocator.chunksFor(superblock.heapSpan)
    if (chunks > superblock.bitmapBlocks) {
      this.findings.corrupt('superblock', `generation ${superblock.generation}`, `the heap span ${superblock.heapSpan} needs ${chunks} bitmap blocks; the store has ${superblock.bitmapBlocks}`)
      return
    }
    this.referenced = new Uint8Array(Math.ceil(superblock.heapSpan / 8))
    const lbas = Array.from({ length: chunks }, (_, index) => superblock.bitmapStart + index)
    let inUse = 0
    for (let first = 0; first < lbas.length; first += BUCKETS_PER_BATCH) {
      const batch = lbas.slice(first, first + BUCKETS_PER_BATCH)
      const blocks = await this.readBlocks(batch, true)
      batch.forEach((lba, index) => {
        const chunk = first + index
        const block = blocks[index]!
        const location = `bitmap block ${chunk} (LBA ${lba})`
        if (block instanceof CubbyError) {
          this.findings.fromError('bitmap', location, block)
          return
        }
        const reason = bitmapProblem(block, lba)
        if (reason !== undefined) {
          this.findings.corrupt('bitmap', location, reason)
          return
        }
        const bits = Uint8Array.from(block.subarray(BITMAP.bitsOffset))
        this.durable[chunk] = bits
        for (let heapIndex = chunk * BITMAP_BITS_PER_BLOCK; heapIndex < (chunk + 1) * BITMAP_BITS_PER_BLOCK; heapIndex++) {
          if (!testBit(bits, heapIndex - chunk * BITMAP_BITS_PER_BLOCK)) continue
          inUse++
          if (heapIndex >= superblock.heapSpan) {
            this.findings.corrupt('bitmap', location, `heap block ${heapIndex} (LBA ${this.lbaOfHeap(heapIndex)}) is marked in use below the heap span ${superblock.heapSpan}`)
          }
        }
      })
    }
    this.findings.count('bitmap blocks', chunks)
    if (this.durable.length === chunks && this.durable.every((bits) => bits !== undefined) && inUse !== superblock.heapBlocksInUse) {
      this.findings.corrupt('superblock', `generation ${superblock.generation}`, `says ${superblock.heapBlocksInUse} heap blocks are in use; the bitmap marks ${inUse}`)
    }
  }

  /** Replays the log after the checkpoint in memory, as an open does. */
  private async log(superblock: Superblock): Promise<void> {
    const allocator = new HeapAllocator(
      { regionStart: superblock.regionStart, regionBlocks: superblock.regionBlocks, bitmapStart: superblock.bitmapStart, bitmapBlocks: superblock.bitmapBlocks },
      superblock.heapSpan,
      () => bucketCount(superblock),
    )
    try {
      const replayed = await replayLog(this.device, superblock, allocator)
      this.replay = replayed.replay
      this.lastLsn = replayed.nextLsn - 1
      this.findings.count('log frames to replay', replayed.framesReplayed)
      this.findings.count('log records to replay', replayed.replay.size)
    } catch (error) {
      this.lastLsn = Number.MAX_SAFE_INTEGER
      this.findings.fromError('log', `ring block ${superblock.checkpointWalBlock} (LBA ${superblock.walStart + superblock.checkpointWalBlock}) on`, error)
    }
  }

  // -------------------------------------------------------------------------
  // Bucket chains

  /** Buckets in the store. */
  get buckets(): number {
    return this.superblock === undefined ? 0 : bucketCount(this.superblock)
  }

  /** Walks every bucket chain in order, `visit`ing each; in check mode verifies entries and extents. */
  async walk(progress: Progress | undefined, visit: (chain: ChainVisit) => Promise<void>): Promise<void> {
    const superblock = this.superblock!
    const buckets = this.buckets
    for (let first = 0; first < buckets; first += BUCKETS_PER_BATCH) {
      const count = Math.min(BUCKETS_PER_BATCH, buckets - first)
      const chains = await this.readChains(first, count)
      for (const chain of chains) {
        if (this.mode === 'check') await this.verifyChain(superblock, chain)
        await visit(chain)
        progress?.advance(1)
      }
    }
    this.findings.count('buckets', buckets)
    if (this.mode === 'check') this.compareTotals(superblock)
  }

  /** Reads the chains of buckets [first, first + count): primaries in one batch, then each depth of overflow blocks. */
  private async readChains(first: number, count: number): Promise<ChainVisit[]> {
    const superblock = this.superblock!
    const chains: ChainVisit[] = []
    for (let bucket = first; bucket < first + count; bucket++) chains.push({ bucket, lsn: 0, entries: [], broken: false, lostEntries: 0 })
    let open = chains.map((chain) => ({ chain, lba: superblock.regionStart + chain.bucket, depth: 0 }))
    while (open.length > 0) {
      const blocks = await this.readBlocks(
        open.map((item) => item.lba),
        true,
      )
      const next: typeof open = []
      open.forEach((item, index) => {
        const followed = this.takeBlock(item.chain, item.lba, item.depth, blocks[index]!)
        if (followed !== undefined) next.push({ chain: item.chain, lba: followed, depth: item.depth + 1 })
      })
      open = next
    }
    return chains
  }

  /** Verifies one block of a chain and takes its entries; returns the LBA of the next block to read, if any. */
  private takeBlock(chain: ChainVisit, lba: number, depth: number, block: Buffer | CubbyError): number | undefined {
    const superblock = this.superblock!
    const kind = depth === 0 ? 'bucket' : 'overflow'
    const location = depth === 0 ? `bucket ${chain.bucket} (LBA ${lba})` : `overflow block ${depth} of bucket ${chain.bucket} (LBA ${lba})`
    if (block instanceof CubbyError) {
      chain.broken = true
      this.findings.fromError(kind, location, block)
      return undefined
    }
    const storeTag = superblock.storeId % 0x1_0000_0000
    let reason = checkChainBlock(block, 0, lba, kind, chain.bucket, storeTag)
    const header = reason === undefined ? readChainHeader(block, 0, this.header) : undefined
    if (header !== undefined && depth > 0 && header.lsn !== chain.lsn) reason = `has LSN ${header.lsn}; the chain's bucket has ${chain.lsn}`
    if (header !== undefined && header.entryCount > MAX_ENTRIES_PER_BLOCK) reason = `claims ${header.entryCount} entries`
    const entries: ChainEntry[] = []
    if (reason === undefined) reason = decodeEntries(block, 0, entries, false)
    if (reason === undefined && !isZero(block, BUCKET.headerBytes + header!.usedBytes, BLOCK_SIZE)) {
      reason = 'holds non-zero bytes after its entries'
    }
    if (reason !== undefined) {
      chain.broken = true
      if (hasMagic(block, 0, kind)) chain.lostEntries += Math.min(block.readUInt16LE(BUCKET.entryCount), MAX_ENTRIES_PER_BLOCK)
      this.findings.corrupt(kind, location, reason)
      return undefined
    }
    if (depth === 0) chain.lsn = header!.lsn
    for (const entry of entries) chain.entries.push(entry)
    if (depth > 0) this.totals.overflowBlocks++
    if (depth === 1) this.totals.overflowBuckets++
    if (header!.lsn > this.lastLsn) {
      this.findings.corrupt(kind, location, `has LSN ${header!.lsn}, past the log's last record ${this.lastLsn}: the superblock or the log is older than the buckets`)
    }
    const next = header!.next
    if (next === 0) return undefined
    const regionEnd = superblock.regionStart + superblock.regionBlocks
    if (next < regionEnd - superblock.heapSpan || next >= regionEnd || next < superblock.regionStart + bucketCount(superblock)) {
      chain.broken = true
      this.findings.corrupt(kind, location, `links to block ${next}, outside the heap [${regionEnd - superblock.heapSpan}, ${regionEnd})`)
      return undefined
    }
    if (depth + 1 >= MAX_CHAIN_BLOCKS) {
      chain.broken = true
      this.findings.corrupt('overflow', location, `the chain is longer than ${MAX_CHAIN_BLOCKS} blocks (a loop?)`)
      return undefined
    }
    if (this.mode === 'check' && !this.reference(next, 1, 'overflow', `overflow block of bucket ${chain.bucket} (LBA ${next})`)) {
      chain.broken = true
      return undefined
    }
    return next
  }

  /** Check mode: every entry of a chain, and every value extent it points to. */
  private async verifyChain(superblock: Superblock, chain: ChainVisit): Promise<void> {
    const seen = new Set<string>()
    for (const entry of chain.entries) {
      const location = `bucket ${chain.bucket} (LBA ${superblock.regionStart + chain.bucket})`
      const name = entry.key.toString('latin1')
      const printable = printableKey(entry.key)
      hashKey(entry.key, 0, entry.key.length, this.hash)
      if (entry.fingerprint !== this.hash.fingerprint) {
        this.findings.corrupt('bucket', location, `key ${printable} has fingerprint 0x${entry.fingerprint.toString(16)}; its hash gives 0x${this.hash.fingerprint.toString(16)}`)
      }
      const home = bucketOf(this.hash.bucketHash, superblock.initialBuckets, superblock.level, superblock.splitPointer)
      if (home !== chain.bucket) this.findings.corrupt('bucket', location, `key ${printable} belongs to bucket ${home}`)
      if (seen.has(name)) this.findings.corrupt('bucket', location, `key ${printable} is stored twice`)
      seen.add(name)
      if (entry.value !== undefined && !isInlineValue(entry.key.length, entry.value.length)) {
        this.findings.corrupt('bucket', location, `key ${printable} has an inline value of ${entry.value.length} bytes, more than an entry may hold`)
      }
      this.totals.keys++
      this.totals.entryBytes += chainEntrySize(entry.key.length, entry.value)
      if (entry.extent !== undefined) await this.verifyExtent(superblock, entry.extent, `extent of key ${printable} in bucket ${chain.bucket}`)
    }
    this.findings.count('entries', chain.entries.length)
  }

  private async verifyExtent(superblock: Superblock, extent: ExtentPointer, what: string): Promise<void> {
    const blocks = extentBlocks(extent.length)
    const location = `${what} (LBA ${extent.lba}, ${blocks} blocks)`
    const regionEnd = superblock.regionStart + superblock.regionBlocks
    if (extent.lba < regionEnd - superblock.heapSpan || extent.lba + blocks > regionEnd || extent.lba < superblock.regionStart + bucketCount(superblock)) {
      this.findings.corrupt('extent', location, `lies outside the heap [${regionEnd - superblock.heapSpan}, ${regionEnd})`)
      return
    }
    if (!this.reference(extent.lba, blocks, 'extent', location)) return
    this.findings.count('extents')
    this.findings.count('extent bytes', extent.length)
    const value = await this.readExtent(extent, true)
    if (value instanceof CubbyError) this.findings.fromError('extent', location, value)
  }

  /**
   * The value in `extent`, verified against its CRC (and, with
   * `zeroPadding`, the zeros after it); or the error why not. The checker
   * and salvage both read values this way.
   */
  async readExtent(extent: ExtentPointer, zeroPadding = false): Promise<Buffer | CubbyError> {
    const blocks = extentBlocks(extent.length)
    const superblock = this.superblock!
    if (extent.lba < superblock.regionStart || extent.lba + blocks > superblock.regionStart + superblock.regionBlocks) {
      return new CubbyError(ErrorCode.CORRUPT, `value extent at block ${extent.lba} (${extent.length} bytes) lies outside the region`)
    }
    const lbas = Array.from({ length: blocks }, (_, index) => extent.lba + index)
    const buffer = this.device.allocate(blocks)
    try {
      const requests: BlockRequest[] = lbas.map((lba, index) => ({ lba, buffer, bufferOffset: index * BLOCK_SIZE }))
      await this.device.read(requests)
    } catch (error) {
      if (error instanceof CubbyError) return error
      throw error
    }
    if (crc32c(buffer, 0, extent.length) !== extent.checksum) {
      return new CubbyError(ErrorCode.CORRUPT, `value extent at block ${extent.lba} (${extent.length} bytes): checksum mismatch`)
    }
    if (zeroPadding && !isZero(buffer, extent.length, blocks * BLOCK_SIZE)) {
      return new CubbyError(ErrorCode.CORRUPT, `value extent at block ${extent.lba} (${extent.length} bytes): non-zero bytes after the value`)
    }
    return Buffer.from(buffer.subarray(0, extent.length))
  }

  /** Marks heap blocks [lba, lba + count) referenced; a block referenced twice is a problem (returns false). */
  private reference(lba: number, count: number, structure: string, location: string): boolean {
    const first = this.heapIndexOf(lba + count - 1)
    for (let heapIndex = first; heapIndex < first + count; heapIndex++) {
      if (heapIndex >= this.referenced.length * 8) continue
      if (testBit(this.referenced, heapIndex)) {
        this.findings.corrupt(structure, location, `block ${this.lbaOfHeap(heapIndex)} is also used by another chain or value (double use)`)
        return false
      }
    }
    for (let heapIndex = first; heapIndex < first + count; heapIndex++) {
      if (heapIndex < this.referenced.length * 8) setBit(this.referenced, heapIndex)
    }
    return true
  }

  /** After the walk: the superblock's counts, and the bitmap against what the chains reference. */
  private compareTotals(superblock: Superblock): void {
    const where = superblockLocation(superblock)
    const damaged = this.findings.has('bucket', 'overflow')
    const pairs: Array<[string, number, number]> = [
      ['keys', superblock.keys, this.totals.keys],
      ['entry bytes', superblock.entryBytes, this.totals.entryBytes],
      ['overflow blocks', superblock.overflowBlocks, this.totals.overflowBlocks],
      ['overflow buckets', superblock.overflowBuckets, this.totals.overflowBuckets],
    ]
    for (const [name, recorded, found] of pairs) {
      if (recorded !== found) this.findings.corrupt(damaged ? 'bucket' : 'superblock', where, `says ${recorded} ${name}; the buckets hold ${found}${damaged ? ' (some blocks could not be read)' : ''}`)
    }
    this.findings.count('keys', this.totals.keys)
    this.findings.count('overflow blocks', this.totals.overflowBlocks)
    if (damaged) return
    const leaked: number[] = []
    const unmarked: number[] = []
    for (let heapIndex = 0; heapIndex < superblock.heapSpan; heapIndex++) {
      const chunk = this.durable[Math.floor(heapIndex / BITMAP_BITS_PER_BLOCK)]
      if (chunk === undefined) continue
      const marked = testBit(chunk, heapIndex % BITMAP_BITS_PER_BLOCK)
      const used = testBit(this.referenced, heapIndex)
      if (marked && !used) leaked.push(this.lbaOfHeap(heapIndex))
      else if (used && !marked) unmarked.push(this.lbaOfHeap(heapIndex))
    }
    if (leaked.length > 0) {
      this.findings.corrupt('bitmap', `LBA ${listBlocks(leaked)}`, `${leaked.length} heap blocks are marked in use but no chain or value refers to them (leaked)`)
    }
    if (unmarked.length > 0) {
      this.findings.corrupt('bitmap', `LBA ${listBlocks(unmarked)}`, `${unmarked.length} heap blocks hold chains or values but are free in the bitmap (they could be handed out again)`)
    }
  }

  // -------------------------------------------------------------------------
  // Reading

  /**
   * Reads `lbas` through the overlay (when `overlaid`). Each result is a view
   * of the block, or the CubbyError that reading it alone gave.
   */
  async readBlocks(lbas: readonly number[], overlaid: boolean): Promise<Array<Buffer | CubbyError>> {
    const buffer = this.device.allocate(lbas.length)
    const requests: BlockRequest[] = []
    const results: Array<Buffer | CubbyError> = lbas.map((lba, index) => {
      const image = overlaid ? this.overlay.get(lba) : undefined
      if (image !== undefined) return image
      if (lba < 0 || lba >= this.device.blockCount) return new CubbyError(ErrorCode.CORRUPT, `block ${lba} lies past the end of the device (${this.device.blockCount} blocks)`)
      requests.push({ lba, buffer, bufferOffset: index * BLOCK_SIZE })
      return buffer.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE)
    })
    if (requests.length === 0) return results
    try {
      await this.device.read(requests)
    } catch (error) {
      if (!(error instanceof CubbyError)) throw error
      // One block failed the batch: read them one by one to tell which.
      for (const request of requests) {
        try {
          await this.device.read([request])
        } catch (single) {
          if (!(single instanceof CubbyError)) throw single
          results[request.bufferOffset / BLOCK_SIZE] = single
        }
      }
    }
    return results
  }

  private heapIndexOf(lba: number): number {
    const superblock = this.superblock!
    return superblock.regionStart + superblock.regionBlocks - 1 - lba
  }

  private lbaOfHeap(heapIndex: number): number {
    const superblock = this.superblock!
    return superblock.regionStart + superblock.regionBlocks - 1 - heapIndex
  }
}

/** Why a bitmap block at `lba` does not verify, or undefined (an all-zero block is an empty chunk). */
function bitmapProblem(block: Buffer, lba: number): string | undefined {
  if (!hasMagic(block, 0, 'bitmap')) return block.every((byte) => byte === 0) ? undefined : 'has no bitmap magic'
  const stored = block.readUInt32LE(HEADER.checksum)
  const computed = crc32c(block, HEADER.checksumFrom, BLOCK_SIZE)
  if (stored !== computed) return `checksum mismatch (stored ${stored}, computed ${computed})`
  if (block.readUInt16LE(HEADER.version) !== FORMAT_VERSION) return `has format version ${block.readUInt16LE(HEADER.version)}`
  if (readU64(block, BITMAP.lba) !== lba) return `was written for block ${readU64(block, BITMAP.lba)} (misdirected write)`
  return undefined
}

/** The structure a journal image is an image of, by its magic. */
function blockKind(image: Buffer): string {
  if (hasMagic(image, 0, 'bucket')) return 'bucket'
  if (hasMagic(image, 0, 'overflow')) return 'overflow'
  if (hasMagic(image, 0, 'bitmap')) return 'bitmap'
  return 'journal'
}

function isZero(block: Buffer, from: number, to: number): boolean {
  for (let index = from; index < to; index++) if (block[index] !== 0) return false
  return true
}

function testBit(bits: Uint8Array, index: number): boolean {
  return (bits[index >>> 3]! & (1 << (index & 7))) !== 0
}

function setBit(bits: Uint8Array, index: number): void {
  bits[index >>> 3] = bits[index >>> 3]! | (1 << (index & 7))
}

function listBlocks(lbas: readonly number[]): string {
  const shown = lbas.slice(0, LISTED_BLOCKS).join(', ')
  return lbas.length > LISTED_BLOCKS ? `${shown}, … (${lbas.length} in all)` : shown
}

/** A key for a message: its text when it is printable ASCII, else hex. */
export function printableKey(key: Buffer): string {
  const printable = key.length <= 64 && key.every((byte) => byte >= 0x20 && byte < 0x7f)
  return printable ? JSON.stringify(key.toString('latin1')) : `0x${key.subarray(0, 32).toString('hex')}${key.length > 32 ? '…' : ''}`
}

/** Where a superblock of `generation` lies: the copy it belongs in. */
function superblockLocation(superblock: Superblock): string {
  const copy = superblock.generation % 2
  return `copy ${copy} (LBA ${SUPERBLOCK_LBAS[copy]}), generation ${superblock.generation}`
}
