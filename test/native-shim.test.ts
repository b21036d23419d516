// The native shim's own contract, below NativeVolume: its bounds, its
// argument checks, and its lifetime rules (close, garbage collection,
// environment teardown, process exit with I/O in flight).
import test from 'ava'
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as v8 from 'node:v8'
import * as vm from 'node:vm'
import { Worker } from 'node:worker_threads'
import { binding, constants, isNativeError, type NativeOpenResult } from '../src/native'
import { IO_PATHS, fillPattern, holdsPattern, scratchDirectory, testOn } from './helpers/scratch'

v8.setFlagsFromString('--expose-gc')
const collectGarbage = vm.runInNewContext('gc') as () => void

const MIB = 1024 * 1024

function openImage(image: string, ioPath: 'auto' | 'io_uring' | 'threadpool', bytes = MIB): NativeOpenResult {
  const opened = binding.open(image, { readOnly: false, create: true, buffered: false, ioPath })
  binding.grow(opened.handle, bytes)
  return opened
}

/** One descriptor per [offset, length, bufferIndex, bufferOffset]. */
function descriptors(...requests: Array<[number, number, number, number]>): Float64Array {
  const array = new Float64Array(requests.length * constants.DESCRIPTOR_FIELDS)
  requests.forEach(([offset, length, bufferIndex, bufferOffset], index) => {
    const base = index * constants.DESCRIPTOR_FIELDS
    array[base + constants.DESCRIPTOR_OFFSET] = offset
    array[base + constants.DESCRIPTOR_LENGTH] = length
    array[base + constants.DESCRIPTOR_BUFFER_INDEX] = bufferIndex
    array[base + constants.DESCRIPTOR_BUFFER_OFFSET] = bufferOffset
  })
  return array
}

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (condition()) return
    collectGarbage()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting until ${what}`)
}

function canOpen(image: string): boolean {
  try {
    const opened = binding.open(image, { readOnly: true, create: false, buffered: false, ioPath: 'threadpool' })
    void binding.close(opened.handle)
    return true
  } catch (error) {
    if (isNativeError(error) && error.kind === constants.ERROR_KINDS.LOCKED) return false
    throw error
  }
}

test('the constants describe a consistent descriptor layout and distinct error kinds', (t) => {
  const fields = [constants.DESCRIPTOR_OFFSET, constants.DESCRIPTOR_LENGTH, constants.DESCRIPTOR_BUFFER_INDEX, constants.DESCRIPTOR_BUFFER_OFFSET]
  t.is(new Set(fields).size, fields.length)
  t.true(fields.every((field) => field >= 0 && field < constants.DESCRIPTOR_FIELDS))
  const kinds = Object.values(constants.ERROR_KINDS)
  t.is(new Set(kinds).size, kinds.length)
  t.true(constants.QUEUE_DEPTH >= 32 && constants.MAX_PENDING_BATCHES >= constants.QUEUE_DEPTH / 2)
  t.is(constants.BLOCK_SIZE % constants.BUFFER_ALIGNMENT, 0)
})

test('allocate gives zero-filled buffers of the size asked, and refuses impossible sizes', (t) => {
  const first = binding.allocate(3 * constants.BUFFER_ALIGNMENT + 100)
  t.is(first.length, 3 * constants.BUFFER_ALIGNMENT + 100)
  t.true(first.every((byte) => byte === 0))
  first.fill(7)
  t.true(binding.allocate(100).every((byte) => byte === 0), 'a new buffer never shares memory with an old one')
  t.is(binding.allocate(0).length, 0)
  for (const bad of [-1, 1.5, Number.NaN, 2 ** 40]) t.throws(() => binding.allocate(bad), { instanceOf: RangeError })
})

test('a handle must be one from open(): anything else is a TypeError', (t) => {
  const buffer = binding.allocate(4096)
  for (const bad of [undefined, 1, {}, 'handle']) {
    t.throws(() => binding.read(bad as never, descriptors([0, 4096, 0, 0]), 1, [buffer]), { instanceOf: TypeError })
  }
})

for (const ioPath of IO_PATHS) {
  testOn(ioPath)(`${ioPath}: malformed descriptors are refused before any I/O`, async (t) => {
    const opened = openImage(path.join(scratchDirectory(t), 'volume.img'), ioPath)
    t.teardown(() => binding.close(opened.handle))
    const buffer = binding.allocate(8192)
    t.throws(() => binding.read(opened.handle, descriptors([0, 4096, 0, 0]), 2, [buffer]), { instanceOf: TypeError })
    for (const notOurs of [buffer.buffer as never, Buffer.alloc(8192), new Uint16Array(buffer.buffer) as never]) {
      const error = t.throws(() => binding.read(opened.handle, descriptors([0, 4096, 0, 0]), 1, [notOurs]))
      t.true(isNativeError(error) && error.kind === constants.ERROR_KINDS.INVALID_ARGUMENT)
      t.regex((error as Error).message, /does not come from allocate\(\)/)
    }
    const cases: Array<[string, Float64Array]> = [
      ['fractional offset', descriptors([0.5, 4096, 0, 0])],
      ['negative length', descriptors([0, -4096, 0, 0])],
      ['buffer index past the buffers', descriptors([0, 4096, 1, 0])],
      ['length over the maximum', descriptors([0, constants.MAX_REQUEST_BYTES * 2, 0, 0])],
      ['buffer offset past the buffer', descriptors([0, 4096, 0, 8192])],
    ]
    for (const [name, array] of cases) {
      const error = t.throws(() => binding.write(opened.handle, array, 1, [buffer]), undefined, name)
      t.true(isNativeError(error) && error.kind === constants.ERROR_KINDS.INVALID_ARGUMENT, name)
    }
  })

  testOn(ioPath)(`${ioPath}: the shim accepts MAX_PENDING_BATCHES batches and refuses one more`, async (t) => {
    const opened = openImage(path.join(scratchDirectory(t), 'volume.img'), ioPath)
    const buffer = binding.allocate(4096)
    const one = descriptors([0, 4096, 0, 0])
    const accepted = Array.from({ length: constants.MAX_PENDING_BATCHES }, () => binding.read(opened.handle, one, 1, [buffer]))
    const error = t.throws(() => binding.read(opened.handle, one, 1, [buffer]))
    t.true(isNativeError(error) && error.kind === constants.ERROR_KINDS.INVALID_ARGUMENT)
    t.regex((error as Error).message, /already pending/)
    await Promise.all(accepted)
    await t.notThrowsAsync(binding.read(opened.handle, one, 1, [buffer]), 'settled batches free their slots')
    await binding.close(opened.handle)
  })

  testOn(ioPath)(`${ioPath}: close() resolves only after a batch deeper than the queue has landed`, async (t) => {
    const image = path.join(scratchDirectory(t), 'volume.img')
    const opened = openImage(image, ioPath, 4 * MIB)
    const count = constants.QUEUE_DEPTH * 4
    const buffer = binding.allocate(count * 4096)
    fillPattern(buffer, 13)
    const requests = Array.from({ length: count }, (_, index): [number, number, number, number] => [index * 4096, 4096, 0, index * 4096])
    let written = false
    const write = binding.write(opened.handle, descriptors(...requests), count, [buffer]).then(() => (written = true))
    await binding.close(opened.handle)
    t.true(written, 'the batch settled before close resolved')
    await write
    const closed = t.throws(() => binding.read(opened.handle, descriptors([0, 4096, 0, 0]), 1, [buffer]))
    t.true(isNativeError(closed) && closed.kind === constants.ERROR_KINDS.CLOSED)
    t.is(fs.readFileSync(image).subarray(0, count * 4096).compare(buffer), 0, 'the bytes are in the file')
  })

  testOn(ioPath)(`${ioPath}: readEach reports every request once, only after the call returns, then resolves`, async (t) => {
    const image = path.join(scratchDirectory(t), 'volume.img')
    const opened = openImage(image, ioPath)
    t.teardown(() => binding.close(opened.handle))
    const source = binding.allocate(16 * 4096)
    fillPattern(source, 23)
    await binding.write(opened.handle, descriptors([0, 16 * 4096, 0, 0]), 1, [source])
    const target = binding.allocate(16 * 4096)
    const order = [5, 0, 15, 9, 3]
    const reports: Array<[number, unknown]> = []
    let returned = false
    let reportedEarly = false
    const done = binding.readEach(
      opened.handle,
      descriptors(...order.map((block, index): [number, number, number, number] => [block * 4096, 4096, 0, index * 4096])),
      order.length,
      [target],
      (index, error) => {
        if (!returned) reportedEarly = true
        reports.push([index, error])
      },
    )
    returned = true
    await done
    t.false(reportedEarly, 'no report comes while the call runs')
    t.deepEqual(reports.map(([index]) => index).sort(), [0, 1, 2, 3, 4], 'each request is reported once')
    t.true(reports.every(([, error]) => error === undefined))
    order.forEach((block, index) => {
      t.is(target.subarray(index * 4096, (index + 1) * 4096).compare(source.subarray(block * 4096, (block + 1) * 4096)), 0, `request ${index}`)
    })
  })

  testOn(ioPath)(`${ioPath}: a failed request of a readEach batch fails alone; the others are read`, async (t) => {
    const image = path.join(scratchDirectory(t), 'volume.img')
    const opened = openImage(image, ioPath)
    t.teardown(() => binding.close(opened.handle))
    const source = binding.allocate(8 * 4096)
    fillPattern(source, 29)
    await binding.write(opened.handle, descriptors([0, 8 * 4096, 0, 0]), 1, [source])
    // Another program shortens the file: reads past its end find nothing (END_OF_FILE).
    fs.truncateSync(image, 8 * 4096)
    const target = binding.allocate(4 * 4096)
    const errors: unknown[] = new Array(4)
    const reported: number[] = []
    await binding.readEach(opened.handle, descriptors([0, 4096, 0, 0], [64 * 4096, 4096, 0, 4096], [4096, 4096, 0, 2 * 4096], [7 * 4096, 4096, 0, 3 * 4096]), 4, [target], (index, error) => {
      reported.push(index)
      errors[index] = error
    })
    t.is(reported.length, 4)
    t.true(isNativeError(errors[1]) && (errors[1] as { kind: string }).kind === constants.ERROR_KINDS.END_OF_FILE, 'the read past the end failed')
    t.regex((errors[1] as Error).message, new RegExp(`\\[${64 * 4096}, ${65 * 4096}\\)`), 'its message names its range')
    for (const index of [0, 2, 3]) t.is(errors[index], undefined, `request ${index} succeeded`)
    for (const [index, block] of [[0, 0], [2, 1], [3, 7]] as const) {
      t.is(target.subarray(index * 4096, (index + 1) * 4096).compare(source.subarray(block * 4096, (block + 1) * 4096)), 0)
    }
  })

  testOn(ioPath)(`${ioPath}: a handle dropped with I/O in flight stays alive until it lands, then is collected and unlocks`, async (t) => {
    const image = path.join(scratchDirectory(t), 'volume.img')
    const buffer = binding.allocate(64 * 4096)
    fillPattern(buffer, 17)
    const write = (() => {
      const opened = openImage(image, ioPath)
      const requests = Array.from({ length: 64 }, (_, index): [number, number, number, number] => [index * 4096, 4096, 0, index * 4096])
      return binding.write(opened.handle, descriptors(...requests), 64, [buffer])
    })()
    collectGarbage()
    collectGarbage()
    await write
    t.is(fs.readFileSync(image).subarray(0, 64 * 4096).compare(buffer), 0)
    await waitUntil(() => canOpen(image), 'the collected handle has released its lock')
    t.pass()
  })
}

test('a worker thread that ends with volumes open, busy or idle, releases them (environment teardown)', async (t) => {
  const directory = scratchDirectory(t)
  const nativeModule = path.join(__dirname, '..', 'src', 'native')
  const source = `
    const { binding, constants } = require(${JSON.stringify(nativeModule)})
    const { workerData } = require('node:worker_threads')
    const buffer = binding.allocate(1 << 20)
    const descriptor = new Float64Array(constants.DESCRIPTOR_FIELDS)
    descriptor[constants.DESCRIPTOR_LENGTH] = 1 << 20
    for (const [index, ioPath] of ['io_uring', 'threadpool', 'threadpool'].entries()) {
      const opened = binding.open(workerData.directory + '/volume' + index + '.img', { readOnly: false, create: true, buffered: false, ioPath })
      binding.grow(opened.handle, 1 << 24)
      if (index < 2) for (let n = 0; n < 16; n++) { descriptor[constants.DESCRIPTOR_OFFSET] = n << 20; binding.write(opened.handle, descriptor, 1, [buffer]) }
      binding.sync(opened.handle)
    }
    if (workerData.exit === 'now') process.exit(3)
    if (workerData.exit === 'from a completion') {
      const opened = binding.open(workerData.directory + '/volume3.img', { readOnly: false, create: true, buffered: false, ioPath: 'io_uring' })
      binding.grow(opened.handle, 1 << 24)
      for (let n = 0; n < 64; n++) {
        descriptor[constants.DESCRIPTOR_OFFSET] = (n % 16) << 20
        binding.read(opened.handle, descriptor, 1, [buffer]).then(() => process.exit(3))
      }
    }`
  for (const exit of ['now', 'from a completion', 'never']) {
    const worker = new Worker(source, { eval: true, workerData: { directory, exit } })
    const code = await new Promise<number>((resolve, reject) => {
      worker.once('error', reject)
      worker.once('exit', resolve)
    })
    t.is(code, exit === 'never' ? 0 : 3)
    const volumes = exit === 'from a completion' ? 4 : 3
    for (let index = 0; index < volumes; index++) t.true(canOpen(path.join(directory, `volume${index}.img`)), `volume ${index} unlocked (exit: ${exit})`)
  }
})

test('a process that exits with I/O in flight exits cleanly', async (t) => {
  const image = path.join(scratchDirectory(t), 'volume.img')
  const nativeModule = path.join(__dirname, '..', 'src', 'native')
  const script = `
    const { binding, constants } = require(${JSON.stringify(nativeModule)})
    const buffer = binding.allocate(1 << 20)
    const descriptor = new Float64Array(constants.DESCRIPTOR_FIELDS)
    descriptor[constants.DESCRIPTOR_LENGTH] = 1 << 20
    for (const ioPath of ['io_uring', 'threadpool']) {
      const opened = binding.open(${JSON.stringify(image)} + ioPath, { readOnly: false, create: true, buffered: false, ioPath })
      binding.grow(opened.handle, 1 << 24)
      for (let n = 0; n < 16; n++) { descriptor[constants.DESCRIPTOR_OFFSET] = n << 20; binding.write(opened.handle, descriptor, 1, [buffer]) }
    }
    setImmediate(() => process.exit(0))`
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, ['-e', script], (error, _stdout, stderrText) => resolve({ code: error ? Number(error.code) : 0, stderr: stderrText }))
  })
  t.is(stderr, '')
  t.is(code, 0)
})

test('the buffers of a batch stay alive while it is in flight, even when the caller drops them', async (t) => {
  const opened = openImage(path.join(scratchDirectory(t), 'volume.img'), 'auto', 8 * MIB)
  t.teardown(() => binding.close(opened.handle))
  const reads: Array<Promise<void>> = []
  for (let round = 0; round < 8; round++) reads.push(binding.read(opened.handle, descriptors([0, MIB, 0, 0]), 1, [binding.allocate(MIB)]))
  collectGarbage()
  collectGarbage()
  await Promise.all(reads)
  const buffer = binding.allocate(MIB)
  fillPattern(buffer, 19)
  await binding.write(opened.handle, descriptors([MIB, MIB, 0, 0]), 1, [buffer])
  const out = binding.allocate(MIB)
  await binding.read(opened.handle, descriptors([MIB, MIB, 0, 0]), 1, [out])
  t.true(holdsPattern(out, 19))
})
