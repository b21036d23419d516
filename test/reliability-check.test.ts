// checkStore and salvageStore, one named test per thing the check verifies
// that random damage cannot reach: blocks re-encoded with valid checksums
// but wrong contents, as a bug would write them (a key in another bucket, a
// fingerprint that is not the key's, a key twice, a leaked or unmarked heap
// block, an extent used twice, superblock counts that disagree with the
// buckets, segment-table live bytes that disagree with the map). Then the
// path-level API the CLI calls: errors for missing, held and foreign
// targets, a check that writes nothing, and a salvage that copies every
// readable pair and counts the rest.
import test from 'ava'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { type CheckReport, checkStore, checkVolume, salvageStore } from '../src/check'
import { open } from '../src/db'
import { CompressedBlockDevice, type MemoryBacking, MemoryVolume } from '../src/device'
import { decodeCheckpoint, encodeCheckpoint } from '../src/device/compressed/format'
import { readCheckpoint } from '../src/device/compressed/recovery'
import { type ChainEntry, decodeEntries, encodeChain, newChainHeader, readChainHeader } from '../src/engine/bucket'
import { BITMAP, BLOCK_SIZE, HEADER } from '../src/engine/format'
import { bucketOf, hashKey, newKeyHash } from '../src/engine/hash'
import { type Superblock, bucketCount, decodeSuperblock, encodeSuperblock } from '../src/engine/superblock'
import { crc32c } from '../src/util/crc32c'
import { ErrorCode } from '../src/errors'
import { loopUnavailableReason, withLoopDevice } from './helpers/loop'
import { contents, memoryStore, rejectsWith, reopen } from './helpers/store'

const OPTIONS = { expectedKeys: 100, keySize: 8, valueSize: 40 }

/** A closed raw store: 600 keys (some with values in extents), deletions; its superblock. */
async function rawStore(): Promise<{ backing: MemoryBacking; superblock: Superblock }> {
  const { db, backing } = await memoryStore({ ...OPTIONS, compression: 'none' })
  for (let index = 0; index < 600; index++) await db.put(`key-${index}`, Buffer.alloc(index % 50 === 0 ? 6000 : 40, index), { sync: false })
  for (let index = 0; index < 600; index += 9) await db.del(`key-${index}`, { sync: false })
  await db.close()
  // An open and close leave a last flush step with no images, so the blocks edited below are not hidden by a journal copy.
  await (await reopen(backing)).close()
  return { backing, superblock: superblockOf(backing) }
}

function readBlock(backing: MemoryBacking, lba: number): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE)
  backing.read(lba * BLOCK_SIZE, block, 0, BLOCK_SIZE)
  return block
}

function writeBlock(backing: MemoryBacking, lba: number, block: Buffer): void {
  backing.write(lba * BLOCK_SIZE, block, 0, BLOCK_SIZE)
}

function superblockOf(backing: MemoryBacking): Superblock {
  const copies = [decodeSuperblock(readBlock(backing, 0), 0), decodeSuperblock(readBlock(backing, 1), 0)].flatMap((copy) => (copy.kind === 'valid' ? [copy.superblock] : []))
  return copies.reduce((best, copy) => (copy.generation > best.generation ? copy : best))
}

/** Rewrites the winning superblock copy with `change` applied (valid checksum). */
function rewriteSuperblock(backing: MemoryBacking, change: (superblock: Superblock) => void): void {
  const superblock = superblockOf(backing)
  change(superblock)
  const block = Buffer.alloc(BLOCK_SIZE)
  encodeSuperblock(superblock, block, 0)
  writeBlock(backing, superblock.generation % 2, block)
}

function bucketOfKey(superblock: Superblock, key: string): number {
  const bytes = Buffer.from(key)
  return bucketOf(hashKey(bytes, 0, bytes.length, newKeyHash()).bucketHash, superblock.initialBuckets, superblock.level, superblock.splitPointer)
}

/** The entries of a bucket with no overflow block, and a writer that re-encodes it (valid checksum) with new entries. */
function editBucket(backing: MemoryBacking, superblock: Superblock, bucket: number): { entries: ChainEntry[]; write: (entries: ChainEntry[]) => void } {
  const lba = superblock.regionStart + bucket
  const block = readBlock(backing, lba)
  const header = readChainHeader(block, 0, newChainHeader())
  const entries: ChainEntry[] = []
  decodeEntries(block, 0, entries, false)
  return {
    entries,
    write: (changed) => {
      const image = Buffer.alloc(BLOCK_SIZE)
      encodeChain(changed, { bucketNumber: bucket, lsn: header.lsn, storeTag: superblock.storeId % 0x1_0000_0000, lbas: [lba] }, image, [0])
      writeBlock(backing, lba, image)
    },
  }
}

/** A bucket of the store with at least two entries and no overflow block. */
function plainBucket(backing: MemoryBacking, superblock: Superblock, skip = -1): number {
  for (let bucket = 0; bucket < bucketCount(superblock); bucket++) {
    if (bucket === skip) continue
    const block = readBlock(backing, superblock.regionStart + bucket)
    const header = readChainHeader(block, 0, newChainHeader())
    if (header.next === 0 && header.entryCount >= 2) return bucket
  }
  throw new Error('no plain bucket')
}

async function check(backing: MemoryBacking): Promise<CheckReport> {
  const volume = new MemoryVolume({ readOnly: true }, backing)
  try {
    return await checkVolume(volume)
  } finally {
    await volume.close()
  }
}

function reports(t: import('ava').ExecutionContext, report: CheckReport, structure: string, pattern: RegExp): void {
  t.false(report.healthy)
  t.true(
    report.problems.some((problem) => problem.structure === structure && pattern.test(problem.message)),
    `expected a ${structure} problem matching ${pattern}; got ${JSON.stringify(report.problems.slice(0, 4))}`,
  )
}

test('healthy stores of both modes check healthy, with counts that match what was written', async (t) => {
  for (const compression of ['none', 'lz4'] as const) {
    const { db, backing } = await memoryStore({ ...OPTIONS, compression })
    for (let index = 0; index < 1500; index++) await db.put(`key-${index}`, Buffer.alloc(index % 40 === 0 ? 9000 : index % 7 === 0 ? 1900 : 30, index), { sync: false })
    for (let index = 0; index < 1500; index += 11) await db.del(`key-${index}`, { sync: false })
    await db.close()
    const progress: Array<[number, number]> = []
    const volume = new MemoryVolume({ readOnly: true }, backing)
    const report = await checkVolume(volume, { onProgress: (done, total) => progress.push([done, total]) })
    await volume.close()
    t.true(report.healthy, `${compression}: ${JSON.stringify(report.problems.slice(0, 3))}`)
    t.is(report.mode, compression)
    const kept = 1500 - Math.ceil(1500 / 11)
    t.is(report.counts.keys, kept, `${compression}: every key is counted`)
    t.is(report.counts.entries, kept)
    t.true(report.counts.extents! > 0 && report.counts['overflow blocks']! > 0, `${compression}: extents and overflow chains were checked`)
    t.true(report.counts.buckets! > OPTIONS.expectedKeys / 10, `${compression}: the store split`)
    if (compression === 'lz4') t.true(report.counts['lz4 live records']! > 0 && report.counts['lz4 map pages']! > 0)
    t.deepEqual(progress[progress.length - 1]![0], progress[progress.length - 1]![1], 'progress ends at its total')
  }
})

test('a key stored in another bucket than its hash names (valid checksum) is reported', async (t) => {
  const { backing, superblock } = await rawStore()
  const from = plainBucket(backing, superblock)
  const to = plainBucket(backing, superblock, from)
  const source = editBucket(backing, superblock, from)
  const target = editBucket(backing, superblock, to)
  const moved = source.entries.pop()!
  source.write(source.entries)
  target.write([...target.entries, moved])
  reports(t, await check(backing), 'bucket', new RegExp(`belongs to bucket ${from}`))
})

test("an entry whose fingerprint is not its key's (valid checksum) is reported", async (t) => {
  const { backing, superblock } = await rawStore()
  const bucket = editBucket(backing, superblock, plainBucket(backing, superblock))
  bucket.entries[0]!.fingerprint ^= 0x5a
  bucket.write(bucket.entries)
  reports(t, await check(backing), 'bucket', /fingerprint/)
})

test('a key stored twice in its bucket (valid checksum) is reported', async (t) => {
  const { backing, superblock } = await rawStore()
  const bucket = editBucket(backing, superblock, plainBucket(backing, superblock))
  bucket.write([...bucket.entries, bucket.entries[0]!])
  reports(t, await check(backing), 'bucket', /stored twice/)
})

test('superblock counts that disagree with the buckets (valid checksum) are reported', async (t) => {
  const { backing } = await rawStore()
  rewriteSuperblock(backing, (superblock) => void (superblock.keys += 3))
  const report = await check(backing)
  reports(t, report, 'superblock', /keys/)
  const generation = superblockOf(backing).generation
  const problem = report.problems.find((found) => found.structure === 'superblock')!
  t.is(problem.location, `copy ${generation % 2} (LBA ${generation % 2}), generation ${generation}`, 'located at the copy that says so')
})

test('a superblock that checks but lays out more blocks than the device has is reported at its copy, and nothing further is read', async (t) => {
  const { backing } = await rawStore()
  rewriteSuperblock(backing, (superblock) => void (superblock.storeBlocks += 1 << 30))
  const report = await check(backing)
  reports(t, report, 'superblock', /spans \d+ blocks but the device has/)
  const generation = superblockOf(backing).generation
  t.true(report.problems.some((found) => found.location === `copy ${generation % 2} (LBA ${generation % 2}), generation ${generation}`))
})

test('a heap block marked in use that nothing refers to is reported as leaked; a used one marked free, as unmarked', async (t) => {
  const { backing, superblock } = await rawStore()
  const lba = superblock.bitmapStart
  const original = readBlock(backing, lba)
  const edit = (change: (bits: Buffer) => void): void => {
    const block = Buffer.from(original)
    change(block.subarray(BITMAP.bitsOffset))
    block.writeUInt32LE(crc32c(block, HEADER.checksumFrom, BLOCK_SIZE), HEADER.checksum)
    writeBlock(backing, lba, block)
  }
  // Heap blocks below the span that are free: set the first one's bit.
  const bits = original.subarray(BITMAP.bitsOffset)
  let free = -1
  for (let index = 0; index < superblock.heapSpan && free < 0; index++) if ((bits[index >> 3]! & (1 << (index & 7))) === 0) free = index
  t.true(free >= 0, 'the heap has a free block below its span')
  edit((edited) => void (edited[free >> 3] = edited[free >> 3]! | (1 << (free & 7))))
  reports(t, await check(backing), 'bitmap', /leaked/)
  const used = bits.findIndex((byte) => byte !== 0) * 8
  edit((edited) => void (edited[used >> 3] = 0))
  reports(t, await check(backing), 'bitmap', /free in the bitmap/)
})

test('two entries pointing at one value extent (valid checksums) are reported as double use', async (t) => {
  const { backing, superblock } = await rawStore()
  const holder = Array.from({ length: bucketCount(superblock) }, (_, bucket) => bucket).find((bucket) => {
    const block = readBlock(backing, superblock.regionStart + bucket)
    const entries: ChainEntry[] = []
    decodeEntries(block, 0, entries, false)
    return readChainHeader(block, 0, newChainHeader()).next === 0 && entries.some((entry) => entry.extent !== undefined)
  })!
  const extent = editBucket(backing, superblock, holder).entries.find((entry) => entry.extent !== undefined)!.extent!
  const other = editBucket(backing, superblock, plainBucket(backing, superblock, holder))
  const victim = other.entries[0]!
  other.write([{ ...victim, value: undefined, extent }, ...other.entries.slice(1)])
  reports(t, await check(backing), 'extent', /double use/)
})

test("a zeroed bucket (raw mode reads it as empty: the documented blind spot) is reported by the superblock's key count", async (t) => {
  const { backing, superblock } = await rawStore()
  const bucket = bucketOfKey(superblock, 'key-1')
  writeBlock(backing, superblock.regionStart + bucket, Buffer.alloc(BLOCK_SIZE))
  reports(t, await check(backing), 'superblock', /keys/)
})

test('lz4: segment-table live bytes that disagree with the map (valid checksum) are reported', async (t) => {
  const { db, backing } = await memoryStore({ ...OPTIONS, compression: 'lz4' })
  for (let index = 0; index < 300; index++) await db.put(`key-${index}`, `value-${index}`, { sync: false })
  await db.close()
  const volume = new MemoryVolume({}, backing)
  const device = await CompressedBlockDevice.open(volume)
  const geometry = device.geometry
  await device.close()
  const probe = new MemoryVolume({}, backing)
  const checkpoint = await readCheckpoint(geometry, probe)
  await probe.close()
  const segment = checkpoint.liveBytes.findIndex((bytes) => bytes > 0)
  checkpoint.liveBytes[segment]! += 256
  const slot = Buffer.alloc(geometry.checkpointSlotBytes)
  const length = encodeCheckpoint(geometry, checkpoint, slot)
  t.truthy(decodeCheckpoint(geometry, slot))
  backing.write(geometry.checkpointOffset + (checkpoint.generation % 2) * geometry.checkpointSlotBytes, slot, 0, Math.ceil(length / 512) * 512)
  reports(t, await check(backing), 'lz4-checkpoint', new RegExp(`segment table says`))
})

function scratch(t: import('ava').ExecutionContext): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-check-'))
  t.teardown(() => fs.rmSync(directory, { recursive: true, force: true }))
  return directory
}

function digest(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

test('checkStore(path): a missing path throws CUBBY_NOT_A_STORE; an empty or foreign file is a NOT_A_STORE problem', async (t) => {
  const directory = scratch(t)
  await rejectsWith(t, checkStore(path.join(directory, 'missing.img')), ErrorCode.NOT_A_STORE)
  const empty = path.join(directory, 'empty.img')
  fs.writeFileSync(empty, '')
  const report = await checkStore(empty)
  t.false(report.healthy)
  t.is(report.problems[0]!.code, ErrorCode.NOT_A_STORE)
  const foreign = path.join(directory, 'foreign.img')
  fs.writeFileSync(foreign, Buffer.alloc(1024 * 1024, 'not a store '))
  const other = await checkStore(foreign)
  t.false(other.healthy)
  t.is(other.problems[0]!.code, ErrorCode.NOT_A_STORE)
})

test('checkStore(path) writes nothing, even to a store a crash left with a log to replay', async (t) => {
  for (const compression of ['none', 'lz4'] as const) {
    const directory = scratch(t)
    const file = path.join(directory, 'store.img')
    const db = await open(file, { ...OPTIONS, compression, size: 64 * 1024 * 1024 })
    for (let index = 0; index < 200; index++) await db.put(`key-${index}`, `value-${index}`)
    await db.flush()
    for (let index = 0; index < 50; index++) await db.put(`late-${index}`, `value-${index}`)
    // Leave the store as a crash would: copy it while the writer still holds it.
    const copy = path.join(directory, 'crashed.img')
    fs.copyFileSync(file, copy)
    await db.close()
    const before = digest(copy)
    const report = await checkStore(copy)
    t.is(digest(copy), before, `${compression}: the check changed nothing`)
    t.true(report.healthy, `${compression}: ${JSON.stringify(report.problems.slice(0, 3))}`)
    t.true((report.counts['log frames to replay'] ?? 0) + (report.counts['lz4 chunks to roll forward'] ?? 0) > 0, `${compression}: there was a log to replay`)
  }
})

test('salvageStore(path): copies every pair of a store with a damaged bucket except that bucket\'s, and counts them', async (t) => {
  const directory = scratch(t)
  const file = path.join(directory, 'store.img')
  const db = await open(file, { ...OPTIONS, compression: 'none', size: 64 * 1024 * 1024 })
  for (let index = 0; index < 500; index++) await db.put(`key-${index}`, Buffer.alloc(index % 60 === 0 ? 7000 : 20, index), { sync: false })
  const all = await contents(db)
  await db.close()
  await (await open(file)).close()
  // Damage one bucket on disk.
  const image = fs.readFileSync(file)
  const superblocks = [decodeSuperblock(image, 0), decodeSuperblock(image, BLOCK_SIZE)].flatMap((copy) => (copy.kind === 'valid' ? [copy.superblock] : []))
  const superblock = superblocks.reduce((best, copy) => (copy.generation > best.generation ? copy : best))
  const bucket = bucketOfKey(superblock, 'key-3')
  const at = (superblock.regionStart + bucket) * BLOCK_SIZE
  const entryCount = image.readUInt16LE(at + 14)
  image[at + 100] = image[at + 100]! ^ 0xff
  fs.writeFileSync(file, image)
  const target = path.join(directory, 'salvaged.img')
  await rejectsWith(t, salvageStore(file, file), ErrorCode.INVALID_ARGUMENT, 'salvage will not write over a store')
  const progress: Array<[number, number]> = []
  const report = await salvageStore(file, target, { onProgress: (done, total) => progress.push([done, total]) })
  t.is(report.unreadable, entryCount, 'the damaged bucket\'s entries are counted as lost')
  // Progress walks the buckets: it reports along the way, only forwards, and ends at its total, which counts every bucket.
  t.true(progress.length >= 3, `progress reports: ${JSON.stringify(progress)}`)
  t.true(progress[progress.length - 1]![1] >= bucketCount(superblock), 'the total counts the buckets')
  t.true(progress.some(([done, total]) => done > 0 && done < total), 'a report came while the walk was under way')
  for (let index = 1; index < progress.length; index++) t.true(progress[index]![0] >= progress[index - 1]![0])
  t.is(progress[progress.length - 1]![0], progress[progress.length - 1]![1])
  t.is(report.pairs, all.size - entryCount)
  t.true(report.problems.some((problem) => problem.structure === 'bucket' && problem.location.includes(`bucket ${bucket}`)))
  const salvaged = await open(target, { create: false })
  const copied = await contents(salvaged)
  await salvaged.close()
  t.is(copied.size, report.pairs)
  for (const [key, value] of copied) t.deepEqual(value, all.get(key), key)
  t.true((await checkStore(target)).healthy)
})

const loopReason = loopUnavailableReason()
;(loopReason === undefined ? test.serial : test.skip)('salvageStore onto a block device holding a store is refused and leaves it untouched; onto a zeroed one it writes the new store', async (t) => {
  const directory = scratch(t)
  const source = path.join(directory, 'source.img')
  const db = await open(source, { ...OPTIONS, size: 64 * 1024 * 1024 })
  for (let index = 0; index < 50; index++) await db.put(`key-${index}`, `value-${index}`, { sync: false })
  await db.close()
  await withLoopDevice({ bytes: 64 * 1024 * 1024 }, async (loop) => {
    const other = await open(loop.device, { ...OPTIONS, compression: 'none' })
    await other.put('theirs', 'keep me')
    await other.close()
    const before = createHash('sha256').update(fs.readFileSync(loop.image)).digest('hex')
    await rejectsWith(t, salvageStore(source, loop.device), ErrorCode.INVALID_ARGUMENT, 'a device holding a store is not a salvage target')
    t.is(createHash('sha256').update(fs.readFileSync(loop.image)).digest('hex'), before, 'the device is untouched')
    const kept = await open(loop.device, { create: false })
    t.is((await kept.get('theirs'))?.toString(), 'keep me')
    await kept.close()
  })
  await withLoopDevice({ bytes: 64 * 1024 * 1024 }, async (loop) => {
    const report = await salvageStore(source, loop.device)
    t.is(report.pairs, 50)
    const salvaged = await open(loop.device, { create: false })
    t.is((await salvaged.get('key-49'))?.toString(), 'value-49')
    await salvaged.close()
  })
})
