// The segment table holds state only for the segments in use (chunks of
// SEGMENTS_PER_CHUNK up to the highest non-blank segment), whatever the
// planned size of the data area; with the checkpointer's bounded slot
// buffers, the device's memory follows use, not the planned size. Segments
// above a chunk boundary are used, cleaned, checkpointed and reopened.
import test from 'ava'
import { openOnVolume } from '../src/db'
import { BLOCK_SIZE, MemoryVolume, type CompressedBlockDevice } from '../src/device'
import { NOT_CACHED } from '../src/device/compressed/block-map'
import { CHECKPOINT_WRITE_BYTES } from '../src/device/compressed/checkpoint'
import { incarnationSeed } from '../src/device/compressed/format'
import { SEGMENTS_PER_CHUNK, SegmentState, SegmentTable } from '../src/device/compressed/segments'
import { createMemoryDevice, randomBlock, readBlocks, reopenMemoryDevice, writeBlocks } from './helpers/compressed'

const SEGMENT_BYTES = 1024 * 1024
/** Bytes of table state per segment (live bytes, incarnation, seed, state, last write). */
const PER_SEGMENT = 21

/** A table of `count` segments as a new store has it: all FREE, then a head and a successor. */
function freshTable(count: number): { table: SegmentTable; head: number; successor: number } {
  const table = new SegmentTable(count, SEGMENT_BYTES, 1)
  table.classify(-1, -1)
  const head = table.allocate()!
  const successor = table.allocate()!
  table.setState(head, SegmentState.HEAD)
  return { table, head, successor }
}

/** Fills `segments` more segments: each allocated, given live bytes, sealed. */
function fill(table: SegmentTable, segments: number): number[] {
  const used: number[] = []
  for (let count = 0; count < segments; count++) {
    const segment = table.allocate()!
    table.addLive(segment, 1000)
    table.setState(segment, SegmentState.USED)
    used.push(segment)
  }
  return used
}

test('a fresh table holds one chunk, however many segments the data area plans', (t) => {
  const small = freshTable(26_316)
  const large = freshTable(65_536)
  t.is(small.table.memoryBytes(), SEGMENTS_PER_CHUNK * PER_SEGMENT)
  t.is(large.table.memoryBytes(), small.table.memoryBytes())
  t.is(large.table.highWater, SEGMENTS_PER_CHUNK)
  t.is(large.table.freeCount, 65_536 - 2)
  t.deepEqual([large.head, large.successor], [0, 1])
  // A data area smaller than a chunk gets a chunk of its own size.
  t.is(freshTable(20).table.memoryBytes(), 20 * PER_SEGMENT)
})

test('segments beyond the high-water mark read as blank: FREE, nothing live, incarnation 0', (t) => {
  const { table } = freshTable(65_536)
  const beyond = 40_000
  t.is(table.stateOf(beyond), SegmentState.FREE)
  t.is(table.liveBytesOf(beyond), 0)
  t.is(table.incarnationOf(beyond), 0)
  t.is(table.seedOf(beyond), incarnationSeed(0))
  // Setting what it already is costs nothing.
  table.setState(beyond, SegmentState.FREE)
  table.setIncarnation(beyond, 0)
  t.is(table.highWater, SEGMENTS_PER_CHUNK)
})

test('allocation hands out the lowest FREE segment, growing the table a chunk at a time', (t) => {
  const { table } = freshTable(65_536)
  const used = fill(table, SEGMENTS_PER_CHUNK + 10)
  t.deepEqual(used.slice(0, 3), [2, 3, 4])
  t.is(used[used.length - 1], SEGMENTS_PER_CHUNK + 11)
  t.is(table.highWater, 2 * SEGMENTS_PER_CHUNK)
  t.is(table.memoryBytes(), 2 * SEGMENTS_PER_CHUNK * PER_SEGMENT)
  t.is(table.freeCount, 65_536 - 2 - used.length)
  t.is(table.sealedCount, used.length)
  t.is(table.liveTotal, 1000 * used.length)
  // A segment freed low in the table is the next one handed out, ahead of the blank ones above.
  const low = used[5]!
  table.removeLive(low, 1000)
  t.deepEqual(table.markDead(), [low])
  table.release(low)
  t.is(table.allocate(), low)
  t.is(table.allocate(), SEGMENTS_PER_CHUNK + 12)
  const seeds = new Set([table.seedOf(low), table.seedOf(SEGMENTS_PER_CHUNK + 12)])
  t.is(seeds.size, 2, 'each allocation brings a new incarnation and seed')
})

test('releasing the segments of the top chunk gives its memory back', (t) => {
  const { table } = freshTable(65_536)
  const used = fill(table, SEGMENTS_PER_CHUNK + 100)
  const high = used.filter((segment) => segment >= SEGMENTS_PER_CHUNK)
  for (const segment of high) table.removeLive(segment, 1000)
  t.deepEqual(table.markDead(), high)
  for (const segment of high.slice(1)) table.release(segment)
  t.is(table.highWater, 2 * SEGMENTS_PER_CHUNK, 'a chunk stays while one of its segments is not blank')
  table.release(high[0]!)
  t.is(table.highWater, SEGMENTS_PER_CHUNK)
  t.is(table.memoryBytes(), SEGMENTS_PER_CHUNK * PER_SEGMENT)
  t.is(table.freeCount, 65_536 - 2 - (used.length - high.length))
  t.is(table.allocate(), SEGMENTS_PER_CHUNK, 'the next allocation grows the table again')
})

test('a table made from a checkpoint holds chunks up to its last non-blank segment, and the victim choice sees them all', (t) => {
  const count = 65_536
  const liveBytes = new Uint32Array(count)
  const incarnations = new Uint32Array(count)
  for (const [segment, live, incarnation] of [
    [0, 500_000, 7],
    [1, 0, 8],
    [2, 0, 9],
    [2500, 100_000, 11],
    [3000, 0, 12],
  ] as const) {
    liveBytes[segment] = live
    incarnations[segment] = incarnation
  }
  const table = new SegmentTable(count, SEGMENT_BYTES, 13, { liveBytes, incarnations })
  table.classify(1, 2)
  t.is(table.highWater, 3 * SEGMENTS_PER_CHUNK)
  t.is(table.liveTotal, 600_000)
  t.is(table.incarnationOf(3000), 12)
  t.is(table.seedOf(2500), incarnationSeed(11))
  t.is(table.stateOf(3000), SegmentState.FREE, 'nothing live: FREE, though its incarnation is kept')
  t.is(table.freeCount, count - 4)
  t.is(table.highestIncarnation(), 12)
  t.deepEqual(table.chooseVictims(8, 0.9), [2500, 0])
  t.deepEqual(table.leastUtilized(8, 0.9, new Set([0])), [2500])
  const snapshot = table.snapshot()
  t.is(snapshot.count, table.highWater)
  t.is(snapshot.liveBytes[2500], 100_000)
  t.is(snapshot.incarnations[3000], 12)
  // A table from a checkpoint with nothing at all beyond segment 0 is one chunk.
  const one = new SegmentTable(count, SEGMENT_BYTES, 1, { liveBytes: new Uint32Array(count), incarnations: new Uint32Array(count).fill(3, 0, 1) })
  t.is(one.highWater, SEGMENTS_PER_CHUNK)
})

test('state written above the high-water mark (log replay entering a segment) grows the table', (t) => {
  const { table } = freshTable(65_536)
  table.setState(5000, SegmentState.HEAD)
  table.setIncarnation(5000, 42)
  t.is(table.highWater, 5 * SEGMENTS_PER_CHUNK)
  t.is(table.freeCount, 65_536 - 3)
  t.is(table.stateOf(5000), SegmentState.HEAD)
  t.is(table.seedOf(5000), incarnationSeed(42))
  t.throws(() => table.setState(65_536, SegmentState.USED), { message: /outside the data area/ })
})

/** The device's checkpointer (private: only its memory is looked at here). */
function checkpointerOf(device: CompressedBlockDevice): { memoryBytes(): number } {
  return (device as unknown as { checkpointer: { memoryBytes(): number } }).checkpointer
}

/** Memory of a device over a data area of `dataBytes` (1 MiB segments) holding 500 blocks, after a checkpoint. */
async function deviceMemory(dataBytes: number) {
  const { device } = await createMemoryDevice({ blocks: 2_000_000, segmentBytes: 1024 * 1024, dataBytes })
  await writeBlocks(
    device,
    Array.from({ length: 500 }, (_, index) => ({ lba: index * 3001, data: randomBlock(index) })),
  )
  await device.checkpointNow()
  const figures = {
    segmentCount: device.geometry.segmentCount,
    slotBytes: device.geometry.checkpointSlotBytes,
    segments: device.segments.memoryBytes(),
    checkpointer: checkpointerOf(device).memoryBytes(),
    map: device.map.memoryBytes(),
    total: device.stats().memoryBytes,
  }
  await device.close()
  return figures
}

test('a device over a 64 GiB data area holding a little data keeps as little segment and checkpoint state as one over 16 GiB', async (t) => {
  const large = await deviceMemory(64 * 1024 ** 3)
  const smaller = await deviceMemory(16 * 1024 ** 3)
  t.is(large.segmentCount, 65_536)
  t.is(smaller.segmentCount, 16_384)
  t.true(large.slotBytes > 8 * CHECKPOINT_WRITE_BYTES, `a slot of ${large.slotBytes} bytes`)
  // Before: 21 bytes for every planned segment (1.38 MB) and a buffer of the whole slot (535 KB), for the device's lifetime.
  t.is(large.segments, SEGMENTS_PER_CHUNK * PER_SEGMENT)
  t.true(large.checkpointer <= CHECKPOINT_WRITE_BYTES + 4096, `checkpointer ${large.checkpointer} bytes`)
  t.is(large.segments, smaller.segments)
  t.is(large.checkpointer, smaller.checkpointer)
  t.is(large.total - large.map, smaller.total - smaller.map, 'nothing but the block map differs')
})

test('a store planned for 3M keys holds at most 0.25 bytes more device memory per key than one planned for 1M', async (t) => {
  const deviceBytes = async (expectedKeys: number) => {
    const db = await openOnVolume(new MemoryVolume({ size: 0 }), { expectedKeys, keySize: 24, valueSize: 100, sync: false }, { fresh: true })
    for (let key = 0; key < 1000; key++) await db.put(`user${key}`, Buffer.alloc(100, key))
    const memory = db.stats().memory.device
    await db.close()
    return memory
  }
  const million = await deviceBytes(1_000_000)
  const three = await deviceBytes(3_000_000)
  const perKey = (three - million) / 2_000_000
  t.log(`device memory ${million} bytes at 1M planned keys, ${three} at 3M: ${perKey.toFixed(3)} bytes per key`)
  t.true(perKey <= 0.25, `${perKey} bytes per key`)
})

/** Reads every block in `seeds` (lba -> seed of its random content; absent: zeros) from [0, blocks); the first that differs, or -1. */
async function firstWrong(device: CompressedBlockDevice, seeds: ReadonlyMap<number, number>, blocks: number): Promise<number> {
  const zero = Buffer.alloc(BLOCK_SIZE)
  for (let first = 0; first < blocks; first += 256) {
    const lbas = Array.from({ length: Math.min(256, blocks - first) }, (_, index) => first + index)
    const read = await readBlocks(device, lbas)
    for (let index = 0; index < lbas.length; index++) {
      const seed = seeds.get(lbas[index]!)
      if (!read[index]!.equals(seed === undefined ? zero : randomBlock(seed))) return lbas[index]!
    }
  }
  return -1
}

/** The segment holding block `lba`'s record (its map page must be cached, as every page of this small map is). */
function segmentHolding(device: CompressedBlockDevice, lba: number): number {
  const entry = device.map.lookup(lba)
  if (entry === NOT_CACHED || entry === 0) throw new Error(`block ${lba} is ${entry === 0 ? 'unmapped' : 'not cached'}`)
  return device.mapper.segmentOf(entry)
}

test('segments above a chunk boundary are used, cleaned, checkpointed, released and reopened', async (t) => {
  const BLOCKS = 20_000
  const options = { idleCleaningMs: 0 }
  const { device, volume } = await createMemoryDevice({ blocks: BLOCKS, segmentBytes: 64 * 1024, ...options })
  const seeds = new Map<number, number>()
  // 17,000 incompressible blocks fill ~1,130 segments of 64 KiB (15 records each).
  for (let first = 0; first < 17_000; first += 250) {
    const writes = Array.from({ length: 250 }, (_, index) => ({ lba: first + index, data: randomBlock(first + index) }))
    await writeBlocks(device, writes)
    for (const { lba } of writes) seeds.set(lba, lba)
  }
  await device.flush()
  const twoChunks = Math.min(2 * SEGMENTS_PER_CHUNK, device.geometry.segmentCount)
  t.true(device.geometry.segmentCount > SEGMENTS_PER_CHUNK + 200)
  t.is(device.segments.highWater, twoChunks)
  const above = () => [...seeds.keys()].filter((lba) => segmentHolding(device, lba) >= SEGMENTS_PER_CHUNK)
  t.true(above().length > 1000, 'blocks live in segments above the first chunk')

  // Room low in the table: the first 3,000 blocks go, and their segments come free after two checkpoints.
  await device.trim(0, 3000)
  for (let lba = 0; lba < 3000; lba++) seeds.delete(lba)
  await device.checkpointNow()
  await device.checkpointNow()
  t.true(device.segments.stateOf(10) === SegmentState.FREE)

  // Half of what lives above the boundary dies; those half-live segments are the only ones worth cleaning.
  const halved = above().filter((_, index) => index % 2 === 0)
  for (const lba of halved) {
    await device.trim(lba, 1)
    seeds.delete(lba)
  }
  const cleanedBefore = device.cleaner.segmentsCleaned
  await device.cleaner.makeProgress()
  t.true(device.cleaner.segmentsCleaned > cleanedBefore, 'the cleaner ran')
  const freedAbove = Array.from({ length: device.segments.highWater - SEGMENTS_PER_CHUNK }, (_, index) => SEGMENTS_PER_CHUNK + index).filter(
    (segment) => device.segments.stateOf(segment) === SegmentState.FREE,
  )
  t.true(freedAbove.length > 0, 'segments above the boundary were cleaned and are free again')
  t.is(await firstWrong(device, seeds, BLOCKS), -1)

  // Checkpointed at close; the reopened table sees every segment in use, above the boundary too.
  const liveBefore = device.segments.liveTotal
  await device.close()
  const reopened = await reopenMemoryDevice(volume.backing, options)
  t.is(reopened.stats().chunksReplayed, 0)
  t.is(reopened.segments.liveTotal, liveBefore)
  t.is(reopened.segments.highWater, twoChunks)
  t.is(await firstWrong(reopened, seeds, BLOCKS), -1)

  // Everything left above the boundary goes: once no checkpoint needs those segments, the second chunk is given back.
  const head = reopened.log.headSegment
  t.true(head < SEGMENTS_PER_CHUNK && reopened.log.successor < SEGMENTS_PER_CHUNK, `the log continues low (head ${head}, successor ${reopened.log.successor})`)
  const rest = [...seeds.keys()].filter((lba) => segmentHolding(reopened, lba) >= SEGMENTS_PER_CHUNK)
  t.true(rest.length > 0)
  for (const lba of rest) {
    await reopened.trim(lba, 1)
    seeds.delete(lba)
  }
  await reopened.checkpointNow()
  await reopened.checkpointNow()
  t.is(reopened.segments.highWater, SEGMENTS_PER_CHUNK)
  t.is(reopened.segments.memoryBytes(), SEGMENTS_PER_CHUNK * PER_SEGMENT)
  t.is(await firstWrong(reopened, seeds, BLOCKS), -1)
  await reopened.close()
  const last = await reopenMemoryDevice(volume.backing, options)
  t.is(last.segments.highWater, SEGMENTS_PER_CHUNK)
  t.is(await firstWrong(last, seeds, BLOCKS), -1)
  await last.close()
})
