// Growth benchmark: load 10× the keys a store was created for, through
// linear-hashing splits, while measuring how long each single operation
// waits (call to resolution), for writers and for a concurrent reader. Then
// reads per GET with the cache off. The targets: max wait < 100 ms,
// reads per GET ≤ 1.05 after growth.
//
//   node dist-test/bench/growth.js [--expected 100000] [--factor 10] [--writers 32]
//        [--sync true|false] [--file /path/store.img] [--value 100]
//
// Prints a JSON report. Without --file the store is an image file in the
// system's temporary directory, removed afterwards.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { open } from '../src/db'

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? process.argv[index + 1]! : fallback
}

function keyOf(index: number): string {
  return `user${String((index * 2654435761) % 1e12).padStart(12, '0')}`
}

function percentile(sorted: Float64Array, fraction: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!
}

function summary(waits: number[]): { count: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number } {
  const sorted = Float64Array.from(waits).sort()
  const round = (value: number): number => Math.round(value * 100) / 100
  return {
    count: sorted.length,
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    p999Ms: round(percentile(sorted, 0.999)),
    maxMs: round(sorted[sorted.length - 1] ?? 0),
  }
}

async function main(): Promise<void> {
  const expected = Number(argument('expected', '100000'))
  const factor = Number(argument('factor', '10'))
  const writers = Number(argument('writers', '32'))
  const sync = argument('sync', 'true') === 'true'
  const valueSize = Number(argument('value', '100'))
  const given = argument('file', '')
  const directory = given === '' ? fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-growth-')) : ''
  const file = given === '' ? path.join(directory, 'store.img') : given
  const total = expected * factor
  const db = await open(file, { expectedKeys: expected, valueSize, keySize: 16 })
  const initial = db.stats()
  const value = Buffer.alloc(valueSize, 0x61)
  const writeWaits: number[] = []
  const readWaits: number[] = []
  let next = 0
  let done = false
  const started = process.hrtime.bigint()
  const writer = async (): Promise<void> => {
    for (;;) {
      const index = next++
      if (index >= total) return
      const begin = process.hrtime.bigint()
      await db.put(keyOf(index), value, { sync })
      writeWaits.push(Number(process.hrtime.bigint() - begin) / 1e6)
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
      readWaits.push(Number(process.hrtime.bigint() - begin) / 1e6)
    }
  }
  const reading = reader()
  await Promise.all(Array.from({ length: writers }, writer))
  done = true
  await reading
  await db.flush()
  const loadSeconds = Number(process.hrtime.bigint() - started) / 1e9
  const grown = db.stats()
  await db.close()
  const cold = await open(file, { cacheSize: 0, create: false })
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
        valueSize,
        ioPath: grown.device.ioPath,
        loadSeconds: Math.round(loadSeconds * 10) / 10,
        putsPerSecond: Math.round(total / loadSeconds),
        buckets: { initial: initial.buckets, final: grown.buckets, level: grown.level, splits: grown.splits },
        overflowBuckets: grown.overflowBuckets,
        writeWait: summary(writeWaits),
        concurrentReadWait: summary(readWaits),
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
