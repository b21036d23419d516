// Idle cleaning: once writes stop, the cleaner brings physical use down
// toward the live bytes (below the busy start ratio, where the ordinary
// policy leaves dead records alone), a write stops it, and nothing is lost:
// the data reads back the same before and after reopening.
import test from 'ava'
import { setTimeout as sleep } from 'node:timers/promises'
import { seededRandom } from '../src/device'
import { createMemoryDevice, firstMismatch, makeBlock, reopenMemoryDevice, writeBlocks } from './helpers/compressed'

const BLOCKS = 2000
const SEGMENT_BYTES = 64 * 1024

/**
 * Writes every block once, then overwrites a third of them at random: dead
 * records the busy policy leaves. Idle cleaning is off while loading (a
 * pause of a noisy machine must not start it early); `idleCleaningMs`
 * turns it on once the load is done, and the quiet period starts then.
 */
async function loadWithGarbage(idleCleaningMs: number) {
  const { device, volume } = await createMemoryDevice({ blocks: BLOCKS, segmentBytes: SEGMENT_BYTES, reserveSegments: 4, idleCleaningMs: 0 })
  const model = new Map<number, Buffer>()
  const random = seededRandom(17)
  for (let first = 0; first < BLOCKS; first += 100) {
    const writes = Array.from({ length: 100 }, (_, index) => ({ lba: first + index, data: makeBlock('bucket', first + index) }))
    await writeBlocks(device, writes)
    for (const { lba, data } of writes) model.set(lba, data)
  }
  for (let round = 0; round < 7; round++) {
    const writes = Array.from({ length: 100 }, (_, index) => {
      const lba = Math.floor(random() * BLOCKS)
      return { lba, data: makeBlock(round % 2 === 0 ? 'bucket' : 'text', 10_000 + round * 100 + index) }
    })
    await writeBlocks(device, writes)
    for (const { lba, data } of writes) model.set(lba, data)
    await device.flush()
  }
  device.cleaner.policy.idleDelayMs = idleCleaningMs
  device.cleaner.noteActivity()
  return { device, volume, model }
}

async function waitForIdleCleaning(device: Awaited<ReturnType<typeof createMemoryDevice>>['device'], limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs
  while (Date.now() < deadline) {
    await sleep(20)
    if (!device.cleaner.idleCleaning && !device.cleaner.idleWanted()) return
  }
}

test('idle cleaning brings physical use down toward the live bytes and loses nothing across reopen', async (t) => {
  const { device, volume, model } = await loadWithGarbage(20)
  const before = device.stats()
  const usedBefore = device.cleaner.usedBytes()
  t.true(usedBefore > before.liveBytes * 1.1, `the load leaves dead records (${usedBefore} in use for ${before.liveBytes} live)`)
  t.false(device.cleaner.wanted(), 'below the busy start ratio: only idle cleaning would clean')
  await waitForIdleCleaning(device, 20_000)
  const after = device.stats()
  const usedAfter = device.cleaner.usedBytes()
  t.true(device.cleaner.idleRounds > 0 && device.cleaner.idleSegmentsCleaned > 0, 'idle rounds ran and emptied segments')
  t.true(usedAfter < usedBefore, `use fell from ${usedBefore} to ${usedAfter}`)
  t.true(usedAfter <= after.liveBytes + 2 * SEGMENT_BYTES + SEGMENT_BYTES, `use ${usedAfter} is within live ${after.liveBytes} + head, successor and a segment`)
  t.true(Math.abs(after.liveBytes - before.liveBytes) < before.liveBytes / 50, 'moving records changes the live estimate only by alignment')
  t.true(volume.allocatedBytes() < usedBefore, `the volume gave the space back (${volume.allocatedBytes()} allocated)`)
  t.is(await firstMismatch(device, model, BLOCKS), -1)
  await device.close()
  const reopened = await reopenMemoryDevice(volume.backing, { idleCleaningMs: 0 })
  t.is(await firstMismatch(reopened, model, BLOCKS), -1)
  t.is(reopened.stats().liveBytes, after.liveBytes)
  await reopened.close()
})

test('without idle cleaning the dead records stay; a store reopened with garbage cleans it in its first quiet period', async (t) => {
  const { device, volume, model } = await loadWithGarbage(0)
  await sleep(100)
  const used = device.cleaner.usedBytes()
  t.is(device.cleaner.idleRounds, 0)
  t.true(used > device.stats().liveBytes * 1.1)
  await device.close()
  const reopened = await reopenMemoryDevice(volume.backing, { idleCleaningMs: 20 })
  await waitForIdleCleaning(reopened, 20_000)
  t.true(reopened.cleaner.idleRounds > 0)
  t.true(reopened.cleaner.usedBytes() < used, `use fell from ${used} to ${reopened.cleaner.usedBytes()}`)
  t.is(await firstMismatch(reopened, model, BLOCKS), -1)
  await reopened.close()
  const again = await reopenMemoryDevice(volume.backing, { idleCleaningMs: 0 })
  t.is(await firstMismatch(again, model, BLOCKS), -1)
  await again.close()
})

test('a write during idle cleaning stops it; both the write and the moved blocks read back, before and after reopen', async (t) => {
  const { device, volume, model } = await loadWithGarbage(30)
  const writes = Array.from({ length: 50 }, (_, index) => ({ lba: index * 7, data: makeBlock('bucket', 50_000 + index) }))
  // The first segment read of an idle run (the cleaner reads its victim whole) sends the writes in.
  let writing: Promise<void> | undefined
  const read = volume.read.bind(volume)
  volume.read = async (requests) => {
    if (writing === undefined && device.cleaner.idleCleaning && requests.length === 1 && requests[0]!.length === SEGMENT_BYTES) {
      writing = writeBlocks(device, writes)
    }
    return read(requests)
  }
  const deadline = Date.now() + 10_000
  while (writing === undefined && Date.now() < deadline) await sleep(5)
  t.truthy(writing, 'idle cleaning started, and the writes went in while it ran')
  await writing
  for (const { lba, data } of writes) model.set(lba, data)
  await device.flush()
  await device.cleaner.idle()
  t.is(await firstMismatch(device, model, BLOCKS), -1)
  await device.close()
  const reopened = await reopenMemoryDevice(volume.backing, { idleCleaningMs: 0 })
  t.is(await firstMismatch(reopened, model, BLOCKS), -1)
  await reopened.close()
})

test('closing before the quiet period ends leaves no idle cleaning behind', async (t) => {
  const { device, volume } = await loadWithGarbage(50)
  await device.close()
  const allocated = volume.allocatedBytes()
  const writes = volume.stats().writes
  await sleep(150)
  t.is(device.cleaner.idleRounds, 0)
  t.is(volume.allocatedBytes(), allocated)
  t.is(volume.stats().writes, writes)
})
