// Corruption fuzzing: closed stores in both modes, damaged on purpose by
// seed (bit flips, overwritten ranges, zeroed, swapped and misdirected
// blocks, truncation) in every structure: superblocks, journals, log,
// buckets, overflow chains, value extents, bitmap; lz4 header, checkpoints,
// map pages, segments, and engine blocks damaged inside the compressed
// device. Every open and read either returns the right data or fails with
// CUBBY_CORRUPT / CUBBY_NOT_A_STORE / CUBBY_VERSION, never a wrong value, an
// untyped error or a hang; checkStore reports every damage it can see;
// salvage copies only right pairs (helpers/fuzz.ts has the rules and the
// one documented exception).
//
// Long form: FUZZ_STORES=<n per mode> (default 30), FUZZ_SEED=<seed>;
// `npm run soak` runs thousands.
import test from 'ava'
import { checkVolume } from '../src/check'
import { CompressedBlockDevice, MemoryVolume } from '../src/device'
import { mapPageOffset } from '../src/device/compressed/format'
import { ErrorCode } from '../src/errors'
import { makeBlock, readBlocks, writeBlocks } from './helpers/compressed'
import { buildFuzzStore, damage, judge } from './helpers/fuzz'
import type { Compression } from './helpers/power'

const STORES = Number(process.env.FUZZ_STORES ?? 30)
const SEED = Number(process.env.FUZZ_SEED ?? 5)

for (const compression of ['none', 'lz4'] as Compression[]) {
  test.serial(`${STORES} damaged stores: every read is right or a typed refusal, and checkStore reports the damage (${compression})`, async (t) => {
    const store = await buildFuzzStore(compression, SEED)
    const failures: string[] = []
    const figures = { opened: 0, refusedCalls: 0, reported: 0, salvaged: 0 }
    for (let trial = 0; trial < STORES; trial++) {
      const damaged = await damage(store, SEED * 100_003 + trial)
      const verdict = await judge(store, damaged.backing, damaged.damage)
      if (verdict.failure !== undefined) failures.push(`trial ${trial}: ${verdict.failure}`)
      if (verdict.opened) figures.opened++
      figures.refusedCalls += verdict.refused
      if (verdict.check?.healthy === false) figures.reported++
      figures.salvaged += verdict.salvaged
    }
    t.deepEqual(failures.slice(0, 6), [])
    t.log(`${STORES} damaged stores: ${figures.opened} opened, ${figures.reported} reported by checkStore, ${figures.refusedCalls} calls refused with a typed error, ${figures.salvaged} pairs salvaged`)
  })
}

test('regression: a map page whose current copy is replaced by its older copy is CUBBY_CORRUPT, not a stale map returning old data', async (t) => {
  const memory = new MemoryVolume({ size: 0 })
  const device = await CompressedBlockDevice.create(memory, { blocks: 4096, segmentBytes: 64 * 1024 })
  // Two checkpoints that each change page 0: its two copies hold the old and the new map.
  await writeBlocks(device, [{ lba: 7, data: makeBlock('bucket', 1) }])
  await device.checkpointNow()
  await writeBlocks(device, [{ lba: 7, data: makeBlock('bucket', 2) }])
  await device.checkpointNow()
  const current = device.map.pageState(0) - 1
  await device.close()
  const copies = [0, 1].map((copy) => {
    const bytes = Buffer.alloc(4096)
    memory.backing.read(mapPageOffset(device.geometry, 0, copy), bytes, 0, 4096)
    return bytes
  })
  // A lost write of the current copy leaves the older one in its place.
  memory.backing.write(mapPageOffset(device.geometry, 0, current), copies[1 - current]!, 0, 4096)
  const reopened = await CompressedBlockDevice.open(new MemoryVolume({}, memory.backing))
  const error = await t.throwsAsync(readBlocks(reopened, [7]))
  t.is((error as { code?: string }).code, ErrorCode.CORRUPT)
  t.regex((error as Error).message, /stale or misdirected/)
  await reopened.close()
  const report = await checkVolume(new MemoryVolume({ readOnly: true }, memory.backing))
  t.false(report.healthy)
  t.true(report.problems.some((problem) => problem.structure === 'lz4-map'))
})
