// The in-memory volume, the raw block device over it, and the fault injector.
import test from 'ava'
import { BLOCK_SIZE, FaultyVolume, MemoryVolume, RawBlockDevice } from '../src/device'
import { ErrorCode } from '../src/errors'
import { crc32c } from '../src/util/crc32c'

function pattern(seed: number, bytes = BLOCK_SIZE): Buffer {
  const buffer = Buffer.alloc(bytes)
  for (let index = 0; index < bytes; index++) buffer[index] = (seed * 131 + index * 7) & 0xff
  return buffer
}

test('crc32c matches the standard check value and chains', (t) => {
  t.is(crc32c(Buffer.from('123456789')), 0xe3069283)
  const data = pattern(3, 1000)
  t.is(crc32c(data, 400, 1000, crc32c(data, 0, 400)), crc32c(data))
})

test('raw device writes and reads back blocks in one batch; unwritten blocks read as zeros', async (t) => {
  const device = await RawBlockDevice.create(new MemoryVolume({ size: 0 }), 64)
  const buffer = device.allocate(3)
  pattern(1).copy(buffer, 0)
  pattern(2).copy(buffer, BLOCK_SIZE)
  await device.write([
    { lba: 5, buffer, bufferOffset: 0 },
    { lba: 63, buffer, bufferOffset: BLOCK_SIZE },
  ])
  const out = device.allocate(3)
  out.fill(0xee)
  await device.read([
    { lba: 63, buffer: out, bufferOffset: 0 },
    { lba: 5, buffer: out, bufferOffset: BLOCK_SIZE },
    { lba: 6, buffer: out, bufferOffset: 2 * BLOCK_SIZE },
  ])
  t.deepEqual(out.subarray(0, BLOCK_SIZE), pattern(2))
  t.deepEqual(out.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE), pattern(1))
  t.true(out.subarray(2 * BLOCK_SIZE).every((byte) => byte === 0))
  t.is(device.stats().reads, 3)
  t.is(device.stats().writes, 2)
})

test('raw device rejects out-of-range blocks and closed use with typed errors', async (t) => {
  const device = await RawBlockDevice.create(new MemoryVolume({ size: 0 }), 8)
  const buffer = device.allocate(1)
  const error = await t.throwsAsync(device.read([{ lba: 8, buffer, bufferOffset: 0 }]))
  t.is((error as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
  await device.close()
  await device.close()
  const closed = await t.throwsAsync(device.read([{ lba: 0, buffer, bufferOffset: 0 }]))
  t.is((closed as { code?: string }).code, ErrorCode.CLOSED)
})

test('trim makes blocks read as zeros and frees their memory', async (t) => {
  const volume = new MemoryVolume({ size: 0 })
  const device = await RawBlockDevice.create(volume, 64)
  const buffer = device.allocate(16)
  buffer.fill(0x5a)
  await device.write(Array.from({ length: 16 }, (_, index) => ({ lba: 16 + index, buffer, bufferOffset: index * BLOCK_SIZE })))
  t.is(volume.allocatedBytes(), 64 * 1024)
  await device.trim(16, 16)
  t.is(volume.allocatedBytes(), 0)
  const out = device.allocate(1)
  await device.read([{ lba: 20, buffer: out, bufferOffset: 0 }])
  t.true(out.every((byte) => byte === 0))
})

test('a second open of one memory backing is CUBBY_LOCKED until the first closes', async (t) => {
  const volume = new MemoryVolume({ size: 1 << 20 })
  const error = t.throws(() => volume.reopen())
  t.is((error as { code?: string }).code, ErrorCode.LOCKED)
  await volume.close()
  const again = volume.reopen()
  t.is(again.size, 1 << 20)
  await again.close()
})

test('injected EIO fails the nth write once, then the raw device refuses writes', async (t) => {
  const faulty = new FaultyVolume(new MemoryVolume({ size: 1 << 20 }))
  const device = new RawBlockDevice(faulty)
  const buffer = device.allocate(1)
  faulty.failNext({ operation: 'write', nth: 2 })
  await device.write([{ lba: 1, buffer, bufferOffset: 0 }])
  const error = await t.throwsAsync(device.write([{ lba: 2, buffer, bufferOffset: 0 }]))
  t.is((error as { code?: string }).code, ErrorCode.IO)
  t.is((error as { errno?: string }).errno, 'EIO')
  const refused = await t.throwsAsync(device.write([{ lba: 3, buffer, bufferOffset: 0 }]))
  t.is((refused as { code?: string }).code, ErrorCode.IO)
  t.regex((refused as Error).message, /earlier write or flush failed/)
})

test('persistent read faults fail every read from the nth on', async (t) => {
  const faulty = new FaultyVolume(new MemoryVolume({ size: 1 << 20 }))
  const buffer = faulty.allocate(512)
  faulty.failNext({ operation: 'read', nth: 1, persistent: true, errno: 'EBADMSG' })
  for (let attempt = 0; attempt < 3; attempt++) {
    const error = await t.throwsAsync(faulty.read([{ offset: 0, length: 512, buffer, bufferOffset: 0 }]))
    t.is((error as { errno?: string }).errno, 'EBADMSG')
  }
  faulty.clearFaults()
  await t.notThrowsAsync(faulty.read([{ offset: 0, length: 512, buffer, bufferOffset: 0 }]))
})

test('power cut keeps synced writes and drops unsynced ones under the drop policy', async (t) => {
  const memory = new MemoryVolume({ size: 1 << 20 })
  const faulty = new FaultyVolume(memory)
  const buffer = faulty.allocate(4096)
  buffer.fill(1)
  await faulty.write([{ offset: 0, length: 4096, buffer, bufferOffset: 0 }])
  await faulty.sync()
  buffer.fill(2)
  await faulty.write([{ offset: 0, length: 4096, buffer, bufferOffset: 0 }])
  await faulty.write([{ offset: 8192, length: 4096, buffer, bufferOffset: 0 }])
  const summary = await faulty.powerCut({ seed: 1, policy: 'drop' })
  t.deepEqual(summary, { kept: 0, dropped: 2, torn: 0 })
  const out = memory.allocate(12288)
  await memory.read([{ offset: 0, length: 12288, buffer: out, bufferOffset: 0 }])
  t.true(out.subarray(0, 4096).every((byte) => byte === 1))
  t.true(out.subarray(8192).every((byte) => byte === 0))
  const dead = await t.throwsAsync(faulty.read([{ offset: 0, length: 512, buffer, bufferOffset: 0 }]))
  t.is((dead as { code?: string }).code, ErrorCode.IO)
})

test('power cut with tearing leaves each sector either old or new, reproducibly by seed', async (t) => {
  async function cut(seed: number): Promise<Buffer> {
    const memory = new MemoryVolume({ size: 1 << 20 })
    const faulty = new FaultyVolume(memory)
    const buffer = faulty.allocate(8192)
    buffer.fill(0xaa)
    await faulty.write([{ offset: 0, length: 8192, buffer, bufferOffset: 0 }])
    await faulty.sync()
    buffer.fill(0xbb)
    await faulty.write([{ offset: 0, length: 8192, buffer, bufferOffset: 0 }])
    await faulty.powerCut({ seed, policy: 'tear', atomicBytes: 512 })
    const out = memory.allocate(8192)
    await memory.read([{ offset: 0, length: 8192, buffer: out, bufferOffset: 0 }])
    return out
  }
  const first = await cut(7)
  t.deepEqual(await cut(7), first)
  const sectors = new Set<number>()
  for (let sector = 0; sector < 16; sector++) {
    const bytes = first.subarray(sector * 512, (sector + 1) * 512)
    t.true(bytes.every((byte) => byte === bytes[0]))
    t.true(bytes[0] === 0xaa || bytes[0] === 0xbb)
    sectors.add(bytes[0]!)
  }
  t.is(sectors.size, 2, 'with 16 sectors and seed 7 the write tears: some sectors old, some new')
})

test('regression: a sync in flight when the power is cut does not complete, and cannot make earlier writes durable', async (t) => {
  const memory = new MemoryVolume({ size: 1 << 20 })
  const faulty = new FaultyVolume(memory)
  const buffer = faulty.allocate(4096)
  buffer.fill(9)
  await faulty.write([{ offset: 0, length: 4096, buffer, bufferOffset: 0 }])
  const syncing = faulty.sync()
  const cut = faulty.powerCut({ seed: 3, policy: 'drop' })
  const error = await t.throwsAsync(syncing)
  t.is((error as { code?: string }).code, ErrorCode.IO)
  t.deepEqual(await cut, { kept: 0, dropped: 1, torn: 0 })
  const out = memory.allocate(4096)
  await memory.read([{ offset: 0, length: 4096, buffer: out, bufferOffset: 0 }])
  t.true(out.every((byte) => byte === 0), 'the unsynced write was dropped')
})

test('regression: a write in flight when the power is cut fails instead of landing after the cut', async (t) => {
  const memory = new MemoryVolume({ size: 1 << 20 })
  const faulty = new FaultyVolume(memory)
  const buffer = faulty.allocate(4096)
  buffer.fill(7)
  const writing = faulty.write([{ offset: 4096, length: 4096, buffer, bufferOffset: 0 }])
  await faulty.powerCut({ seed: 4, policy: 'keep' })
  await t.throwsAsync(writing)
  const out = memory.allocate(4096)
  await memory.read([{ offset: 4096, length: 4096, buffer: out, bufferOffset: 0 }])
  t.true(out.every((byte) => byte === 0))
})
