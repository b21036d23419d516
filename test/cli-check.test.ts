// `cubby check` and `cubby salvage`, run as the real binary on image files:
// a healthy store of each mode checks healthy with its counts; a byte of a
// bucket flipped on disk (in a raw store, and inside the compressed record of
// an lz4 store) makes check exit 1 naming the structure, the location and the
// code; salvage copies every readable pair, right, into a new store that
// opens and checks healthy, and refuses a target that holds data; missing
// paths, foreign files, held stores and usage mistakes get their codes.
import test, { type ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { open } from '../src/db'
import { openFileVolume } from '../src/device/file'
import { BlockMap } from '../src/device/compressed/block-map'
import { CompressedBlockDevice } from '../src/device/compressed/device'
import { RECORD_HEADER_BYTES, entryAddress } from '../src/device/compressed/format'
import { BLOCK_SIZE } from '../src/engine/format'
import { bucketOf, hashKey, newKeyHash } from '../src/engine/hash'
import { type Superblock, decodeSuperblock } from '../src/engine/superblock'
import { ErrorCode } from '../src/errors'
import { cubby, cubbyJson, temporaryPath } from './helpers/cli'
import { contents } from './helpers/store'

type Compression = 'lz4' | 'none'

const SIZING = { expectedKeys: 100, keySize: 8, valueSize: 40, size: 64 * 1024 * 1024 }

interface Report {
  path: string
  healthy: boolean
  mode: Compression
  problems: Array<{ structure: string; location: string; code: string; message: string }>
  counts: Record<string, number>
}

interface SalvageJson {
  from: string
  to: string
  pairs: number
  unreadable: number
  problems: Report['problems']
}

/** A closed store of 500 keys (some values in extents, so some overflow), a few deleted; what it holds. */
async function buildStore(compression: Compression): Promise<{ file: string; pairs: Map<string, Buffer> }> {
  const file = temporaryPath(`store-${compression}.img`)
  const db = await open(file, { ...SIZING, compression })
  for (let index = 0; index < 500; index++) await db.put(`key-${index}`, Buffer.alloc(index % 60 === 0 ? 7000 : 20 + (index % 30), index), { sync: false })
  for (let index = 0; index < 500; index += 13) await db.del(`key-${index}`, { sync: false })
  const pairs = await contents(db)
  await db.close()
  // An open and close leave a last flush step with no images, so the bucket damaged below is not hidden by a journal copy.
  await (await open(file)).close()
  return { file, pairs }
}

function newestSuperblock(first: Buffer, second: Buffer): Superblock {
  const copies = [decodeSuperblock(first, 0), decodeSuperblock(second, 0)].flatMap((copy) => (copy.kind === 'valid' ? [copy.superblock] : []))
  return copies.reduce((best, copy) => (copy.generation > best.generation ? copy : best))
}

function bucketOfKey(superblock: Superblock, key: string): number {
  const bytes = Buffer.from(key)
  return bucketOf(hashKey(bytes, 0, bytes.length, newKeyHash()).bucketHash, superblock.initialBuckets, superblock.level, superblock.splitPointer)
}

/**
 * Flips one byte of the bucket holding `key`, on disk, the way a failing
 * drive would: in a raw store inside the bucket's block; in an lz4 store
 * inside the compressed record the bucket's block is stored as. Returns the
 * bucket and, for raw, the entries its header claims.
 */
async function damageBucketOf(file: string, compression: Compression, key: string): Promise<{ bucket: number; lba: number; entries: number; volumeOffset: number }> {
  let offset: number
  let bucket: number
  let lba: number
  if (compression === 'none') {
    const image = fs.readFileSync(file)
    const superblock = newestSuperblock(image.subarray(0, BLOCK_SIZE), image.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE))
    bucket = bucketOfKey(superblock, key)
    lba = superblock.regionStart + bucket
    offset = lba * BLOCK_SIZE + 100
  } else {
    const device = await CompressedBlockDevice.open(await openFileVolume(file, { readOnly: true }))
    try {
      const read = async (at: number): Promise<Buffer> => {
        const buffer = device.allocate(1)
        await device.read([{ lba: at, buffer, bufferOffset: 0 }])
        return Buffer.from(buffer.subarray(0, BLOCK_SIZE))
      }
      const superblock = newestSuperblock(await read(0), await read(1))
      bucket = bucketOfKey(superblock, key)
      lba = superblock.regionStart + bucket
      await device.map.loadAndPin([BlockMap.pageOf(lba)])
      const entry = device.map.lookup(lba)
      device.map.unpin(BlockMap.pageOf(lba))
      offset = device.geometry.dataOffset + entryAddress(entry, device.geometry.granuleBytes) + RECORD_HEADER_BYTES + 8
    } finally {
      await device.close()
    }
  }
  const descriptor = fs.openSync(file, 'r+')
  try {
    const byte = Buffer.alloc(1)
    fs.readSync(descriptor, byte, 0, 1, offset)
    byte[0] = byte[0]! ^ 0xff
    fs.writeSync(descriptor, byte, 0, 1, offset)
  } finally {
    fs.closeSync(descriptor)
  }
  const entries = compression === 'none' ? fs.readFileSync(file).readUInt16LE(lba * BLOCK_SIZE + 14) : 0
  return { bucket, lba, entries, volumeOffset: offset }
}

function digest(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

function scratch(t: ExecutionContext, files: string[]): void {
  t.teardown(() => {
    for (const file of files) fs.rmSync(file, { force: true })
  })
}

for (const compression of ['none', 'lz4'] as const) {
  test(`check: a healthy ${compression} store exits 0 with what it checked`, async (t) => {
    const { file, pairs } = await buildStore(compression)
    scratch(t, [file])
    const text = await cubby(['check', file])
    t.is(text.status, 0, text.stderr)
    t.is(text.stderr, '')
    t.true(text.text.startsWith(`${file}: healthy (mode ${compression}`), text.text)
    t.regex(text.text, new RegExp(`\\n  keys +${pairs.size}\\n`))
    t.regex(text.text, /\n {2}buckets +[\d,]+\n/)
    t.regex(text.text, /\n {2}extents +[1-9]/)
    if (compression === 'lz4') t.regex(text.text, /\n {2}lz4 live records +[1-9]/)

    const { status, json } = await cubbyJson<Report>(['check', file])
    t.is(status, 0)
    t.true(json.healthy)
    t.is(json.mode, compression)
    t.is(json.path, file)
    t.deepEqual(json.problems, [])
    t.is(json.counts.keys, pairs.size)
    t.is(json.counts.entries, pairs.size)
  })

  test(`check: a byte of a bucket flipped on disk (${compression}) exits 1 and lists the problem with its structure, location and code`, async (t) => {
    const { file } = await buildStore(compression)
    scratch(t, [file])
    const before = await cubbyJson<Report>(['check', file])
    t.true(before.json.healthy)
    const damaged = await damageBucketOf(file, compression, 'key-3')
    const image = digest(file)

    const { status, json, stderr } = await cubbyJson<Report>(['check', file])
    t.is(status, 1, stderr)
    t.false(json.healthy)
    t.true(json.problems.length > 0)
    for (const problem of json.problems) {
      t.is(typeof problem.structure, 'string')
      t.true(problem.location.length > 0)
      t.is(problem.code, ErrorCode.CORRUPT, JSON.stringify(problem))
    }
    const segmentBytes = compression === 'lz4' ? /segment \d+ \+0x[0-9a-f]+/ : undefined
    if (compression === 'none') {
      t.true(
        json.problems.some((problem) => problem.structure === 'bucket' && problem.location.includes(`bucket ${damaged.bucket}`) && problem.location.includes(`LBA ${damaged.lba}`)),
        JSON.stringify(json.problems),
      )
    } else {
      t.true(
        json.problems.some((problem) => problem.structure === 'lz4-segment' && segmentBytes!.test(problem.location)),
        JSON.stringify(json.problems),
      )
    }

    const text = await cubby(['check', file])
    t.is(text.status, 1)
    const first = json.problems[0]!
    t.true(text.text.startsWith(`${file}: ${json.problems.length === 1 ? '1 problem' : `${json.problems.length} problems`} (mode ${compression}`), text.text)
    t.true(text.text.includes(`\n  ${first.structure} at ${first.location}: ${first.code}: ${first.message}\n`), text.text)
    t.regex(text.text, /\nchecked:\n(?: {2}.*\n)* {2}blocks +[\d,]+\n/)
    t.regex(text.stderr, /^cubby check: .* is not healthy: \d+ problems?; `cubby salvage` copies what is readable into a new store\n$/)
    t.is(digest(file), image, 'check wrote nothing')
  })
}

test('salvage copies every readable pair of a damaged raw store into a new store that opens and checks healthy', async (t) => {
  const { file, pairs } = await buildStore('none')
  const target = temporaryPath('salvaged.img')
  scratch(t, [file, target])
  const damaged = await damageBucketOf(file, 'none', 'key-3')
  t.true(damaged.entries > 0)

  const { status, json, stderr } = await cubbyJson<SalvageJson>(['salvage', file, target])
  t.is(status, 0, stderr)
  t.is(json.from, file)
  t.is(json.to, target)
  t.is(json.unreadable, damaged.entries, "the damaged bucket's entries are counted as lost")
  t.is(json.pairs, pairs.size - damaged.entries)
  t.true(json.problems.some((problem) => problem.structure === 'bucket' && problem.location.includes(`bucket ${damaged.bucket}`) && problem.code === ErrorCode.CORRUPT))

  const salvaged = await open(target, { create: false })
  const copied = await contents(salvaged)
  await salvaged.close()
  t.is(copied.size, json.pairs)
  t.false(copied.has('key-3'), 'the damaged bucket held key-3')
  for (const [key, value] of copied) t.deepEqual(value, pairs.get(key), key)
  t.is((await cubby(['check', target])).status, 0, 'the new store is healthy')
  t.is((await cubby(['get', target, 'key-1'])).stdout.length, 21)
})

test('salvage of a damaged lz4 store copies only right pairs, and says what it lost', async (t) => {
  const { file, pairs } = await buildStore('lz4')
  const target = temporaryPath('salvaged-lz4.img')
  scratch(t, [file, target])
  await damageBucketOf(file, 'lz4', 'key-3')
  const text = await cubby(['salvage', file, target, '--compression', 'none'])
  t.is(text.status, 0, text.stderr)
  t.regex(text.text, /^salvaged [\d,]+ pairs? from .* into .*\n[\d,]+ problems? in .*:\n {2}lz4-segment at segment \d+ \+0x[0-9a-f]+: CUBBY_CORRUPT: /)
  const salvaged = await open(target, { create: false })
  const copied = await contents(salvaged)
  await salvaged.close()
  t.true(copied.size > 0 && copied.size < pairs.size, `${copied.size} of ${pairs.size}`)
  for (const [key, value] of copied) t.deepEqual(value, pairs.get(key), key)
  const info = await cubbyJson(['info', target])
  t.is(info.json.compression, 'none', '--compression sets the new store\'s mode')
})

test('salvage refuses a target that holds data, or the store itself, and leaves both untouched', async (t) => {
  const { file } = await buildStore('none')
  const occupied = temporaryPath('occupied.img')
  fs.writeFileSync(occupied, 'precious\n')
  scratch(t, [file, occupied])
  const source = digest(file)
  for (const to of [occupied, file]) {
    const { status, json, stderr } = await cubbyJson<{ error: { code: string; message: string } }>(['salvage', file, to])
    t.is(status, 1, to)
    t.is(json.error.code, ErrorCode.INVALID_ARGUMENT)
    t.regex(stderr, /^cubby salvage: CUBBY_INVALID_ARGUMENT: salvage writes a new store, and .* already holds data\n$/)
  }
  t.is(fs.readFileSync(occupied, 'utf8'), 'precious\n')
  t.is(digest(file), source)
  const empty = temporaryPath('empty.img')
  fs.writeFileSync(empty, '')
  scratch(t, [empty])
  t.is((await cubby(['salvage', file, empty])).status, 0, 'an empty file is a fine target')
})

test('check and salvage of a missing path are CUBBY_NOT_A_STORE and create nothing; a foreign file is a NOT_A_STORE problem', async (t) => {
  const missing = temporaryPath('missing.img')
  const target = temporaryPath('never.img')
  const checked = await cubbyJson<{ error: { code: string; exitStatus: number } }>(['check', missing])
  t.is(checked.status, 1)
  t.is(checked.json.error.code, ErrorCode.NOT_A_STORE)
  t.is(checked.json.error.exitStatus, 1)
  t.regex(checked.stderr, /^cubby check: CUBBY_NOT_A_STORE: .*missing\.img does not exist\n$/)
  const salvaged = await cubbyJson<{ error: { code: string } }>(['salvage', missing, target])
  t.is(salvaged.status, 1)
  t.is(salvaged.json.error.code, ErrorCode.NOT_A_STORE)
  t.false(fs.existsSync(missing))
  t.false(fs.existsSync(target), 'no target is made when the source cannot be read')

  const foreign = temporaryPath('foreign.img')
  fs.writeFileSync(foreign, Buffer.alloc(1024 * 1024, 'not a store '))
  scratch(t, [foreign])
  const report = await cubbyJson<Report>(['check', foreign])
  t.is(report.status, 1)
  t.false(report.json.healthy)
  t.is(report.json.problems[0]!.code, ErrorCode.NOT_A_STORE)
  const text = await cubby(['check', foreign])
  t.is(text.status, 1)
  t.regex(text.text, /\n {2}superblock at LBA 0-1: CUBBY_NOT_A_STORE: neither superblock copy holds a CubbyDB superblock\n/)
  t.regex(text.stderr, /is not healthy: 1 problem\n$/, 'no salvage hint for a file that holds no store')
})

test('check of a store a process holds open is CUBBY_LOCKED', async (t) => {
  const { file } = await buildStore('none')
  scratch(t, [file])
  const db = await open(file)
  try {
    const result = await cubbyJson<{ error: { code: string } }>(['check', file])
    t.is(result.status, 1)
    t.is(result.json.error.code, ErrorCode.LOCKED)
  } finally {
    await db.close()
  }
})

test('check and salvage usage mistakes exit with status 2 and the synopsis', async (t) => {
  const cases: Array<[string[], RegExp, string]> = [
    [['check'], /missing <path>/, 'check <path> [options]'],
    [['check', 'a.img', 'b.img'], /unexpected argument "b.img"/, 'check <path> [options]'],
    [['check', 'a.img', '--repair'], /--repair/, 'check <path> [options]'],
    [['salvage', 'a.img'], /missing <new>/, 'salvage <damaged> <new> [options]'],
    [['salvage', 'a.img', 'b.img', 'c.img'], /unexpected argument "c.img"/, 'salvage <damaged> <new> [options]'],
    [['salvage', 'a.img', 'b.img', '--compression', 'zstd'], /--compression must be one of lz4, none/, 'salvage <damaged> <new> [options]'],
  ]
  for (const [args, message, synopsis] of cases) {
    const result = await cubby(args)
    t.is(result.status, 2, args.join(' '))
    t.regex(result.stderr, message, args.join(' '))
    t.true(result.stderr.includes(`\nusage: cubby ${synopsis}\n`), result.stderr)
  }
})
