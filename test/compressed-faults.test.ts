// Injected I/O errors (FaultyVolume.failNext) on the compressed device:
// every failure is a typed CUBBY_IO, a failed write, sync or discard makes the
// device refuse writes until reopened, reads keep working, and reopening
// finds every block covered by a completed flush.
import test from 'ava'
import { BLOCK_SIZE, CompressedBlockDevice, FaultyVolume, MemoryVolume, type FaultOperation } from '../src/device'
import { ErrorCode, isCubbyError } from '../src/errors'
import { firstMismatch, makeBlock, readBlocks, writeBlocks } from './helpers/compressed'
import { CrashModel } from './helpers/compressed-crash'

const BLOCKS = 20_000
const SETTINGS = { mapCacheBytes: 64 * 1024, writeBufferBytes: 16 * 1024, checkpointLogBytes: 1024 * 1024, reserveSegments: 4 }

async function freshStore(): Promise<MemoryVolume> {
  const memory = new MemoryVolume({ size: 0 })
  const device = await CompressedBlockDevice.create(memory, { blocks: BLOCKS, segmentBytes: 64 * 1024, ...SETTINGS })
  await device.close()
  return memory
}

/** Writes rounds of blocks with a flush after each, recording them in `model`; returns the first error. */
async function workload(device: CompressedBlockDevice, model: CrashModel): Promise<unknown> {
  try {
    for (let round = 0; round < 40; round++) {
      const writes = Array.from({ length: 12 }, (_, index) => ({
        lba: ((round * 37 + index * 11) % 300) + (index % 3) * 6000,
        data: makeBlock(index % 4 === 0 ? 'random' : 'bucket', round * 100 + index),
      }))
      for (const { lba, data } of writes) model.wrote(lba, data)
      await writeBlocks(device, writes)
      await device.flush()
      model.flushed()
    }
    return undefined
  } catch (error) {
    return error
  }
}

for (const operation of ['write', 'sync', 'discard'] as FaultOperation[]) {
  test(`an EIO on the nth ${operation}, for n = 1, 2, ...: typed error, writes refused, nothing flushed lost`, async (t) => {
    let failures = 0
    for (let nth = 1; nth <= 40; nth += operation === 'discard' ? 1 : 3) {
      const memory = await freshStore()
      const faulty = new FaultyVolume(new MemoryVolume({}, memory.backing))
      const device = await CompressedBlockDevice.open(faulty, SETTINGS)
      faulty.failNext({ operation, nth })
      const model = new CrashModel()
      let error = await workload(device, model)
      if (error !== undefined) {
        failures++
        t.true(isCubbyError(error, ErrorCode.IO), `${operation} #${nth}: ${String(error)}`)
        const refused = await t.throwsAsync(writeBlocks(device, [{ lba: 1, data: makeBlock('bucket', 1) }]))
        t.is((refused as { code?: string }).code, ErrorCode.IO)
        t.is(((await t.throwsAsync(device.flush())) as { code?: string }).code, ErrorCode.IO)
        t.is(((await t.throwsAsync(device.trim(0, 1))) as { code?: string }).code, ErrorCode.IO)
        // Reads keep working on the failed device.
        faulty.clearFaults()
        t.is(await model.check(device), undefined, `${operation} #${nth}: reads of the failed device`)
      }
      // The fault may also hit the final checkpoint of close(), which then rejects.
      error = await device.close().then(
        () => undefined,
        (closeError: unknown) => closeError,
      )
      if (error !== undefined) {
        failures++
        t.true(isCubbyError(error, ErrorCode.IO))
      }
      const reopened = await CompressedBlockDevice.open(new MemoryVolume({}, memory.backing), SETTINGS)
      t.is(await model.check(reopened), undefined, `${operation} #${nth}: after reopening`)
      await reopened.close()
    }
    t.true(failures > 3, `${failures} runs hit the injected error`)
  })
}

test('an EIO on a read fails that read with errno, and the next read works; writes are not refused', async (t) => {
  const memory = await freshStore()
  const faulty = new FaultyVolume(new MemoryVolume({}, memory.backing))
  const device = await CompressedBlockDevice.open(faulty, SETTINGS)
  await writeBlocks(device, [{ lba: 10, data: makeBlock('bucket', 10) }, { lba: 9000, data: makeBlock('bucket', 11) }])
  await device.flush()
  faulty.failNext({ operation: 'read', nth: 1, errno: 'EBADMSG' })
  const error = await t.throwsAsync(readBlocks(device, [10]))
  t.is((error as { code?: string }).code, ErrorCode.IO)
  t.is((error as { errno?: string }).errno, 'EBADMSG')
  t.deepEqual((await readBlocks(device, [10]))[0], makeBlock('bucket', 10))
  await writeBlocks(device, [{ lba: 11, data: makeBlock('text', 11) }])
  await device.flush()
  await device.close()
  // A map page load that fails is a typed error too, and the page loads later.
  const again = new FaultyVolume(new MemoryVolume({}, memory.backing))
  const reopened = await CompressedBlockDevice.open(again, SETTINGS)
  again.failNext({ operation: 'read', nth: 1 })
  const pageError = await t.throwsAsync(readBlocks(reopened, [9000]))
  t.is((pageError as { code?: string }).code, ErrorCode.IO)
  t.deepEqual((await readBlocks(reopened, [9000]))[0], makeBlock('bucket', 11))
  t.deepEqual((await readBlocks(reopened, [11]))[0], makeBlock('text', 11))
  await reopened.close()
})

test('a failed final checkpoint makes close() reject, and the store still opens with everything flushed', async (t) => {
  const memory = await freshStore()
  const faulty = new FaultyVolume(new MemoryVolume({}, memory.backing))
  const device = await CompressedBlockDevice.open(faulty, SETTINGS)
  const writes = Array.from({ length: 50 }, (_, index) => ({ lba: index * 3, data: makeBlock('bucket', index) }))
  await writeBlocks(device, writes)
  await device.flush()
  faulty.failNext({ operation: 'sync', nth: 1, persistent: true })
  const error = await t.throwsAsync(device.close())
  t.is((error as { code?: string }).code, ErrorCode.IO)
  await t.notThrowsAsync(device.close(), 'a second close() resolves')
  const reopened = await CompressedBlockDevice.open(new MemoryVolume({}, memory.backing), SETTINGS)
  t.is(await firstMismatch(reopened, new Map(writes.map(({ lba, data }) => [lba, data])), 200), -1)
  t.is(reopened.stats().logicalBytes, 50 * BLOCK_SIZE)
  await reopened.close()
})
