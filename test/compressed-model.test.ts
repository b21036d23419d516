// Random model test: the compressed device against a Map of block contents,
// over many writes, trims, reads, flushes and reopens, with settings small
// enough that map pages are evicted and reloaded, checkpoints happen often,
// segments roll over and the cleaner runs.
import test from 'ava'
import { BLOCK_SIZE, seededRandom, type CompressedBlockDevice } from '../src/device'
import { createMemoryDevice, firstMismatch, makeBlock, readBlocks, reopenMemoryDevice, writeBlocks, type BlockKind } from './helpers/compressed'

const BLOCKS = 40_000
const SETTINGS = { mapCacheBytes: 64 * 1024, writeBufferBytes: 64 * 1024, checkpointLogBytes: 1024 * 1024, reserveSegments: 4 }

async function runModel(seed: number, steps: number): Promise<{ reopens: number; stats: ReturnType<CompressedBlockDevice['stats']> }> {
  const random = seededRandom(seed)
  const created = await createMemoryDevice({ blocks: BLOCKS, segmentBytes: 64 * 1024, ...SETTINGS })
  let device = created.device
  const backing = created.volume.backing
  const model = new Map<number, Buffer>()
  const zero = Buffer.alloc(BLOCK_SIZE)
  const kinds: BlockKind[] = ['bucket', 'bucket', 'bucket', 'random', 'text', 'zero']
  // Writes concentrate on a hot range so that overwrites make garbage to clean.
  const pickLba = () => (random() < 0.7 ? Math.floor(random() * 800) : Math.floor(random() * BLOCKS))
  let reopens = 0
  for (let step = 0; step < steps; step++) {
    const choice = random()
    if (choice < 0.55) {
      const count = 1 + Math.floor(random() * 40)
      const writes = new Map<number, Buffer>()
      for (let index = 0; index < count; index++) writes.set(pickLba(), makeBlock(kinds[Math.floor(random() * kinds.length)]!, seed * 1e6 + step * 100 + index))
      await writeBlocks(device, [...writes].map(([lba, data]) => ({ lba, data })))
      for (const [lba, data] of writes) {
        if (data.equals(zero)) model.delete(lba)
        else model.set(lba, data)
      }
    } else if (choice < 0.62) {
      const lba = pickLba()
      const count = Math.min(BLOCKS - lba, 1 + Math.floor(random() * (random() < 0.1 ? 2000 : 30)))
      await device.trim(lba, count)
      for (let each = lba; each < lba + count; each++) model.delete(each)
    } else if (choice < 0.9) {
      const lbas = Array.from({ length: 1 + Math.floor(random() * 30) }, pickLba)
      const blocks = await readBlocks(device, lbas)
      lbas.forEach((lba, index) => {
        if (!blocks[index]!.equals(model.get(lba) ?? zero)) throw new Error(`seed ${seed} step ${step}: block ${lba} differs from the model`)
      })
    } else if (choice < 0.98) {
      await device.flush()
    } else {
      await device.close()
      device = await reopenMemoryDevice(backing, SETTINGS)
      reopens++
    }
  }
  const mismatch = await firstMismatch(device, model, BLOCKS)
  if (mismatch >= 0) throw new Error(`seed ${seed}: block ${mismatch} differs from the model at the end`)
  await device.cleaner.idle()
  if (device.cleaner.unreadable.size > 0) throw new Error(`seed ${seed}: the cleaner could not empty segments ${[...device.cleaner.unreadable]}`)
  await device.close()
  const final = await reopenMemoryDevice(backing, SETTINGS)
  const after = await firstMismatch(final, model, BLOCKS)
  if (after >= 0) throw new Error(`seed ${seed}: block ${after} differs from the model after the last reopen`)
  const stats = final.stats()
  if (stats.logicalBytes !== model.size * BLOCK_SIZE) throw new Error(`seed ${seed}: ${stats.logicalBytes / BLOCK_SIZE} blocks in use, model has ${model.size}`)
  await final.close()
  return { reopens, stats }
}

for (const seed of [1, 2, 3, 4]) {
  test(`random writes, trims, reads, flushes and reopens agree with a Map (seed ${seed})`, async (t) => {
    const { reopens, stats } = await runModel(seed, 1000)
    t.true(reopens > 5, `reopened ${reopens} times`)
    t.true(stats.mapPageLoads > 0 || stats.mapCachedPages <= 16, 'the map cache is exercised')
    t.log(`reopens ${reopens}, cleaning moved ${stats.cleaningBytesMoved} of ${stats.writerRecordBytes} bytes, ${stats.segments.sealed} sealed segments, live ${stats.liveBytes}`)
  })
}

test('the cleaner runs and the map pages are evicted and reloaded under the model settings', async (t) => {
  const random = seededRandom(99)
  const { device } = await createMemoryDevice({ blocks: BLOCKS, segmentBytes: 64 * 1024, ...SETTINGS })
  const model = new Map<number, Buffer>()
  const scattered = Array.from({ length: 40 }, (_, page) => ({ lba: page * 1016 + 7, data: makeBlock('text', page) }))
  await writeBlocks(device, scattered)
  for (const { lba, data } of scattered) model.set(lba, data)
  for (let round = 0; round < 30; round++) {
    const writes = Array.from({ length: 100 }, (_, index) => ({ lba: Math.floor(random() * 500), data: makeBlock('bucket', round * 1000 + index) }))
    await writeBlocks(device, writes)
    for (const { lba, data } of writes) model.set(lba, data)
    await device.flush()
  }
  await device.cleaner.idle()
  t.is(await firstMismatch(device, model, BLOCKS), -1)
  const stats = device.stats()
  t.true(stats.cleaningBytesMoved > 0, 'the cleaner moved records')
  t.true(stats.mapPageLoads > 0, 'map pages were loaded after eviction')
  t.true(stats.mapCachedPages <= 16, `the map cache stays within its 16 pages (${stats.mapCachedPages})`)
  t.true(stats.checkpoints > 0)
  await device.close()
})
