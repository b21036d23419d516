// The codecs of docs/format.md section 2, byte for byte: hash test vectors,
// superblock, bucket blocks and entries, log frames, journal headers, the
// bitmap allocator, and the sizing model.
import test from 'ava'
import { HeapAllocator } from '../src/engine/allocator'
import {
  type ChainEntry,
  checkChainBlock,
  countChainBlocks,
  decodeEntries,
  encodeChain,
  findEntry,
  isInlineValue,
} from '../src/engine/bucket'
import { BITMAP_BITS_PER_BLOCK, BLOCK_SIZE, BUCKET_CAPACITY, INLINE_ENTRY_MAX, MAGIC_TEXT, SB } from '../src/engine/format'
import { bucketOf, hashKey, newKeyHash } from '../src/engine/hash'
import { encodeJournalHeader, readJournalHeader } from '../src/engine/journal'
import { layoutStore } from '../src/engine/layout'
import { extraReadsAt, planStore, targetLoad } from '../src/engine/sizing'
import { decodeSuperblock, encodeSuperblock } from '../src/engine/superblock'
import { decodeFrameRecords, readFrameHeader, verifyFrame } from '../src/engine/wal'

function entry(key: string, value: string | undefined, extent?: { lba: number; length: number; checksum: number }): ChainEntry {
  const bytes = Buffer.from(key)
  const hash = hashKey(bytes, 0, bytes.length, newKeyHash())
  return { fingerprint: hash.fingerprint, key: bytes, value: value === undefined ? undefined : Buffer.from(value), extent }
}

test('the key hash matches its published test vectors (MurmurHash3 x86_32, two seeds)', (t) => {
  const hash = hashKey(Buffer.from('hello'), 0, 5, newKeyHash())
  t.is(hash.laneA, 0x5d7f56e8)
  t.is(hash.laneB, 0x8e6fc364)
  t.is(hash.bucketHash, 0x5d7f56e88e6f)
  t.is(hash.fingerprint, 0x64)
  // Seed 0 gives the reference MurmurHash3 value of "hello"; hashing a slice equals hashing a copy.
  const padded = Buffer.from('xxhelloyy')
  t.is(hashKey(padded, 2, 7, newKeyHash()).bucketHash, hash.bucketHash)
  for (const length of [1, 2, 3, 4, 5, 7, 8, 1024]) {
    const key = Buffer.alloc(length, 0x61)
    const first = hashKey(key, 0, length, newKeyHash())
    t.is(first.bucketHash, hashKey(Buffer.from(key), 0, length, newKeyHash()).bucketHash)
    t.true(first.bucketHash >= 0 && first.bucketHash < 2 ** 48)
  }
})

test('linear hashing sends a split bucket\'s keys to itself or to bucket + N0·2^L, and nowhere else', (t) => {
  const initial = 7
  for (let index = 0; index < 2000; index++) {
    const hash = hashKey(Buffer.from(`key-${index}`), 0, `key-${index}`.length, newKeyHash()).bucketHash
    for (let level = 0; level < 4; level++) {
      const round = initial * 2 ** level
      const before = bucketOf(hash, initial, level, 0)
      const after = bucketOf(hash, initial, level + 1, 0)
      t.true(after === before || after === before + round)
      t.is(bucketOf(hash, initial, level, before + 1), after, 'once its bucket has split, a key is addressed at the next level')
    }
  }
})

test('a superblock round-trips, and a flipped byte or an unknown version is told apart from zeros and foreign data', (t) => {
  const superblock = layoutStore(100_000, planStore({ keys: 1000, keySize: 16, valueSize: 100 }))
  const block = Buffer.alloc(BLOCK_SIZE)
  encodeSuperblock(superblock, block, 0)
  t.is(block.toString('latin1', 0, 8), MAGIC_TEXT.superblock)
  const decoded = decodeSuperblock(block, 0)
  t.deepEqual(decoded, { kind: 'valid', superblock })
  const flipped = Buffer.from(block)
  flipped[SB.keys] = flipped[SB.keys]! ^ 1
  t.is(decodeSuperblock(flipped, 0).kind, 'corrupt')
  const newer = Buffer.from(block)
  newer.writeUInt16LE(9, 12)
  t.deepEqual(decodeSuperblock(newer, 0), { kind: 'version', version: 9 })
  t.is(decodeSuperblock(Buffer.alloc(BLOCK_SIZE), 0).kind, 'zero')
  const foreign = Buffer.alloc(BLOCK_SIZE)
  foreign[3000] = 1
  t.is(decodeSuperblock(foreign, 0).kind, 'foreign', 'a block with zeros where the magic goes but data further on is not empty')
})

test('a bucket chain encodes, verifies, finds its keys, and decodes back', (t) => {
  const entries = [entry('alpha', 'one'), entry('beta', ''), entry('gamma', undefined, { lba: 123456, length: 99_999, checksum: 0xdeadbeef })]
  const block = Buffer.alloc(BLOCK_SIZE)
  encodeChain(entries, { bucketNumber: 17, lsn: 42, storeTag: 0x1234, lbas: [5000] }, block, [0])
  t.is(block.toString('latin1', 0, 8), MAGIC_TEXT.bucket)
  t.is(checkChainBlock(block, 0, 5000, 'bucket', 17, 0x1234), undefined)
  for (const one of entries) t.true(findEntry(block, 0, one.key, 0, one.key.length, one.fingerprint) > 0)
  t.is(findEntry(block, 0, Buffer.from('delta'), 0, 5, 0), -1)
  const decoded: ChainEntry[] = []
  t.is(decodeEntries(block, 0, decoded), undefined)
  t.deepEqual(decoded, entries)
  const used = block.readUInt16LE(48)
  t.true(block.subarray(64 + used).every((byte) => byte === 0), 'the tail is zeros')
})

test('a bucket block that is damaged, misdirected, of another store or of the wrong kind fails verification with its reason', (t) => {
  const block = Buffer.alloc(BLOCK_SIZE)
  encodeChain([entry('k', 'v')], { bucketNumber: 3, lsn: 1, storeTag: 77, lbas: [900] }, block, [0])
  const flipped = Buffer.from(block)
  flipped[70] = flipped[70]! ^ 0x10
  t.regex(checkChainBlock(flipped, 0, 900, 'bucket', 3, 77)!, /checksum mismatch/)
  t.regex(checkChainBlock(block, 0, 901, 'bucket', 3, 77)!, /misdirected/)
  t.regex(checkChainBlock(block, 0, 900, 'bucket', 3, 78)!, /another store/)
  t.regex(checkChainBlock(block, 0, 900, 'bucket', 4, 77)!, /belongs to bucket 3/)
  t.regex(checkChainBlock(block, 0, 900, 'overflow', 3, 77)!, /bucket block where a overflow block belongs/)
  t.is(checkChainBlock(Buffer.alloc(BLOCK_SIZE), 0, 900, 'bucket', 3, 77), undefined, 'a zero block is an empty bucket')
  t.regex(checkChainBlock(Buffer.alloc(BLOCK_SIZE), 0, 900, 'overflow', 3, 77)!, /no overflow magic/)
  const torn = Buffer.alloc(BLOCK_SIZE)
  encodeChain([entry('k', 'v'.repeat(900))], { bucketNumber: 3, lsn: 1, storeTag: 77, lbas: [900] }, torn, [0])
  torn.fill(0, 0, 512)
  t.regex(checkChainBlock(torn, 0, 900, 'bucket', 3, 77)!, /no bucket magic/, 'a torn write with a zero first sector is not an empty bucket')
})

test('entries that do not fit one block spill into overflow blocks linked in order', (t) => {
  const entries = Array.from({ length: 60 }, (_, index) => entry(`key-${index}`, 'v'.repeat(100)))
  const blocks = countChainBlocks(entries)
  t.is(blocks, 2)
  const buffer = Buffer.alloc(2 * BLOCK_SIZE)
  encodeChain(entries, { bucketNumber: 9, lsn: 5, storeTag: 1, lbas: [100, 9999] }, buffer, [0, BLOCK_SIZE])
  t.is(buffer.readUInt32LE(40), 9999, 'the bucket links to its overflow block')
  t.is(buffer.toString('latin1', BLOCK_SIZE, BLOCK_SIZE + 8), MAGIC_TEXT.overflow)
  t.is(checkChainBlock(buffer, BLOCK_SIZE, 9999, 'overflow', 9, 1), undefined)
  const decoded: ChainEntry[] = []
  decodeEntries(buffer, 0, decoded)
  decodeEntries(buffer, BLOCK_SIZE, decoded)
  t.deepEqual(decoded.map((one) => one.key.toString()), entries.map((one) => one.key.toString()))
  t.true(buffer.readUInt16LE(48) <= BUCKET_CAPACITY)
})

test('the inline limit is half a bucket', (t) => {
  t.is(INLINE_ENTRY_MAX, 2016)
  t.true(isInlineValue(10, 2001))
  t.false(isInlineValue(10, 2002))
})

test('a log frame verifies and decodes; a damaged one fails its checksum', async (t) => {
  const { WriteAheadLog } = await import('../src/engine/wal')
  const { MemoryVolume, RawBlockDevice } = await import('../src/device')
  const device = await RawBlockDevice.create(new MemoryVolume({ size: 0 }), 64)
  const wal = new WriteAheadLog(device, 8, 16, 4242, { checkpoint: 0, head: 0, nextSequence: 7, nextLsn: 100 })
  const records = [
    { key: Buffer.from('a'), mapKey: 'a', bucketHash: 0, fingerprint: 0, value: Buffer.from('1'), extent: undefined, deleted: false, lsn: 0 },
    { key: Buffer.from('b'), mapKey: 'b', bucketHash: 0, fingerprint: 0, value: undefined, extent: undefined, deleted: true, lsn: 0 },
    { key: Buffer.from('c'), mapKey: 'c', bucketHash: 0, fingerprint: 0, value: undefined, extent: { lba: 50, length: 5000, checksum: 9 }, deleted: false, lsn: 0 },
  ]
  const payload = 7 + 1 + 1 + (3 + 1) + (19 + 1)
  t.is(await wal.writeFrame(records, payload, 0), 1)
  t.deepEqual(records.map((record) => record.lsn), [100, 101, 102])
  const block = device.allocate(1)
  await device.read([{ lba: 8, buffer: block, bufferOffset: 0 }])
  t.is(block.toString('latin1', 0, 8), MAGIC_TEXT.wal)
  t.is(readFrameHeader(block, 0, 4242, 8), undefined, 'another sequence is not this frame')
  t.is(readFrameHeader(block, 0, 4243, 7), undefined, 'another store\'s frame is not this one')
  const header = readFrameHeader(block, 0, 4242, 7)!
  t.true(verifyFrame(block, header))
  const decoded = decodeFrameRecords(block, header, 'test')
  t.deepEqual(decoded.map((record) => [record.type, record.key.toString(), record.lsn]), [[1, 'a', 100], [3, 'b', 101], [2, 'c', 102]])
  t.is(decoded[2]!.extentLba, 50)
  block[60] = block[60]! ^ 1
  t.false(verifyFrame(block, header))
  t.is(wal.placement(16), -1, 'a frame that would overrun the checkpoint does not fit')
  t.is(wal.placement(15), 1)
  t.is(wal.placement(2), 1)
})

test('a journal header lists its images and carries the superblock it installs', (t) => {
  const superblock = { ...layoutStore(100_000, planStore({ keys: 1000, keySize: 16, valueSize: 100 })), generation: 12 }
  const buffer = Buffer.alloc(3 * BLOCK_SIZE)
  buffer.fill(5, BLOCK_SIZE)
  encodeJournalHeader(buffer, superblock, [777, 778])
  const read = readJournalHeader(buffer, 0, superblock.storeId, 12)
  t.is(read.kind, 'valid')
  if (read.kind === 'valid') {
    t.deepEqual(read.header.lbas, [777, 778])
    t.deepEqual(read.header.superblock, superblock)
  }
  t.is(readJournalHeader(buffer, 0, superblock.storeId, 13).kind, 'absent', 'a journal of another generation')
  buffer[200] = buffer[200]! ^ 1
  t.is(readJournalHeader(buffer, 0, superblock.storeId, 12).kind, 'corrupt')
})

test('the allocator hands out runs from the top of the region, never into the buckets, and frees only what is durably free', (t) => {
  let buckets = 10
  const allocator = new HeapAllocator({ regionStart: 1000, regionBlocks: 100_000, bitmapStart: 900, bitmapBlocks: 4 }, 0, () => buckets)
  const first = allocator.allocate(3)
  t.is(first, 1000 + 100_000 - 3, 'the first run ends at the region end')
  const second = allocator.allocate(1)
  t.is(second, first - 1)
  t.is(allocator.heapSpan, 4)
  allocator.setDurable(first, 3, true)
  t.false(allocator.isDurablyFree(first, 3))
  allocator.setDurable(first, 3, false)
  t.true(allocator.isDurablyFree(first, 3))
  t.true(allocator.release(first, 3))
  t.is(allocator.allocate(2), first + 1, 'freed blocks are reused')
  t.is(allocator.takeDirtyImages().length, 1)
  // A run that crosses a bitmap chunk.
  const big = allocator.allocate(BITMAP_BITS_PER_BLOCK)
  t.true(big < 1000 + 100_000 - BITMAP_BITS_PER_BLOCK)
  buckets = 100_000 - allocator.heapSpan - 5
  t.throws(() => allocator.allocate(10), { code: 'CUBBY_FULL' } as object)
  t.notThrows(() => allocator.allocate(2))
})

test('the sizing model: more entries per block allow a higher load; extra reads stay within 1%', (t) => {
  let previous = 0
  for (const perBlock of [2, 4, 8, 16, 32, 64]) {
    const alpha = targetLoad(perBlock)
    t.true(alpha > previous)
    t.true(alpha < perBlock)
    previous = alpha
  }
  const reads = extraReadsAt(13, 33)
  t.true(reads.existing < 0.01 && reads.missing < 0.01)
  const crowded = extraReadsAt(40, 33)
  t.true(crowded.existing > 0.1, 'a bucket loaded past its capacity overflows often')
  const answer = planStore({ keys: 100_000, keySize: 24, valueSize: 100 })
  t.true(answer.readsPerGet.existing <= 1.011 && answer.readsPerGet.missing <= 1.011)
})
