// The compressed device's everyday behaviour: round trips of every kind of
// block, zeros and trims taking no space, one volume read per block, flush
// cost, reopen, and argument errors.
import test from 'ava'
import { BLOCK_SIZE, CompressedBlockDevice, MemoryVolume, createDevice, openDevice, probeVolume } from '../src/device'
import { ErrorCode } from '../src/errors'
import { createMemoryDevice, firstMismatch, makeBlock, readBlocks, reopenMemoryDevice, writeBlocks } from './helpers/compressed'

test('blocks of every kind read back as written, before and after a flush and a reopen', async (t) => {
  const { device, volume } = await createMemoryDevice()
  const model = new Map<number, Buffer>()
  const kinds = ['bucket', 'random', 'text', 'zero'] as const
  const writes = Array.from({ length: 64 }, (_, index) => ({ lba: index * 37, data: makeBlock(kinds[index % 4]!, index) }))
  await writeBlocks(device, writes)
  for (const { lba, data } of writes) if (data.some((byte) => byte !== 0)) model.set(lba, data)
  t.is(await firstMismatch(device, model, 4096), -1, 'served from the write buffer')
  await device.flush()
  t.is(await firstMismatch(device, model, 4096), -1, 'served from the volume')
  await device.close()
  const again = await reopenMemoryDevice(volume.backing)
  t.is(await firstMismatch(again, model, 4096), -1, 'after reopening')
  t.is(again.stats().logicalBytes, model.size * BLOCK_SIZE)
  await again.close()
})

test('probeVolume recognises the store, and createDevice/openDevice build the lz4 device', async (t) => {
  const volume = new MemoryVolume({ size: 0 })
  t.is(await probeVolume(volume), 'empty')
  const device = await createDevice(volume, { compression: 'lz4', blocks: 1000 })
  t.is(device.mode, 'lz4')
  t.is(device.blockCount, 1000)
  await writeBlocks(device as CompressedBlockDevice, [{ lba: 999, data: makeBlock('bucket', 1) }])
  await device.close()
  const reopened = volume.reopen()
  t.is(await probeVolume(reopened), 'lz4')
  const opened = await openDevice(reopened, 'lz4')
  t.deepEqual((await readBlocks(opened as CompressedBlockDevice, [999]))[0], makeBlock('bucket', 1))
  await opened.close()
})

test('a read of a flushed block costs exactly one volume read, and a batch is one volume batch', async (t) => {
  const { device, volume } = await createMemoryDevice({ blocks: 2000 })
  await writeBlocks(device, Array.from({ length: 500 }, (_, index) => ({ lba: index * 4, data: makeBlock('bucket', index) })))
  await device.flush()
  const before = volume.stats().reads
  for (let index = 0; index < 100; index++) await readBlocks(device, [index * 4])
  t.is(volume.stats().reads - before, 100)
  const batchBefore = volume.stats().reads
  await readBlocks(device, Array.from({ length: 50 }, (_, index) => index * 8))
  t.is(volume.stats().reads - batchBefore, 50, 'one request per block')
  const zeroBefore = volume.stats().reads
  await readBlocks(device, [1, 2, 3])
  t.is(volume.stats().reads - zeroBefore, 0, 'unmapped blocks need no I/O')
  await device.close()
})

test('all-zero and trimmed blocks take no space once cleaned, and read as zeros', async (t) => {
  const { device, volume } = await createMemoryDevice({ blocks: 8192 })
  await writeBlocks(device, Array.from({ length: 1000 }, (_, index) => ({ lba: index, data: Buffer.alloc(BLOCK_SIZE) })))
  await device.flush()
  t.is(device.stats().logicalBytes, 0)
  t.is(device.stats().liveBytes, 0)
  t.true(device.stats().writerRecordBytes === 0, 'zero blocks over unmapped blocks write nothing')
  await writeBlocks(device, Array.from({ length: 2000 }, (_, index) => ({ lba: index, data: makeBlock('random', index) })))
  await device.flush()
  const full = volume.allocatedBytes()
  t.true(full > 2000 * BLOCK_SIZE)
  await device.trim(0, 1500)
  await writeBlocks(device, Array.from({ length: 500 }, (_, index) => ({ lba: 1500 + index, data: Buffer.alloc(BLOCK_SIZE) })))
  await device.flush()
  t.is(device.stats().logicalBytes, 0)
  const blocks = await readBlocks(device, [0, 700, 1499, 1500, 1999])
  for (const block of blocks) t.true(block.every((byte) => byte === 0))
  await device.close()
  const again = await reopenMemoryDevice(volume.backing)
  t.is(again.stats().logicalBytes, 0)
  await again.cleaner.makeProgress()
  t.true(volume.allocatedBytes() < full / 4, `space comes back (${volume.allocatedBytes()} of ${full})`)
  await again.close()
})

test('incompressible blocks are stored as is; compressible ones shrink', async (t) => {
  const { device } = await createMemoryDevice({ blocks: 1000 })
  await writeBlocks(device, Array.from({ length: 100 }, (_, index) => ({ lba: index, data: makeBlock('random', index) })))
  const random = device.stats().liveBytes / 100
  t.true(random >= BLOCK_SIZE && random < BLOCK_SIZE + 600, `random block ~4 KiB (${random})`)
  await writeBlocks(device, Array.from({ length: 100 }, (_, index) => ({ lba: 200 + index, data: makeBlock('bucket', index) })))
  const bucket = (device.stats().liveBytes - random * 100) / 100
  t.true(bucket < 0.66 * BLOCK_SIZE, `a bucket 62% full of random bytes shrinks to about its fill (${bucket})`)
  t.is((await readBlocks(device, [5]))[0]!.compare(makeBlock('random', 5)), 0)
  await device.close()
})

test('flush writes only what is unwritten, and costs nothing when nothing changed', async (t) => {
  const { device, volume } = await createMemoryDevice()
  await writeBlocks(device, [{ lba: 1, data: makeBlock('bucket', 1) }])
  const before = volume.stats()
  await device.flush()
  const after = volume.stats()
  t.is(after.writes - before.writes, 1, 'one volume write')
  t.is(after.syncs - before.syncs, 1, 'one sync')
  t.is(after.bytesWritten - before.bytesWritten, 4096, 'one 4 KiB chunk')
  await device.flush()
  t.is(volume.stats().writes, after.writes, 'a second flush writes nothing')
  t.is(volume.stats().syncs, after.syncs, 'and syncs nothing')
  await device.close()
})

test('bad arguments and closed use fail with typed errors, and change nothing', async (t) => {
  const { device } = await createMemoryDevice({ blocks: 100 })
  const buffer = device.allocate(1)
  const outside = await t.throwsAsync(device.write([{ lba: 100, buffer, bufferOffset: 0 }]))
  t.is((outside as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
  const trim = await t.throwsAsync(device.trim(50, 51))
  t.is((trim as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
  t.is(device.stats().logicalBytes, 0)
  await device.close()
  await device.close()
  const closed = await t.throwsAsync(device.read([{ lba: 0, buffer, bufferOffset: 0 }]))
  t.is((closed as { code?: string }).code, ErrorCode.CLOSED)
  const badCreate = await t.throwsAsync(CompressedBlockDevice.create(new MemoryVolume({ size: 0 }), { blocks: 0 }))
  t.is((badCreate as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
  const badSegment = await t.throwsAsync(CompressedBlockDevice.create(new MemoryVolume({ size: 0 }), { blocks: 10, segmentBytes: 3000 }))
  t.is((badSegment as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
})
