// Simulated power cuts (FaultyVolume): a store takes random sync writes,
// batches and flushes while its volume cuts power at a random write or sync
// batch: log commits, extent writes, journal writes, in-place bucket writes,
// superblock writes. Unsynced writes are dropped, kept, or torn at 512-byte or
// 4 KiB units. After every cut the store must open, hold every acknowledged
// write, and equal the result of some prefix of the issued writes (no batch
// half-applied, nothing out of order).
//
// POWER_CUT_TRIALS=<n> runs n trials (default 40, two cuts each).
import test from 'ava'
import { openOnVolume } from '../src/db'
import { MemoryVolume, type PowerCutOptions, seededRandom } from '../src/device'
import { CrashingVolume, type IssuedWrite, applyWrites, matchingPrefix, writeWorkload } from './helpers/crash'
import { SMALL_STORE, contents, memoryStore, reopen } from './helpers/store'

const TRIALS = Number(process.env.POWER_CUT_TRIALS ?? 40)
const POLICIES: PowerCutOptions[] = [
  { seed: 0, policy: 'drop' },
  { seed: 0, policy: 'keep' },
  { seed: 0, policy: 'random' },
  { seed: 0, policy: 'tear', atomicBytes: 512 },
  { seed: 0, policy: 'tear', atomicBytes: 4096 },
]
const OPTIONS = { ...SMALL_STORE, expectedKeys: 60, keySize: 8, valueSize: 40 }

test.serial(`power cuts during log commits and flush steps lose nothing acknowledged (${TRIALS} trials)`, async (t) => {
  let journalRepairs = 0
  let replays = 0
  let cutsDuringOpen = 0
  let acknowledged = 0
  for (let trial = 0; trial < TRIALS; trial++) {
    const random = seededRandom(1000 + trial)
    const next = writeWorkload(trial + 1, 120)
    // Trials alternate between the LZ4 compressed device and raw blocks.
    const { db: first, backing } = await memoryStore({ ...OPTIONS, compression: trial % 2 === 0 ? 'lz4' : 'none' })
    await first.close()
    let base = new Map<string, Buffer>()
    for (let round = 0; round < 2; round++) {
      const cut = { ...POLICIES[(trial + round) % POLICIES.length]!, seed: trial * 31 + round }
      const volume = new CrashingVolume(new MemoryVolume({}, backing), 1 + Math.floor(random() * 500), cut)
      const writes: IssuedWrite[] = []
      let db
      try {
        db = await openOnVolume(volume, OPTIONS)
      } catch (error) {
        t.is((error as { code?: string }).code, 'CUBBY_IO', 'an open cut short fails with CUBBY_IO')
        cutsDuringOpen++
      }
      if (db !== undefined) {
        while (!volume.crashed && writes.length < 400) {
          const wave = 1 + Math.floor(random() * 6)
          const pending: Array<Promise<void>> = []
          for (let index = 0; index < wave; index++) {
            const write: IssuedWrite = { operations: next(), status: 'pending' }
            writes.push(write)
            const promise =
              write.operations.length === 1 && write.operations[0]!.type === 'put'
                ? db.put(write.operations[0]!.key, write.operations[0]!.value)
                : write.operations.length === 1
                  ? db.del(write.operations[0]!.key)
                  : db.batch(write.operations)
            pending.push(
              promise.then(
                () => void (write.status = 'acked'),
                () => void (write.status = 'failed'),
              ),
            )
          }
          if (random() < 0.15) pending.push(db.flush().catch(() => undefined))
          await Promise.all(pending)
        }
        await volume.crashNow()
        await db.close().catch(() => undefined)
      } else {
        await volume.close()
      }
      acknowledged += writes.filter((write) => write.status === 'acked').length
      const recovered = await reopen(backing, OPTIONS)
      const stats = recovered.stats()
      if (stats.recovery.stepRedone) journalRepairs++
      if (stats.recovery.framesReplayed > 0) replays++
      const seen = await contents(recovered)
      const state = new Map([...seen].map(([key, value]) => [Buffer.from(key, 'latin1').toString('utf8'), value]))
      const prefix = matchingPrefix(writes, state, base)
      t.true(prefix >= 0, `trial ${trial} round ${round} (${JSON.stringify(cut)}, cut at call ${volume.callsSeen}): the recovered store is no prefix of the writes`)
      base = applyWrites(writes.slice(0, Math.max(prefix, 0)), base)
      await recovered.close()
    }
  }
  t.log(`${TRIALS * 2} cuts, ${acknowledged} acknowledged writes; recoveries that completed an interrupted flush step from its journal: ${journalRepairs}, replayed the log: ${replays}, cut during open: ${cutsDuringOpen}`)
  t.true(journalRepairs > 0, 'some cuts fell inside flush steps')
  t.true(replays > 0, 'some cuts left log records to replay')
})

for (const compression of ['lz4', 'none'] as const) {
  test.serial(`a power cut at every write and sync of a flush (steps and splits) loses nothing acknowledged (${compression})`, async (t) => {
    // Count the write and sync batches one flush makes, on a copy of the same store.
    const prepare = async (): Promise<{ backing: import('../src/device').MemoryBacking; writes: IssuedWrite[] }> => {
      const { db, backing } = await memoryStore({ ...OPTIONS, writeBufferSize: 8 * 1024 * 1024, compression })
      const next = writeWorkload(77, 400)
      const writes: IssuedWrite[] = []
      for (let index = 0; index < 600; index++) {
        const write: IssuedWrite = { operations: next(), status: 'pending' }
        writes.push(write)
        await db.batch(write.operations)
        write.status = 'acked'
      }
      await db.close()
      return { backing, writes }
    }
    // The store closed cleanly, so its contents are flushed; reopen and add writes that stay buffered.
    const scenario = async (crashAt: number, cut: PowerCutOptions): Promise<{ calls: number; redone: boolean; ok: boolean }> => {
      const { backing, writes } = await prepare()
      const volume = new CrashingVolume(new MemoryVolume({}, backing), Number.MAX_SAFE_INTEGER, cut)
      const db = await openOnVolume(volume, { ...OPTIONS, writeBufferSize: 8 * 1024 * 1024 })
      const next = writeWorkload(78, 3000)
      // Issued together, the writes share a few log frames (group commit) and all stay buffered for the flush.
      const pending: Array<Promise<void>> = []
      for (let index = 0; index < 1000; index++) {
        const write: IssuedWrite = { operations: next(), status: 'pending' }
        writes.push(write)
        pending.push(db.batch(write.operations).then(() => void (write.status = 'acked')))
      }
      await Promise.all(pending)
      const before = volume.callsSeen
      volume.crashAt = before + crashAt
      await db.flush().catch(() => undefined)
      const calls = volume.callsSeen - before
      await volume.crashNow()
      await db.close().catch(() => undefined)
      const recovered = await reopen(backing, OPTIONS)
      const redone = recovered.stats().recovery.stepRedone
      const seen = await contents(recovered)
      await recovered.close()
      const state = new Map([...seen].map(([key, value]) => [Buffer.from(key, 'latin1').toString('utf8'), value]))
      return { calls, redone, ok: matchingPrefix(writes, state) === writes.length }
    }
    const { calls } = await scenario(Number.MAX_SAFE_INTEGER / 2, POLICIES[0]!)
    t.true(calls >= 8, `the flush makes several steps (${calls} write and sync batches)`)
    let redone = 0
    for (let point = 1; point <= calls; point++) {
      const cut = { ...POLICIES[point % POLICIES.length]!, seed: point }
      const result = await scenario(point, cut)
      if (result.redone) redone++
      t.true(result.ok, `cut before batch ${point} of ${calls} (${JSON.stringify(cut)}): every acknowledged write is there`)
    }
    t.log(`${calls} cut points; ${redone} recoveries completed the interrupted step from its journal`)
    t.true(redone > 0)
  })

  test.serial(`one store through many power cuts in a row: each recovery carries the next round (${compression})`, async (t) => {
    const rounds = Number(process.env.POWER_CUT_ROUNDS ?? 60)
    const options = { ...SMALL_STORE, expectedKeys: 200, keySize: 9, valueSize: 40, writeBufferSize: 2 * 1024 * 1024 }
    const random = seededRandom(99)
    const next = writeWorkload(99, 3000)
    const workload: Array<ReturnType<typeof next>> = []
    const operationsOf = (index: number): ReturnType<typeof next> => {
      while (workload.length <= index) workload.push(next())
      return workload[index]!
    }
    const { db: first, backing } = await memoryStore({ ...options, compression })
    await first.close()
    const writes: IssuedWrite[] = []
    for (let round = 0; round < rounds; round++) {
      const cut = { ...POLICIES[round % POLICIES.length]!, seed: round }
      const volume = new CrashingVolume(new MemoryVolume({}, backing), 1 + Math.floor(random() * 300), cut)
      const db = await openOnVolume(volume, options).catch(() => undefined)
      if (db !== undefined) {
        const inFlight = new Set<Promise<void>>()
        while (!volume.crashed) {
          const write: IssuedWrite = { operations: operationsOf(writes.length), status: 'pending' }
          writes.push(write)
          const promise = db.batch(write.operations).then(
            () => void (write.status = 'acked'),
            () => void (write.status = 'failed'),
          )
          inFlight.add(promise)
          void promise.finally(() => inFlight.delete(promise))
          if (inFlight.size >= 4) await Promise.race(inFlight)
        }
        await Promise.all(inFlight)
        await db.close().catch(() => undefined)
      } else {
        await volume.close()
      }
      const recovered = await reopen(backing, options)
      const seen = await contents(recovered)
      await recovered.close()
      const prefix = matchingPrefix(writes, new Map([...seen].map(([key, value]) => [Buffer.from(key, 'latin1').toString('utf8'), value])))
      t.true(prefix >= 0, `round ${round} (${JSON.stringify(cut)}): the recovered store is no prefix of the writes`)
      if (prefix < 0) return
      // Writes past the prefix are lost; the workload issues them again.
      writes.length = prefix
      for (const write of writes) write.status = 'acked'
    }
    t.log(`${rounds} cuts in a row; ${writes.length} writes in the store`)
  })
}

test.serial('a read-only open recovers in memory: it sees what a read-write recovery sees and writes nothing', async (t) => {
  let checked = 0
  for (let trial = 0; trial < 12; trial++) {
    const { db: first, backing } = await memoryStore(OPTIONS)
    await first.close()
    const volume = new CrashingVolume(new MemoryVolume({}, backing), 40 + trial * 23, { ...POLICIES[trial % POLICIES.length]!, seed: trial })
    const db = await openOnVolume(volume, OPTIONS)
    const next = writeWorkload(500 + trial, 200)
    while (!volume.crashed) await db.batch(next()).catch(() => undefined)
    await db.close().catch(() => undefined)
    const before = backing.clone()
    const readOnly = await openOnVolume(new MemoryVolume({ readOnly: true }, backing), { ...OPTIONS, readOnly: true })
    const seen = await contents(readOnly)
    await readOnly.close()
    t.deepEqual([...backing.chunks.keys()].sort(), [...before.chunks.keys()].sort(), 'no chunk appeared or vanished')
    for (const [index, chunk] of backing.chunks) t.true(chunk.equals(before.chunks.get(index)!), `chunk ${index} is unchanged`)
    const recovered = await reopen(backing, OPTIONS)
    const expected = await contents(recovered)
    await recovered.close()
    t.is(seen.size, expected.size, `trial ${trial}`)
    for (const [key, value] of expected) t.true(seen.get(key)?.equals(value), `trial ${trial}: ${key}`)
    checked += expected.size
  }
  t.log(`12 crashed stores opened read-only; ${checked} pairs compared`)
})
