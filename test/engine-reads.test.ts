// One device read per GET: with the cache off, reads per GET (device block
// reads / GETs) stay ≤ 1.02 for existing and for missing keys at the load the
// store was sized for, and ≤ 1.05 after it has grown by linear hashing to 10×
// the keys it was created for.
import test from 'ava'
import type { CubbyDB } from '../src/db'
import { memoryStore, reopen, seededRandom } from './helpers/store'

const KEYS = Number(process.env.READS_TEST_KEYS ?? 40_000)

async function load(db: CubbyDB, from: number, to: number): Promise<void> {
  const random = seededRandom(from + 1)
  for (let first = from; first < to; first += 500) {
    const operations = []
    for (let index = first; index < Math.min(to, first + 500); index++) {
      operations.push({ type: 'put' as const, key: `user${String(index * 7919).padStart(12, '0')}`, value: Buffer.alloc(80 + Math.floor(random() * 40), index & 0xff) })
    }
    await db.batch(operations, { sync: false })
  }
  await db.flush()
}

async function readsPerGet(db: CubbyDB, keys: string[]): Promise<number> {
  // One at a time: GETs of one tick that share a bucket would share its read.
  const before = db.stats().device.reads
  for (const key of keys) await db.get(key)
  return (db.stats().device.reads - before) / keys.length
}

function sample(count: number, limit: number, missing: boolean): string[] {
  const random = seededRandom(count + limit + (missing ? 1 : 0))
  return Array.from({ length: count }, () => {
    const index = Math.floor(random() * limit)
    return missing ? `nouser${String(index * 7919).padStart(12, '0')}` : `user${String(index * 7919).padStart(12, '0')}`
  })
}

const options = { expectedKeys: KEYS, keySize: 16, valueSize: 100, size: 1024 * 1024 * 1024, writeBufferSize: 16 * 1024 * 1024 }

/** Loads KEYS keys into a store created for `expectedKeys`, reopens it with the cache off, and measures reads per GET. */
async function loadAndMeasure(expectedKeys: number): Promise<{ existing: number; missing: number; initialBuckets: number; stats: ReturnType<CubbyDB['stats']> }> {
  const { db, backing } = await memoryStore({ ...options, expectedKeys })
  const initialBuckets = db.stats().buckets
  await load(db, 0, KEYS)
  await db.close()
  const store = await reopen(backing, { ...options, cacheSize: 0 })
  const existing = await readsPerGet(store, sample(10_000, KEYS, false))
  const missing = await readsPerGet(store, sample(10_000, KEYS, true))
  const stats = store.stats()
  await store.close()
  return { existing, missing, initialBuckets, stats }
}

test.serial(`reads per GET ≤ 1.02 for existing and missing keys at the sized load (cacheSize 0, ${KEYS} keys)`, async (t) => {
  const { existing, missing, stats } = await loadAndMeasure(KEYS)
  t.log(`${stats.keys} keys in ${stats.buckets} buckets (${stats.overflowBuckets} with overflow): reads per GET ${existing.toFixed(4)} existing, ${missing.toFixed(4)} missing`)
  t.true(existing <= 1.02, `existing ${existing}`)
  t.true(missing <= 1.02, `missing ${missing}`)
  t.true(existing >= 1 && missing >= 1, 'every GET read the device: the cache is off')
})

test.serial(`growth to 10× expectedKeys keeps reads per GET ≤ 1.05 (${KEYS / 10} → ${KEYS} keys)`, async (t) => {
  const { existing, missing, initialBuckets, stats } = await loadAndMeasure(KEYS / 10)
  t.log(`${initialBuckets} → ${stats.buckets} buckets (level ${stats.level}, split pointer ${stats.splitPointer}), ${stats.overflowBuckets} with overflow: reads per GET ${existing.toFixed(4)} existing, ${missing.toFixed(4)} missing`)
  t.is(stats.keys, KEYS)
  t.true(stats.buckets >= initialBuckets * 8, 'the table grew by splitting')
  t.true(existing <= 1.05, `existing ${existing}`)
  t.true(missing <= 1.05, `missing ${missing}`)
})
