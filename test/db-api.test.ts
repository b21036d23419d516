// The public API of issue 3, call by call: behaviours, encodings, every
// argument check, lifecycle (close, await using, read-only), and the typed
// errors each misuse or failure produces.
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { CubbyDB, open, openOnVolume, plan } from '../src/db'
import { MemoryBacking, MemoryVolume } from '../src/device'
import { ErrorCode } from '../src/errors'
import { INLINE_ENTRY_MAX, MAX_VALUE_BYTES } from '../src/engine/format'
import { SMALL_STORE, contents, faultyStore, memoryStore, rejectsWith, reopen } from './helpers/store'

function temporaryPath(name: string): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-api-'))
  return path.join(directory, name)
}

test('put, get, has and del; missing keys are undefined; values come back as Buffers', async (t) => {
  const { db } = await memoryStore()
  t.is(await db.get('nothing'), undefined)
  t.false(await db.has('nothing'))
  await db.put('hello', 'world')
  const value = await db.get('hello')
  t.true(Buffer.isBuffer(value))
  t.is(value!.toString(), 'world')
  t.true(await db.has('hello'))
  await db.put('hello', 'again')
  t.is((await db.get('hello'))!.toString(), 'again')
  await db.del('hello')
  t.is(await db.get('hello'), undefined)
  t.false(await db.has('hello'))
  await db.del('never-there')
  await db.close()
})

test('string keys are UTF-8: a string and its bytes name the same key', async (t) => {
  const { db } = await memoryStore()
  await db.put('clé-ü', 'text')
  t.is((await db.get(Buffer.from('clé-ü', 'utf8')))!.toString(), 'text')
  await db.put(new Uint8Array([0x63, 0x6c, 0xc3, 0xa9]), 'bytes')
  t.is((await db.get('clé'))!.toString(), 'bytes')
  await db.put(Buffer.from([0, 255, 128]), Buffer.from([1, 2, 3]))
  t.deepEqual(await db.get(Buffer.from([0, 255, 128])), Buffer.from([1, 2, 3]))
  await db.flush()
  t.is((await db.get('clé-ü'))!.toString(), 'text', 'and still after a flush')
  t.is((await db.get('clé'))!.toString(), 'bytes')
  await db.close()
})

test('the caller may change its buffers after a call: the store keeps its own copies', async (t) => {
  const { db } = await memoryStore()
  const key = Buffer.from('mutable')
  const value = Buffer.from('original')
  const written = db.put(key, value)
  key.fill(0x41)
  value.fill(0x42)
  await written
  t.is((await db.get('mutable'))!.toString(), 'original')
  const got = await db.get('mutable')
  got!.fill(0)
  t.is((await db.get('mutable'))!.toString(), 'original')
  await db.close()
})

test('values of every size: empty, at the inline limit, just past it, and large', async (t) => {
  const { db, backing } = await memoryStore()
  const keyLength = 'size-N'.length
  const inlineMax = INLINE_ENTRY_MAX - 5 - keyLength
  const sizes = [0, 1, inlineMax, inlineMax + 1, 4096, 4097, 300_000]
  const pattern = (size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, index) => (index * 31 + size) & 0xff))
  for (const size of sizes) await db.put(`size-${sizes.indexOf(size)}`, pattern(size))
  for (const size of sizes) t.deepEqual(await db.get(`size-${sizes.indexOf(size)}`), pattern(size), `${size} bytes from the write buffer`)
  await db.close()
  const again = await reopen(backing, { cacheSize: 0 })
  for (const size of sizes) t.deepEqual(await again.get(`size-${sizes.indexOf(size)}`), pattern(size), `${size} bytes from the device`)
  t.true(await again.has('size-6'))
  await again.close()
})

test('getMany returns values in order, undefined where missing, in one device batch', async (t) => {
  const { db, backing } = await memoryStore()
  for (let index = 0; index < 50; index++) await db.put(`k${index}`, `v${index}`)
  await db.close()
  const again = await reopen(backing, { cacheSize: 0 })
  const keys = Array.from({ length: 60 }, (_, index) => `k${index}`)
  const before = again.stats().device
  const values = await again.getMany(keys)
  const after = again.stats().device
  values.forEach((value, index) => t.is(value?.toString(), index < 50 ? `v${index}` : undefined))
  t.true(after.reads - before.reads <= 60, 'at most one block read per key')
  t.is((again as unknown as { engine: { stats(): { device: { reads: number } } } }).engine.stats().device.reads, after.reads)
  await again.close()
})

test('batch applies puts and dels together; an empty batch is a no-op', async (t) => {
  const { db } = await memoryStore()
  await db.put('gone', 'soon')
  await db.batch([
    { type: 'put', key: 'a', value: '1' },
    { type: 'put', key: 'b', value: Buffer.alloc(10_000, 2) },
    { type: 'del', key: 'gone' },
    { type: 'put', key: 'a', value: '2' },
  ])
  t.is((await db.get('a'))!.toString(), '2', 'the later put of a key in a batch wins')
  t.is((await db.get('b'))!.length, 10_000)
  t.is(await db.get('gone'), undefined)
  await db.batch([])
  await db.close()
})

test('a batch with one bad operation is refused whole and changes nothing', async (t) => {
  const { db } = await memoryStore()
  await db.put('keep', 'me')
  const error = await rejectsWith(
    t,
    db.batch([
      { type: 'put', key: 'new', value: 'x' },
      { type: 'del', key: 'keep' },
      { type: 'put', key: '', value: 'bad key' },
    ]),
    ErrorCode.INVALID_KEY,
  )
  t.regex(error.message, /batch operation 2/)
  t.is(await db.get('new'), undefined)
  t.is((await db.get('keep'))!.toString(), 'me')
  await rejectsWith(t, db.batch([{ type: 'put', key: 'k', value: 5 as unknown as string }]), ErrorCode.INVALID_VALUE)
  await rejectsWith(t, db.batch([{ type: 'merge', key: 'k' } as unknown as { type: 'del'; key: string }]), ErrorCode.INVALID_ARGUMENT)
  await rejectsWith(t, db.batch('nope' as unknown as []), ErrorCode.INVALID_ARGUMENT)
  await rejectsWith(t, db.batch([null as unknown as { type: 'del'; key: string }]), ErrorCode.INVALID_ARGUMENT)
  t.is(await db.get('k'), undefined)
  await db.close()
})

test('a batch larger than one log frame is refused with CUBBY_INVALID_ARGUMENT', async (t) => {
  const { db } = await memoryStore({ writeBufferSize: 64 * 1024 * 1024 })
  const operations = Array.from({ length: 1500 }, (_, index) => ({ type: 'put' as const, key: `big-${index}`, value: Buffer.alloc(1900, 1) }))
  const error = await rejectsWith(t, db.batch(operations), ErrorCode.INVALID_ARGUMENT)
  t.regex(error.message, /log frame/)
  t.is(await db.get('big-0'), undefined)
  await db.close()
})

test('keys and values are checked: CUBBY_INVALID_KEY and CUBBY_INVALID_VALUE', async (t) => {
  const { db } = await memoryStore()
  await rejectsWith(t, db.put('', 'v'), ErrorCode.INVALID_KEY, 'empty string key')
  await rejectsWith(t, db.put(new Uint8Array(0), 'v'), ErrorCode.INVALID_KEY, 'empty bytes key')
  await rejectsWith(t, db.put('k'.repeat(1025), 'v'), ErrorCode.INVALID_KEY, '1025-byte key')
  await rejectsWith(t, db.put('é'.repeat(513), 'v'), ErrorCode.INVALID_KEY, '1026 UTF-8 bytes')
  await rejectsWith(t, db.get(42 as unknown as string), ErrorCode.INVALID_KEY, 'number key')
  await rejectsWith(t, db.has(undefined as unknown as string), ErrorCode.INVALID_KEY, 'undefined key')
  await rejectsWith(t, db.del({} as unknown as string), ErrorCode.INVALID_KEY, 'object key')
  await rejectsWith(t, db.getMany(['ok', ''] as string[]), ErrorCode.INVALID_KEY, 'one bad key in getMany')
  await rejectsWith(t, db.put('k', null as unknown as string), ErrorCode.INVALID_VALUE, 'null value')
  await rejectsWith(t, db.put('k', Buffer.alloc(MAX_VALUE_BYTES + 1)), ErrorCode.INVALID_VALUE, 'value over 64 MiB')
  await db.put('k'.repeat(1024), 'longest key')
  t.is((await db.get('k'.repeat(1024)))!.toString(), 'longest key')
  t.is(await db.get('k'), undefined, 'no refused write left anything')
  await db.close()
})

test('options are checked: CUBBY_INVALID_ARGUMENT names the option', async (t) => {
  const volume = (): MemoryVolume => new MemoryVolume({ size: 0 })
  const bad: Array<[object, RegExp]> = [
    [{ cacheSize: -1 }, /cacheSize/],
    [{ cacheSize: 1.5 }, /cacheSize/],
    [{ writeBufferSize: 1000 }, /writeBufferSize/],
    [{ sync: 'yes' }, /sync/],
    [{ compression: 'zstd' }, /compression/],
    [{ expectedKeys: 0 }, /expectedKeys/],
    [{ valueSize: -3 }, /valueSize/],
    [{ size: 100 }, /size/],
    [{ cachesize: 5 }, /unknown option "cachesize"/],
  ]
  for (const [options, message] of bad) {
    const error = await rejectsWith(t, openOnVolume(volume(), options), ErrorCode.INVALID_ARGUMENT, JSON.stringify(options))
    t.regex(error.message, message)
  }
  await rejectsWith(t, openOnVolume(volume(), 'fast' as unknown as object), ErrorCode.INVALID_ARGUMENT)
  await rejectsWith(t, openOnVolume(volume(), { size: 8 * 1024 * 1024, expectedKeys: 10_000_000 }), ErrorCode.INVALID_ARGUMENT, 'size too small for the plan')
  await rejectsWith(t, open('' as string), ErrorCode.INVALID_ARGUMENT)
  const { db } = await memoryStore()
  await rejectsWith(t, db.put('k', 'v', { sync: 1 } as unknown as { sync: boolean }), ErrorCode.INVALID_ARGUMENT)
  await rejectsWith(t, db.put('k', 'v', { durable: true } as unknown as { sync: boolean }), ErrorCode.INVALID_ARGUMENT)
  await rejectsWith(t, db.getMany('k' as unknown as string[]), ErrorCode.INVALID_ARGUMENT)
  await db.close()
  t.throws(() => plan({} as { keys: number }), { code: ErrorCode.INVALID_ARGUMENT } as object)
  t.throws(() => plan({ keys: 10, valueSize: -1 }), { code: ErrorCode.INVALID_ARGUMENT } as object)
})

test('entries(), keys() and values() return every pair exactly once, with buffered writes and deletes overlaid', async (t) => {
  const { db } = await memoryStore()
  const model = new Map<string, string>()
  for (let index = 0; index < 3000; index++) {
    await db.put(`key-${index}`, `value-${index}`, { sync: false })
    model.set(`key-${index}`, `value-${index}`)
  }
  await db.flush()
  for (let index = 0; index < 3000; index += 3) {
    await db.del(`key-${index}`)
    model.delete(`key-${index}`)
  }
  await db.put('key-1', 'changed')
  model.set('key-1', 'changed')
  await db.put('big', Buffer.alloc(50_000, 9))
  const seen = await contents(db)
  t.is(seen.size, model.size + 1)
  for (const [key, value] of model) t.is(seen.get(key)?.toString(), value)
  t.is(seen.get('big')?.length, 50_000)
  const keys: string[] = []
  for await (const key of db.keys()) keys.push(key.toString())
  t.is(new Set(keys).size, model.size + 1)
  let values = 0
  for await (const value of db.values()) values += value.length > 0 ? 1 : 0
  t.is(values, model.size + 1)
  let viaIterator = 0
  for await (const pair of db) viaIterator += pair.length === 2 ? 1 : 0
  t.is(viaIterator, model.size + 1)
  await db.close()
})

test('breaking out of an iteration lets splits resume', async (t) => {
  const { db } = await memoryStore({ expectedKeys: 50 })
  for (let index = 0; index < 500; index++) await db.put(`a${index}`, 'x'.repeat(50))
  for await (const pair of db.entries()) {
    t.truthy(pair)
    break
  }
  for (let index = 0; index < 3000; index++) await db.put(`b${index}`, 'y'.repeat(50), { sync: false })
  await db.flush()
  await db.flush()
  t.true(db.stats().buckets > 20, `splits went on after the iterator closed (${db.stats().buckets} buckets)`)
  t.is((await contents(db)).size, 3500)
  await db.close()
})

test('flush() writes everything buffered to the buckets; stats() counts it', async (t) => {
  const { db } = await memoryStore()
  for (let index = 0; index < 100; index++) await db.put(`k${index}`, 'v')
  t.true(db.stats().bufferedWrites > 0)
  await db.flush()
  const stats = db.stats()
  t.is(stats.bufferedWrites, 0)
  t.is(stats.keys, 100)
  t.true(stats.buckets >= 1)
  t.true(stats.loadFactor > 0 && stats.loadFactor < 1)
  t.is(stats.memory.total, Object.entries(stats.memory).filter(([name]) => name !== 'total').reduce((sum, [, bytes]) => sum + bytes, 0))
  for (const field of ['reads', 'writes', 'bytesRead', 'bytesWritten', 'logicalBytes', 'physicalBytes'] as const) t.true(stats.device[field] >= 0, field)
  t.true(stats.device.writes > 0)
  await db.close()
})

test('sync: false writes are readable at once and survive a clean close', async (t) => {
  const { db, backing } = await memoryStore({ sync: false })
  const writes = Array.from({ length: 200 }, (_, index) => db.put(`k${index}`, `v${index}`))
  await Promise.all(writes)
  t.is((await db.get('k199'))!.toString(), 'v199')
  await db.close()
  const again = await reopen(backing)
  t.is((await again.get('k0'))!.toString(), 'v0')
  t.is((await again.get('k199'))!.toString(), 'v199')
  await again.close()
})

test('after close() every method rejects with CUBBY_CLOSED; close() is idempotent and settles pending writes', async (t) => {
  const { db } = await memoryStore()
  const pending = [db.put('a', '1'), db.put('b', '2'), db.batch([{ type: 'put', key: 'c', value: '3' }])]
  const closing = db.close()
  t.is(db.close(), closing, 'a second close() returns the same promise')
  await closing
  await Promise.all(pending)
  t.false(db.isOpen)
  await rejectsWith(t, db.get('a'), ErrorCode.CLOSED)
  await rejectsWith(t, db.getMany(['a']), ErrorCode.CLOSED)
  await rejectsWith(t, db.has('a'), ErrorCode.CLOSED)
  await rejectsWith(t, db.put('a', '1'), ErrorCode.CLOSED)
  await rejectsWith(t, db.del('a'), ErrorCode.CLOSED)
  await rejectsWith(t, db.batch([]), ErrorCode.CLOSED)
  await rejectsWith(t, db.flush(), ErrorCode.CLOSED)
  await rejectsWith(t, db.entries().next(), ErrorCode.CLOSED)
  t.throws(() => db.stats(), { code: ErrorCode.CLOSED } as object)
  await db.close()
})

test('an iterator of a store closed under it rejects with CUBBY_CLOSED', async (t) => {
  const { db } = await memoryStore()
  for (let index = 0; index < 20; index++) await db.put(`k${index}`, 'v')
  const iterator = db.entries()
  t.truthy((await iterator.next()).value)
  await db.close()
  await rejectsWith(t, iterator.next(), ErrorCode.CLOSED)
})

test('await using closes the store at the end of the scope', async (t) => {
  const backing = new MemoryBacking(0)
  let handle: CubbyDB | undefined
  {
    await using db = await openOnVolume(new MemoryVolume({}, backing), SMALL_STORE, { fresh: true })
    handle = db
    await db.put('scoped', 'yes')
  }
  t.false(handle.isOpen)
  const again = await reopen(backing)
  t.is((await again.get('scoped'))!.toString(), 'yes')
  await again.close()
})

test('a read-only store serves reads and refuses writes with CUBBY_READ_ONLY', async (t) => {
  const { db, backing } = await memoryStore()
  await db.put('k', 'v')
  await db.close()
  const readOnly = await openOnVolume(new MemoryVolume({ readOnly: true }, backing), { readOnly: true })
  t.true(readOnly.readOnly)
  t.is((await readOnly.get('k'))!.toString(), 'v')
  await rejectsWith(t, readOnly.put('k', 'w'), ErrorCode.READ_ONLY)
  await rejectsWith(t, readOnly.del('k'), ErrorCode.READ_ONLY)
  await rejectsWith(t, readOnly.batch([{ type: 'del', key: 'k' }]), ErrorCode.READ_ONLY)
  await readOnly.flush()
  t.is((await contents(readOnly)).size, 1)
  await readOnly.close()
})

test('a second opener of the same store gets CUBBY_LOCKED', async (t) => {
  const { db, backing } = await memoryStore()
  const error = t.throws(() => new MemoryVolume({}, backing))
  t.is((error as { code?: string }).code, ErrorCode.LOCKED)
  await db.close()
  const again = await reopen(backing)
  await again.close()
})

test('a failed write makes the store refuse writes with CUBBY_IO until reopened; acknowledged writes survive', async (t) => {
  const { db: first, backing } = await memoryStore()
  await first.close()
  const { db, faulty } = await faultyStore(backing)
  await db.put('before', 'ok')
  faulty.failNext({ operation: 'write', nth: 1 })
  const failed = await rejectsWith(t, db.put('during', 'lost'), ErrorCode.IO)
  t.is((failed as { errno?: string }).errno, 'EIO')
  const refused = await rejectsWith(t, db.put('after', 'refused'), ErrorCode.IO)
  t.regex(refused.message, /refuses writes until it is reopened/)
  t.is((await db.get('before'))!.toString(), 'ok', 'reads go on')
  await db.close()
  const again = await reopen(backing)
  t.is((await again.get('before'))!.toString(), 'ok')
  t.is(await again.get('after'), undefined)
  await again.close()
})

test('a failed sync of the log fails the write with CUBBY_IO; a failed flush step refuses later writes', async (t) => {
  const { db: first, backing } = await memoryStore()
  await first.close()
  const { db, faulty } = await faultyStore(backing)
  faulty.failNext({ operation: 'sync', nth: 1 })
  await rejectsWith(t, db.put('k', 'v'), ErrorCode.IO)
  await db.close()
  const { db: store, faulty: second } = await faultyStore(backing)
  await store.put('acked', 'yes')
  second.failNext({ operation: 'write', nth: 2 })
  await rejectsWith(t, store.flush(), ErrorCode.IO)
  await rejectsWith(t, store.put('x', 'y'), ErrorCode.IO)
  t.is((await store.get('acked'))!.toString(), 'yes')
  await store.close()
  const again = await reopen(backing)
  t.is((await again.get('acked'))!.toString(), 'yes')
  await again.close()
})

test('a failed read rejects that get with CUBBY_IO and the store goes on', async (t) => {
  const { db: first, backing } = await memoryStore()
  await first.put('k', 'v')
  await first.close()
  const { db, faulty } = await faultyStore(backing, { cacheSize: 0 })
  faulty.failNext({ operation: 'read', nth: 1 })
  await rejectsWith(t, db.get('k'), ErrorCode.IO)
  t.is((await db.get('k'))!.toString(), 'v')
  await db.put('still', 'writable')
  await db.close()
})

test('a full store refuses large values with CUBBY_FULL and keeps working', async (t) => {
  const { db } = await memoryStore({ size: 8 * 1024 * 1024, expectedKeys: 100 })
  const value = Buffer.alloc(1024 * 1024, 7)
  let stored = 0
  let error: unknown
  for (let index = 0; index < 20 && error === undefined; index++) {
    try {
      await db.put(`big-${index}`, value)
      stored++
    } catch (caught) {
      error = caught
    }
  }
  t.is((error as { code?: string }).code, ErrorCode.FULL)
  t.true(stored > 0)
  t.deepEqual(await db.get('big-0'), value)
  await db.put('small', 'fits')
  t.is((await db.get('small'))!.toString(), 'fits')
  await db.del('big-0')
  await db.flush()
  await db.flush()
  await db.put('big-again', value)
  t.deepEqual(await db.get('big-again'), value, 'a deleted extent is reused after its checkpoint')
  await db.close()
})

test('open() creates an image file, reopens it, and the file stays sparse', async (t) => {
  const file = temporaryPath('store.img')
  const db = await open(file, { expectedKeys: 1000 })
  for (let index = 0; index < 1000; index++) await db.put(`k${index}`, `v${index}`, { sync: false })
  await db.close()
  const stat = fs.statSync(file)
  t.true(stat.size >= 4 * 1024 ** 3, 'the logical size leaves room to grow')
  t.true(stat.blocks * 512 < 64 * 1024 * 1024, `only written blocks take space (${stat.blocks * 512} bytes)`)
  const again = await open(file, { create: false })
  t.is((await again.get('k999'))!.toString(), 'v999')
  await again.close()
  const readOnly = await open(file, { readOnly: true })
  t.is((await readOnly.get('k0'))!.toString(), 'v0')
  await readOnly.close()
})

test('a missing path with create: false, or a target holding other data, is CUBBY_NOT_A_STORE and left untouched', async (t) => {
  await rejectsWith(t, open(temporaryPath('missing.img'), { create: false }), ErrorCode.NOT_A_STORE)
  await rejectsWith(t, open(temporaryPath('missing.img'), { readOnly: true }), ErrorCode.NOT_A_STORE)
  const file = temporaryPath('other.img')
  const data = Buffer.alloc(1024 * 1024)
  for (let index = 0; index < data.length; index++) data[index] = (index * 7) & 0xff
  fs.writeFileSync(file, data)
  const error = await rejectsWith(t, open(file), ErrorCode.NOT_A_STORE)
  t.regex(error.message, /overwrite: true/)
  t.deepEqual(fs.readFileSync(file), data, 'the file is unchanged')
  const empty = temporaryPath('empty.img')
  fs.writeFileSync(empty, Buffer.alloc(0))
  await rejectsWith(t, open(empty, { create: false }), ErrorCode.NOT_A_STORE)
  const formatted = await open(file, { overwrite: true, size: 64 * 1024 * 1024, expectedKeys: 100 })
  await formatted.put('mine', 'now')
  await formatted.close()
  const again = await open(file)
  t.is((await again.get('mine'))!.toString(), 'now')
  await again.close()
})

test('a store of a newer format version is refused with CUBBY_VERSION', async (t) => {
  // Raw mode: the engine's superblocks are the volume's first two blocks.
  const { db, backing } = await memoryStore({ compression: 'none' })
  await db.close()
  for (const offset of [0, 4096]) {
    const block = Buffer.alloc(16)
    backing.read(offset, block, 0, 16)
    block.writeUInt16LE(2, 12)
    backing.write(offset, block, 0, 16)
  }
  await rejectsWith(t, reopen(backing), ErrorCode.VERSION)
})

test('plan() answers the sizing question', (t) => {
  const answer = plan({ keys: 1_000_000, keySize: 24, valueSize: 100 })
  t.true(answer.buckets > 50_000 && answer.buckets < 200_000, `${answer.buckets} buckets`)
  t.true(answer.valuesInline)
  t.true(answer.overflowFraction < 0.01)
  t.true(answer.readsPerGet.existing <= 1.02 && answer.readsPerGet.missing <= 1.02)
  t.true(answer.physicalBytes < answer.logicalBytes)
  t.true(answer.physicalBytes >= 1_000_000 * 124)
  const large = plan({ keys: 1000, valueSize: 100_000 })
  t.false(large.valuesInline)
  t.true(large.readsPerGet.existing >= 2)
})

test('stats().device reports compression and cleaning: the ratio, live bytes and bytes the cleaner moved (lz4), neutral figures without compression', async (t) => {
  const { db } = await memoryStore({ compression: 'lz4', expectedKeys: 2000 })
  const value = (round: number, index: number): string => `value ${index} of round ${round} `.repeat(16)
  for (let index = 0; index < 2000; index++) await db.put(`key-${index}`, value(0, index))
  await db.flush()
  const first = db.stats().device
  t.true(first.logicalBytes > 0)
  t.true(first.compressionRatio > 1.5, `compression ratio ${first.compressionRatio}`)
  t.is(first.compressionRatio, first.logicalBytes / first.liveBytes)
  t.true(first.liveBytes > 0 && first.liveBytes < first.logicalBytes, `live ${first.liveBytes} of ${first.logicalBytes} logical`)
  // Rewrite every bucket many times: the dead records must be cleaned.
  for (let round = 1; round <= 30; round++) {
    for (let start = 0; start < 2000; start += 400) {
      await db.batch(Array.from({ length: 400 }, (_, index) => ({ type: 'put' as const, key: `key-${start + index}`, value: value(round, start + index) })))
    }
    await db.flush()
  }
  const later = db.stats().device
  t.true(later.cleaningBytesMoved > 0, `cleaner moved ${later.cleaningBytesMoved} bytes`)
  t.true(later.cleaningWriteAmplification > 1, `cleaning write amplification ${later.cleaningWriteAmplification}`)
  t.is((await db.get('key-1999'))?.toString(), value(30, 1999))
  await db.close()

  const { db: raw } = await memoryStore({ compression: 'none' })
  await raw.put('a', 'b')
  await raw.flush()
  const none = raw.stats().device
  t.is(none.compressionRatio, 1)
  t.is(none.liveBytes, none.logicalBytes)
  t.is(none.cleaningBytesMoved, 0)
  t.is(none.cleaningWriteAmplification, 1)
  await raw.close()
})
