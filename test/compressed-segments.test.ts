// The segment table holds state only for the segments in use (chunks of
// SEGMENTS_PER_CHUNK up to the highest non-blank segment), whatever the
// planned size of the data area.
import test from 'ava'
import { incarnationSeed } from '../src/device/compressed/format'
import { SEGMENTS_PER_CHUNK, SegmentState, SegmentTable } from '../src/device/compressed/segments'

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
