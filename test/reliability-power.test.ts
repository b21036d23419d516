// Simulated power cuts at the flush (sync) boundaries of a recorded trace,
// in both compression modes. A seeded workload (puts, deletes, batches,
// sync and not, large values in extents, flushes, bucket splits and, in lz4
// mode, checkpoints, map-page eviction and cleaning on a small device) runs
// once while every volume write and sync is recorded (helpers/trace.ts).
// Then for sampled trace points (each sync about to complete, plus seeded
// points anywhere) the image a power cut leaves is rebuilt: synced writes
// stay; every other write is torn at 512-byte sectors, or at 4 KiB units (a
// device with 4 KiB write atomicity), or kept, dropped, or kept/dropped whole,
// by seed. Each image must recover (torn blocks repaired from the log or the
// journal, or dropped as an unflushed tail), hold every write acknowledged
// with sync: true or covered by a completed flush, equal a prefix of the
// issued writes (no batch half there, nothing out of order), and check
// healthy once closed. The check of the raw crash image, before recovery,
// may only report what the crash left and an open repairs: a torn fallback
// checkpoint slot, blocks of the last flush step that its journal rewrites.
//
// Long form: POWER_POINTS=<n per mode> (default 70), POWER_WAVES=<waves>
// (default 220), POWER_SEED=<seed>; `npm run soak` cuts at every point.
import test from 'ava'
import { FaultyVolume, MemoryVolume, type PowerCutOptions, resolvePowerCut } from '../src/device'
import { CrashImages } from './helpers/trace'
import { type Compression, cutAndRecover, onlyCrashLeftovers, pickPoints, recordTrace } from './helpers/power'

const POINTS = Number(process.env.POWER_POINTS ?? 70)
const WAVES = Number(process.env.POWER_WAVES ?? 220)
const SEED = Number(process.env.POWER_SEED ?? 11)

const CUTS: Array<Omit<PowerCutOptions, 'seed'>> = [
  { policy: 'tear', atomicBytes: 512 },
  { policy: 'tear', atomicBytes: 4096 },
]
const WHOLE_WRITE_CUTS: Array<Omit<PowerCutOptions, 'seed'>> = [{ policy: 'drop' }, { policy: 'keep' }, { policy: 'random' }]

for (const compression of ['none', 'lz4'] as Compression[]) {
  test.serial(`power cuts at sync boundaries of a recorded trace lose nothing acknowledged, and every store checks healthy (${compression})`, async (t) => {
    const trace = await recordTrace(compression, SEED, WAVES)
    const points = pickPoints(trace, POINTS, SEED)
    const failures: string[] = []
    const figures = { cuts: 0, unsynced: 0, journalRepairs: 0, replays: 0, leftovers: 0 }
    // Each pass over the points uses one kind of cut; images are rebuilt incrementally, so points go in order.
    const passes = [...CUTS, WHOLE_WRITE_CUTS[SEED % WHOLE_WRITE_CUTS.length]!]
    for (const [pass, cut] of passes.entries()) {
      const images = new CrashImages(trace.base, trace.volume)
      for (const point of points) {
        const outcome = await cutAndRecover(trace, images, point, { ...cut, seed: SEED * 1_000_003 + point * 7 + pass })
        figures.cuts++
        figures.unsynced += outcome.unsynced
        if (outcome.recovered?.stepRedone) figures.journalRepairs++
        if ((outcome.recovered?.framesReplayed ?? 0) > 0) figures.replays++
        if (outcome.failure !== undefined) failures.push(outcome.failure)
        else if (!onlyCrashLeftovers(outcome.before!)) failures.push(`${compression} point ${point}: the crash image checks with ${JSON.stringify(outcome.before!.problems.slice(0, 2))}`)
        else if (!outcome.before!.healthy) figures.leftovers++
      }
    }
    t.deepEqual(failures.slice(0, 5), [])
    t.log(
      `${trace.writes.length} writes, ${trace.volume.syncPoints().length} syncs, ${trace.volume.position} trace events; ` +
        `${figures.cuts} cuts at ${points.length} points (${figures.unsynced} unsynced writes resolved); ` +
        `recoveries that completed a step from its journal: ${figures.journalRepairs}, replayed the log: ${figures.replays}; crash images checked with a torn fallback checkpoint or torn step blocks: ${figures.leftovers}`,
    )
    t.true(figures.journalRepairs > 0, 'some cuts fell inside flush steps')
    t.true(figures.replays > 0, 'some cuts left log frames to replay')
  })
}

test('regression: a power cut with 4 KiB atomicity of a write shorter than 4 KiB keeps or loses it whole (it used to throw)', (t) => {
  const before = Buffer.alloc(1024, 1)
  const after = Buffer.alloc(1024, 2)
  for (let seed = 0; seed < 32; seed++) {
    const { units } = resolvePowerCut([{ offset: 8192 + 512, before, after }], { seed, policy: 'tear', atomicBytes: 4096 })
    const bytes = Buffer.concat(units.map((unit) => unit.bytes))
    t.true(bytes.equals(before) || bytes.equals(after), `seed ${seed}: the two sectors of one 4 KiB unit share their fate`)
  }
  const { units } = resolvePowerCut([{ offset: 4096 - 512, before, after }], { seed: 3, policy: 'tear', atomicBytes: 4096 })
  t.is(units.length, 2, 'a write across a 4 KiB boundary is two units that may tear apart')
})

test('regression: a sync covers only writes that completed before it began (FaultyVolume)', async (t) => {
  const memory = new MemoryVolume({ size: 1024 * 1024 })
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  // A volume whose writes wait at a gate: the write is in flight while the sync runs.
  const slow = Object.create(memory) as MemoryVolume
  slow.write = async (requests) => {
    await gate
    return memory.write(requests)
  }
  const faulty = new FaultyVolume(slow)
  const buffer = faulty.allocate(4096).fill(7)
  const write = faulty.write([{ offset: 0, length: 4096, buffer, bufferOffset: 0 }])
  await faulty.sync()
  release()
  await write
  t.is(faulty.unsyncedWrites(), 1, 'the write in flight during the sync is still unsynced')
  await faulty.powerCut({ seed: 1, policy: 'drop' })
  const read = memory.allocate(4096)
  await memory.read([{ offset: 0, length: 4096, buffer: read, bufferOffset: 0 }])
  t.true(read.every((byte) => byte === 0), 'the cut dropped it')
})
