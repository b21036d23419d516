// The LZ4 block map keeps its per-page state (cache slot, current copy,
// generation) only in chunks of PAGES_PER_CHUNK pages holding a page that
// was written or is cached. A device planned for the most blocks it can
// hold (2^32 - 1: 4.2M map pages) holding a little data keeps as much
// memory as one planned small holding the same; before, it kept 9 bytes for
// every planned page (38 MB). Pages in chunks far apart are written,
// trimmed, evicted, reloaded, checkpointed and reopened; checkStore reads
// them and finds damage in the top one; `cubby plan`'s figure bounds the
// tables of stores loaded to their planned keys. (Power cuts over a workload
// spread over many chunks: compressed-crash.test.ts.)
import test from 'ava'
import { checkVolume } from '../src/check'
import { openOnVolume, plan } from '../src/db'
import { lz4TableBytes, plannedLogicalBytes } from '../src/cli/memory'
import { BLOCK_SIZE, CompressedBlockDevice, FaultyVolume, MemoryVolume, type CompressedCreateOptions, type MemoryBacking } from '../src/device'
import { BYTES_PER_PAGE_STATE, CHUNK_OVERHEAD_BYTES, PAGES_PER_CHUNK } from '../src/device/compressed/block-map'
import { ENTRIES_PER_PAGE, MAP_PAGE_BYTES, MAX_BLOCK_COUNT, PageState, mapPageOffset } from '../src/device/compressed/format'
import { createMemoryDevice, makeBlock, readBlocks, reopenMemoryDevice, writeBlocks } from './helpers/compressed'

/** Blocks whose map pages one chunk covers (1 GiB of logical space). */
const CHUNK_BLOCKS = PAGES_PER_CHUNK * ENTRIES_PER_PAGE
/** The map's page state for a full chunk, overhead included. */
const CHUNK_BYTES = PAGES_PER_CHUNK * BYTES_PER_PAGE_STATE + CHUNK_OVERHEAD_BYTES
/** The map's buffer for page loads (16 pages), held for the device's lifetime. */
const LOAD_BUFFER_BYTES = 16 * MAP_PAGE_BYTES
/** Pages in the last (partial) chunk of a map of MAX_BLOCK_COUNT blocks. */
const LAST_CHUNK_PAGES = Math.ceil(MAX_BLOCK_COUNT / ENTRIES_PER_PAGE) % PAGES_PER_CHUNK

/** A device of the most blocks there can be; 1 GiB of 64 KiB segments, so its checkpoint slot is written in pieces like a large store's. */
const LARGE: Partial<CompressedCreateOptions> = { blocks: MAX_BLOCK_COUNT, segmentBytes: 64 * 1024, dataBytes: 1024 ** 3 }
/** The same data area, and a map of two chunks whose last one has as many pages as LARGE's last one. */
const SMALL: Partial<CompressedCreateOptions> = { ...LARGE, blocks: (PAGES_PER_CHUNK + LAST_CHUNK_PAGES) * ENTRIES_PER_PAGE }

/** What the map and the device hold. */
function memoryOf(device: CompressedBlockDevice) {
  return {
    mapPageCount: device.geometry.mapPageCount,
    chunks: device.map.chunkCount,
    writtenPages: device.map.writtenPages,
    cachedBytes: device.map.cachedBytes(),
    map: device.map.memoryBytes(),
    total: device.stats().memoryBytes,
  }
}

/** 300 blocks at the bottom of a device of `blocks` and its top 15 (where the engine's heap is), in one map page at each end. */
function bottomAndTop(blocks: number): Array<{ lba: number; data: Buffer }> {
  return [
    ...Array.from({ length: 300 }, (_, index) => ({ lba: index, data: makeBlock('bucket', index) })),
    ...Array.from({ length: 15 }, (_, index) => ({ lba: blocks - 1 - index, data: makeBlock('bucket', 1000 + index) })),
  ]
}

async function plannedMemory(create: Partial<CompressedCreateOptions>) {
  const { device, volume } = await createMemoryDevice(create)
  await writeBlocks(device, bottomAndTop(device.blockCount))
  await device.checkpointNow()
  const open = memoryOf(device)
  await device.close()
  const reopened = await reopenMemoryDevice(volume.backing)
  const again = memoryOf(reopened)
  await reopened.close()
  return { open, again }
}

test('a device planned for 2^32 - 1 blocks holding a little data keeps the device memory of one planned for 263K blocks holding the same', async (t) => {
  t.true(LAST_CHUNK_PAGES > 0)
  const large = await plannedMemory(LARGE)
  const small = await plannedMemory(SMALL)
  t.is(large.open.mapPageCount, 4_227_331)
  t.is(small.open.mapPageCount, PAGES_PER_CHUNK + LAST_CHUNK_PAGES)
  t.log(`large: ${JSON.stringify(large)}`)
  t.log(`small: ${JSON.stringify(small)}`)
  for (const when of ['open', 'again'] as const) {
    // One chunk at the bottom and one at the top; before, 9 bytes for each of the 4.2M pages (38 MB).
    t.is(large[when].chunks, 2, when)
    t.is(large[when].writtenPages, small[when].writtenPages, when)
    t.true(large[when].map - large[when].cachedBytes <= LOAD_BUFFER_BYTES + 2 * CHUNK_BYTES, `${when}: map ${large[when].map} bytes`)
    t.is(large[when].map, small[when].map, when)
    t.is(large[when].total, small[when].total, when)
    t.true(large[when].total < 1024 * 1024, `${when}: device ${large[when].total} bytes`)
  }
})

/** Flips one byte of the backing. */
function flip(backing: MemoryBacking, offset: number): void {
  const byte = Buffer.alloc(1)
  backing.read(offset, byte, 0, 1)
  byte[0] = byte[0]! ^ 0x5a
  backing.write(offset, byte, 0, 1)
}

/** Reads every block of `model` (absent from it: the blocks in `zeros`); the LBAs that differ. */
async function wrongBlocks(device: CompressedBlockDevice, model: ReadonlyMap<number, Buffer>, zeros: readonly number[] = []): Promise<number[]> {
  const zero = Buffer.alloc(BLOCK_SIZE)
  const lbas = [...model.keys(), ...zeros]
  const wrong: number[] = []
  for (let first = 0; first < lbas.length; first += 64) {
    const group = lbas.slice(first, first + 64)
    const blocks = await readBlocks(device, group)
    group.forEach((lba, index) => {
      if (!blocks[index]!.equals(model.get(lba) ?? zero)) wrong.push(lba)
    })
  }
  return wrong
}

test('map pages in chunks far apart are written, trimmed, evicted, reloaded from their current copies, checkpointed and reopened', async (t) => {
  const top = MAX_BLOCK_COUNT
  // Both sides of page and chunk boundaries, the middle of the space, and the top chunk (which holds 2047 blocks).
  const lbas = [0, 1, 1015, 1016, CHUNK_BLOCKS - 1, CHUNK_BLOCKS, CHUNK_BLOCKS + 1016, 3 * CHUNK_BLOCKS - 2, 2 ** 31, 2 ** 31 + 5, top - 2048, top - 2047, top - 1016, top - 2, top - 1]
  const settings = { mapCacheBytes: 64 * 1024, idleCleaningMs: 0 }
  const { device, volume } = await createMemoryDevice({ ...LARGE, ...settings })
  const model = new Map<number, Buffer>()
  const write = async (seed: number, chosen: readonly number[]) => {
    const blocks = chosen.map((lba, index) => ({ lba, data: makeBlock(index % 3 === 0 ? 'random' : 'bucket', seed * 100 + index) }))
    await writeBlocks(device, blocks)
    for (const { lba, data } of blocks) model.set(lba, data)
  }
  await write(1, lbas)
  t.deepEqual(await wrongBlocks(device, model), [])
  await device.checkpointNow()
  // Half overwritten, so their pages' other copies become current; two single blocks and a range across the first chunk boundary trimmed.
  await write(2, lbas.filter((_, index) => index % 2 === 0))
  for (const lba of [1016, top - 2]) {
    await device.trim(lba, 1)
    model.delete(lba)
  }
  await device.trim(CHUNK_BLOCKS - 3, 6)
  model.delete(CHUNK_BLOCKS - 1)
  model.delete(CHUNK_BLOCKS)
  await device.checkpointNow()
  const written = device.map.pagesInUse().filter((page) => device.map.pageState(page) !== PageState.NEVER_WRITTEN)
  const writtenChunks = new Set(written.map((page) => Math.floor(page / PAGES_PER_CHUNK)))
  t.is(written.length, device.map.writtenPages)
  t.is(writtenChunks.size, 6)
  t.true(
    written.some((page) => device.map.pageState(page) === PageState.COPY_1),
    'some pages were written twice, their second copy current',
  )

  // Blocks never written all over the space: their zero pages come and go through the 16-page cache, and so do their chunks.
  const never = Array.from({ length: 300 }, (_, index) => 7 + index * Math.floor(top / 300))
  t.deepEqual(await wrongBlocks(device, model, never), [])
  t.true(device.map.chunkCount <= writtenChunks.size + device.map.cachedPages, `${device.map.chunkCount} chunks`)
  // The written pages were evicted meanwhile: they load again from the copies their chunks name.
  const loads = device.map.pageLoads
  t.deepEqual(await wrongBlocks(device, model), [])
  t.true(device.map.pageLoads > loads)

  const before = written.map((page) => [page, device.map.pageState(page), device.map.pageGeneration(page)])
  await device.close()
  const faulty = new FaultyVolume(new MemoryVolume({}, volume.backing))
  const reopened = await CompressedBlockDevice.open(faulty, settings)
  t.is(reopened.stats().chunksReplayed, 0)
  t.is(reopened.map.chunkCount, writtenChunks.size, 'after open: the chunks of the written pages, no others')
  t.deepEqual(
    written.map((page) => [page, reopened.map.pageState(page), reopened.map.pageGeneration(page)]),
    before,
  )
  t.deepEqual(await wrongBlocks(reopened, model, never), [])

  // Once more at the top and the bottom, flushed, then the power is cut: the log rolls forward onto those pages at the next open.
  const writesBefore = reopened.map.writtenPages
  const more = [top - 1, top - 2, 2, CHUNK_BLOCKS + 5]
  const blocks = more.map((lba, index) => ({ lba, data: makeBlock('text', 500 + index) }))
  await writeBlocks(reopened, blocks)
  for (const { lba, data } of blocks) model.set(lba, data)
  await reopened.flush()
  await faulty.powerCut({ seed: 1, policy: 'drop' })
  await reopened.close().catch(() => undefined)
  const rolled = await reopenMemoryDevice(volume.backing, settings)
  t.true(rolled.stats().chunksReplayed > 0)
  t.is(rolled.map.writtenPages, writesBefore)
  t.deepEqual(await wrongBlocks(rolled, model, never), [])
  await rolled.close()
})

test('checkStore reads the map pages of a store sized at the most blocks, and finds a damaged page in its top chunk', async (t) => {
  const volume = new MemoryVolume({ size: 0 })
  const db = await openOnVolume(volume, { expectedKeys: 10_000, valueSize: 100, size: MAX_BLOCK_COUNT * BLOCK_SIZE, sync: false }, { fresh: true })
  // Values over 2 KiB go to extents, which the engine's heap takes from the top of the logical space.
  for (let key = 0; key < 300; key++) await db.put(`user${key}`, Buffer.alloc(key % 3 === 0 ? 9000 : 100, key))
  const memory = db.stats().memory.device
  await db.close()
  t.true(memory < 1024 * 1024, `device memory ${memory} bytes`)

  const device = await CompressedBlockDevice.open(new MemoryVolume({ readOnly: true }, volume.backing))
  // Read-only opens never write, so the checks below see the store as the engine left it.
  t.is(device.blockCount, MAX_BLOCK_COUNT)
  const written = device.map.pagesInUse().filter((page) => device.map.pageState(page) !== PageState.NEVER_WRITTEN)
  const topPage = written[written.length - 1]!
  t.true(topPage >= device.geometry.mapPageCount - PAGES_PER_CHUNK, `the heap's pages are in the top chunk (page ${topPage})`)
  const copy = device.map.pageState(topPage) - 1
  const geometry = device.geometry
  await device.close()

  const check = async () => {
    const view = new MemoryVolume({ readOnly: true }, volume.backing)
    try {
      return await checkVolume(view)
    } finally {
      await view.close()
    }
  }
  const healthy = await check()
  t.true(healthy.healthy, JSON.stringify(healthy.problems))
  t.is(healthy.counts['lz4 map pages'], written.length)
  t.is(healthy.counts['keys'], 300)

  flip(volume.backing, mapPageOffset(geometry, topPage, copy) + 600)
  const damaged = await check()
  t.false(damaged.healthy)
  t.true(
    damaged.problems.some((problem) => problem.structure === 'lz4-map' && problem.location.includes(`map page ${topPage}`)),
    JSON.stringify(damaged.problems.slice(0, 3)),
  )
})

test("cubby plan's LZ4 tables bound the map state and segment table of stores loaded to their planned keys", async (t) => {
  // Values inline in the buckets at the bottom of the logical space; values in extents, which the heap takes from its top.
  for (const [keys, valueSize] of [
    [100_000, 100],
    [20_000, 3000],
  ] as const) {
    const volume = new MemoryVolume({ size: 0 })
    const db = await openOnVolume(volume, { expectedKeys: keys, valueSize, sync: false }, { fresh: true })
    for (let first = 0; first < keys; first += 1000) {
      await db.batch(Array.from({ length: 1000 }, (_, index) => ({ type: 'put' as const, key: `user${first + index}`, value: Buffer.alloc(valueSize, index) })))
    }
    await db.close()
    const device = await CompressedBlockDevice.open(new MemoryVolume({ readOnly: true }, volume.backing))
    const label = `${keys} keys of ${valueSize} bytes`
    const bound = lz4TableBytes(plannedLogicalBytes(plan({ keys, valueSize })), device.blockCount * BLOCK_SIZE)
    const tables = device.map.memoryBytes() - device.map.cachedBytes() - LOAD_BUFFER_BYTES + device.segments.memoryBytes()
    const chunks = new Set(device.map.pagesInUse().map((page) => Math.floor(page / PAGES_PER_CHUNK)))
    t.log(`${label}: chunks ${[...chunks].join(', ')} of ${Math.ceil(device.geometry.mapPageCount / PAGES_PER_CHUNK)}; tables ${tables} bytes, bound ${bound}`)
    t.true(chunks.has(0), label)
    if (valueSize > 2048) t.true([...chunks].some((chunk) => chunk > 1), `${label}: the extents are at the top`)
    t.true(tables <= bound, `${label}: ${tables} bytes of tables, bound ${bound}`)
    await device.close()
  }
})
