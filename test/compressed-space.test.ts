// Space: the cleaner keeps physical use within 1.3x the live compressed bytes
// plus the fixed reserve under sustained random overwrites; a volume that
// cannot grow fills up with CUBBY_FULL and loses nothing; the device works
// the same on a real image file.
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { BLOCK_SIZE, CompressedBlockDevice, MemoryVolume, openFileVolume, probeVolume, seededRandom } from '../src/device'
import { ErrorCode } from '../src/errors'
import { firstMismatch, makeBlock, readBlocks, writeBlocks } from './helpers/compressed'

test('random overwrites keep physical use within 1.3x live bytes + reserve, and report the cleaning write amplification', async (t) => {
  const volume = new MemoryVolume({ size: 0 })
  const blocks = 3000
  const device = await CompressedBlockDevice.create(volume, { blocks, segmentBytes: 256 * 1024, reserveSegments: 4 })
  const model = new Map<number, Buffer>()
  const random = seededRandom(5)
  let worst = 0
  for (let round = 0; round < 6 * blocks / 100; round++) {
    const writes = Array.from({ length: 100 }, (_, index) => ({ lba: Math.floor(random() * blocks), data: makeBlock('bucket', round * 100 + index) }))
    await writeBlocks(device, writes)
    for (const { lba, data } of writes) model.set(lba, data)
    if (round % 5 === 4) await device.flush()
    const stats = device.stats()
    const bound = 1.3 * stats.liveBytes + device.cleaner.reserveBytes
    worst = Math.max(worst, device.cleaner.usedBytes() / bound)
  }
  await device.flush()
  const stats = device.stats()
  t.true(worst <= 1, `data-area use peaked at ${(worst * 100).toFixed(1)}% of 1.3x live + reserve`)
  t.true(stats.cleaningBytesMoved > 0)
  t.true(stats.cleaningWriteAmplification > 1 && stats.cleaningWriteAmplification < 4, `cleaning write amplification ${stats.cleaningWriteAmplification.toFixed(2)}`)
  const allocated = volume.allocatedBytes()
  t.true(allocated <= 1.3 * stats.liveBytes + device.cleaner.reserveBytes + 2 * 1024 * 1024, `allocated ${allocated} for ${stats.liveBytes} live`)
  t.is(await firstMismatch(device, model, blocks), -1)
  t.log(`live ${stats.liveBytes}, allocated ${allocated}, write amplification ${stats.cleaningWriteAmplification.toFixed(2)}`)
  await device.close()
})

test('a volume that cannot grow fills with CUBBY_FULL; nothing written before is lost, and trimming makes room again', async (t) => {
  const volume = new MemoryVolume({ size: 4 * 1024 * 1024, growable: false })
  const device = await CompressedBlockDevice.create(volume, { blocks: 4000, segmentBytes: 64 * 1024, reserveSegments: 4 })
  const model = new Map<number, Buffer>()
  let full: unknown
  let lba = 0
  while (full === undefined && lba < 4000) {
    const writes = Array.from({ length: 10 }, (_, index) => ({ lba: lba + index, data: makeBlock('random', lba + index) }))
    try {
      await writeBlocks(device, writes)
      await device.flush()
      for (const write of writes) model.set(write.lba, write.data)
    } catch (error) {
      full = error
    }
    lba += 10
  }
  t.is((full as { code?: string }).code, ErrorCode.FULL)
  t.true(model.size > 500, `${model.size} blocks fit before the volume was full`)
  // Blocks written before are intact, and the device still reads and accepts trims.
  const sample = [...model.keys()].filter((_, index) => index % 37 === 0)
  const blocks = await readBlocks(device, sample)
  sample.forEach((each, index) => t.deepEqual(blocks[index], model.get(each)))
  await device.trim(0, 300)
  for (let each = 0; each < 300; each++) model.delete(each)
  await device.flush()
  await device.cleaner.makeProgress()
  await device.cleaner.makeProgress()
  await writeBlocks(device, [{ lba: 3999, data: makeBlock('random', 3999) }])
  model.set(3999, makeBlock('random', 3999))
  await device.close()
  const reopened = await CompressedBlockDevice.open(new MemoryVolume({ growable: false }, volume.backing))
  t.is(await firstMismatch(reopened, model, 4000), -1)
  await reopened.close()
})

test('creating on a fixed volume too small for a store is CUBBY_FULL', async (t) => {
  const error = await t.throwsAsync(CompressedBlockDevice.create(new MemoryVolume({ size: 256 * 1024, growable: false }), { blocks: 1000 }))
  t.is((error as { code?: string }).code, ErrorCode.FULL)
})

test('the device works the same on a real image file', async (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-lz4-'))
  const file = path.join(directory, 'store.img')
  try {
    const volume = await openFileVolume(file, { create: true })
    t.is(await probeVolume(volume), 'empty')
    const device = await CompressedBlockDevice.create(volume, { blocks: 10_000 })
    const model = new Map<number, Buffer>()
    const writes = Array.from({ length: 2000 }, (_, index) => ({ lba: index * 5, data: makeBlock(index % 10 === 0 ? 'random' : 'bucket', index) }))
    await writeBlocks(device, writes)
    for (const { lba, data } of writes) model.set(lba, data)
    await device.flush()
    const stats = device.stats()
    t.true(stats.volumeAllocatedBytes < 0.8 * stats.logicalBytes, `file holds ${stats.volumeAllocatedBytes} bytes for ${stats.logicalBytes} logical`)
    await device.close()
    const again = await openFileVolume(file)
    t.is(await probeVolume(again), 'lz4')
    const reopened = await CompressedBlockDevice.open(again)
    t.is(await firstMismatch(reopened, model, 10_000), -1)
    t.is(reopened.stats().logicalBytes, model.size * BLOCK_SIZE)
    await reopened.close()
  } finally {
    fs.rmSync(directory, { recursive: true, force: true })
  }
})
