// Power cuts at many points of a seeded workload, with every FaultyVolume
// policy (drop, keep, random, tear at 512 B and at 4 KiB): after recovery no
// block covered by a completed flush is lost, no block holds a value it was
// never given, and the store keeps working. Also cuts aimed at a segment
// write, a checkpoint slot, a map page copy and a discard, and a second cut
// during recovery; cuts among the pieces a large checkpoint slot is
// written in; and cuts in a workload whose blocks are spread over every
// chunk of the map's page state.
import test from 'ava'
import { CompressedBlockDevice, FaultyVolume, MemoryVolume, type CompressedCreateOptions, type PowerCutOptions, type VolumeRequest } from '../src/device'
import { CHECKPOINT_WRITE_BYTES } from '../src/device/compressed/checkpoint'
import { PAGES_PER_CHUNK } from '../src/device/compressed/block-map'
import { ENTRIES_PER_PAGE, HEADER_REGION_BYTES, checkpointSlotOffset, decodeCheckpoint, decodeHeader, type Geometry } from '../src/device/compressed/format'
import { CRASH_BLOCKS, CRASH_SETTINGS, TripVolume, crashWorkload, runUntilCrash, type CrashRun, type OperationKind } from './helpers/compressed-crash'

const STEPS = 160
const POLICIES: Array<Omit<PowerCutOptions, 'seed'>> = [
  { policy: 'drop' },
  { policy: 'keep' },
  { policy: 'random' },
  { policy: 'tear', atomicBytes: 512 },
  { policy: 'tear', atomicBytes: 4096 },
]

async function recoverAndCheck(crashed: CrashRun, label: string): Promise<string | undefined> {
  const run = { ...crashed, model: crashed.model.clone() }
  let device: CompressedBlockDevice
  try {
    device = await CompressedBlockDevice.open(new MemoryVolume({}, run.backing), CRASH_SETTINGS)
  } catch (error) {
    return `${label}: the store does not open after the power cut: ${(error as Error).message}`
  }
  try {
    const problem = await run.model.check(device)
    if (problem !== undefined) return `${label}: ${problem}`
    // The recovered store takes new writes and survives a clean reopen with them.
    await run.model.adopt(device)
    await crashWorkload(device, run.model, 777, 30, run.place)
    await device.flush()
    run.model.flushed()
    await device.close()
    const again = await CompressedBlockDevice.open(new MemoryVolume({}, run.backing), CRASH_SETTINGS)
    const after = await run.model.check(again)
    await again.close()
    return after === undefined ? undefined : `${label}, after more writes and a reopen: ${after}`
  } finally {
    await device.close().catch(() => undefined)
  }
}

test('power cuts at operations spread over the workload lose no flushed block, under every policy', async (t) => {
  const dry = await runUntilCrash(1, STEPS, undefined)
  t.is(dry.failure, undefined)
  const total = dry.trip.operations
  t.true(total > 300, `the workload issues ${total} volume operations`)
  const problems: string[] = []
  let runs = 0
  for (let point = 1; point <= 16; point++) {
    const nth = Math.max(1, Math.floor((total * point) / 17) + (point % 3))
    for (const [index, policy] of POLICIES.entries()) {
      const run = await runUntilCrash(1, STEPS, { nth, cut: { seed: point * 10 + index, ...policy } })
      t.true(run.trip.tripped, `the cut at operation ${nth} happened`)
      const problem = await recoverAndCheck(run, `cut before operation ${nth}/${total}, ${JSON.stringify(policy)}`)
      if (problem !== undefined) problems.push(problem)
      runs++
    }
  }
  t.deepEqual(problems, [])
  t.log(`${runs} power cuts over ${total} operations`)
})

/** With these create options, a store has 65,536 segments of 64 KiB: a checkpoint slot of ~525 KB, written in nine pieces of at most 64 KiB, its first sector last. */
const LARGE_SLOT = { dataBytes: 4 * 1024 ** 3 }

/** The layout of the stores runUntilCrash makes with `create` (only their store ids differ). */
async function crashLayout(create: Partial<CompressedCreateOptions> = {}): Promise<Geometry> {
  const probe = new MemoryVolume({ size: 0 })
  const created = await CompressedBlockDevice.create(probe, { blocks: CRASH_BLOCKS, segmentBytes: 64 * 1024, ...CRASH_SETTINGS, ...create })
  await created.close()
  return created.geometry
}

function writesAt(from: number, to: number) {
  return (kind: OperationKind, requests: readonly VolumeRequest[]) => kind === 'write' && requests.some((request) => request.offset >= from && request.offset < to)
}

test('power cuts aimed at segment writes, checkpoint slots, map pages and discards lose no flushed block', async (t) => {
  const { checkpointOffset, mapOffset, dataOffset } = await crashLayout()
  const targets: Array<[string, (kind: OperationKind, requests: readonly VolumeRequest[]) => boolean]> = [
    ['segment write', writesAt(dataOffset, Number.MAX_SAFE_INTEGER)],
    ['checkpoint slot write', writesAt(checkpointOffset, mapOffset)],
    ['map page write', writesAt(mapOffset, dataOffset)],
    ['discard', (kind) => kind === 'discard'],
    ['sync', (kind) => kind === 'sync'],
  ]
  const problems: string[] = []
  for (const [name, matches] of targets) {
    for (const nth of [1, 2, 3, 5, 8]) {
      for (const [index, policy] of POLICIES.entries()) {
        const run = await runUntilCrash(2, STEPS, { nth, matches, cut: { seed: nth * 7 + index, ...policy } })
        if (!run.trip.tripped) continue
        const problem = await recoverAndCheck(run, `cut before ${name} #${nth}, ${JSON.stringify(policy)}`)
        if (problem !== undefined) problems.push(problem)
      }
    }
  }
  t.deepEqual(problems, [])
})

test('a second power cut during recovery (its discards, page writes, checkpoint) loses nothing either', async (t) => {
  const problems: string[] = []
  let recoveriesCut = 0
  for (const nth of [40, 150, 250, 300, 400, 480]) {
    const run = await runUntilCrash(3, STEPS, { nth, cut: { seed: nth, policy: 'tear', atomicBytes: 512 } })
    for (const second of [1, 2, 3, 4, 5, 7]) {
      const copy = run.backing.clone()
      const trip = new TripVolume(new FaultyVolume(new MemoryVolume({}, copy)), {
        nth: second,
        matches: (kind) => kind !== 'read',
        cut: { seed: second, policy: 'tear', atomicBytes: 512 },
      })
      let device: CompressedBlockDevice | undefined
      try {
        device = await CompressedBlockDevice.open(trip, CRASH_SETTINGS)
      } catch {
        recoveriesCut++
      }
      await (device ?? trip).close().catch(() => undefined)
      const problem = await recoverAndCheck({ ...run, backing: copy }, `cut before operation ${nth}, then before recovery write ${second}`)
      if (problem !== undefined) problems.push(problem)
    }
  }
  t.deepEqual(problems, [])
  t.true(recoveriesCut >= 4, `${recoveriesCut} recoveries were themselves cut`)
})

test('power cuts among the pieces of a checkpoint slot written through bounded buffers lose no flushed block', async (t) => {
  const geometry = await crashLayout(LARGE_SLOT)
  t.is(geometry.segmentCount, 65_536)
  t.true(geometry.checkpointSlotBytes > 8 * CHECKPOINT_WRITE_BYTES)
  const slotWrites = writesAt(geometry.checkpointOffset, geometry.mapOffset)
  const problems: string[] = []
  let cuts = 0
  for (const nth of [2, 5, 9, 10, 13, 19, 24]) {
    for (const [index, policy] of POLICIES.entries()) {
      const run = await runUntilCrash(4, STEPS, { nth, matches: slotWrites, cut: { seed: nth * 5 + index, ...policy } }, LARGE_SLOT)
      if (!run.trip.tripped) continue
      cuts++
      const problem = await recoverAndCheck(run, `cut before checkpoint slot write #${nth}, ${JSON.stringify(policy)}`)
      if (problem !== undefined) problems.push(problem)
    }
  }
  t.deepEqual(problems, [])
  t.true(cuts >= 30, `${cuts} cuts landed in checkpoint slot writes`)
})

test('a slot whose pieces landed but whose first sector did not fails its CRC, and the store opens from the other slot', async (t) => {
  const geometry = await crashLayout(LARGE_SLOT)
  // Each run's store has this layout, and its own store id (read from its header).
  const slots = [checkpointSlotOffset(geometry, 0), checkpointSlotOffset(geometry, 1)]
  // The write of a slot's first sector is the one that starts at the slot.
  const firstSectorWrites = (kind: OperationKind, requests: readonly VolumeRequest[]) => kind === 'write' && requests.some((request) => slots.includes(request.offset))
  for (const nth of [1, 2, 3]) {
    // 'keep': every write before the cut lands, synced or not; the first sector's is the one the cut stops.
    const run = await runUntilCrash(5, STEPS, { nth, matches: firstSectorWrites, cut: { seed: nth, policy: 'keep' } }, LARGE_SLOT)
    t.true(run.trip.tripped)
    const volume = new MemoryVolume({}, run.backing)
    const buffer = volume.allocate(geometry.checkpointSlotBytes)
    await volume.read([{ offset: 0, length: HEADER_REGION_BYTES, buffer, bufferOffset: 0 }])
    const own = decodeHeader(buffer, volume.path)
    const decoded = []
    for (const slot of slots) {
      await volume.read([{ offset: slot, length: geometry.checkpointSlotBytes, buffer, bufferOffset: 0 }])
      decoded.push(decodeCheckpoint(own, buffer))
    }
    await volume.close()
    const valid = decoded.filter((checkpoint) => checkpoint !== undefined)
    t.is(valid.length, 1, `after cut #${nth} one slot holds a checkpoint and the torn one fails its checks`)
    t.is(await recoverAndCheck(run, `cut before first-sector write #${nth}`), undefined)
  }
})

/** A device of 8 chunks of map pages (2,080,768 blocks), its data area kept small so that checkpoints stay cheap. */
const SPREAD = { blocks: 8 * PAGES_PER_CHUNK * ENTRIES_PER_PAGE, dataBytes: 128 * 1024 * 1024 }
/** The workload's blocks 104 apart over all of SPREAD, its hot range straddling the first chunk boundary (block 260,096). */
const spread = (index: number) => (index * 104 + PAGES_PER_CHUNK * ENTRIES_PER_PAGE - 20_000) % SPREAD.blocks

test('power cuts over a workload spread over every chunk of map pages, from block 0 to the top, lose no flushed block', async (t) => {
  const dry = await runUntilCrash(6, STEPS, undefined, SPREAD, spread)
  t.is(dry.failure, undefined)
  const device = await CompressedBlockDevice.open(new MemoryVolume({}, dry.backing), CRASH_SETTINGS)
  const chunks = new Set(device.map.pagesInUse().map((page) => Math.floor(page / PAGES_PER_CHUNK)))
  await device.close()
  t.is(chunks.size, 8, 'the workload wrote map pages in every chunk')
  const total = dry.trip.operations
  const problems: string[] = []
  for (let point = 1; point <= 6; point++) {
    const nth = Math.max(1, Math.floor((total * point) / 7) + point)
    for (const [index, policy] of POLICIES.entries()) {
      const run = await runUntilCrash(6, STEPS, { nth, cut: { seed: point * 10 + index, ...policy } }, SPREAD, spread)
      t.true(run.trip.tripped, `the cut at operation ${nth} happened`)
      const problem = await recoverAndCheck(run, `cut before operation ${nth}/${total}, ${JSON.stringify(policy)}`)
      if (problem !== undefined) problems.push(problem)
    }
  }
  t.deepEqual(problems, [])
  t.log(`${6 * POLICIES.length} power cuts over ${total} operations`)
})
