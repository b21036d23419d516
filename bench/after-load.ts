/**
 * Reads right after a load, while the LZ4 layer's idle cleaning reclaims
 * the load's dead records, and writes after that: what idle cleaning costs
 * the reads that run beside it, and what it leaves to the writes that come
 * later. For comparing builds (`--lib`, a dist/index.js; default this tree's
 * build), one process per measurement:
 *
 *   node dist-test/bench/after-load.js --file F [--lib dist/index.js] [--keys 1000000]
 *        [--read-seconds 20] [--windows 4] [--write-seconds 10] [--compression lz4]
 *
 * Loads `keys` keys (24 B) with 100 B random values from empty (64 writers,
 * sync off), flushes, then at once runs uniform GETs at queue depth 32 for
 * `read-seconds`, reported per window (GET/s, bytes the cleaner moved, the
 * physical use over live bytes), then YCSB A (half GETs, half updates) for
 * `write-seconds`. Prints one JSON line.
 */

import * as fs from 'node:fs'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'

interface Stats {
  device: { physicalBytes: number; liveBytes: number; cleaningBytesMoved: number; reads: number }
}
interface Store {
  get(key: Uint8Array): Promise<Buffer | undefined>
  put(key: Uint8Array, value: Uint8Array, options?: { sync?: boolean }): Promise<void>
  flush(): Promise<void>
  stats(): Stats
  close(): Promise<void>
}

function argument(name: string, fallback?: string): string {
  const at = process.argv.indexOf(`--${name}`)
  if (at >= 0 && at + 1 < process.argv.length) return process.argv[at + 1]!
  if (fallback === undefined) throw new Error(`--${name} is required`)
  return fallback
}

const KEY_BYTES = 24
const VALUE_BYTES = 100
const QUEUE_DEPTH = 32

function keyOf(index: number): Buffer {
  return Buffer.from(`user${String(index).padStart(KEY_BYTES - 4, '0')}`)
}

/** A small, fast, seeded generator (xorshift32) of integers below `limit`. */
function randomBelow(seed: number): (limit: number) => number {
  let state = seed >>> 0 || 1
  return (limit) => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) % limit
  }
}

/** `QUEUE_DEPTH` workers run `operation` until `deadline`; returns how many ran. */
async function closedLoop(deadline: number, operation: (random: (limit: number) => number) => Promise<void>): Promise<number> {
  let operations = 0
  await Promise.all(
    Array.from({ length: QUEUE_DEPTH }, async (_, worker) => {
      const random = randomBelow(worker * 7919 + 17)
      while (performance.now() < deadline) {
        await operation(random)
        operations++
      }
    }),
  )
  return operations
}

async function main(): Promise<void> {
  const file = argument('file')
  const lib = path.resolve(argument('lib', path.join(__dirname, '..', '..', 'dist', 'index.js')))
  const keys = Number(argument('keys', '1000000'))
  const readSeconds = Number(argument('read-seconds', '20'))
  const windows = Number(argument('windows', '4'))
  const writeSeconds = Number(argument('write-seconds', '10'))
  const { open } = require(lib) as { open(path: string, options: Record<string, unknown>): Promise<Store> }
  fs.rmSync(file, { force: true })
  const db = await open(file, { compression: argument('compression', 'lz4'), expectedKeys: keys, valueSize: VALUE_BYTES, sync: false })
  const loadStarted = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let index = next++; index < keys; index = next++) await db.put(keyOf(index), randomBytes(VALUE_BYTES))
    }),
  )
  await db.flush()
  const loadSeconds = (performance.now() - loadStarted) / 1000
  const ratio = (stats: Stats) => Math.round((stats.device.physicalBytes / Math.max(1, stats.device.liveBytes)) * 1000) / 1000
  const afterLoad = db.stats()
  const readWindows: Array<{ getsPerSecond: number; cleanedMiB: number; physicalOverLive: number }> = []
  let wrong = 0
  for (let window = 0; window < windows; window++) {
    const before = db.stats()
    const started = performance.now()
    const gets = await closedLoop(started + (readSeconds * 1000) / windows, async (random) => {
      const value = await db.get(keyOf(random(keys)))
      if (value?.length !== VALUE_BYTES) wrong++
    })
    const after = db.stats()
    readWindows.push({
      getsPerSecond: Math.round(gets / ((performance.now() - started) / 1000)),
      cleanedMiB: Math.round(((after.device.cleaningBytesMoved - before.device.cleaningBytesMoved) / 2 ** 20) * 10) / 10,
      physicalOverLive: ratio(after),
    })
  }
  const beforeWrites = db.stats()
  const writesStarted = performance.now()
  const operations = await closedLoop(writesStarted + writeSeconds * 1000, async (random) => {
    const key = keyOf(random(keys))
    if (random(2) === 0) await db.get(key)
    else await db.put(key, randomBytes(VALUE_BYTES))
  })
  const afterWrites = db.stats()
  await db.close()
  fs.rmSync(file, { force: true })
  if (wrong > 0) throw new Error(`${wrong} GETs returned a missing or wrong value`)
  console.log(
    JSON.stringify({
      keys,
      loadPerSecond: Math.round(keys / loadSeconds),
      physicalOverLiveAfterLoad: ratio(afterLoad),
      readWindows,
      readPerSecond: Math.round(readWindows.reduce((sum, window) => sum + window.getsPerSecond, 0) / windows),
      ycsbAPerSecond: Math.round(operations / ((performance.now() - writesStarted) / 1000)),
      cleanedDuringAMiB: Math.round(((afterWrites.device.cleaningBytesMoved - beforeWrites.device.cleaningBytesMoved) / 2 ** 20) * 10) / 10,
      physicalOverLiveAtEnd: ratio(afterWrites),
    }),
  )
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
