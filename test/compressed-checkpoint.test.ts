// A checkpoint is written to its slot through bounded buffers, a piece at a
// time, and the bytes that land are exactly those encodeCheckpoint makes of
// the whole checkpoint at once (docs/format.md 3.3): the format does not
// change, and stores made before open.
import test from 'ava'
import { DelegatingVolume, MemoryVolume, seededRandom, type VolumeRequest } from '../src/device'
import { CHECKPOINT_WRITE_BYTES, CheckpointSlotWriter, checkpointTablesFrom } from '../src/device/compressed/checkpoint'
import {
  PageState,
  checkpointBytes,
  checkpointSlotOffset,
  checkpointTables,
  decodeCheckpoint,
  encodeCheckpoint,
  encodeCheckpointPiece,
  planGeometry,
  type Checkpoint,
  type Geometry,
} from '../src/device/compressed/format'

/** A store of 2M blocks over a 64 GiB data area of 1 MiB segments: 65,536 segments, 1,969 map pages, a slot of ~535 KB. */
function largeGeometry(): Geometry {
  const geometry = planGeometry(
    {
      blockCount: 2_000_000,
      segmentBytes: 1024 * 1024,
      dataBytes: 64 * 1024 ** 3,
      volumeBytesLimit: Number.POSITIVE_INFINITY,
      storeId: { low: 0x1234_5678, high: 0x9abc_def0 },
      createdAtMs: 1_700_000_000_000,
    },
    12,
  )!
  return geometry
}

/** A checkpoint with state in its first `usedSegments` segments and on a random third of its pages. */
function randomCheckpoint(geometry: Geometry, seed: number, usedSegments: number): Checkpoint {
  const random = seededRandom(seed)
  const u32 = () => Math.floor(random() * 0x1_0000_0000)
  const checkpoint: Checkpoint = {
    generation: 1000 + seed,
    headSegment: 3,
    headOffset: 8192,
    successorSegment: 7,
    lastSequence: 123_456_789,
    lastChunkCrc: u32(),
    nextIncarnation: 5000,
    mappedBlocks: 1_500_000,
    writerRecordBytes: 2 ** 40 + 17,
    cleanerRecordBytes: 2 ** 35 + 3,
    liveBytes: new Uint32Array(geometry.segmentCount),
    incarnations: new Uint32Array(geometry.segmentCount),
    pageStates: new Uint8Array(geometry.mapPageCount),
    pageGenerations: new Uint32Array(geometry.mapPageCount),
  }
  for (let segment = 0; segment < usedSegments; segment++) {
    checkpoint.liveBytes[segment] = u32()
    checkpoint.incarnations[segment] = u32()
  }
  for (let page = 0; page < geometry.mapPageCount; page++) {
    if (random() < 0.66) continue
    checkpoint.pageStates[page] = random() < 0.5 ? PageState.COPY_0 : PageState.COPY_1
    checkpoint.pageGenerations[page] = 1 + Math.floor(random() * 0xffff_fffe)
  }
  return checkpoint
}

/** Records every write a volume sees. */
class RecordingVolume extends DelegatingVolume<MemoryVolume> {
  readonly writes: Array<{ offset: number; length: number }> = []
  override write(requests: readonly VolumeRequest[]): Promise<void> {
    for (const request of requests) this.writes.push({ offset: request.offset, length: request.length })
    return super.write(requests)
  }
}

test('pieces of a checkpoint cut anywhere put together are encodeCheckpoint bytes, the CRC field zero', (t) => {
  const geometry = largeGeometry()
  const checkpoint = randomCheckpoint(geometry, 1, 3000)
  const total = checkpointBytes(geometry)
  const whole = Buffer.alloc(total)
  encodeCheckpoint(geometry, checkpoint, whole)
  whole.writeUInt32LE(0, 12)
  const random = seededRandom(2)
  const pieces = Buffer.alloc(total + 4096, 0xee)
  for (let from = 0; from < total + 100; ) {
    // Odd lengths, so entries straddle the cuts.
    const length = Math.min(1 + Math.floor(random() * 40_000), total + 100 - from)
    encodeCheckpointPiece(geometry, checkpoint, checkpointTables(checkpoint), from, length, pieces, from)
    from += length
  }
  t.true(pieces.subarray(0, total).equals(whole))
  t.true(pieces.subarray(total, total + 100).every((byte) => byte === 0), 'bytes past totalBytes are zeros')
})

for (const sectorSize of [512, 4096]) {
  test(`the slot writer lands encodeCheckpoint's bytes through bounded buffers, first sector last (${sectorSize}-byte sectors)`, async (t) => {
    const geometry = largeGeometry()
    t.is(geometry.segmentCount, 65_536)
    t.true(geometry.checkpointSlotBytes > 8 * CHECKPOINT_WRITE_BYTES, `the slot (${geometry.checkpointSlotBytes} bytes) takes many writes`)
    const volume = new RecordingVolume(new MemoryVolume({ size: geometry.mapOffset, sectorSize }))
    const writer = new CheckpointSlotWriter(geometry, volume)
    t.is(writer.memoryBytes(), sectorSize + CHECKPOINT_WRITE_BYTES)
    const checkpoint = randomCheckpoint(geometry, sectorSize, 2500)
    const written = await writer.write(checkpoint, checkpointTables(checkpoint))
    const total = checkpointBytes(geometry)
    t.is(written, total)
    const slot = checkpointSlotOffset(geometry, checkpoint.generation)
    const slotLength = Math.ceil(total / sectorSize) * sectorSize
    const landed = volume.allocate(geometry.checkpointSlotBytes)
    await volume.read([{ offset: slot, length: geometry.checkpointSlotBytes, buffer: landed, bufferOffset: 0 }])
    const expected = Buffer.alloc(geometry.checkpointSlotBytes)
    encodeCheckpoint(geometry, checkpoint, expected)
    t.true(landed.equals(expected), 'byte for byte what encodeCheckpoint makes, zeros after it')
    t.deepEqual(decodeCheckpoint(geometry, landed), checkpoint)
    // Every write within the slot, none larger than the buffer, together covering it once; the first sector last.
    t.true(volume.writes.length > 8)
    t.true(volume.writes.every((write) => write.length <= CHECKPOINT_WRITE_BYTES && write.offset >= slot && write.offset + write.length <= slot + slotLength))
    t.is(
      volume.writes.reduce((sum, write) => sum + write.length, 0),
      slotLength,
    )
    t.deepEqual(volume.writes[volume.writes.length - 1], { offset: slot, length: sectorSize })
  })
}

test('a checkpoint of a table that stops at its high-water mark records zeros for every segment above it', async (t) => {
  const geometry = largeGeometry()
  const volume = new MemoryVolume({ size: geometry.mapOffset })
  const full = randomCheckpoint(geometry, 9, 1500)
  const snapshot = { count: 2048, liveBytes: full.liveBytes.slice(0, 2048), incarnations: full.incarnations.slice(0, 2048) }
  const tables = checkpointTablesFrom(snapshot, { pageState: (page) => full.pageStates[page]!, pageGeneration: (page) => full.pageGenerations[page]! })
  await new CheckpointSlotWriter(geometry, volume).write(full, tables)
  const landed = volume.allocate(geometry.checkpointSlotBytes)
  await volume.read([{ offset: checkpointSlotOffset(geometry, full.generation), length: geometry.checkpointSlotBytes, buffer: landed, bufferOffset: 0 }])
  t.deepEqual(decodeCheckpoint(geometry, landed), full)
})

test('a slot of one sector is written whole, by the first-piece buffer alone', async (t) => {
  const geometry = planGeometry(
    { blockCount: 1000, segmentBytes: 64 * 1024, dataBytes: 20 * 64 * 1024, volumeBytesLimit: Number.POSITIVE_INFINITY, storeId: { low: 1, high: 2 }, createdAtMs: 0 },
    12,
  )!
  t.is(geometry.checkpointSlotBytes, 4096)
  const volume = new RecordingVolume(new MemoryVolume({ size: geometry.mapOffset, sectorSize: 4096 }))
  const writer = new CheckpointSlotWriter(geometry, volume)
  t.is(writer.memoryBytes(), 4096, 'never more than the slot')
  const checkpoint = randomCheckpoint(geometry, 3, geometry.segmentCount)
  checkpoint.headSegment = 0
  checkpoint.successorSegment = 1
  checkpoint.mappedBlocks = 900
  await writer.write(checkpoint, checkpointTables(checkpoint))
  t.deepEqual(volume.writes, [{ offset: checkpointSlotOffset(geometry, checkpoint.generation), length: 4096 }])
  const landed = volume.allocate(4096)
  await volume.read([{ offset: checkpointSlotOffset(geometry, checkpoint.generation), length: 4096, buffer: landed, bufferOffset: 0 }])
  t.deepEqual(decodeCheckpoint(geometry, landed), checkpoint)
})
