// The GET path after the performance work (issue 8): reads of one batch are
// reported one by one (readEach), so a get never waits for another get's
// slower read; blocks read while writes and the cleaner move their records
// still come back whole. (The LZ4 decoder has its own tests: native-lz4.)
import test from 'ava'
import { openOnVolume } from '../src/db'
import { BLOCK_SIZE, CompressedBlockDevice, MemoryVolume, type ReportEach, type VolumeRequest } from '../src/device'
import { SMALL_STORE, memoryStore, seededRandom } from './helpers/store'

/** A memory volume whose readEach holds back the report of every batch's first request until release() is called. */
class SlowFirstReadVolume extends MemoryVolume {
  holding = false
  private held: Array<() => void> = []

  override readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
    if (!this.holding || requests.length < 2) {
      super.readEach(requests, onRequest)
      return
    }
    this.read(requests).then(
      () => {
        for (let index = 1; index < requests.length; index++) onRequest(index, undefined)
        this.held.push(() => onRequest(0, undefined))
      },
      (error: unknown) => {
        for (let index = 0; index < requests.length; index++) onRequest(index, error as never)
      },
    )
  }

  release(): void {
    for (const report of this.held.splice(0)) report()
  }
}

for (const compression of ['lz4', 'none'] as const) {
  test(`a get does not wait for a slower read of the same batch (${compression})`, async (t) => {
    const { db: first, backing } = await memoryStore({ compression })
    const keys = Array.from({ length: 64 }, (_, index) => `key-${index}`)
    await first.batch(keys.map((key) => ({ type: 'put' as const, key, value: `value of ${key}` })))
    await first.close()
    const volume = new SlowFirstReadVolume({}, backing)
    const db = await openOnVolume(volume, { ...SMALL_STORE, cacheSize: 0 })
    volume.holding = true
    // Two gets of one tick go to the device as one batch: the first one's read is held back.
    const settled: string[] = []
    const slow = db.get(keys[0]!).then((value) => settled.push(`slow ${String(value)}`))
    const quick = db.get(keys[40]!).then((value) => settled.push(`quick ${String(value)}`))
    await quick
    t.deepEqual(settled, [`quick value of ${keys[40]}`], 'the second get resolved while the first read was still held')
    volume.release()
    await slow
    t.deepEqual(settled, [`quick value of ${keys[40]}`, `slow value of ${keys[0]}`])
    volume.holding = false
    await db.close()
  })
}

test('the gets of one tick go to the device as one batch, each answered with its own value', async (t) => {
  const { db: first, backing } = await memoryStore({ compression: 'lz4' })
  const keys = Array.from({ length: 1500 }, (_, index) => `key-${index}`)
  for (let start = 0; start < keys.length; start += 500) {
    await first.batch(keys.slice(start, start + 500).map((key) => ({ type: 'put' as const, key, value: `value of ${key}` })))
  }
  await first.close()
  let batches = 0
  let blocks = 0
  const volume = new (class extends MemoryVolume {
    override readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
      batches++
      blocks += requests.length
      super.readEach(requests, onRequest)
    }
  })({}, backing)
  const db = await openOnVolume(volume, { ...SMALL_STORE, cacheSize: 0 })
  const values = await db.getMany([...keys, 'missing-1', 'missing-2'])
  t.deepEqual(values.slice(0, keys.length).map(String), keys.map((key) => `value of ${key}`))
  t.deepEqual(values.slice(keys.length), [undefined, undefined])
  const stats = db.stats()
  t.is(batches, 1, 'one batch')
  t.true(blocks <= stats.buckets + stats.overflowBlocks, `${blocks} block reads for ${stats.buckets} buckets: gets of one bucket share its read`)
  await db.close()
})

test('blocks read while writes and the cleaner move their records come back whole (readEach)', async (t) => {
  const volume = new MemoryVolume({ size: 0 })
  const device = await CompressedBlockDevice.create(volume, { blocks: 4096, segmentBytes: 64 * 1024, writeBufferBytes: 16 * 1024 })
  const random = seededRandom(7)
  const image = (lba: number, round: number): Buffer => {
    const block = device.allocate(1)
    block.writeUInt32LE(lba, 0)
    block.writeUInt32LE(round, 4)
    for (let at = 8; at < 1200; at++) block[at] = Math.floor(random() * 16)
    return block
  }
  // Fill, then overwrite most blocks so that segments become mostly dead and the cleaner moves the rest.
  const expected = new Map<number, Buffer>()
  for (let round = 0; round < 6; round++) {
    for (let lba = 0; lba < 512; lba += round === 0 ? 1 : 2) {
      const block = image(lba, round)
      await device.write([{ lba, buffer: block, bufferOffset: 0 }])
      expected.set(lba, block)
    }
    await device.flush()
    // Reads race the writes and the cleaner's copies of this round.
    const target = device.allocate(64)
    const lbas = Array.from({ length: 64 }, (_, index) => (index * 8 + round) % 512)
    const reported = await new Promise<Array<string | undefined>>((resolve) => {
      const outcomes: Array<string | undefined> = new Array(lbas.length)
      let left = lbas.length
      device.readEach(
        lbas.map((lba, index) => ({ lba, buffer: target, bufferOffset: index * BLOCK_SIZE })),
        (index, error) => {
          outcomes[index] = error?.code
          if (--left === 0) resolve(outcomes)
        },
      )
      const rewritten = image(1, 99)
      void device.write([{ lba: 1, buffer: rewritten, bufferOffset: 0 }]).then(() => expected.set(1, rewritten))
    })
    t.deepEqual(reported, lbas.map(() => undefined), `round ${round}: every block read`)
    lbas.forEach((lba, index) => {
      if (lba !== 1) t.true(target.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE).equals(expected.get(lba)!), `round ${round}: block ${lba}`)
    })
  }
  t.true(device.cleaner.segmentsCleaned > 0 || device.stats().cleaningBytesMoved > 0, 'the cleaner ran while blocks were read')
  await device.close()
})
