// NativeVolume on image files: data round trips on both I/O paths, argument
// checks, locking, discard, close with I/O in flight, and the block device
// and fault injector stacked on top.
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FaultyVolume, RawBlockDevice, openFileVolume, BLOCK_SIZE, type NativeVolume, type VolumeRequest } from '../src/device'
import { ErrorCode } from '../src/errors'
import { constants } from '../src/native'
import {
  IO_PATHS,
  fillPattern,
  holdsPattern,
  ioUringUnavailableReason,
  isZero,
  killWhileWriting,
  openInChildProcess,
  scratchDirectory,
  testOn,
  type IoPath,
} from './helpers/scratch'

const MIB = 1024 * 1024

async function freshVolume(t: Parameters<typeof scratchDirectory>[0], ioPath: IoPath | 'auto', bytes = 4 * MIB): Promise<NativeVolume> {
  const image = path.join(scratchDirectory(t), 'volume.img')
  const volume = await openFileVolume(image, { create: true, ioPath })
  t.teardown(() => volume.close())
  await volume.grow(bytes)
  return volume
}

for (const ioPath of IO_PATHS) {
  const test = testOn(ioPath)

  test(`${ioPath}: a batch of writes reads back byte for byte, in any order and split across buffers`, async (t) => {
    const volume = await freshVolume(t, ioPath)
    t.is(volume.ioPath, ioPath)
    t.is(volume.kind, 'file')
    t.true(volume.directIo)
    const source = volume.allocate(3 * BLOCK_SIZE)
    fillPattern(source, 1, 0, BLOCK_SIZE)
    fillPattern(source, 2, BLOCK_SIZE, 3 * BLOCK_SIZE)
    await volume.write([
      { offset: 0, length: BLOCK_SIZE, buffer: source, bufferOffset: 0 },
      { offset: 10 * BLOCK_SIZE, length: 2 * BLOCK_SIZE, buffer: source, bufferOffset: BLOCK_SIZE },
    ])
    const first = volume.allocate(2 * BLOCK_SIZE)
    const second = volume.allocate(2 * BLOCK_SIZE)
    first.fill(0xee)
    second.fill(0xee)
    await volume.read([
      { offset: 10 * BLOCK_SIZE, length: 2 * BLOCK_SIZE, buffer: first, bufferOffset: 0 },
      { offset: 0, length: BLOCK_SIZE, buffer: second, bufferOffset: BLOCK_SIZE },
      { offset: 20 * BLOCK_SIZE, length: BLOCK_SIZE, buffer: second, bufferOffset: 0 },
    ])
    t.true(holdsPattern(first, 2))
    t.true(holdsPattern(second, 1, BLOCK_SIZE))
    t.true(isZero(second, 0, BLOCK_SIZE), 'a never-written range reads as zeros')
    t.deepEqual(volume.stats(), { reads: 3, writes: 2, bytesRead: 4 * BLOCK_SIZE, bytesWritten: 3 * BLOCK_SIZE, syncs: 0, discards: 0 })
  })

  test(`${ioPath}: sector-sized requests at sector offsets, more than the queue depth in one batch`, async (t) => {
    const volume = await freshVolume(t, ioPath)
    const sector = volume.sectorSize
    const count = constants.QUEUE_DEPTH * 3 + 7
    const buffer = volume.allocate(count * sector)
    const requests: VolumeRequest[] = []
    for (let index = 0; index < count; index++) {
      fillPattern(buffer, index, index * sector, (index + 1) * sector)
      // Every other sector, backwards: nothing about the order is sequential.
      requests.push({ offset: (2 * count - 2 * index) * sector, length: sector, buffer, bufferOffset: index * sector })
    }
    await volume.write(requests)
    const out = volume.allocate(count * sector)
    await volume.read(requests.map((request) => ({ ...request, buffer: out })))
    for (let index = 0; index < count; index++) {
      if (!holdsPattern(out, index, index * sector, (index + 1) * sector)) return t.fail(`sector ${index} differs`)
    }
    t.pass()
  })

  test(`${ioPath}: a batch larger than MAX_BATCH_REQUESTS is split and still lands whole`, async (t) => {
    const volume = await freshVolume(t, ioPath, 8 * MIB)
    const sector = volume.sectorSize
    const count = constants.MAX_BATCH_REQUESTS + 100
    const buffer = volume.allocate(count * sector)
    fillPattern(buffer, 9)
    const requests = Array.from({ length: count }, (_, index) => ({ offset: index * sector, length: sector, buffer, bufferOffset: index * sector }))
    await volume.write(requests)
    const out = volume.allocate(count * sector)
    await volume.read([{ offset: 0, length: count * sector, buffer: out, bufferOffset: 0 }])
    t.true(holdsPattern(out, 9))
    t.is(volume.stats().writes, count)
  })

  test(`${ioPath}: more concurrent batches than MAX_PENDING_BATCHES wait their turn and all complete`, async (t) => {
    const volume = await freshVolume(t, ioPath)
    const callers = constants.MAX_PENDING_BATCHES + 50
    const buffer = volume.allocate(callers * BLOCK_SIZE)
    for (let index = 0; index < callers; index++) fillPattern(buffer, index, index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE)
    await Promise.all(
      Array.from({ length: callers }, (_, index) =>
        volume.write([{ offset: (index % 512) * BLOCK_SIZE, length: BLOCK_SIZE, buffer, bufferOffset: index * BLOCK_SIZE }]),
      ),
    )
    const out = volume.allocate(callers * BLOCK_SIZE)
    await volume.read([{ offset: 0, length: callers * BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
    t.true(holdsPattern(out, 7, 7 * BLOCK_SIZE, 8 * BLOCK_SIZE))
    t.true(holdsPattern(out, callers - 1, (callers - 1) * BLOCK_SIZE, callers * BLOCK_SIZE))
  })

  test(`${ioPath}: close() waits for every batch in flight, then refuses new work`, async (t) => {
    const volume = await freshVolume(t, ioPath)
    const buffer = volume.allocate(64 * BLOCK_SIZE)
    fillPattern(buffer, 5)
    const settled: string[] = []
    const writes = Array.from({ length: 64 }, (_, index) =>
      volume.write([{ offset: index * BLOCK_SIZE, length: BLOCK_SIZE, buffer, bufferOffset: index * BLOCK_SIZE }]).then(() => settled.push('write')),
    )
    await volume.close()
    settled.push('close')
    await Promise.all(writes)
    t.is(settled.indexOf('close'), 64, 'every write settled before close resolved')
    const closed = await t.throwsAsync(volume.read([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]))
    t.is((closed as { code?: string }).code, ErrorCode.CLOSED)
    await t.notThrowsAsync(volume.close(), 'close is idempotent')
    const reopened = await openFileVolume(volume.path, { ioPath })
    const out = reopened.allocate(64 * BLOCK_SIZE)
    await reopened.read([{ offset: 0, length: 64 * BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
    await reopened.close()
    t.true(holdsPattern(out, 5), 'the writes that close waited for are on disk')
  })

  test(`${ioPath}: discard punches a hole: the range reads as zeros and st_blocks shrinks`, async (t) => {
    const volume = await freshVolume(t, ioPath, 8 * MIB)
    const buffer = volume.allocate(2 * MIB)
    fillPattern(buffer, 3)
    await volume.write([{ offset: MIB, length: 2 * MIB, buffer, bufferOffset: 0 }])
    await volume.sync()
    const before = volume.allocatedBytes()
    t.true(before >= 2 * MIB)
    await volume.discard(MIB, MIB)
    t.is(volume.allocatedBytes(), before - MIB)
    t.is(fs.statSync(volume.path).blocks * 512, before - MIB, 'the file system agrees')
    const out = volume.allocate(2 * MIB)
    await volume.read([{ offset: MIB, length: 2 * MIB, buffer: out, bufferOffset: 0 }])
    t.true(isZero(out, 0, MIB))
    t.deepEqual(out.subarray(MIB), buffer.subarray(MIB), 'the rest is untouched')
    t.is(volume.stats().discards, 1)
    t.is(volume.stats().syncs, 1)
  })

  test(`${ioPath}: a file truncated behind the volume's back gives CUBBY_IO at the end of file, not zeros`, async (t) => {
    const volume = await freshVolume(t, ioPath, MIB)
    const buffer = volume.allocate(2 * BLOCK_SIZE)
    fillPattern(buffer, 14)
    await volume.write([{ offset: 0, length: 2 * BLOCK_SIZE, buffer, bufferOffset: 0 }])
    fs.truncateSync(volume.path, BLOCK_SIZE)
    const out = volume.allocate(2 * BLOCK_SIZE)
    const error = await t.throwsAsync(volume.read([{ offset: 0, length: 2 * BLOCK_SIZE, buffer: out, bufferOffset: 0 }]))
    t.like(error, { code: ErrorCode.IO, path: volume.path })
    t.regex((error as Error).message, /end of file/)
    t.true(holdsPattern(out, 14, 0, BLOCK_SIZE), 'the bytes before the end were read')
  })

  test(`${ioPath}: readEach reports each request of a split batch under its own index, failures as CubbyErrors`, async (t) => {
    const volume = await freshVolume(t, ioPath, 8 * MIB)
    const sector = volume.sectorSize
    const count = constants.MAX_BATCH_REQUESTS + 100
    const buffer = volume.allocate(count * sector)
    fillPattern(buffer, 31)
    await volume.write([{ offset: 0, length: count * sector, buffer, bufferOffset: 0 }])
    fs.truncateSync(volume.path, (count - 1) * sector)
    // Request i reads sector count-1-i into slot i: the last request of the second part lies past the new end.
    const out = volume.allocate(count * sector)
    const requests: VolumeRequest[] = Array.from({ length: count }, (_, index) => ({ offset: (count - 1 - index) * sector, length: sector, buffer: out, bufferOffset: index * sector }))
    const errors = new Map<number, unknown>()
    await new Promise<void>((resolve) => {
      let left = count
      volume.readEach(requests, (index, error) => {
        t.false(errors.has(index), `request ${index} is reported once`)
        errors.set(index, error)
        if (--left === 0) resolve()
      })
    })
    t.is(errors.size, count)
    t.like(errors.get(0), { code: ErrorCode.IO, path: volume.path }, 'the read past the end is CUBBY_IO')
    for (let index = 1; index < count; index++) {
      if (errors.get(index) !== undefined) t.fail(`request ${index}: ${String(errors.get(index))}`)
    }
    for (const index of [1, constants.MAX_BATCH_REQUESTS - 1, constants.MAX_BATCH_REQUESTS, count - 1]) {
      const sectorRead = count - 1 - index
      t.is(out.subarray(index * sector, (index + 1) * sector).compare(buffer.subarray(sectorRead * sector, (sectorRead + 1) * sector)), 0, `request ${index}`)
    }
    t.is(volume.stats().reads, count - 1, 'reads that succeeded are counted')
    await volume.close()
    const closed = await new Promise<unknown>((resolve) => volume.readEach([requests[1]!], (_index, error) => resolve(error)))
    t.like(closed, { code: ErrorCode.CLOSED }, 'a closed volume reports CUBBY_CLOSED')
  })

  test(`${ioPath}: the block device and the fault injector stack on a native volume`, async (t) => {
    const faulty = new FaultyVolume(await freshVolume(t, ioPath))
    const device = await RawBlockDevice.create(faulty, 256)
    t.is(device.ioPath, `faulty(${ioPath})`)
    const buffer = device.allocate(2)
    fillPattern(buffer, 11)
    await device.write([
      { lba: 7, buffer, bufferOffset: 0 },
      { lba: 200, buffer, bufferOffset: BLOCK_SIZE },
    ])
    await device.flush()
    faulty.failNext({ operation: 'write', nth: 1 })
    const failed = await t.throwsAsync(device.write([{ lba: 8, buffer, bufferOffset: 0 }]))
    t.is((failed as { errno?: string }).errno, 'EIO')
    const refused = await t.throwsAsync(device.write([{ lba: 9, buffer, bufferOffset: 0 }]))
    t.regex((refused as Error).message, /earlier write or flush failed/)
    const out = device.allocate(2)
    await device.read([
      { lba: 200, buffer: out, bufferOffset: 0 },
      { lba: 7, buffer: out, bufferOffset: BLOCK_SIZE },
    ])
    t.deepEqual(out.subarray(0, BLOCK_SIZE), buffer.subarray(BLOCK_SIZE))
    t.deepEqual(out.subarray(BLOCK_SIZE), buffer.subarray(0, BLOCK_SIZE))
  })

  test(`${ioPath}: a power cut through the fault injector leaves synced data on the real file`, async (t) => {
    const volume = await freshVolume(t, ioPath)
    const faulty = new FaultyVolume(volume)
    const buffer = faulty.allocate(BLOCK_SIZE)
    buffer.fill(1)
    await faulty.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }])
    await faulty.sync()
    buffer.fill(2)
    await faulty.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }])
    t.deepEqual(await faulty.powerCut({ seed: 3, policy: 'drop' }), { kept: 0, dropped: 1, torn: 0 })
    const out = volume.allocate(BLOCK_SIZE)
    await volume.read([{ offset: 0, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
    t.true(out.every((byte) => byte === 1))
  })
}

test('callers waiting for a batch slot when close() is called get CUBBY_CLOSED; those in the shim complete', async (t) => {
  const volume = await freshVolume(t, 'auto')
  const buffer = volume.allocate(BLOCK_SIZE)
  const extra = 20
  const reads = Array.from({ length: constants.MAX_PENDING_BATCHES + extra }, () =>
    volume.read([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]),
  )
  await volume.close()
  const outcomes = await Promise.allSettled(reads)
  t.is(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, constants.MAX_PENDING_BATCHES)
  const refused = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')
  t.is(refused.length, extra)
  t.true(refused.every((outcome) => (outcome.reason as { code?: string }).code === ErrorCode.CLOSED))
  t.is(volume.stats().reads, constants.MAX_PENDING_BATCHES)
})

test('misaligned offsets, lengths, buffer offsets and plain Buffers are CUBBY_INVALID_ARGUMENT, and nothing is written', async (t) => {
  const volume = await freshVolume(t, 'auto')
  const sector = volume.sectorSize
  const buffer = volume.allocate(4 * BLOCK_SIZE)
  fillPattern(buffer, 4)
  const plain = Buffer.alloc(BLOCK_SIZE + 1).subarray(1)
  const cases: Array<[string, VolumeRequest]> = [
    ['offset', { offset: sector / 2, length: sector, buffer, bufferOffset: 0 }],
    ['length', { offset: 0, length: sector + 1, buffer, bufferOffset: 0 }],
    ['zero length', { offset: 0, length: 0, buffer, bufferOffset: 0 }],
    ['buffer offset', { offset: 0, length: sector, buffer, bufferOffset: 1 }],
    ['buffer overrun', { offset: 0, length: 2 * BLOCK_SIZE, buffer, bufferOffset: 3 * BLOCK_SIZE }],
    ['unaligned memory', { offset: 0, length: BLOCK_SIZE, buffer: plain, bufferOffset: 0 }],
    ['past the end', { offset: volume.size - sector, length: 2 * sector, buffer, bufferOffset: 0 }],
  ]
  for (const [name, request] of cases) {
    const good = { offset: BLOCK_SIZE, length: BLOCK_SIZE, buffer, bufferOffset: 0 }
    const error = await t.throwsAsync(volume.write([good, request]), undefined, name)
    t.is((error as { code?: string }).code, ErrorCode.INVALID_ARGUMENT, name)
    const readError = await t.throwsAsync(volume.read([request]), undefined, name)
    t.is((readError as { code?: string }).code, ErrorCode.INVALID_ARGUMENT, name)
  }
  const out = volume.allocate(BLOCK_SIZE)
  await volume.read([{ offset: BLOCK_SIZE, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
  t.true(isZero(out), 'no batch with a bad request wrote its good requests either')
  await t.notThrowsAsync(volume.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]), 'a refused request does not poison the volume')
})

test('a second open of the same file fails with CUBBY_LOCKED, in this process and in another, until the first closes', async (t) => {
  const volume = await freshVolume(t, 'auto')
  const same = await t.throwsAsync(openFileVolume(volume.path))
  t.is((same as { code?: string }).code, ErrorCode.LOCKED)
  const readOnly = await t.throwsAsync(openFileVolume(volume.path, { readOnly: true, ioPath: 'threadpool' }))
  t.is((readOnly as { code?: string }).code, ErrorCode.LOCKED, 'read-only opens are exclusive too')
  t.is(await openInChildProcess(volume.path), ErrorCode.LOCKED)
  await volume.close()
  t.is(await openInChildProcess(volume.path), 'opened')
  const again = await openFileVolume(volume.path)
  await again.close()
  t.pass()
})

for (const ioPath of IO_PATHS) {
  testOn(ioPath)(`${ioPath}: a file whose owner was killed with writes in flight reopens (the kernel finishes them first)`, async (t) => {
    const setup = await freshVolume(t, 'auto', 64 * MIB)
    await setup.close()
    for (let round = 0; round < 3; round++) {
      await killWhileWriting(setup.path, ioPath)
      const reopened = await openFileVolume(setup.path)
      t.is(reopened.size, 64 * MIB)
      await reopened.close()
    }
  })
}

test('a volume opened read-only reads but refuses writes, discards and growth with CUBBY_READ_ONLY', async (t) => {
  const writable = await freshVolume(t, 'auto', MIB)
  const buffer = writable.allocate(BLOCK_SIZE)
  fillPattern(buffer, 8)
  await writable.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }])
  await writable.close()
  const volume = await openFileVolume(writable.path, { readOnly: true })
  t.teardown(() => volume.close())
  t.true(volume.readOnly)
  t.false(volume.growable)
  const out = volume.allocate(BLOCK_SIZE)
  await volume.read([{ offset: 0, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
  t.true(holdsPattern(out, 8))
  for (const attempt of [
    () => volume.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]),
    () => volume.discard(0, BLOCK_SIZE),
    () => volume.grow(2 * MIB),
  ]) {
    const error = await t.throwsAsync(attempt())
    t.is((error as { code?: string }).code, ErrorCode.READ_ONLY)
  }
})

test('grow extends a file sparsely; reads of the new range are zeros', async (t) => {
  const volume = await freshVolume(t, 'auto', MIB)
  await volume.grow(1024 * MIB)
  t.is(volume.size, 1024 * MIB)
  t.is(fs.statSync(volume.path).size, 1024 * MIB)
  t.true(volume.allocatedBytes() < MIB, 'no space allocated for the new range')
  const out = volume.allocate(BLOCK_SIZE)
  out.fill(0xff)
  await volume.read([{ offset: 1024 * MIB - BLOCK_SIZE, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
  t.true(isZero(out))
  await volume.grow(MIB)
  t.is(volume.size, 1024 * MIB, 'grow never shrinks')
  const unaligned = await t.throwsAsync(volume.grow(1024 * MIB + 1))
  t.is((unaligned as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
})

test('opening reports what is missing or wrong with typed errors', async (t) => {
  const directory = scratchDirectory(t)
  const missing = await t.throwsAsync(openFileVolume(path.join(directory, 'absent.img')))
  t.like(missing, { code: ErrorCode.IO, errno: 'ENOENT', syscall: 'open', path: path.join(directory, 'absent.img') })
  for (const readOnly of [false, true]) {
    const notAFile = await t.throwsAsync(openFileVolume(directory, { readOnly }))
    t.is((notAFile as { code?: string }).code, ErrorCode.INVALID_ARGUMENT, 'a directory is not a volume')
  }
  const badOption = await t.throwsAsync(openFileVolume(path.join(directory, 'x.img'), { create: true, ioPath: 'aio' as 'auto' }))
  t.is((badOption as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
  t.false(fs.existsSync(path.join(directory, 'x.img')), 'a refused option creates nothing')
  const auto = await openFileVolume(path.join(directory, 'auto.img'), { create: true })
  t.is(auto.ioPath, ioUringUnavailableReason === undefined ? 'io_uring' : 'threadpool', 'auto chooses io_uring where the kernel allows it')
  t.is(auto.ioUringUnavailable, ioUringUnavailableReason)
  t.true(auto.physicalSectorSize >= auto.sectorSize && auto.physicalSectorSize % auto.sectorSize === 0)
  await auto.close()
})
