// Corruption of a closed (or crashed) compressed store, one named test per
// structure: header, checkpoint slots, map page copies, records, flushed log
// chunks. Every damage is reported as CUBBY_CORRUPT / CUBBY_VERSION /
// CUBBY_NOT_A_STORE, or survived through a redundant copy; never returned as
// data.
import test from 'ava'
import { BLOCK_SIZE, CompressedBlockDevice, MemoryVolume, probeVolume, type MemoryBacking } from '../src/device'
import { entryAddress, mapPageOffset, checkpointSlotOffset } from '../src/device/compressed/format'
import { ErrorCode } from '../src/errors'
import { firstMismatch, makeBlock, readBlocks, writeBlocks } from './helpers/compressed'

const BLOCKS = 5000

interface Store {
  backing: MemoryBacking
  model: Map<number, Buffer>
  device: CompressedBlockDevice
}

/** A closed store holding a few hundred blocks on several map pages, checkpointed twice. */
async function closedStore(): Promise<Store> {
  const memory = new MemoryVolume({ size: 0 })
  const device = await CompressedBlockDevice.create(memory, { blocks: BLOCKS, segmentBytes: 64 * 1024 })
  const model = new Map<number, Buffer>()
  for (let round = 0; round < 2; round++) {
    const writes = Array.from({ length: 150 }, (_, index) => ({ lba: (index * 31 + round) % BLOCKS, data: makeBlock('bucket', round * 1000 + index) }))
    await writeBlocks(device, writes)
    for (const { lba, data } of writes) model.set(lba, data)
    await device.checkpointNow()
  }
  await device.close()
  return { backing: memory.backing, model, device }
}

function flip(backing: MemoryBacking, offset: number): void {
  const byte = Buffer.alloc(1)
  backing.read(offset, byte, 0, 1)
  byte[0] = byte[0]! ^ 0x5a
  backing.write(offset, byte, 0, 1)
}

async function probe(backing: MemoryBacking): Promise<string> {
  const volume = new MemoryVolume({}, backing)
  try {
    return await probeVolume(volume)
  } finally {
    await volume.close()
  }
}

async function openError(backing: MemoryBacking): Promise<string | undefined> {
  try {
    const device = await CompressedBlockDevice.open(new MemoryVolume({}, backing))
    await device.close()
    return undefined
  } catch (error) {
    return (error as { code?: string }).code
  }
}

test('header: a flipped geometry byte is CUBBY_CORRUPT', async (t) => {
  const { backing } = await closedStore()
  flip(backing, 36)
  t.is(await probe(backing), 'lz4')
  t.is(await openError(backing), ErrorCode.CORRUPT)
})

test('header: an unknown format version is CUBBY_VERSION', async (t) => {
  const { backing } = await closedStore()
  backing.write(8, Buffer.from([9, 0]), 0, 2)
  t.is(await openError(backing), ErrorCode.VERSION)
})

test('header: without the magic the volume is not a compressed store', async (t) => {
  const { backing } = await closedStore()
  backing.write(0, Buffer.alloc(8), 0, 8)
  t.is(await probe(backing), 'other')
  t.is(await openError(backing), ErrorCode.NOT_A_STORE)
})

test('checkpoint: a damaged newest slot falls back to the older one and loses nothing', async (t) => {
  const { backing, model, device } = await closedStore()
  flip(backing, checkpointSlotOffset(device.geometry, device.stats().checkpoints + 1) + 200)
  const reopened = await CompressedBlockDevice.open(new MemoryVolume({}, backing))
  t.is(await firstMismatch(reopened, model, BLOCKS), -1)
  t.is(reopened.stats().logicalBytes, model.size * BLOCK_SIZE)
  await reopened.close()
})

test('checkpoint: both slots damaged is CUBBY_CORRUPT', async (t) => {
  const { backing, device } = await closedStore()
  flip(backing, checkpointSlotOffset(device.geometry, 0) + 20)
  flip(backing, checkpointSlotOffset(device.geometry, 1) + 20)
  t.is(await openError(backing), ErrorCode.CORRUPT)
})

test('map page: a damaged current copy makes reads of its blocks CUBBY_CORRUPT, and only those', async (t) => {
  const { backing, model, device } = await closedStore()
  const copy = device.map.pageState(1) - 1
  t.true(copy >= 0, 'page 1 was written')
  flip(backing, mapPageOffset(device.geometry, 1, copy) + 500)
  const reopened = await CompressedBlockDevice.open(new MemoryVolume({}, backing))
  const onPage1 = [...model.keys()].find((lba) => lba >= 1016 && lba < 2032)!
  const error = await t.throwsAsync(readBlocks(reopened, [onPage1]))
  t.is((error as { code?: string }).code, ErrorCode.CORRUPT)
  t.regex((error as Error).message, /map page 1/)
  const onPage0 = [...model.keys()].find((lba) => lba < 1016)!
  t.deepEqual((await readBlocks(reopened, [onPage0]))[0], model.get(onPage0))
  await reopened.close()
})

test('record: a damaged record makes reads of its block CUBBY_CORRUPT, and only that block', async (t) => {
  const { backing, model, device } = await closedStore()
  const [victim, other] = [...model.keys()]
  const reopened = await CompressedBlockDevice.open(new MemoryVolume({}, backing))
  await readBlocks(reopened, [victim!])
  const address = entryAddress(reopened.map.lookup(victim!), reopened.geometry.granuleBytes)
  await reopened.close()
  flip(backing, device.geometry.dataOffset + address + 40)
  const again = await CompressedBlockDevice.open(new MemoryVolume({}, backing))
  const error = await t.throwsAsync(readBlocks(again, [victim!]))
  t.is((error as { code?: string }).code, ErrorCode.CORRUPT)
  t.regex((error as Error).message, new RegExp(`block ${victim}`))
  t.deepEqual((await readBlocks(again, [other!]))[0], model.get(other!))
  await again.close()
})

test('log: a damaged flushed chunk followed by another flushed chunk is CUBBY_CORRUPT, not a silent truncation', async (t) => {
  const memory = new MemoryVolume({ size: 0 })
  const device = await CompressedBlockDevice.create(memory, { blocks: BLOCKS, segmentBytes: 64 * 1024 })
  await writeBlocks(device, [{ lba: 1, data: makeBlock('bucket', 1) }])
  await device.flush()
  const firstChunk = device.log.headSegment * device.geometry.segmentBytes + device.log.headOffset - 4096
  await writeBlocks(device, [{ lba: 2, data: makeBlock('bucket', 2) }])
  await device.flush()
  // The process dies here: the image holds both flushed chunks and no later checkpoint.
  const image = memory.backing.clone()
  await device.close()
  const intact = await CompressedBlockDevice.open(new MemoryVolume({}, image.clone()))
  t.deepEqual((await readBlocks(intact, [1, 2])).map((block) => block.equals(makeBlock('bucket', block.readUInt32LE(0)))), [true, true])
  await intact.close()
  flip(image, device.geometry.dataOffset + firstChunk + 300)
  t.is(await openError(image), ErrorCode.CORRUPT)
})

test('log: a damaged unflushed last chunk is a torn tail: dropped, and the store opens', async (t) => {
  const memory = new MemoryVolume({ size: 0 })
  const device = await CompressedBlockDevice.create(memory, { blocks: BLOCKS, segmentBytes: 64 * 1024 })
  await writeBlocks(device, [{ lba: 1, data: makeBlock('bucket', 1) }])
  await device.flush()
  await writeBlocks(device, [{ lba: 2, data: makeBlock('bucket', 2) }])
  device.log.seal()
  await device.log.idle()
  const tail = device.log.headSegment * device.geometry.segmentBytes + device.log.headOffset - 4096
  const image = memory.backing.clone()
  await device.close()
  flip(image, device.geometry.dataOffset + tail + 300)
  const reopened = await CompressedBlockDevice.open(new MemoryVolume({}, image))
  const [one, two] = await readBlocks(reopened, [1, 2])
  t.deepEqual(one, makeBlock('bucket', 1))
  t.true(two!.every((byte) => byte === 0), 'the unflushed block is gone, not garbage')
  await reopened.close()
})
