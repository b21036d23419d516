// CPU per GET and per PUT of the engine, measured with process.cpuUsage()
// around batches of operations, on a memory volume (so the figure is the
// engine's own work plus the in-memory device, with no kernel I/O) and, with
// --file, on an image file through the device layer.
//
//   node dist-test/bench/engine-cpu.js [--keys N] [--file PATH]
//
// Prints one JSON line per measurement.
import { openOnVolume, open, type CubbyDB } from '../src/db'
import { MemoryVolume } from '../src/device'

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? process.argv[index + 1]! : fallback
}

function keyOf(index: number): string {
  return `user${String((index * 2654435761) % 1e12).padStart(12, '0')}`
}

async function measure(label: string, operations: number, body: () => Promise<void>): Promise<void> {
  const cpu = process.cpuUsage()
  const wall = process.hrtime.bigint()
  await body()
  const used = process.cpuUsage(cpu)
  const wallMs = Number(process.hrtime.bigint() - wall) / 1e6
  const cpuMicros = used.user + used.system
  console.log(JSON.stringify({ label, operations, cpuMicrosPerOp: +(cpuMicros / operations).toFixed(2), opsPerSecond: Math.round(operations / (wallMs / 1000)) }))
}

async function run(db: CubbyDB, keys: number, where: string): Promise<void> {
  const value = Buffer.alloc(100, 7)
  await measure(`${where} put sync:false, 64 in flight`, keys, async () => {
    for (let first = 0; first < keys; first += 64) {
      const pending = []
      for (let index = first; index < Math.min(keys, first + 64); index++) pending.push(db.put(keyOf(index), value, { sync: false }))
      await Promise.all(pending)
    }
    await db.flush()
  })
  for (const concurrency of [1, 32]) {
    await measure(`${where} get existing, ${concurrency} in flight`, keys, async () => {
      for (let first = 0; first < keys; first += concurrency) {
        const pending = []
        for (let index = first; index < Math.min(keys, first + concurrency); index++) pending.push(db.get(keyOf(index)))
        await Promise.all(pending)
      }
    })
  }
  await measure(`${where} get missing, 32 in flight`, keys, async () => {
    for (let first = 0; first < keys; first += 32) {
      const pending = []
      for (let index = first; index < Math.min(keys, first + 32); index++) pending.push(db.get(`missing-${index}`))
      await Promise.all(pending)
    }
  })
  const stats = db.stats()
  console.log(JSON.stringify({ label: `${where} stats`, keys: stats.keys, buckets: stats.buckets, reads: stats.device.reads, cache: stats.cache }))
}

async function main(): Promise<void> {
  const keys = Number(argument('keys', '200000'))
  const file = argument('file', '')
  for (const cacheSize of [0, 256 * 1024 * 1024]) {
    const options = { expectedKeys: keys, keySize: 16, valueSize: 100, cacheSize, size: 4 * 1024 * 1024 * 1024 }
    const db = file === '' ? await openOnVolume(new MemoryVolume({ size: 0 }), options, { fresh: true }) : await open(`${file}.${cacheSize}`, options)
    await run(db, keys, `${file === '' ? 'memory' : 'file'} cache ${cacheSize >> 20} MiB`)
    await db.close()
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
