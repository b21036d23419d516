/**
 * One measurement of the performance work (issue 8), as a child process of
 * bench/perf-compare.ts, which runs it for two builds in turn: the build is
 * loaded from `--lib` (a dist/index.js; default: this tree's src/db), and
 * only the public API is used, so any build can be measured by the same code.
 *
 *   node dist-test/bench/perf.js load  --file F --compression lz4|none [--keys 1000000] [--sync false] [--writers 64]
 *   node dist-test/bench/perf.js get   --file F [--cache 0] [--queue-depth 32] [--seconds 10]
 *   node dist-test/bench/perf.js mixed --file F --workload A|F [--queue-depth 32] [--seconds 10]
 *   node dist-test/bench/perf.js stall --file F --compression lz4|none [--keys 300000] [--seconds 20]
 *
 * Keys are the YCSB harness's (bench/lib/keys.ts: 24 bytes, scrambled), values
 * 100 bytes of random data tagged with their key number; every GET is checked.
 * `get` draws its keys from 2^18 made before the clock starts, so that its
 * CPU per GET is the store's rather than the key builder's.
 * `get` opens the store read-only, so the same image serves every run. `load`
 * creates the store; `mixed` runs YCSB A (half reads, half updates) or F
 * (read-modify-write) with sync off; `stall` loads with sync off while 32
 * readers GET existing keys, to measure GET latency and event-loop delay
 * while flush steps, splits, cleaning and checkpoints run in the background.
 *
 * Each prints one JSON line: throughput, CPU per operation (user and system,
 * from process.cpuUsage), latency percentiles, device I/O per operation and
 * the event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution).
 */

import * as fs from 'node:fs'
import { createHistogram, monitorEventLoopDelay, performance, type RecordableHistogram } from 'node:perf_hooks'
import { keyFor, ValueSource, valueMatches } from './lib/keys'

interface Store {
  get(key: Uint8Array): Promise<Buffer | undefined>
  put(key: Uint8Array, value: Uint8Array, options?: { sync?: boolean }): Promise<void>
  flush(): Promise<void>
  stats(): {
    keys: number
    flushSteps: number
    splits: number
    writeStalls: { count: number; totalMs: number; maxMs: number }
    cache: { hits: number; misses: number }
    device: { reads: number; writes: number; flushes: number; physicalBytes: number }
  }
  close(): Promise<void>
}

interface Library {
  open(path: string, options: Record<string, unknown>): Promise<Store>
}

const KEY_BYTES = 24
const VALUE_BYTES = 100
/** Keys a read phase draws from: about the store's buckets several times over, so a cache sees a uniform load. */
const KEY_SAMPLE = 2 ** 18

/** KEY_SAMPLE uniformly chosen key numbers below `keys`, and their keys. */
class KeySample {
  readonly numbers = new Float64Array(KEY_SAMPLE)
  readonly keys: Buffer[] = []

  constructor(keys: number, seed: number) {
    const random = randomBelow(seed)
    for (let slot = 0; slot < KEY_SAMPLE; slot++) {
      this.numbers[slot] = random(keys)
      this.keys.push(keyFor(this.numbers[slot]!, KEY_BYTES))
    }
  }
}

function argument(name: string, fallback?: string): string {
  const index = process.argv.indexOf(`--${name}`)
  if (index >= 0 && process.argv[index + 1] !== undefined) return process.argv[index + 1]!
  if (fallback === undefined) throw new Error(`--${name} is required`)
  return fallback
}

function loadLibrary(): Library {
  const path = argument('lib', '')
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (path === '' ? require('../src/db') : require(path)) as Library
}

/** Deterministic uniform key numbers, one stream per worker. */
function randomBelow(seed: number): (limit: number) => number {
  let state = seed >>> 0
  return (limit) => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * limit)
  }
}

function microseconds(histogram: RecordableHistogram, percentile: number): number {
  return Math.round(histogram.percentile(percentile) / 100) / 10
}

interface Sample {
  operations: number
  seconds: number
  cpuUser: number
  cpuSystem: number
}

async function timed(body: () => Promise<number>): Promise<Sample> {
  const cpu = process.cpuUsage()
  const started = performance.now()
  const operations = await body()
  const used = process.cpuUsage(cpu)
  return { operations, seconds: (performance.now() - started) / 1000, cpuUser: used.user, cpuSystem: used.system }
}

function rates(sample: Sample): Record<string, number> {
  const perOp = (value: number): number => Math.round((value / sample.operations) * 100) / 100
  return {
    operations: sample.operations,
    opsPerSecond: Math.round(sample.operations / sample.seconds),
    cpuMicrosPerOp: perOp(sample.cpuUser + sample.cpuSystem),
    userMicrosPerOp: perOp(sample.cpuUser),
    systemMicrosPerOp: perOp(sample.cpuSystem),
  }
}

function loopDelayReport(delay: ReturnType<typeof monitorEventLoopDelay>): Record<string, number> {
  return { loopDelayP99Ms: Math.round(delay.percentile(99) / 1e4) / 100, loopDelayMaxMs: Math.round(delay.max / 1e4) / 100 }
}

async function load(library: Library): Promise<void> {
  const file = argument('file')
  const keys = Number(argument('keys', '1000000'))
  const sync = argument('sync', 'false') === 'true'
  const writers = Number(argument('writers', '64'))
  fs.rmSync(file, { force: true })
  const db = await library.open(file, {
    compression: argument('compression'),
    expectedKeys: keys,
    valueSize: VALUE_BYTES,
    cacheSize: 64 * 1024 * 1024,
    writeBufferSize: 16 * 1024 * 1024,
  })
  const values = new ValueSource(VALUE_BYTES, 1, 'load')
  const latency = createHistogram()
  let next = 0
  const sample = await timed(async () => {
    const writer = async (): Promise<void> => {
      for (let index = next++; index < keys; index = next++) {
        const begin = performance.now()
        await db.put(keyFor(index, KEY_BYTES), values.valueFor(index), { sync })
        latency.record(Math.max(1, Math.round((performance.now() - begin) * 1e6)))
      }
    }
    await Promise.all(Array.from({ length: writers }, writer))
    await db.flush()
    return keys
  })
  const stats = db.stats()
  await db.close()
  console.log(
    JSON.stringify({
      command: 'load',
      ...rates(sample),
      putP99Ms: microseconds(latency, 99) / 1000,
      putMaxMs: Math.round(latency.max / 1e4) / 100,
      blockWritesPerPut: Math.round((stats.device.writes / keys) * 1000) / 1000,
      blockReadsPerPut: Math.round((stats.device.reads / keys) * 1000) / 1000,
      flushSteps: stats.flushSteps,
      splits: stats.splits,
      writeStalls: stats.writeStalls,
      physicalBytes: stats.device.physicalBytes,
    }),
  )
}

/** Closed loop: `queueDepth` workers, each awaiting one operation at a time, for `seconds`. */
async function closedLoop(queueDepth: number, seconds: number, operation: (worker: number, random: (limit: number) => number) => Promise<void>): Promise<{ sample: Sample; latency: RecordableHistogram }> {
  const latency = createHistogram()
  const deadline = performance.now() + seconds * 1000
  let operations = 0
  const sample = await timed(async () => {
    const worker = async (index: number): Promise<void> => {
      const random = randomBelow(index * 7919 + 1)
      for (;;) {
        const begin = performance.now()
        if (begin >= deadline) return
        await operation(index, random)
        latency.record(Math.max(1, Math.round((performance.now() - begin) * 1e6)))
        operations++
      }
    }
    await Promise.all(Array.from({ length: queueDepth }, (_, index) => worker(index)))
    return operations
  })
  return { sample, latency }
}

async function get(library: Library): Promise<void> {
  const file = argument('file')
  const cacheSize = Number(argument('cache', '0'))
  const queueDepth = Number(argument('queue-depth', '32'))
  const seconds = Number(argument('seconds', '10'))
  const db = await library.open(file, { readOnly: true, cacheSize })
  const keys = db.stats().keys
  // Keys are made before the clock starts, so that the CPU per GET is the store's, not the key builder's.
  const drawn = new KeySample(keys, 1)
  let wrong = 0
  const read = async (_worker: number, random: (limit: number) => number): Promise<void> => {
    const slot = random(KEY_SAMPLE)
    const value = await db.get(drawn.keys[slot]!)
    if (value === undefined || !valueMatches(value, drawn.numbers[slot]!, VALUE_BYTES)) wrong++
  }
  await closedLoop(queueDepth, Math.min(2, seconds / 4), read)
  const before = db.stats()
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const { sample, latency } = await closedLoop(queueDepth, seconds, read)
  delay.disable()
  const after = db.stats()
  await db.close()
  if (wrong > 0) throw new Error(`${wrong} GETs returned a missing or wrong value`)
  console.log(
    JSON.stringify({
      command: 'get',
      cacheSize,
      queueDepth,
      ...rates(sample),
      p50Us: microseconds(latency, 50),
      p99Us: microseconds(latency, 99),
      readsPerGet: Math.round(((after.device.reads - before.device.reads) / sample.operations) * 1000) / 1000,
      cacheHitRate: Math.round(((after.cache.hits - before.cache.hits) / Math.max(1, after.cache.hits + after.cache.misses - before.cache.hits - before.cache.misses)) * 1000) / 1000,
      ...loopDelayReport(delay),
    }),
  )
}

async function mixed(library: Library): Promise<void> {
  const file = argument('file')
  const workload = argument('workload')
  const queueDepth = Number(argument('queue-depth', '32'))
  const seconds = Number(argument('seconds', '10'))
  if (workload !== 'A' && workload !== 'F') throw new Error('--workload is A or F')
  const db = await library.open(file, { cacheSize: 64 * 1024 * 1024, writeBufferSize: 16 * 1024 * 1024 })
  const keys = db.stats().keys
  const values = new ValueSource(VALUE_BYTES, 2, workload)
  const reads = createHistogram()
  const writes = createHistogram()
  const timeOf = async (histogram: RecordableHistogram, body: Promise<unknown>): Promise<void> => {
    const begin = performance.now()
    await body
    histogram.record(Math.max(1, Math.round((performance.now() - begin) * 1e6)))
  }
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const { sample, latency } = await closedLoop(queueDepth, seconds, async (_worker, random) => {
    const number = random(keys)
    const key = keyFor(number, KEY_BYTES)
    if (workload === 'F') {
      await timeOf(reads, db.get(key))
      await timeOf(writes, db.put(key, values.valueFor(number), { sync: false }))
    } else if (random(2) === 0) {
      await timeOf(reads, db.get(key))
    } else {
      await timeOf(writes, db.put(key, values.valueFor(number), { sync: false }))
    }
  })
  delay.disable()
  const stats = db.stats()
  await db.close()
  console.log(
    JSON.stringify({
      command: 'mixed',
      workload,
      ...rates(sample),
      p99Us: microseconds(latency, 99),
      getP99Us: microseconds(reads, 99),
      putP99Us: microseconds(writes, 99),
      flushSteps: stats.flushSteps,
      ...loopDelayReport(delay),
    }),
  )
}

async function stall(library: Library): Promise<void> {
  const file = argument('file')
  const keys = Number(argument('keys', '300000'))
  const seconds = Number(argument('seconds', '20'))
  fs.rmSync(file, { force: true })
  const db = await library.open(file, {
    compression: argument('compression'),
    expectedKeys: keys,
    valueSize: VALUE_BYTES,
    cacheSize: 64 * 1024 * 1024,
    writeBufferSize: 16 * 1024 * 1024,
  })
  const values = new ValueSource(VALUE_BYTES, 3, 'stall')
  // A first half loaded before the clock starts: reads then hit the buckets.
  let loaded = 0
  const loadRange = async (end: number, writers: number, until: number): Promise<void> => {
    const writer = async (): Promise<void> => {
      while (loaded < end && performance.now() < until) {
        const index = loaded++
        await db.put(keyFor(index, KEY_BYTES), values.valueFor(index), { sync: false })
      }
    }
    await Promise.all(Array.from({ length: writers }, writer))
  }
  await loadRange(keys / 2, 64, Number.POSITIVE_INFINITY)
  await db.flush()
  const before = db.stats()
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const deadline = performance.now() + seconds * 1000
  let wrong = 0
  const writing = loadRange(keys, 16, deadline)
  const { sample, latency } = await closedLoop(32, seconds, async (_worker, random) => {
    const number = random(keys / 2)
    const value = await db.get(keyFor(number, KEY_BYTES))
    if (value === undefined || !valueMatches(value, number, VALUE_BYTES)) wrong++
  })
  await writing
  delay.disable()
  const after = db.stats()
  await db.close()
  if (wrong > 0) throw new Error(`${wrong} GETs returned a missing or wrong value`)
  console.log(
    JSON.stringify({
      command: 'stall',
      ...rates(sample),
      putsPerSecond: Math.round((loaded - keys / 2) / seconds),
      getP50Us: microseconds(latency, 50),
      getP99Us: microseconds(latency, 99),
      getP999Us: microseconds(latency, 99.9),
      getMaxMs: Math.round(latency.max / 1e4) / 100,
      flushSteps: after.flushSteps - before.flushSteps,
      ...loopDelayReport(delay),
    }),
  )
}

async function main(): Promise<void> {
  const library = loadLibrary()
  const command = process.argv[2]
  if (command === 'load') await load(library)
  else if (command === 'get') await get(library)
  else if (command === 'mixed') await mixed(library)
  else if (command === 'stall') await stall(library)
  else throw new Error(`unknown command ${String(command)}: load, get, mixed or stall`)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
