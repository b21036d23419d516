// Corruption is reported, never returned as data: one named test per way a
// block can go bad (leveldb's log_test.cc style). Each builds a store, closes
// it, edits bytes of one structure on purpose, and reopens it.
import test from 'ava'
import type { CubbyDB, OpenOptions } from '../src/db'
import type { MemoryBacking } from '../src/device'
import { ErrorCode } from '../src/errors'
import { BLOCK_SIZE } from '../src/engine/format'
import { bucketOf, hashKey, newKeyHash } from '../src/engine/hash'
import type { Superblock } from '../src/engine/superblock'
import { memoryStore, rejectsWith, reopen } from './helpers/store'

/**
 * These tests edit the bytes of logical blocks in place, which is only
 * meaningful where LBA n is bytes [n·4096, (n+1)·4096) of the volume: raw
 * mode. Corruption of lz4-mode stores is covered by test/compressed-corruption
 * and the reliability fuzzer.
 */
function rawStore(options: OpenOptions = {}) {
  return memoryStore({ compression: 'none', ...options })
}

function superblockOf(db: CubbyDB): Superblock {
  return (db as unknown as { engine: { superblock: Superblock } }).engine.superblock
}

/** LBA of the bucket `key` lives in. */
function bucketLbaOf(superblock: Superblock, key: string): number {
  const bytes = Buffer.from(key)
  const hash = hashKey(bytes, 0, bytes.length, newKeyHash())
  return superblock.regionStart + bucketOf(hash.bucketHash, superblock.initialBuckets, superblock.level, superblock.splitPointer)
}

function readBlock(backing: MemoryBacking, lba: number): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE)
  backing.read(lba * BLOCK_SIZE, block, 0, BLOCK_SIZE)
  return block
}

function writeBlock(backing: MemoryBacking, lba: number, block: Buffer): void {
  backing.write(lba * BLOCK_SIZE, block, 0, BLOCK_SIZE)
}

function flipByte(backing: MemoryBacking, lba: number, offset: number): void {
  const block = readBlock(backing, lba)
  block[offset] = block[offset]! ^ 0x20
  writeBlock(backing, lba, block)
}

/** A closed store with 400 small keys and its geometry. */
async function closedStore(): Promise<{ backing: MemoryBacking; superblock: Superblock }> {
  const { db, backing } = await rawStore({ expectedKeys: 400 })
  for (let index = 0; index < 400; index++) await db.put(`key-${index}`, `value-${index}`, { sync: false })
  await db.close()
  const again = await reopen(backing)
  const superblock = { ...superblockOf(again) }
  await again.close()
  return { backing, superblock }
}

test('a flipped bit in a bucket: its keys are CUBBY_CORRUPT naming the block; other buckets still read', async (t) => {
  const { backing, superblock } = await closedStore()
  const lba = bucketLbaOf(superblock, 'key-7')
  flipByte(backing, lba, 100)
  const db = await reopen(backing, { cacheSize: 0 })
  const error = await rejectsWith(t, db.get('key-7'), ErrorCode.CORRUPT)
  t.regex(error.message, new RegExp(`block ${lba}`))
  t.regex(error.message, /checksum mismatch/)
  await rejectsWith(t, db.has('key-7'), ErrorCode.CORRUPT)
  const elsewhere = Array.from({ length: 400 }, (_, index) => `key-${index}`).find((key) => bucketLbaOf(superblock, key) !== lba)!
  t.truthy(await db.get(elsewhere))
  await rejectsWith(t, (async () => {
    for await (const pair of db.entries()) void pair
  })(), ErrorCode.CORRUPT)
  await db.put('key-7', 'new')
  t.is((await db.get('key-7'))!.toString(), 'new', 'the write buffer answers first')
  await rejectsWith(t, db.flush(), ErrorCode.CORRUPT, 'a flush that meets the bad bucket fails')
  await rejectsWith(t, db.put('key-8', 'x'), ErrorCode.CORRUPT, 'and the store then refuses writes')
  await db.close()
})

test('a misdirected write: a valid bucket at the wrong LBA is CUBBY_CORRUPT', async (t) => {
  const { backing, superblock } = await closedStore()
  const target = bucketLbaOf(superblock, 'key-1')
  const source = superblock.regionStart + ((target - superblock.regionStart + 1) % superblock.initialBuckets)
  writeBlock(backing, target, readBlock(backing, source))
  const db = await reopen(backing, { cacheSize: 0 })
  const error = await rejectsWith(t, db.get('key-1'), ErrorCode.CORRUPT)
  t.regex(error.message, /misdirected/)
  await db.close()
})

test('a torn bucket write (new first sector lost) is CUBBY_CORRUPT, not an empty bucket', async (t) => {
  const { backing, superblock } = await closedStore()
  const lba = bucketLbaOf(superblock, 'key-2')
  const block = readBlock(backing, lba)
  block.fill(0, 0, 512)
  writeBlock(backing, lba, block)
  const db = await reopen(backing, { cacheSize: 0 })
  const error = await rejectsWith(t, db.get('key-2'), ErrorCode.CORRUPT)
  t.regex(error.message, /no bucket magic/)
  await db.close()
})

test('a bucket of another store is CUBBY_CORRUPT', async (t) => {
  const { backing, superblock } = await closedStore()
  const { backing: other, superblock: otherSuperblock } = await closedStore()
  const lba = bucketLbaOf(superblock, 'key-3')
  t.is(bucketLbaOf(otherSuperblock, 'key-3'), lba, 'both stores have the same geometry')
  writeBlock(backing, lba, readBlock(other, lba))
  const db = await reopen(backing, { cacheSize: 0 })
  const error = await rejectsWith(t, db.get('key-3'), ErrorCode.CORRUPT)
  t.regex(error.message, /another store/)
  await db.close()
})

test('a flipped bit in a value extent is CUBBY_CORRUPT; has() does not read the value', async (t) => {
  const { db, backing } = await rawStore()
  const value = Buffer.alloc(20_000, 0x5a)
  await db.put('large', value)
  await db.close()
  // The heap grows down from the region end: the extent's 5 blocks are the last ones.
  const geometry = superblockOf(await reopen(backing).then(async (store) => {
    await store.close()
    return store
  }))
  const regionEnd = geometry.regionStart + geometry.regionBlocks
  flipByte(backing, regionEnd - 5, 1234)
  const again = await reopen(backing, { cacheSize: 0 })
  const error = await rejectsWith(t, again.get('large'), ErrorCode.CORRUPT)
  t.regex(error.message, /value extent/)
  t.true(await again.has('large'))
  await again.close()
})

test('a flipped bit in an overflow block is CUBBY_CORRUPT for keys past the bucket', async (t) => {
  const { db, backing } = await rawStore({ expectedKeys: 10, keySize: 8, valueSize: 8 })
  // An open iterator holds splits back, so entries far larger than the sizing hints overflow their buckets.
  await db.put('first', 'x')
  const iterator = db.entries()
  t.false((await iterator.next()).done)
  for (let index = 0; index < 40; index++) await db.put(`key-${index}`, Buffer.alloc(900, index))
  await db.flush()
  // Die with the iterator open (a clean close would split the crowded buckets).
  backing.isOpen = false
  void iterator
  const again = await reopen(backing, { cacheSize: 0 })
  const stats = again.stats()
  t.true(stats.overflowBlocks > 0, 'some chain has an overflow block')
  await again.close()
  const geometry = { ...superblockOf(again) }
  const regionEnd = geometry.regionStart + geometry.regionBlocks
  // Find an overflow block in the heap and damage it.
  let damaged = -1
  for (let lba = regionEnd - 1; lba > regionEnd - 200 && damaged < 0; lba--) {
    if (readBlock(backing, lba).toString('latin1', 0, 8) === 'CUBBY-OV') damaged = lba
  }
  t.true(damaged > 0)
  flipByte(backing, damaged, 80)
  const store = await reopen(backing, { cacheSize: 0 })
  let corrupt = 0
  for (let index = 0; index < 40; index++) {
    try {
      const value = await store.get(`key-${index}`)
      t.deepEqual(value, Buffer.alloc(900, index), 'a value that reads is the right one')
    } catch (error) {
      t.is((error as { code?: string }).code, ErrorCode.CORRUPT)
      t.regex((error as Error).message, new RegExp(`overflow block ${damaged}`))
      corrupt++
    }
  }
  t.true(corrupt > 0)
  await store.close()
})

test('one damaged superblock copy: the other opens the store; both damaged: CUBBY_CORRUPT', async (t) => {
  const { backing } = await closedStore()
  const copies = [readBlock(backing, 0), readBlock(backing, 1)]
  const newer = copies[0]!.readUInt32LE(24) > copies[1]!.readUInt32LE(24) ? 0 : 1
  flipByte(backing, newer, 130)
  const db = await reopen(backing)
  t.is((await db.get('key-5'))!.toString(), 'value-5', 'the older copy and its journal carry the store')
  await db.close()
  flipByte(backing, 0, 140)
  flipByte(backing, 1, 140)
  const error = await rejectsWith(t, reopen(backing), ErrorCode.CORRUPT)
  t.regex(error.message, /no valid superblock/)
})

test('a damaged journal of the current generation is CUBBY_CORRUPT at open', async (t) => {
  const { backing, superblock } = await closedStore()
  const slot = superblock.journalStart + (superblock.generation % 2) * superblock.journalSlotBlocks
  flipByte(backing, slot, 100)
  const error = await rejectsWith(t, reopen(backing), ErrorCode.CORRUPT)
  t.regex(error.message, /journal/)
})

test('a damaged bitmap block is CUBBY_CORRUPT at open', async (t) => {
  const { db, backing } = await rawStore()
  await db.put('large', Buffer.alloc(10_000, 1))
  await db.close()
  const geometry = superblockOf(await reopen(backing).then(async (store) => {
    await store.close()
    return store
  }))
  flipByte(backing, geometry.bitmapStart, 40)
  const error = await rejectsWith(t, reopen(backing), ErrorCode.CORRUPT)
  t.regex(error.message, new RegExp(`bitmap block ${geometry.bitmapStart}`))
})

test('a damaged log frame ends the log there: earlier writes replay, nothing wrong is returned', async (t) => {
  const { db, backing } = await rawStore()
  await db.put('first', 'one')
  await db.put('second', 'two')
  // Die without closing: the two frames are the only copy of the writes.
  const engine = (db as unknown as { engine: { wal: { state: { head: number } }; superblock: Superblock } }).engine
  const lastFrame = engine.superblock.walStart + ((engine.wal.state.head - 1) % engine.superblock.walBlocks)
  backing.isOpen = false
  flipByte(backing, lastFrame, 60)
  const again = await reopen(backing)
  t.is((await again.get('first'))!.toString(), 'one')
  t.is(await again.get('second'), undefined)
  t.is(again.stats().recovery.framesReplayed, 1)
  await again.close()
})
