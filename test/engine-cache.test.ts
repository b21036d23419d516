// The bucket cache shares one budget (cacheSize) with the device's own
// cache: the LZ4 block map's pages come first, bucket images get the rest,
// and the cache gives memory back as the map grows.
import test from 'ava'
import { BlockCache } from '../src/engine/cache'
import { BLOCK_SIZE } from '../src/engine/format'
import type { CubbyDB } from '../src/db'
import { memoryStore, reopen } from './helpers/store'

function image(lba: number): Buffer {
  return Buffer.alloc(BLOCK_SIZE, lba & 0xff).fill(lba >> 8, 0, 8)
}

function cachedImage(cache: BlockCache, lba: number): Buffer | undefined {
  const slot = cache.lookup(lba)
  if (slot < 0) return undefined
  return cache.bufferOf(slot).subarray(cache.offsetOf(slot), cache.offsetOf(slot) + BLOCK_SIZE)
}

test('holds what its budget allows, least recently used out, images intact', (t) => {
  const budget = 100 * 4200
  const cache = new BlockCache(budget)
  for (let lba = 0; lba < 300; lba++) cache.put(lba, image(lba), 0)
  t.true(cache.size >= 95 && cache.size <= 100, `${cache.size} blocks`)
  t.true(cache.memoryBytes <= budget)
  t.is(cachedImage(cache, 0), undefined, 'the oldest went first')
  for (let lba = 300 - cache.size; lba < 300; lba++) t.deepEqual(cachedImage(cache, lba), image(lba), `lba ${lba}`)
})

test('a zero budget caches nothing', (t) => {
  const cache = new BlockCache(0)
  cache.put(7, image(7), 0)
  t.is(cache.lookup(7), -1)
  t.is(cache.memoryBytes, 0)
})

test('yields to the device: evicts and frees chunks as the charge grows, grows back when it falls', (t) => {
  const budget = 4 * 1024 * 1024
  let charge = 0
  const cache = new BlockCache(budget, () => charge)
  for (let lba = 0; lba < 2000; lba++) cache.put(lba, image(lba), 0)
  const full = cache.size
  t.true(full > 900, `${full} blocks`)
  t.true(cache.memoryBytes <= budget)

  // The device takes 1.5 MiB of the budget: together they stay within it (one chunk of slack at most).
  charge = 1.5 * 1024 * 1024
  cache.fit()
  t.true(cache.memoryBytes + charge <= budget, `${cache.memoryBytes} + ${charge}`)
  t.true(cache.size < full - 300)
  t.true(cache.yielded >= full - cache.size)
  // What stayed is the most recently used, intact.
  for (let lba = 2000 - cache.size; lba < 2000; lba++) t.deepEqual(cachedImage(cache, lba), image(lba), `lba ${lba}`)
  t.is(cachedImage(cache, 2000 - cache.size - 1), undefined)

  // Puts keep within the shared budget as the charge keeps growing.
  for (let lba = 2000; lba < 4000; lba++) {
    charge += 1024
    cache.put(lba, image(lba), 0)
    t.true(cache.memoryBytes + charge <= budget, `after lba ${lba}`)
  }
  t.deepEqual(cachedImage(cache, 3999), image(3999))

  // The device lets go: the cache may fill the whole budget again.
  charge = 0
  for (let lba = 4000; lba < 6000; lba++) cache.put(lba, image(lba), 0)
  t.is(cache.size, full)
  for (let lba = 6000 - full; lba < 6000; lba += 97) t.deepEqual(cachedImage(cache, lba), image(lba), `lba ${lba}`)
})

test('a device charge above the whole budget leaves no bucket cache, and nothing breaks', (t) => {
  let charge = 0
  const cache = new BlockCache(1024 * 1024, () => charge)
  for (let lba = 0; lba < 100; lba++) cache.put(lba, image(lba), 0)
  charge = 2 * 1024 * 1024
  cache.put(100, image(100), 0)
  t.is(cache.size, 0)
  t.is(cache.memoryBytes, 0)
  t.is(cache.lookup(99), -1)
})

async function loaded(cacheSize: number, keys: number): Promise<{ db: CubbyDB; keyOf: (index: number) => string }> {
  const keyOf = (index: number) => `user${String(index * 7919).padStart(12, '0')}`
  const backing = await memoryStore({ expectedKeys: keys, compression: 'lz4' })
  for (let first = 0; first < keys; first += 1000) {
    const operations = []
    for (let index = first; index < Math.min(keys, first + 1000); index++) operations.push({ type: 'put' as const, key: keyOf(index), value: Buffer.alloc(100, index & 0xff) })
    await backing.db.batch(operations, { sync: false })
  }
  await backing.db.close()
  const db = await reopen(backing.backing, { cacheSize })
  return { db, keyOf }
}

test.serial('lz4 store: cached map pages and bucket blocks together stay within cacheSize, and every GET is right', async (t) => {
  const cacheSize = 2 * 1024 * 1024
  const { db, keyOf } = await loaded(cacheSize, 60_000)
  try {
    for (let round = 0; round < 2; round++) {
      for (let index = 0; index < 60_000; index += 3) {
        const value = await db.get(keyOf(index))
        t.true(value !== undefined && value.length === 100 && value[0] === (index & 0xff), `key ${index}`)
      }
    }
    const stats = db.stats()
    t.true(stats.memory.deviceCache >= 4 * 4096, `map pages cached: ${stats.memory.deviceCache} bytes`)
    t.true(stats.memory.cache > cacheSize / 2, `bucket cache ${stats.memory.cache}`)
    t.true(stats.memory.cache + stats.memory.deviceCache <= cacheSize, `bucket cache ${stats.memory.cache} + map ${stats.memory.deviceCache} > ${cacheSize}`)
  } finally {
    await db.close()
  }
})
