// The type test: compiled (never run) with `tsc -p test/types` against the
// built declarations, as a user's code sees them through `import … from
// 'cubbydb'`. Correct use must compile; each misuse below must not, or its
// `@ts-expect-error` line itself becomes the error that fails `npm test`.
import { Readable, Writable } from 'node:stream'
import {
  CubbyDB,
  CubbyError,
  DEFAULTS,
  DumpReader,
  ErrorCode,
  METRICS_CONTENT_TYPES,
  exportStore,
  importStore,
  isCubbyError,
  open,
  plan,
  type BatchOperation,
  type CubbyErrorCode,
  type DumpSummary,
  type MetricsOptions,
  type OpenOptions,
  type Plan,
  type Stats,
} from 'cubbydb'

export async function correctUse(): Promise<void> {
  const options: OpenOptions = { expectedKeys: 1_000_000, valueSize: 200, compression: 'lz4', cacheSize: 0, sync: false }
  const db: CubbyDB = await open('store.img', options)
  await db.put('user:1', 'Ada')
  await db.put(new Uint8Array([1, 2]), Buffer.from('bytes'), { sync: true })
  const value: Buffer | undefined = await db.get('user:1')
  const values: Array<Buffer | undefined> = await db.getMany(['a', Buffer.from('b')])
  const present: boolean = await db.has('user:1')
  await db.del('user:1')
  const operations: BatchOperation[] = [
    { type: 'put', key: 'k', value: 'v' },
    { type: 'del', key: 'k' },
  ]
  await db.batch(operations)
  for await (const [key, stored] of db.entries()) void [key.length, stored.length]
  for await (const key of db.keys()) void key.byteLength
  for await (const [key] of db) void key
  const stats: Stats = db.stats()
  const bytes: number = stats.memory.total + stats.device.physicalBytes + stats.log.commits + stats.writeStalls.maxMs
  const metricsOptions: MetricsOptions = { format: 'prometheus', labels: { store: 'users' } }
  const text: string = db.metrics(metricsOptions) + db.metrics()
  const contentType: string = METRICS_CONTENT_TYPES.openmetrics
  const summary: DumpSummary = await exportStore(db, new Writable(), { onProgress: (pairs: number, total: number) => void (pairs + total) })
  const reader = new DumpReader(Readable.from([]))
  const pairsExpected: number = (await reader.header()).pairsExpected
  const imported: DumpSummary = await importStore(db, reader)
  await db.flush()
  const open_: boolean = db.isOpen && !db.readOnly
  await db.close()
  const sizing: Plan = plan({ keys: 100_000_000, valueSize: 400 })
  const buckets: number = sizing.buckets + sizing.readsPerGet.existing
  const cache: number = DEFAULTS.cacheSize
  try {
    await open('missing.img', { create: false })
  } catch (error) {
    if (isCubbyError(error, ErrorCode.NOT_A_STORE)) {
      const code: CubbyErrorCode = error.code
      const path: string | undefined = error.path
      void [code, path]
    }
    if (error instanceof CubbyError && error.code === 'CUBBY_LOCKED') void error.errno
  }
  {
    await using scoped = await open('scoped.img')
    await scoped.put('k', 'v')
  }
  void [value, values, present, bytes, text, contentType, summary, pairsExpected, imported, open_, buckets, cache]
}

export async function misuse(db: CubbyDB): Promise<void> {
  // @ts-expect-error a key is a string or bytes, not a number
  await db.get(42)
  // @ts-expect-error a value is a string or bytes, not an object
  await db.put('k', { name: 'Ada' })
  // @ts-expect-error put needs a value
  await db.put('k')
  // @ts-expect-error the write option is sync, not durable
  await db.put('k', 'v', { durable: true })
  // @ts-expect-error compression is 'lz4' or 'none'
  await open('store.img', { compression: 'zstd' })
  // @ts-expect-error an unknown option is refused at compile time too
  await open('store.img', { cacheSizeBytes: 1 })
  // @ts-expect-error a batch operation is put or del
  await db.batch([{ type: 'merge', key: 'k', value: 'v' }])
  // @ts-expect-error a put in a batch needs its value
  await db.batch([{ type: 'put', key: 'k' }])
  // @ts-expect-error get resolves to a Buffer or undefined, never a string
  const text: string = await db.get('k')
  // @ts-expect-error the metrics formats are 'openmetrics' and 'prometheus'
  db.metrics({ format: 'json' })
  // @ts-expect-error metrics labels are strings
  db.metrics({ labels: { shard: 7 } })
  // @ts-expect-error plan needs keys
  plan({ valueSize: 100 })
  // @ts-expect-error stats() is synchronous: no await needed, and no .then
  db.stats().then(() => undefined)
  // @ts-expect-error stores are made by open(), not by new CubbyDB()
  new CubbyDB('store.img')
  // @ts-expect-error error codes are the closed set
  const code: CubbyErrorCode = 'CUBBY_OOPS'
  // @ts-expect-error exportStore writes to a stream, not to a path
  await exportStore(db, 'backup.dump')
  void [text, code]
}
