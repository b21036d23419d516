// Growth benchmark: load 10× the keys a store was created for, through
// linear-hashing splits, while measuring how long each single operation
// waits (call to resolution), for writers and for a concurrent reader. Then
// reads per GET with the cache off. The targets: max wait < 100 ms,
// reads per GET ≤ 1.05 after growth.
//
//   node dist-test/bench/growth.js [--expected 100000] [--factor 10] [--writers 32]
//        [--sync true|false] [--value 100] [--file /path/store.img | --memory]
//        [--sync-ms 2] [--io-ms 0.1] [--compression lz4|none]
//
// Prints a JSON report. By default the store is an image file in the
// system's temporary directory (the native volume: direct I/O, io_uring),
// removed afterwards. --memory instead runs on a memory volume whose I/O
// completes asynchronously after --io-ms, and whose sync takes --sync-ms.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { open, openOnVolume, type CubbyDB } from '../src/db'
import { MemoryVolume } from '../src/device'
import type { VolumeRequest } from '../src/device/types'

/** A memory volume with device-like latency: asynchronous I/O and slow syncs. */
class LatencyVolume extends MemoryVolume {
  constructor(
    private readonly ioMs: number,
    private readonly syncMs: number,
  ) {
    super({ size: 0 })
  }

  override async read(requests: readonly VolumeRequest[]): Promise<void> {
    await super.read(requests)
    await delay(this.ioMs)
  }

  override async write(requests: readonly VolumeRequest[]): Promise<void> {
    await super.write(requests)
    await delay(this.ioMs)
  }

  override async sync(): Promise<void> {
    await super.sync()
    await delay(this.syncMs)
  }
}

function delay(milliseconds: number): Promise<void> {
  return new Promise((resolve) => (milliseconds <= 0 ? setImmediate(resolve) : setTimeout(resolve, milliseconds)))
}

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? process.argv[index + 1]! : fallback
}

function keyOf(index: number): string {
  return `user${String((index * 2654435761) % 1e12).padStart(12, '0')}`
}

/**
 * Latencies in a fixed histogram (1 µs .. 100 s, 100 buckets per decade),
 * so recording millions of them allocates nothing and disturbs no GC.
 */
class Histogram {
  private readonly counts = new Float64Array(800)
  count = 0
  maxMs = 0

  record(milliseconds: number): void {
    const index = Math.max(0, Math.min(799, Math.floor((Math.log10(Math.max(milliseconds, 0.001)) + 3) * 100)))
    this.counts[index]!++
    this.count++
    if (milliseconds > this.maxMs) this.maxMs = milliseconds
  }

  /** Upper bound of the bucket holding the `fraction` quantile. */
  quantileMs(fraction: number): number {
    let seen = 0
    for (let index = 0; index < this.counts.length; index++) {
      seen += this.counts[index]!
      if (seen >= fraction * this.count) return 10 ** ((index + 1) / 100 - 3)
    }
    return this.maxMs
  }

  summary(): { count: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number } {
    const round = (value: number): number => Math.round(value * 100) / 100
    return {
      count: this.count,
      p50Ms: round(this.quantileMs(0.5)),
      p99Ms: round(this.quantileMs(0.99)),
      p999Ms: round(this.quantileMs(0.999)),
      maxMs: round(this.maxMs),
    }
  }
}

async function main(): Promise<void> {
  const expected = Number(argument('expected', '100000'))
  const factor = Number(argument('factor', '10'))
  const writers = Number(argument('writers', '32'))
  const sync = argument('sync', 'true') === 'true'
  const valueSize = Number(argument('value', '100'))
  const memory = process.argv.includes('--memory')
  const given = argument('file', '')
  const directory = given === '' && !memory ? fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-growth-')) : ''
  const file = given === '' ? path.join(directory, 'store.img') : given
  const total = expected * factor
  const compression = argument('compression', 'lz4')
  if (compression !== 'lz4' && compression !== 'none') throw new Error('--compression is lz4 or none')
  const options = { expectedKeys: expected, valueSize, keySize: 16, compression } as const
  const volume = memory ? new LatencyVolume(Number(argument('io-ms', '0.1')), Number(argument('sync-ms', '2'))) : undefined
  const reopen = (extra: object): Promise<CubbyDB> =>
    volume === undefined ? open(file, { ...options, ...extra }) : openOnVolume(new MemoryVolume({}, volume.backing), { ...options, ...extra })
  const db = volume === undefined ? await open(file, options) : await openOnVolume(volume, { ...options, size: 16 * 1024 ** 3 }, { fresh: true })
  const initial = db.stats()
  const value = Buffer.alloc(valueSize, 0x61)
  const writeWaits = new Histogram()
  const readWaits = new Histogram()
  const loopDelay = monitorEventLoopDelay({ resolution: 5 })
  loopDelay.enable()
  let next = 0
  let done = false
  const started = process.hrtime.bigint()
  const writer = async (): Promise<void> => {
    for (;;) {
      const index = next++
      if (index >= total) return
      const begin = process.hrtime.bigint()
      await db.put(keyOf(index), value, { sync })
      writeWaits.record(Number(process.hrtime.bigint() - begin) / 1e6)
    }
  }
  const reader = async (): Promise<void> => {
    let step = 0
    while (!done) {
      const written = next
      if (written < 2) {
        await new Promise((resolve) => setTimeout(resolve, 1))
        continue
      }
      const begin = process.hrtime.bigint()
      await db.get(keyOf((step++ * 7919) % (written - 1)))
      readWaits.record(Number(process.hrtime.bigint() - begin) / 1e6)
      // One read per turn of the event loop: a GET answered from the write buffer never yields by itself.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  const reading = reader()
  await Promise.all(Array.from({ length: writers }, writer))
  done = true
  await reading
  await db.flush()
  loopDelay.disable()
  const loadSeconds = Number(process.hrtime.bigint() - started) / 1e9
  const grown = db.stats()
  await db.close()
  const cold = await reopen({ cacheSize: 0, create: false })
  const measure = async (keys: string[]): Promise<number> => {
    const before = cold.stats().device.reads
    for (const key of keys) await cold.get(key)
    return (cold.stats().device.reads - before) / keys.length
  }
  const sample = Math.min(20_000, total)
  const existing = await measure(Array.from({ length: sample }, (_, index) => keyOf((index * 104729) % total)))
  const missing = await measure(Array.from({ length: sample }, (_, index) => `missing${index}`))
  await cold.close()
  console.log(
    JSON.stringify(
      {
        expectedKeys: expected,
        loadedKeys: total,
        writers,
        sync,
        compression,
        valueSize,
        ioPath: memory ? `memory, I/O ${argument('io-ms', '0.1')} ms, sync ${argument('sync-ms', '2')} ms` : grown.device.ioPath,
        loadSeconds: Math.round(loadSeconds * 10) / 10,
        putsPerSecond: Math.round(total / loadSeconds),
        buckets: { initial: initial.buckets, final: grown.buckets, level: grown.level, splits: grown.splits },
        overflowBuckets: grown.overflowBuckets,
        writeWait: writeWaits.summary(),
        concurrentReadWait: readWaits.summary(),
        writeStalls: grown.writeStalls,
        eventLoopDelayMs: { p99: Math.round(loopDelay.percentile(99) / 1e4) / 100, max: Math.round(loopDelay.max / 1e4) / 100 },
        readsPerGet: { existing: Math.round(existing * 10000) / 10000, missing: Math.round(missing * 10000) / 10000 },
        physicalBytes: grown.device.physicalBytes,
        memory: grown.memory,
      },
      null,
      2,
    ),
  )
  if (directory !== '') fs.rmSync(directory, { recursive: true, force: true })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
